"""`hwnas demo`: the whole hardware-aware search on this machine, end to end, in minutes.

    1. latency table   profile every candidate of a small FBNet space on this JAX backend
                       (or reuse the table cached for this machine and space)
    2. search          train the supernet with ProxylessNAS binary gates under each latency
                       target; the warm-up is trained once and forked (`train.fork`), the
                       compiled steps are shared (`Run.steps`), since only the target differs
    3. derive          the argmax architecture of each search
    4. fine-tune       the extracted subnet, from its inherited weights, for a short while
    5. measure         every derived subnet as one jitted program, interleaved, on this backend
    6. report          target, architecture, LUT latency, measured latency, accuracy

Targets sit at fixed fractions of the table's range, from the fastest possible network to
the slowest, so "fast" and "slow" mean the same on every machine. Latency is that of a
batch of `batch_size` images (default 64): on a CPU a single tiny image is mostly dispatch
overhead, which every subnet pays alike and which would hide the differences being searched.

Everything lands in `workdir`: `lut.json`, one training workdir per search and per
fine-tune, and `demo.json` with the table. Running the demo again resumes or reuses every
finished part.
"""

from __future__ import annotations

import copy
import json
import time
from pathlib import Path
from typing import Callable, NamedTuple

import numpy as np

from costs.lut import LatencyTable, LUTError
from supernet import profile, train
from supernet.paths import default_cache_dir
from supernet.spaces import get_space

DEFAULT_FRACTIONS = (0.15, 0.45, 0.8)
SMOKE_FRACTIONS = (0.2, 0.8)


class DemoRow(NamedTuple):
    target_ms: float
    arch: list[int]  # public encoding (candidate index per layer)
    arch_str: str
    lut_ms: float
    measured_ms: float
    measured_iqr_ms: float
    supernet_accuracy: float  # the derived path inside the supernet, before fine-tuning
    accuracy: float  # after fine-tuning, on the held-out test images


class DemoResult(NamedTuple):
    rows: list[DemoRow]
    device: str
    lut_path: Path
    lut_reused: bool
    batch_size: int
    ordered: bool  # measured latency increases with the target
    seconds: dict[str, float]


def search_config(smoke: bool, seed: int = 0) -> dict:
    """The supernet search the demo runs (one per target; `hardware.terms` is filled in later)."""
    config = {
        "kind": "supernet",
        "seed": seed,
        "space": {"name": "fbnet", "preset": "demo"},
        # No augmentation: a few hundred steps underfit; crops and flips would only slow them.
        "data": {"dataset": "fashion_mnist_default", "val_fraction": 0.2, "batch_size": 64,
                 "augment": {}, "limit_train": 0, "limit_test": 0},
        "method": {"name": "proxyless", "options": {}},
        # 75 steps per epoch on the embedded 4,800 training images.
        "schedule": {"epochs": 4, "warmup_epochs": 2, "arch_every": 1, "steps_per_epoch": 0},
        "optim": {
            # Measured on the demo space: a fixed subnet reaches 80% test accuracy in 150 steps
            # at 1e-2 and 74% at 3e-3.
            "weights": {"name": "adam", "lr": 1e-2, "cosine": True, "weight_decay": 4e-5},
            # A short search needs a livelier architecture optimizer than ProxylessNAS's 6e-3
            # over hundreds of epochs: alpha must move several units in ~150 steps.
            "arch": {"name": "adam", "lr": 3e-2, "b1": 0.0, "b2": 0.999},
        },
        "hardware": {"form": "absolute", "terms": []},
        "checkpoint": {"every_steps": 100, "keep": 2},
        "log": {"every_steps": 25},
        "eval": {"derive_samples": 0},
    }
    if smoke:
        config["space"]["preset"] = "micro"
        config["data"].update(batch_size=16, limit_train=160, limit_test=64)
        config["schedule"].update(epochs=2, warmup_epochs=1, steps_per_epoch=2)
        config["checkpoint"]["every_steps"] = 2
        config["log"]["every_steps"] = 1
    return config


def finetune_config(search: dict, source: Path, smoke: bool) -> dict:
    """Retrain the derived subnet of the search in `source` from its inherited weights."""
    config = copy.deepcopy(search)
    config.update(kind="subnet", subnet={"from": str(source), "arch": None})
    config["hardware"] = {"form": "absolute", "terms": []}
    config["schedule"] = {"epochs": 2, "warmup_epochs": 0, "arch_every": 1,
                          "steps_per_epoch": 1 if smoke else 0}
    config["optim"]["weights"].update(lr=3e-3)
    return config


def run_demo(workdir: str | Path, *, smoke: bool = False, lut: str | Path | None = None,
             cache_dir: str | Path | None = None, fractions: tuple[float, ...] | None = None,
             hardware_weight: float = 2.0, batch_size: int | None = None, seed: int = 0,
             progress: bool = True, log: Callable[[str], None] = print) -> DemoResult:
    """Run the demo (module docstring) in `workdir` and return its table."""
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    fractions = tuple(fractions or (SMOKE_FRACTIONS if smoke else DEFAULT_FRACTIONS))
    if len(fractions) < 2 or any(not 0 <= f <= 1 for f in fractions) or sorted(set(fractions)) != list(fractions):
        raise ValueError(f"target fractions must be increasing, distinct and within [0, 1], got {fractions}")
    base = search_config(smoke, seed)
    space = get_space("fbnet", base["space"]["preset"])
    batch_size = int(batch_size or (8 if smoke else 64))
    timing = {"warmup": 1, "repeats": 3, "rounds": 1} if smoke else {"warmup": 10, "repeats": 60, "rounds": 6}
    seconds: dict[str, float] = {}

    started = time.perf_counter()
    table, lut_path, reused = _latency_table(space, workdir, lut, cache_dir, batch_size, timing, log)
    seconds["latency table"] = time.perf_counter() - started
    log(f"latency table: {'reused ' if reused else ''}{lut_path} ({table.device.get('name')}, batch "
        f"{table.device.get('batch_size')}); networks cost {table.min_cost:.3f} to {table.max_cost:.3f} ms")
    targets = [table.min_cost + f * (table.max_cost - table.min_cost) for f in fractions]

    started = time.perf_counter()
    datasets = train.load_data(base["data"], seed, space.macro.input_size)
    searches = []
    for i, target in enumerate(targets):
        config = copy.deepcopy(base)
        config["hardware"]["terms"] = [{"lut": str(lut_path), "weight": hardware_weight, "target": target}]
        searches.append((config, workdir / f"search-{i}"))
    if not all((run_dir / "result.json").exists() for _, run_dir in searches):
        # Weight and architecture steps compile side by side before the warm-up starts.
        train.compile_ahead([train.build(searches[0][0], datasets)])
    _train_shared_warmup(searches, datasets, progress, log)
    results = []
    for (config, run_dir), target in zip(searches, targets):
        log(f"search under {target:.3f} ms ({run_dir.name})")
        results.append(train.train(config, run_dir, datasets=datasets, progress=progress))
    seconds["search"] = time.perf_counter() - started

    started = time.perf_counter()
    finetunes = [(finetune_config(config, run_dir, smoke), workdir / f"finetune-{i}")
                 for i, (config, run_dir) in enumerate(searches)]
    train.compile_ahead([train.build(config, datasets) for config, run_dir in finetunes  # side by side
                         if not (run_dir / "result.json").exists()])
    tuned = []
    for (config, run_dir), result in zip(finetunes, results):
        log(f"fine-tune {space.describe(result.arch)}")
        tuned.append(train.train(config, run_dir, datasets=datasets, progress=progress))
    seconds["fine-tune"] = time.perf_counter() - started

    started = time.perf_counter()
    archs = [np.asarray(r.arch) for r in results]
    log(f"measuring {len(archs)} subnets at batch {batch_size}")
    measured = profile.measure_subnets(space.macro, archs, batch_size=batch_size, **timing)
    seconds["measure"] = time.perf_counter() - started

    lut_costs = np.asarray(table.cost(np.stack(archs)))
    rows = [DemoRow(float(t), space.to_public(a), space.describe(a), float(c), m.median_ms, m.iqr_ms,
                    r.test_accuracy, f.test_accuracy)
            for t, a, c, m, r, f in zip(targets, archs, lut_costs, measured, results, tuned)]
    ordered = all(a.measured_ms <= b.measured_ms for a, b in zip(rows, rows[1:]))
    result = DemoResult(rows, str(table.device.get("name")), lut_path, reused, batch_size, ordered, seconds)
    (workdir / "demo.json").write_text(json.dumps(to_json(result), indent=1))
    return result


def to_json(result: DemoResult) -> dict:
    return {"device": result.device, "lut": str(result.lut_path), "lut_reused": result.lut_reused,
            "batch_size": result.batch_size, "ordered": result.ordered,
            "seconds": {k: round(v, 1) for k, v in result.seconds.items()},
            "rows": [row._asdict() for row in result.rows]}


def _train_shared_warmup(searches, datasets, progress, log) -> None:
    """Train the first search's warm-up, then start the others from it (see `train.fork`)."""
    (first, first_dir), others = searches[0], searches[1:]
    pending = [(c, d) for c, d in others if not (d / "config.json").exists()]
    if not pending:
        return
    run, _ = train.build(first, datasets)
    done = _latest_step(first_dir)
    if done < run.warmup_steps:
        log(f"warm-up ({run.warmup_steps} steps, shared by all targets)")
        train.train(first, first_dir, datasets=datasets, stop_after=run.warmup_steps - done, progress=progress)
    if _latest_step(first_dir) != run.warmup_steps:
        return  # the first search went past its warm-up earlier: the others train their own
    for config, run_dir in pending:
        train.fork(first_dir, run_dir, config, datasets=datasets)


def _latest_step(run_dir: Path) -> int:
    from supernet.checkpoint import Checkpointer

    if not (run_dir / "checkpoints").exists():
        return 0
    ckpt = Checkpointer(run_dir)
    try:
        return ckpt.latest_step() or 0
    finally:
        ckpt.close()


def _latency_table(space, workdir: Path, lut, cache_dir, batch_size: int, timing: dict, log):
    """(table, path in workdir, reused?): the user's table, the cached one, or a new profile."""
    target = workdir / "lut.json"
    if lut is not None:
        table = LatencyTable.load(lut, space)  # refuses a table of another space config
        table.save(target)
        return table, target, True
    cache = Path(cache_dir) if cache_dir else default_cache_dir()
    name = f"lut-fbnet-{space.fingerprint()}-{profile.default_device_name()}-b{batch_size}.json"
    cached = cache / name
    if cached.exists():
        try:
            table = LatencyTable.load(cached, space)
            table.save(target)
            return table, target, True
        except (LUTError, ValueError) as e:
            log(f"ignoring the cached table {cached}: {e}")
    log(f"profiling {space.num_decisions} layers x 9 candidates on {profile.default_device_name()} "
        f"(cached in {cache})")
    table = profile.profile_fbnet(space, batch_size=batch_size, **timing)
    table.save(target)
    cache.mkdir(parents=True, exist_ok=True)
    table.save(cached)
    return table, target, False
