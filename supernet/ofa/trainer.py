"""The Once-for-All trainer: progressive shrinking, one phase after another, each resumable.

    for phase in phases:                                   # supernet/ofa/phases.py
        state = final state of the previous phase          # teacher: final state of the first
        (a phase that widens the expand set first sorts middle channels by importance)
        for step in range(state.step, phase_steps):
            r     = resolution_at(seed, step)              # one resolution per batch
            archs = K subnets sampled within the phase     # traced mask, traced resolution
            g     = sum_k grad[ CE(subnet_k) + kd_ratio * KD(subnet_k, largest teacher) ]
            state = optimizer(state, g, lr_phase(step))

Each phase lives in `workdir/<phase name>/` with its own orbax checkpoints, metrics.jsonl and,
once finished, result.json (accuracy of the largest, the smallest and random subnets of the
phase, each after BN recalibration). A finished phase is never rerun; an interrupted one
resumes from its latest checkpoint and ends with the same parameters as an uninterrupted run
(every draw is `fold_in(key(seed), step)`, the data order a function of (seed, epoch)).

Compiled programs: the learning rate, the distillation weight, the allowed choices and the
resolution index are traced, so phases with the same number of subnets per step share one
program, compiled once per input resolution.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from supernet import data as data_lib
from supernet.checkpoint import Checkpointer
from supernet.config import ConfigError
from supernet.layers import HostInit
from supernet.methods import accuracy, cross_entropy
from supernet.ofa import recalibrate
from supernet.ofa.distill import soft_cross_entropy
from supernet.ofa.elastic import sort_channels
from supernet.ofa.phases import Phase, allowed_mask, extreme_arch, largest_arch, resolution_at, sample_archs
from supernet.ofa.supernet import OFASupernet
from supernet.spaces import get_space
from supernet.train import (TrainingDiverged, _batch_at, _check_finite, _check_same_config, _fit_size, _progress,
                            _write_json, load_data)


class OFAState(NamedTuple):
    params: Any
    batch_stats: Any
    opt: Any
    step: jax.Array  # int32 []: the next step of this phase
    teacher_params: Any  # the largest network after the first phase (unused during it)
    teacher_stats: Any


@dataclasses.dataclass
class OFARun:
    config: dict
    space: Any
    graphdef: Any
    phases: list[Phase]
    tx: optax.GradientTransformation
    datasets: dict[int, tuple]  # resolution -> (train, val, test) at that size
    steps_per_epoch: int
    step: Callable | None = None  # the jitted training step, built on first use (`step_fn`)

    def phase_steps(self, phase: Phase) -> int:
        return max(1, int(round(phase.epochs * self.steps_per_epoch)))

    def step_fn(self, phase: Phase) -> Callable:
        """The training step of `phase`: one jitted program for every phase (the number of
        subnets per step is a traced argument), so XLA compiles once per input resolution."""
        del phase
        if self.step is None:
            self.step = make_step(self)
        return self.step


class PhaseResult(NamedTuple):
    phase: str
    steps: int
    summary: dict


# ----------------------------------------------------------------------------- building
def build(config: dict, datasets: tuple | None = None) -> tuple[OFARun, OFAState]:
    """The static description of an OFA run and the initial state of its first phase."""
    seed = int(config["seed"])
    space = get_space(config["space"]["name"], config["space"].get("preset"))
    if space.name != "ofa_mbv3":
        raise ConfigError(f"an 'ofa' run trains the ofa_mbv3 space, not {space.name!r}")
    resolutions = space.macro.resolutions
    train, val, test = datasets or load_data(config["data"], seed, max(resolutions))
    if train.images.shape[-1] != space.macro.in_channels:
        raise ConfigError(f"images have {train.images.shape[-1]} channel(s); the space expects "
                          f"{space.macro.in_channels}")
    by_resolution = {r: tuple(_fit_size(d, r) for d in (train, val, test)) for r in resolutions}
    ofa = config["ofa"]
    phases = [Phase.from_config(p, f"ofa.phases[{i}]") for i, p in enumerate(ofa["phases"])]
    names = [p.name for p in phases]
    if len(set(names)) != len(names) or not phases:
        raise ConfigError(f"ofa.phases needs at least one phase and unique names, got {names}")
    for p in phases:
        allowed_mask(space, p)  # refuses values outside the space, naming the phase
    batch_size = int(config["data"]["batch_size"])
    full_epoch = data_lib.num_batches(len(train.labels), batch_size)
    if full_epoch == 0:
        raise ConfigError(f"batch_size {batch_size} exceeds the {len(train.labels)} training images")
    steps_per_epoch = min(full_epoch, int(config["schedule"].get("steps_per_epoch") or full_epoch))

    model = OFASupernet(space, HostInit(seed))
    graphdef, params, stats = nnx.split(model, nnx.Param, nnx.BatchStat)
    tx = make_optimizer(config["optim"])
    run = OFARun(config, space, graphdef, phases, tx, by_resolution, steps_per_epoch)
    state = OFAState(params, stats, tx.init(params), jnp.zeros((), jnp.int32), _copy(params), _copy(stats))
    return run, _committed(state)


def make_optimizer(cfg: dict) -> optax.GradientTransformation:
    """SGD with Nesterov momentum (OFA's choice) or Adam, at unit step size.

    The learning rate multiplies the update outside the transformation, as a traced scalar,
    so every phase (each with its own rate and cosine schedule) shares one compiled step.
    Weight decay applies to kernels (2+ dimensions), not to BN scales and biases.
    """
    name = cfg.get("name", "sgd")
    if name == "sgd":
        core = optax.trace(decay=float(cfg.get("momentum", 0.9)), nesterov=bool(cfg.get("nesterov", True)))
    elif name == "adam":
        core = optax.scale_by_adam(b1=float(cfg.get("b1", 0.9)), b2=float(cfg.get("b2", 0.999)))
    else:
        raise ConfigError(f"unknown optimizer {name!r}; use 'sgd' or 'adam'")
    core = optax.flatten(core)  # one update loop, not one per array (supernet.train.make_optimizer)
    wd = float(cfg.get("weight_decay", 0.0))
    mask = lambda params: jax.tree.map(lambda p: p.ndim >= 2, params)  # noqa: E731
    return optax.chain(optax.add_decayed_weights(wd, mask=mask), core) if wd else core


def learning_rate(phase: Phase, step: int, total: int, steps_per_epoch: int) -> float:
    """Linear warm-up for `warmup_epochs`, then cosine decay to 0 over the rest of the phase."""
    warm = int(round(phase.warmup_epochs * steps_per_epoch))
    if step < warm:
        return phase.lr * (step + 1) / warm
    progress = (step - warm) / max(1, total - warm)
    return phase.lr * 0.5 * (1.0 + np.cos(np.pi * progress))


# ----------------------------------------------------------------------------- the step
def _forward(graphdef, params, stats, x, arch, train: bool):
    # Fresh arrays at this trace level: NNX refuses to mutate variables from an outer trace (scan).
    model = nnx.merge(graphdef, jax.tree.map(jnp.asarray, params), jax.tree.map(jnp.asarray, stats))
    logits = model(x, arch, train=train)
    return logits, nnx.state(model, nnx.BatchStat)


def make_step(run: OFARun) -> Callable:
    """The jitted training step summing the gradients of `subnets` sampled subnets.

    `subnets` is traced: a `fori_loop` with a traced trip count (a while loop; nothing is
    differentiated through it, each iteration takes its own gradient) runs one subnet per
    iteration, so the phases' 1, 2 and 4 subnets per step share one compiled program instead
    of one each (a five-stage step takes minutes to compile on CPU). Subnet `i` of a step is
    drawn from `fold_in(key, i)`: its draw does not depend on how many are drawn.
    """
    root = jax.random.key(int(run.config["seed"]))
    aug = run.config["data"].get("augment") or {}
    gd, tx = run.graphdef, run.tx
    largest = jnp.asarray(largest_arch(run.space))

    def step_fn(state: OFAState, images, labels, resolution, step, mask, kd_ratio, lr, subnets):
        k_aug, k_arch = jax.random.split(jax.random.fold_in(root, step))
        x = images
        if aug:
            x = data_lib.augment(k_aug, x, padding=int(aug.get("padding", 2)), flip=bool(aug.get("flip", True)))
        teacher_arch = largest.at[-1].set(resolution)
        teacher = jax.lax.cond(
            kd_ratio > 0,
            lambda: _forward(gd, state.teacher_params, state.teacher_stats, x, teacher_arch, False)[0],
            lambda: jnp.zeros((x.shape[0], run.space.macro.num_classes), jnp.float32))

        def one_subnet(i, carry):
            grads, stats, sums = carry
            arch = sample_archs(jax.random.fold_in(k_arch, i), mask, resolution, 1)[0]

            def loss_fn(params, stats):
                logits, new_stats = _forward(gd, params, stats, x, arch, True)
                ce = cross_entropy(logits, labels)
                kd = soft_cross_entropy(logits, teacher)
                return ce + kd_ratio * kd, (new_stats, ce, kd, accuracy(logits, labels))

            (loss, (stats, ce, kd, acc)), (g, _) = jax.value_and_grad(loss_fn, argnums=(0, 1), has_aux=True)(
                state.params, stats)
            values = {"loss": loss, "ce": ce, "kd": kd, "accuracy": acc}
            return jax.tree.map(jnp.add, grads, g), stats, {k: sums[k] + values[k] for k in sums}

        zeros = jax.tree.map(jnp.zeros_like, state.params)
        sums = {k: jnp.zeros((), jnp.float32) for k in ("loss", "ce", "kd", "accuracy")}
        grads, stats, sums = jax.lax.fori_loop(0, subnets, one_subnet, (zeros, state.batch_stats, sums))
        updates, opt = tx.update(grads, state.opt, state.params)
        params = optax.apply_updates(state.params, jax.tree.map(lambda u: -lr * u, updates))
        metrics = {k: v / subnets for k, v in sums.items()}
        return state._replace(params=params, batch_stats=stats, opt=opt, step=step + 1), metrics

    return jax.jit(step_fn, donate_argnums=0)


# ----------------------------------------------------------------------------- the loop
def train_ofa(config: dict, workdir: str | Path, *, datasets: tuple | None = None, stop_after: int | None = None,
              progress: bool = True) -> list[PhaseResult]:
    """Run (or resume) the phases `config['ofa']['run']` asks for: 'all' or one phase's name.

    `stop_after` ends this call after that many steps in all (an interruption, for tests);
    calling again resumes. Returns the results of the phases finished so far.
    """
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    _check_same_config(workdir, config)
    run, initial = build(config, datasets)
    names = [p.name for p in run.phases]
    which = config["ofa"].get("run", "all")
    if which != "all" and which not in names:
        raise ConfigError(f"ofa.run must be 'all' or one of the phases {names}, got {which!r}")
    selected = names if which == "all" else [which]
    budget = None if stop_after is None else int(stop_after)
    results = []
    for index, phase in enumerate(run.phases):
        done = _phase_result(workdir, phase)
        if done is not None:
            results.append(done)
            continue
        if phase.name not in selected:
            continue
        if budget is not None and budget <= 0:
            break
        start_state = _start_state(run, initial, workdir, index)
        state, used = _run_phase(run, phase, start_state, workdir / phase.name, budget, progress)
        budget = None if budget is None else budget - used
        if int(state.step) >= run.phase_steps(phase):
            summary = evaluate_phase(run, phase, state)
            _write_json(workdir / phase.name / "result.json", summary)
            results.append(PhaseResult(phase.name, int(state.step), summary))
        else:
            break
    return results


def _phase_result(workdir: Path, phase: Phase) -> PhaseResult | None:
    path = workdir / phase.name / "result.json"
    if not path.exists():
        return None
    summary = json.loads(path.read_text())
    return PhaseResult(phase.name, int(summary["steps"]), summary)


def _start_state(run: OFARun, initial: OFAState, workdir: Path, index: int) -> OFAState:
    """The first phase starts from initialization; each later one from the previous phase's end."""
    if index == 0:
        return initial
    previous = run.phases[index - 1]
    if _phase_result(workdir, previous) is None:
        raise ConfigError(f"phase {run.phases[index].name!r} starts from the end of phase {previous.name!r}, "
                          f"which has not finished in {workdir}; run it first (ofa.run={previous.name} or all)")
    prev = load_phase_state(run, initial, workdir, previous)
    first = load_phase_state(run, initial, workdir, run.phases[0]) if index > 1 else prev
    params, stats = _sorted_for(run, run.phases[index], previous, prev.params, prev.batch_stats)
    return _committed(OFAState(params, stats, run.tx.init(params), jnp.zeros((), jnp.int32),
                               _copy(first.params), _copy(first.batch_stats)))


def _committed(state: OFAState) -> OFAState:
    """The state committed to the device, as a state restored from a checkpoint is.

    jit keys its cache on whether arguments are committed: a freshly built first phase and
    later phases started from restored checkpoints would otherwise compile the step (and the
    evaluation programs) twice per resolution.
    """
    return jax.device_put(state, jax.devices()[0])


def _sorted_for(run: OFARun, phase: Phase, previous: Phase, params, stats):
    """Before a phase that widens the expand set, sort middle channels by importance (OFA).

    Smaller expand ratios take the leading channels, so the most important ones (L1 norm of
    the project weights) go first; ratios an earlier phase already trained keep their
    channels in front (`sort_channels`). The sort permutes channels consistently, so the
    network computes the same function before and after.
    """
    values = run.space.macro.expands
    now, before = set(phase.expands or values), set(previous.expands or values)
    if now <= before:
        return params, stats
    model = nnx.merge(run.graphdef, _copy(params), _copy(stats))  # the sort must not touch the caller's state
    sort_channels(model, keep_expands=tuple(sorted(before - {max(values)})))
    _, params, stats = nnx.split(model, nnx.Param, nnx.BatchStat)
    return params, stats


def _copy(tree):
    """Own buffers: the step donates its state, and one buffer may not be donated twice."""
    return jax.tree.map(jnp.copy, tree)


def load_phase_state(run: OFARun, like: OFAState, workdir: Path, phase: Phase) -> OFAState:
    ckpt = Checkpointer(workdir / phase.name)
    try:
        return ckpt.restore(like)
    finally:
        ckpt.close()


def _run_phase(run: OFARun, phase: Phase, state: OFAState, phase_dir: Path, budget, progress):
    cfg, seed = run.config, int(run.config["seed"])
    batch_size = int(cfg["data"]["batch_size"])
    total = run.phase_steps(phase)
    ckpt = Checkpointer(phase_dir, keep=int(cfg["checkpoint"].get("keep", 2)))
    try:
        if ckpt.latest_step() is not None:
            state = ckpt.restore(state)
        else:
            ckpt.save(0, state)
        start = int(state.step)
        end = total if budget is None else min(total, start + budget)
        mask = jnp.asarray(allowed_mask(run.space, phase))
        kd, subnets = jnp.float32(phase.kd_ratio), jnp.int32(phase.subnets_per_step)
        resolutions = run.space.macro.resolutions
        every_ckpt, every_log = int(cfg["checkpoint"]["every_steps"]), int(cfg["log"]["every_steps"])
        last_saved = ckpt.latest_step()
        bar = _progress(progress, start, total)
        bar.set_description(phase.name)
        step_fn = run.step_fn(phase)
        with open(phase_dir / "metrics.jsonl", "a") as log:
            for step in range(start, end):
                epoch, index = divmod(step, run.steps_per_epoch)
                r = resolution_at(resolutions, seed, step)
                batch = _batch_at(run.datasets[resolutions[r]][0], batch_size, seed, epoch, index)
                lr = learning_rate(phase, step, total, run.steps_per_epoch)
                state, metrics = step_fn(state, batch["image"], batch["label"], jnp.int32(r), jnp.int32(step), mask,
                                         kd, jnp.float32(lr), subnets)
                _check_finite(metrics, step, epoch, ckpt, last_saved)
                done = step + 1
                if done % every_log == 0 or done == total:
                    record = {"step": done, "epoch": done / run.steps_per_epoch, "time": time.time(), "lr": lr,
                              "resolution": resolutions[r], **{k: float(v) for k, v in metrics.items()}}
                    log.write(json.dumps(record) + "\n")
                    log.flush()
                    bar.set_postfix(loss=f"{record['loss']:.3f}", acc=f"{record['accuracy']:.2f}")
                if done % every_ckpt == 0 or done == end:
                    ckpt.save(done, state)
                    last_saved = done
                bar.update(1)
        bar.close()
    finally:
        ckpt.close()
    return state, end - start


# ----------------------------------------------------------------------------- evaluation
def evaluate_phase(run: OFARun, phase: Phase, state: OFAState) -> dict:
    """Test accuracy after BN recalibration: the largest, the smallest and random subnets of the phase."""
    ev = run.config.get("eval", {})
    mask = allowed_mask(run.space, phase)
    key = jax.random.fold_in(jax.random.key(int(run.config["seed"])), 2**31 - 2)
    randoms = np.array(sample_archs(key, jnp.asarray(mask), 0, int(ev.get("random_subnets", 4))))
    rng = np.random.default_rng([int(run.config["seed"]), 3])
    randoms[:, -1] = rng.integers(len(run.space.macro.resolutions), size=len(randoms))
    archs = {"largest": extreme_arch(run.space, mask, True), "smallest": extreme_arch(run.space, mask, False)}
    accs = {}
    for name, arch in [*archs.items(), *((f"random{i}", a) for i, a in enumerate(randoms))]:
        accs[name] = subnet_accuracy(run, state, arch, int(ev.get("recalibration_images", 2000)))
    random_accs = [accs[k] for k in accs if k.startswith("random")]
    return {"phase": phase.name, "steps": int(state.step), "accuracy": accs,
            "random_mean": float(np.mean(random_accs)), "random_min": float(np.min(random_accs)),
            "archs": {"largest": run.space.to_public(archs["largest"]),
                      "smallest": run.space.to_public(archs["smallest"]),
                      **{f"random{i}": run.space.to_public(a) for i, a in enumerate(randoms)}}}


def subnet_accuracy(run: OFARun, state: OFAState, arch, recalibration_images: int) -> float:
    """Test accuracy of one subnet at its resolution, BN statistics recalibrated on training images."""
    r = run.space.macro.resolutions[int(arch[-1])]
    train, _, test = run.datasets[r]
    percent = recalibrate.accuracy_after_recalibration(
        run.graphdef, state.params, state.batch_stats, np.asarray(arch, np.int32), train, test,
        recalibration_images=recalibration_images, seed=int(run.config["seed"]))
    return percent / 100.0  # a fraction, as `hwnas train` reports supernet and subnet runs


__all__ = ["OFARun", "OFAState", "PhaseResult", "TrainingDiverged", "build", "evaluate_phase", "train_ofa"]
