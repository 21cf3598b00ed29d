"""Step time, peak memory and compile count of each method's supernet step vs the standalone subnet.

Runbook:
    python experiments/bench_step.py                      # demo preset, batch 64, table
    python experiments/bench_step.py --json               # the same as one JSON object
    python experiments/bench_step.py --preset tiny --steps 30 --batch-size 32

For one architecture sampled from the space (`--seed`), every row is a trainer step function
as `hwnas train` runs it (`supernet.train.make_steps`), on the same batch:

    subnet               the standalone extracted subnet (kind=subnet, trained from scratch)
    <method> weights     the method's weight step; the sampled path is pinned to the
                         architecture (alpha = 100 * one-hot, so softmax sampling returns it;
                         uniform's draw is replaced by it), so it is the same work as `subnet`
    <method> arch        the method's architecture step (held-out batch)

Time: median of `--steps` rounds after warm-up; all rows interleaved (round robin) so that load
drifting on a shared machine affects every row alike, and in each round every row runs twice in
a row and its second call is timed (waited for): the warm step a training loop repeats, not the
first call after the 8x larger darts/fbnet steps have evicted its working set from the caches. Memory: XLA's buffer
assignment for the compiled step (`Compiled.memory_analysis()`): `temp` is activations and
workspace, `peak` adds arguments and outputs not aliased to donated inputs; the supernet's
arguments hold every candidate's weights, so `temp` is where "compute follows the active
subnet" shows. Ratios are to the `subnet` row of the same run. Compiles: XLA compilations of
the method's weight and arch steps over `--compile-steps` (default 50) alternating steps,
with fresh random architecture logits every step (so every step trains another subnet).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from costs.lut import LatencyTable  # noqa: E402
from supernet.compilation import count_compilations  # noqa: E402
from supernet.methods import METHOD_NAMES, Method  # noqa: E402
from supernet.profile import time_steps_interleaved  # noqa: E402
from supernet.spaces import get_space  # noqa: E402
from supernet.train import _batch_at, _Program, build, hardware_arrays, make_steps  # noqa: E402

METHODS = tuple(m for m in METHOD_NAMES if m != "fixed")


def config_for(preset: str, batch_size: int, method: str, lut: str | None, arch=None) -> dict:
    hardware = {"form": "absolute", "terms": [{"lut": lut, "weight": 1.0, "target": 1.0}] if lut else []}
    config = {
        "kind": "supernet" if arch is None else "subnet", "seed": 0,
        "space": {"name": "fbnet", "preset": preset},
        "data": {"dataset": "fashion_mnist_default", "val_fraction": 0.2, "batch_size": batch_size,
                 "augment": {"padding": 2, "flip": True}, "limit_train": 0, "limit_test": 0},
        "method": {"name": method, "options": {}},
        "schedule": {"epochs": 1, "warmup_epochs": 0, "arch_every": 1, "steps_per_epoch": 0},
        "optim": {"weights": {"name": "adam", "lr": 1e-3, "weight_decay": 4e-5},
                  "arch": {"name": "adam", "lr": 6e-3, "b1": 0.0}},
        "hardware": hardware, "checkpoint": {"every_steps": 1000}, "log": {"every_steps": 1000}, "eval": {},
    }
    if arch is not None:
        config["subnet"] = {"from": None, "arch": [int(a) for a in arch]}
    return config


def memory(fn, state, args) -> dict:
    stats = fn.lower(state, *args).compile().memory_analysis()
    if stats is None:  # backends without buffer statistics
        return {"temp_mb": float("nan"), "peak_mb": float("nan")}
    peak = stats.argument_size_in_bytes + stats.output_size_in_bytes - stats.alias_size_in_bytes + stats.temp_size_in_bytes
    return {"temp_mb": stats.temp_size_in_bytes / 2**20, "peak_mb": peak / 2**20}


def pinned(state, arch, num_choices):
    alpha = 100.0 * jax.nn.one_hot(jnp.asarray(arch), num_choices, dtype=jnp.float32)
    return state._replace(arch=state.arch._replace(alpha=alpha))


def bench(preset: str, batch_size: int, steps: int, compile_steps: int, seed: int, datasets, lut: str) -> dict:
    space = get_space("fbnet", preset)
    arch = np.asarray(space.sample(jax.random.key(seed), 1)[0])
    rows = []

    run, state = build(config_for(preset, batch_size, "uniform", lut, arch=arch), datasets)
    batch = _batch_at(run.train, batch_size, 0, 0, 0)
    weights_args = (batch, jnp.int32(0), jnp.bool_(False))
    rows.append({"step": "subnet", **memory(run.steps["weights"], state, weights_args), "compiles": "",
                 "compiles_total": ""})
    programs = [[run.steps["weights"], state, weights_args]]

    for name in METHODS:
        run, state = build(config_for(preset, batch_size, name, lut), datasets)
        compiles = count_steps(run, state, batch, compile_steps, seed)
        if name == "uniform":  # its path is drawn uniformly: pin it (own program, not the shared cache)
            # to argmax(alpha), a traced value like every other method's sampled path (a constant
            # would let XLA fold the switches away and time a different program)
            run.method = Method("uniform", lambda a, key, epoch: {"arch": jnp.argmax(a.alpha, -1).astype(jnp.int32)})
            run._program = _Program(make_steps(run))
        for kind, args in (("weights", weights_args), ("arch", (batch, jnp.int32(0), *hardware_arrays(run)))):
            if kind == "arch" and not run.arch_steps:
                continue
            _, fresh = build(config_for(preset, batch_size, name, lut), datasets)
            fresh = pinned(fresh, arch, space.cardinalities[0])
            rows.append({"step": f"{name} {kind}", **memory(run.steps[kind], fresh, args),
                         "compiles": compiles[kind], "compiles_total": compiles["total"]})
            programs.append([run.steps[kind], fresh, args])
    for row, ms in zip(rows, time_steps_interleaved(programs, steps, calls=2)):
        row["ms"] = ms
    base = rows[0]
    for row in rows:
        row["time_x"] = row["ms"] / base["ms"]
        row["temp_x"] = row["temp_mb"] / base["temp_mb"] if base["temp_mb"] else float("nan")
        row["peak_x"] = row["peak_mb"] / base["peak_mb"] if base["peak_mb"] else float("nan")
    return {"preset": preset, "batch_size": batch_size, "arch": space.to_public(arch),
            "arch_str": space.describe(arch), "backend": jax.default_backend(), "steps": steps,
            "compile_steps": compile_steps, "rows": rows}


def count_steps(run, state, batch, n: int, seed: int) -> dict:
    """XLA compilations over `n` alternating weight/arch steps, fresh random logits each step."""
    hw = hardware_arrays(run)
    alphas = [np.asarray(3.0 * jax.random.normal(jax.random.key(seed * 100_003 + i), state.arch.alpha.shape))
              for i in range(n)]  # drawn before counting: their own tiny programs are not the steps'
    with count_compilations() as counter:
        for step, alpha in enumerate(alphas):
            state = state._replace(arch=state.arch._replace(alpha=jnp.asarray(alpha)))
            state, _ = run.steps["weights"](state, batch, jnp.int32(step), jnp.bool_(False))
            if run.arch_steps:
                state, _ = run.steps["arch"](state, batch, jnp.int32(step), *hw)
        jax.block_until_ready(state)
    return {"weights": run.steps["weights"]._cache_size(),
            "arch": run.steps["arch"]._cache_size() if run.arch_steps else "",
            "total": counter.count}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="demo")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=50, help="timed rounds (steps per row)")
    parser.add_argument("--compile-steps", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    from supernet.train import load_data

    space = get_space("fbnet", args.preset)
    data_cfg = config_for(args.preset, args.batch_size, "uniform", None)["data"]
    datasets = load_data(data_cfg, 0, space.macro.input_size)
    with tempfile.TemporaryDirectory() as tmp:
        lut = str(Path(tmp) / "lut.json")  # a synthetic table: the cost term's work, not its values
        table = np.random.default_rng(0).uniform(0.1, 1.0, (space.num_decisions, 9))
        LatencyTable.for_space(space, table, fixed=0.1, device={"name": "synthetic"}).save(lut)
        result = bench(args.preset, args.batch_size, args.steps, args.compile_steps, args.seed, datasets, lut)
    if args.json:
        print(json.dumps(result, indent=1))
        return 0
    print(table(result))
    return 0


def table(result: dict) -> str:
    """The result as a fixed-width text table (what `main` prints without `--json`)."""
    lines = [f"preset {result['preset']}, batch {result['batch_size']}, {result['backend']}, "
             f"arch {result['arch_str']}"]
    header = ["step", "ms", "time_x", "temp_mb", "temp_x", "peak_mb", "peak_x", "compiles"]
    lines.append("  ".join(f"{h:>20}" if i == 0 else f"{h:>9}" for i, h in enumerate(header)))
    for row in result["rows"]:
        cells = [f"{row['step']:>20}"] + [f"{row[h]:>9.2f}" if isinstance(row[h], float) else f"{row[h]!s:>9}"
                                           for h in header[1:]]
        lines.append("  ".join(cells))
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
