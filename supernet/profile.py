"""Latency lookup tables measured on the current JAX backend, and a check of how well they predict.

`profile_fbnet(space)` times every candidate block of every searchable layer of an FBNet
space on whatever `jax.default_backend()` is (CPU, GPU or TPU), jitted in evaluation mode at
the layer's real input shape, and returns a `costs.lut.LatencyTable`. `validate_table` then
times whole random subnets, each as one jitted program, and reports how far the additive
LUT sum is from them. `measure_subnet` is the single definition of "measured latency" of a
standalone subnet, so the profiler, its validation and the demos all agree on it.

Timing protocol (`measure_latency`, `measure_interleaved`): one untimed call compiles,
untimed warmup calls settle caches and thread pools, then calls are timed one by one with
`block_until_ready`; we keep the median (robust to scheduler hiccups) and the interquartile
range (stored as the table's `spread`, so a user can see which entries are noise). All
programs of a run are compiled first (in parallel threads) and then timed in interleaved
rounds, so a change in background load shifts every entry alike instead of a few. Weights
are passed as jit arguments, never baked in as constants, because a deployed network
receives them that way and XLA would otherwise fold batch norm into the timed program only.

Dispatch overhead. A jitted call pays costs outside its computation: Python/C++ dispatch,
argument handling, launching the executable, creating the output and waking the caller. A
whole subnet pays them once; a sum of 24 per-block timings pays them 24 times. How much of a
block's per-call time is such boundary cost, and not also paid inside a program, depends on
the backend, so it is measured, not assumed (`overhead=` of `profile_fbnet`):

* `"chain"` (default): at every shape-keeping layer shape (up to `MAX_PROBES`), the
  cheapest candidate is also timed as `PROBE_CHAIN` copies chained in one program. Its
  in-program cost is `(Tk - T1) / (k - 1)`, so `T1` minus that is the boundary cost of one
  call. The median over probes (clipped at 0) is subtracted from every block, stem and head
  entry (each clipped at 0) and added back once to `fixed`. Entries are >= 0, not > 0.
* `"trivial"`: the same, with the latency of a trivial jitted call (`x + 1` on one float)
  as the boundary cost: the textbook dispatch overhead.
* `"none"`: raw per-call latencies.

What we measured (2-core shared Xeon VM, XLA:CPU, batch 1, blocks and 20 random subnets timed
in the same interleaved rounds, 60 repeats in 10 rounds; other jobs were loading the
machine throughout). A trivial call costs 21-24 us, yet the chained probes show almost no
boundary cost (estimates -45..+54 us, median ~0 on `cifar`, 8 us on `tiny`): on XLA:CPU a
block pays about the same fixed cost inside a program as at a call boundary, so subtracting
the trivial call over-corrects. LUT-vs-measured MAPE / Kendall tau:

    preset  subnets     none            trivial          chain (default)
    tiny    0.75-1.4 ms  4.5% / 0.65   17.5% / 0.65      7.5% / 0.65
    cifar   18-35 ms    13.1% / 0.45   13.9% / 0.45     13.1% / 0.45   (estimate clipped to 0)

Every FBNet subnet makes the same number of calls, so a per-call correction shifts all
predictions alike: it moves MAPE and bias, never the ranking (tau). On this CPU `chain`
measures the correction to be ~0 and matches `none` within noise,
while a fixed dispatch subtraction makes the LUT worse. We keep `chain` as the default
because it adapts to backends where the boundary is expensive (a GPU launch plus host
synchronization per call is tens of microseconds, while kernels inside one program are
queued back to back) and costs only a few extra compiles. (`validate_table` times its subnets after profiling, not
interleaved with the blocks, so load that changes in between shows up as bias: two
`hwnas profile --config cifar --validate 20` runs on the same busy VM gave MAPE 18% / tau
0.47 with bias -17%, and MAPE 29% / tau 0.61 with bias +29%. Profile on a quiet machine.)
The correction and its probe
values are recorded in the table's device metadata (`overhead_correction`,
`overhead_method`, `dispatch_overhead_ms`, `boundary_overheads_ms`, `trivial_call_ms`).

"""

from __future__ import annotations

import collections
import concurrent.futures
import gc
import os
import platform
import time
from typing import Any, Callable, NamedTuple, Sequence

import jax
import numpy as np
from flax import nnx

from costs.lut import LatencyTable, device_info
from costs.metrics import kendall_tau
from supernet.blocks import ConvBNReLU, Head, make_candidate
from supernet.layers import HostInit
from supernet.spaces.fbnet import CANDIDATES, FBNetConfig, FBNetSpace

DEFAULT_WARMUP = 10
DEFAULT_REPEATS = 50
DEFAULT_ROUNDS = 5
OVERHEAD_METHODS = {
    "chain": "per-call overhead = median over probes of T1 - (Tk - T1)/(k - 1), where T1 times one "
             "block per call and Tk k copies chained in one call; subtracted from every block, stem "
             "and head median (clipped at 0) and added once to fixed",
    "trivial": "per-call overhead = median latency of a trivial jitted call (x + 1 on one float); "
               "subtracted from every block, stem and head median (clipped at 0) and added once to fixed",
    "none": "none: entries are raw per-call latencies",
}
OVERHEAD_MODES = tuple(OVERHEAD_METHODS)
PROBE_CANDIDATE = "k3_e1"  # cheapest block: its timing is mostly the boundary, least noise
PROBE_CHAIN = 4
MAX_PROBES = 6  # every shape-keeping shape of the cifar preset; more probes, less noise

ProgressFn = Callable[[int, int, str], None]


class Timing(NamedTuple):
    """Median and interquartile range of repeated runs, in milliseconds."""

    median_ms: float
    iqr_ms: float


class ValidationRow(NamedTuple):
    """One random subnet: its public encoding, the LUT's prediction and the measurement."""

    arch: list[int]
    predicted_ms: float
    measured_ms: float
    error_pct: float  # signed: 100 * (predicted - measured) / measured


class ValidationSummary(NamedTuple):
    """How well the table ranks and predicts whole subnets."""

    n: int
    mape_pct: float  # mean absolute percentage error
    max_error_pct: float  # largest absolute percentage error
    bias_pct: float  # mean signed percentage error (> 0: the table over-predicts)
    kendall_tau: float  # rank agreement between predicted and measured (tau-b; NaN if n < 2)


class Validation(NamedTuple):
    rows: list[ValidationRow]
    summary: ValidationSummary


# ---------------------------------------------------------------------------- timing
def _timed_calls(model_fn: Callable[[Any], Any], x, count: int) -> np.ndarray:
    """Wall-clock seconds of `count` calls, each waited for before the next starts."""
    samples = np.empty(count)
    gc_was_enabled = gc.isenabled()
    gc.disable()  # a collection inside a 50 us call would be that sample
    try:
        for i in range(count):
            start = time.perf_counter()
            jax.block_until_ready(model_fn(x))
            samples[i] = time.perf_counter() - start
    finally:
        if gc_was_enabled:
            gc.enable()
    return samples


def _summary(samples_s: np.ndarray) -> Timing:
    q1, median, q3 = np.percentile(np.asarray(samples_s) * 1e3, [25, 50, 75])
    return Timing(float(median), float(q3 - q1))


def _check_timing_args(warmup: int, repeats: int, rounds: int = 1) -> None:
    if warmup < 0 or repeats < 1 or rounds < 1:
        raise ValueError(f"need warmup >= 0, repeats >= 1 and rounds >= 1, got warmup={warmup}, "
                         f"repeats={repeats}, rounds={rounds}")


def measure_latency(model_fn: Callable[[Any], Any], x, *, warmup: int = DEFAULT_WARMUP,
                    repeats: int = DEFAULT_REPEATS) -> Timing:
    """Time `model_fn(x)`: compile once, `warmup` untimed calls, then median and IQR of `repeats`.

    Each timed call is waited for (`block_until_ready`) before the next starts, so the number
    is the latency of one call, not the throughput of a pipelined stream of them.
    """
    _check_timing_args(warmup, repeats)
    jax.block_until_ready(model_fn(x))  # compile
    for _ in range(warmup):
        jax.block_until_ready(model_fn(x))
    return _summary(_timed_calls(model_fn, x, repeats))


def measure_interleaved(programs: Sequence[tuple[Callable[[Any], Any], Any]], *, warmup: int = DEFAULT_WARMUP,
                        repeats: int = DEFAULT_REPEATS, rounds: int = DEFAULT_ROUNDS,
                        progress: Callable[[int, int], None] | None = None) -> list[Timing]:
    """`measure_latency` for many `(fn, x)` programs, their repeats spread over `rounds` passes.

    On a shared or throttling machine the background load drifts over a profiling run. Timed
    back to back, one block would get all its samples in a quiet minute and another all in
    a busy one, and the table would encode the load instead of the blocks. Cycling through
    every program `rounds` times, `repeats / rounds` timed calls each (after `warmup /
    rounds` untimed ones, at least one, to re-warm caches after the switch), exposes every
    entry to the same mix of conditions; the median and IQR are over all of its samples.
    `progress(i, r)` is called after program `i` got its samples of round `r`.
    """
    _check_timing_args(warmup, repeats, rounds)
    rounds = min(rounds, repeats)
    for fn, x in programs:
        jax.block_until_ready(fn(x))  # compile (usually done ahead, see `compile_all`)
    per_round = [repeats // rounds + (r < repeats % rounds) for r in range(rounds)]
    warm = max(1, -(-warmup // rounds)) if warmup else 0
    samples: list[list[np.ndarray]] = [[] for _ in programs]
    for r, count in enumerate(per_round):
        for i, (fn, x) in enumerate(programs):
            for _ in range(warm):
                jax.block_until_ready(fn(x))
            samples[i].append(_timed_calls(fn, x, count))
            if progress is not None:
                progress(i, r)
    return [_summary(np.concatenate(s)) for s in samples]


def time_steps_interleaved(programs: Sequence[list], steps: int, warmup: int = 3, calls: int = 1) -> list[float]:
    """Median milliseconds of stateful steps `state, metrics = fn(state, *args)`, interleaved.

    The training-step counterpart of `measure_interleaved`: `programs` holds `[fn, state,
    args]` lists; each round calls every program `calls` times in a row (its donated state
    replaced by the returned one) and times the last call, so load drifting on a shared
    machine reaches every row alike and their ratios stay meaningful. With `calls=1` a row
    timed right after a program with a larger working set pays for refilling the caches it
    evicted; `calls=2` times the warm, repeated step a training loop runs. The first `warmup`
    rounds are not timed.
    """
    if calls < 1:
        raise ValueError(f"calls must be >= 1, got {calls}")
    times: list[list[float]] = [[] for _ in programs]
    for r in range(warmup + steps):
        for i, program in enumerate(programs):
            fn, state, args = program
            for _ in range(calls):
                start = time.perf_counter()
                state, metrics = fn(state, *args)
                jax.block_until_ready(metrics)
                program[1] = state
            if r >= warmup:
                times[i].append(time.perf_counter() - start)
    return [float(np.median(t)) * 1e3 for t in times]


# Compiled forwards, keyed by module structure: a module built again with the same shapes
# (the same candidate profiled twice, a subnet timed again) reuses its executable.
_JITTED: "collections.OrderedDict[Any, Callable]" = collections.OrderedDict()
_MAX_JITTED = 256


class EvalForward:
    """`x -> module(x, train=False)` as one jitted program with the module's state as arguments.

    The module is split and its state flattened to a plain list once, here, so a call costs
    what calling a deployed jitted network costs; `nnx.jit` would re-walk the module graph in
    Python on every call and time that instead. The jitted function is cached by module
    structure (graph definition and state tree), never by values, so rebuilding the same
    block reuses its executable. `lower(x)` gives the program to compile ahead of time
    (`compile_all` compiles many in parallel before any timing starts).
    """

    def __init__(self, module: nnx.Module):
        graphdef, state = nnx.split(module)
        self.leaves, treedef = jax.tree.flatten(state)
        key = (graphdef, treedef)
        jitted = _JITTED.get(key)
        if jitted is None:
            def apply(leaves, x):
                return nnx.merge(graphdef, jax.tree.unflatten(treedef, leaves))(x, False)

            jitted = _JITTED[key] = jax.jit(apply)
            while len(_JITTED) > _MAX_JITTED:
                _JITTED.popitem(last=False)
        else:
            _JITTED.move_to_end(key)
        self.jitted = jitted

    def __call__(self, x):
        return self.jitted(self.leaves, x)

    def lower(self, x):
        return self.jitted.lower(self.leaves, x)


def eval_forward(module: nnx.Module) -> EvalForward:
    """The jitted evaluation-mode forward of `module` (see `EvalForward`)."""
    return EvalForward(module)


def compile_all(lowered: Sequence[Any], progress: Callable[[], None] | None = None) -> None:
    """Compile lowered programs concurrently; the executables land in JAX's caches.

    Tracing and lowering hold the GIL, but XLA's compiler does not, and compiling dominates
    profiling time (a few hundred ms per block on CPU), so a thread per core pays off. Only
    compilation runs concurrently: timing starts after every program is built.
    """
    workers = max(1, min(len(lowered), os.cpu_count() or 1, 8))
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        for future in concurrent.futures.as_completed([pool.submit(low.compile) for low in lowered]):
            future.result()
            if progress is not None:
                progress()


def _plus_one(x):
    return x + 1.0


_TRIVIAL = jax.jit(_plus_one)


def _input(shape: Sequence[int], seed: int = 0):
    return jax.device_put(np.random.default_rng(seed).standard_normal(tuple(shape)).astype(np.float32))


def measure_module(module: nnx.Module, shape: Sequence[int], *, warmup: int = DEFAULT_WARMUP,
                   repeats: int = DEFAULT_REPEATS) -> Timing:
    """Latency of one module's jitted evaluation-mode forward at input shape `shape` (float32)."""
    return measure_latency(eval_forward(module), _input(shape), warmup=warmup, repeats=repeats)


def dispatch_overhead(*, warmup: int = DEFAULT_WARMUP, repeats: int = DEFAULT_REPEATS) -> Timing:
    """Latency of a trivial jitted call (`x + 1` on one float32): the fixed cost of any call.

    The input is one element on purpose: above a few thousand elements XLA:CPU splits even
    `x + 1` across its thread pool, and that hand-off is a cost every parallel op also pays
    inside a whole network, so it must stay in the blocks' entries, not be subtracted.
    """
    return measure_latency(_TRIVIAL, _input((1,)), warmup=warmup, repeats=repeats)


def _subnet_forward(config: FBNetConfig, arch, seed: int) -> EvalForward:
    from supernet.subnet import FBNetSubnet  # late: profiling single blocks needs no subnet

    return eval_forward(FBNetSubnet(config, arch, seed=seed))


def _subnet_input(config: FBNetConfig, batch_size: int, seed: int = 0):
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    return _input((batch_size, config.input_size, config.input_size, config.in_channels), seed)


def measure_subnet(config: FBNetConfig, arch, *, batch_size: int = 1, warmup: int = DEFAULT_WARMUP,
                   repeats: int = DEFAULT_REPEATS, seed: int = 0) -> Timing:
    """Measured latency of the standalone `FBNetSubnet` for `arch`, jitted whole, evaluation mode.

    This is the ground truth a latency table is judged against: one program, one dispatch,
    input `[batch_size, input_size, input_size, in_channels]` float32. Weights are the
    subnet's own initialization from `seed`; latency does not depend on their values.
    """
    x = _subnet_input(config, batch_size, seed)
    return measure_latency(_subnet_forward(config, arch, seed), x, warmup=warmup, repeats=repeats)


def measure_subnets(config: FBNetConfig, archs, *, batch_size: int = 1, warmup: int = DEFAULT_WARMUP,
                    repeats: int = DEFAULT_REPEATS, rounds: int = DEFAULT_ROUNDS, seed: int = 0) -> list[Timing]:
    """`measure_subnet` for several architectures, timed in interleaved rounds.

    Comparing subnets is what a search result is judged by, so they share the machine's
    conditions (`measure_interleaved`) instead of each getting its own quiet or busy minute.
    """
    x = _subnet_input(config, batch_size, seed)
    programs = [(_subnet_forward(config, arch, seed), x) for arch in archs]
    compile_all([fn.lower(x) for fn, _ in programs])
    return measure_interleaved(programs, warmup=warmup, repeats=repeats, rounds=rounds)


# ---------------------------------------------------------------------------- profiling
def default_device_name() -> str:
    """`<backend>-<device kind>` for accelerators; CPUs all report kind "cpu", so use the host."""
    backend = jax.default_backend()
    kind = jax.devices()[0].device_kind
    if kind.lower() in (backend.lower(), "cpu"):
        kind = platform.node() or platform.machine() or kind
    return f"{backend}-{kind}".replace(" ", "_")


def _shape_key(spec) -> tuple[int, int, int, int]:
    """What determines a layer's cost: widths, stride, input size (not its position)."""
    return (spec.in_channels, spec.out_channels, spec.stride, spec.in_size)


class _Chain(nnx.Module):
    """`length` copies of one candidate applied in sequence (a shape-keeping layer), one program."""

    def __init__(self, spec, cand, length: int, init: HostInit):
        self.blocks = nnx.List([make_candidate(spec, cand, init) for _ in range(length)])

    def __call__(self, x, train: bool):
        for block in self.blocks:
            x = block(x, train)
        return x


class RawProfile(NamedTuple):
    """Uncorrected per-call timings of one profiling run (what `profile_fbnet` builds on)."""

    blocks: dict[tuple, Timing]  # (*shape key, candidate index) -> timing of one call
    stem: Timing
    head: Timing
    trivial: Timing  # a trivial jitted call (`x + 1` on one float): bare dispatch
    chains: dict[tuple, Timing]  # (*shape key, candidate index) -> `chain_length` copies in one call
    chain_length: int
    input_shape: tuple[int, ...]
    head_shape: tuple[int, ...]
    seconds: float

    def boundary_overheads(self) -> list[float]:
        """Per-call overhead seen by each probe: one call minus the in-program cost of one block.

        With `T1` one block per call and `Tk` k copies chained in one call, a block costs
        `(Tk - T1) / (k - 1)` inside a program, and the rest of `T1` is the call boundary.
        """
        k = self.chain_length
        return [self.blocks[key].median_ms - (t.median_ms - self.blocks[key].median_ms) / (k - 1)
                for key, t in self.chains.items()]

    def per_call_overhead(self, method: str) -> float:
        """The overhead (ms) to take out of every per-call entry under correction `method`."""
        if method == "none":
            return 0.0
        if method == "chain" and self.chains:
            return max(float(np.median(self.boundary_overheads())), 0.0)
        return self.trivial.median_ms  # "trivial", or "chain" with no shape-keeping layer to chain


def profile_fbnet_raw(space: FBNetSpace, *, batch_size: int = 1, warmup: int = DEFAULT_WARMUP,
                      repeats: int = DEFAULT_REPEATS, rounds: int = DEFAULT_ROUNDS,
                      progress: ProgressFn | None = None, seed: int = 0) -> RawProfile:
    """Time the stem, the head, each distinct (layer shape, candidate) and the dispatch overhead.

    All programs are built and compiled first (compilation in parallel), then timed in
    interleaved rounds (`measure_interleaved`), so no timing shares the machine with a
    compiler thread and every entry, the overhead baselines included, sees the same load.
    """
    _check_timing_args(warmup, repeats, rounds)
    if not isinstance(space, FBNetSpace):
        raise ValueError(f"only FBNet spaces can be profiled, got {getattr(space, 'name', type(space).__name__)!r}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    started = time.perf_counter()
    cfg = space.macro
    specs = space.layer_specs()
    distinct: dict[tuple, Any] = {}
    for spec in specs:
        distinct.setdefault(_shape_key(spec), spec)
    last = cfg.channels[-1] if specs else cfg.stem_channels
    in_shape = (batch_size, cfg.input_size, cfg.input_size, cfg.in_channels)
    head_shape = (batch_size, space.final_size, space.final_size, last)

    def block_factory(spec, cand):
        return lambda: make_candidate(spec, cand, HostInit(seed))

    def chain_factory(spec, cand):
        return lambda: _Chain(spec, cand, PROBE_CHAIN, HostInit(seed))

    # (label, result key, module factory, input shape) of every program to time.
    jobs = [
        ("stem", "stem", lambda: ConvBNReLU(cfg.in_channels, cfg.stem_channels, 3, HostInit(seed),
                                            stride=cfg.stem_stride), in_shape),
        ("head", "head", lambda: Head(last, cfg.head_channels, cfg.num_classes, HostInit(seed)), head_shape),
    ]
    for key, spec in distinct.items():
        shape = (batch_size, spec.in_size, spec.in_size, spec.in_channels)
        for c, cand in enumerate(CANDIDATES):
            jobs.append((f"layer{spec.index} {cand.name}", key + (c,), block_factory(spec, cand), shape))
    # Overhead probes: the cheapest candidate chained at a few shape-keeping layer shapes.
    keeping = [spec for spec in distinct.values() if spec.keeps_shape]
    probes = [keeping[i] for i in sorted({round(j * (len(keeping) - 1) / max(MAX_PROBES - 1, 1))
                                          for j in range(MAX_PROBES)})] if keeping else []
    c = CANDIDATES.index(next(cand for cand in CANDIDATES if cand.name == PROBE_CANDIDATE))
    for spec in probes:
        shape = (batch_size, spec.in_size, spec.in_size, spec.in_channels)
        jobs.append((f"probe layer{spec.index} {PROBE_CANDIDATE} x{PROBE_CHAIN}", ("chain", *_shape_key(spec), c),
                     chain_factory(spec, CANDIDATES[c]), shape))

    labels = ["dispatch overhead"] + [job[0] for job in jobs]
    rounds = min(rounds, repeats)
    total = len(labels) * (1 + rounds)  # each program is compiled once, then timed in every round
    done = 0

    def tick(label: str) -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(done, total, label)

    # Build and lower in this thread (Python, holds the GIL), compile concurrently.
    inputs = {shape: _input(shape, seed) for shape in {job[3] for job in jobs}}
    programs = [(_TRIVIAL, _input((1,), seed))]
    for label, key, factory, shape in jobs:
        programs.append((eval_forward(factory()), inputs[shape]))
    compile_all([fn.lower(x) for fn, x in programs], progress=lambda: tick("compiled"))

    timings = measure_interleaved(programs, warmup=warmup, repeats=repeats, rounds=rounds,
                                  progress=lambda i, r: tick(labels[i]))
    trivial, results = timings[0], {job[1]: t for job, t in zip(jobs, timings[1:])}
    stem, head = results.pop("stem"), results.pop("head")
    chains = {key[1:]: results.pop(key) for key in [k for k in results if k[0] == "chain"]}
    return RawProfile(results, stem, head, trivial, chains, PROBE_CHAIN, in_shape, head_shape,
                      time.perf_counter() - started)


def table_from_raw(space: FBNetSpace, raw: RawProfile, *, overhead: str = "chain",
                   device_name: str | None = None, warmup: int | None = None,
                   repeats: int | None = None, rounds: int | None = None) -> LatencyTable:
    """Assemble the `LatencyTable` from raw timings, applying the dispatch-overhead correction."""
    if overhead not in OVERHEAD_MODES:
        raise ValueError(f"overhead must be one of {OVERHEAD_MODES}, got {overhead!r}")

    per_call = raw.per_call_overhead(overhead)

    def corrected(t: Timing) -> float:
        return max(t.median_ms - per_call, 0.0)

    specs = space.layer_specs()
    table = np.empty((len(specs), len(CANDIDATES)))
    spread = np.empty_like(table)
    for spec in specs:
        for c in range(len(CANDIDATES)):
            t = raw.blocks[_shape_key(spec) + (c,)]
            table[spec.index, c], spread[spec.index, c] = corrected(t), t.iqr_ms
    # The whole network is one call: it pays the dispatch once, and that once lives in `fixed`.
    fixed = corrected(raw.stem) + corrected(raw.head) + per_call
    device = device_info(
        device_name or default_device_name(),
        backend=jax.default_backend(), dtype="float32", batch_size=raw.input_shape[0],
        input_size=raw.input_shape[1], device_kind=jax.devices()[0].device_kind,
        jax_version=jax.__version__, platform=platform.machine(), cpu_count=os.cpu_count(),
        repeats=repeats, warmup=warmup, rounds=rounds, statistic="median", spread="interquartile range",
        overhead_correction=overhead, overhead_method=OVERHEAD_METHODS[overhead],
        dispatch_overhead_ms=per_call, trivial_call_ms=raw.trivial.median_ms,
        boundary_overheads_ms=[round(v, 6) for v in raw.boundary_overheads()],
        stem_ms=raw.stem.median_ms, head_ms=raw.head.median_ms,
        distinct_measurements=len(raw.blocks) + 2, profile_seconds=round(raw.seconds, 2),
    )
    return LatencyTable.for_space(space, table, fixed=fixed, device=device, spread=spread)


def profile_fbnet(space: FBNetSpace, *, batch_size: int = 1, warmup: int = DEFAULT_WARMUP,
                  repeats: int = DEFAULT_REPEATS, device_name: str | None = None,
                  progress: ProgressFn | None = None, overhead: str = "chain",
                  rounds: int = DEFAULT_ROUNDS, seed: int = 0) -> LatencyTable:
    """A `latency_ms` table `[layers, 9]` for `space`, measured on the current JAX backend.

    Every candidate of every searchable layer is built (weights from `seed`), jitted in
    evaluation mode and timed at the layer's input shape `[batch_size, in_size, in_size,
    in_channels]` float32. Layers that share widths, stride and input size (most layers of
    a stage) share one measurement. `fixed` is the stem plus the head, timed the same way.
    With `overhead="chain"` (default) or `"trivial"` the measured per-call boundary cost is
    taken out of every entry (clipped at 0, so entries are >= 0) and counted once in
    `fixed`; `"none"` keeps raw per-call latencies (> 0). The module docstring gives the
    measurements behind the default.

    `progress(done, total, label)` is called as programs compile and as each is timed.
    """
    if overhead not in OVERHEAD_MODES:
        raise ValueError(f"overhead must be one of {OVERHEAD_MODES}, got {overhead!r}")
    raw = profile_fbnet_raw(space, batch_size=batch_size, warmup=warmup, repeats=repeats, rounds=rounds,
                            progress=progress, seed=seed)
    return table_from_raw(space, raw, overhead=overhead, device_name=device_name, warmup=warmup,
                          repeats=repeats, rounds=min(rounds, repeats))


# ---------------------------------------------------------------------------- validation
def summarize(predicted: Sequence[float], measured: Sequence[float]) -> ValidationSummary:
    """MAPE, worst error, bias and Kendall tau of predictions against measurements."""
    p, m = np.asarray(predicted, np.float64), np.asarray(measured, np.float64)
    if len(p) == 0:
        nan = float("nan")
        return ValidationSummary(0, nan, nan, nan, nan)
    err = 100.0 * (p - m) / m
    return ValidationSummary(
        n=len(p), mape_pct=float(np.mean(np.abs(err))), max_error_pct=float(np.max(np.abs(err))),
        bias_pct=float(np.mean(err)), kendall_tau=kendall_tau(p, m),  # costs.metrics: one definition
    )


def validate_table(table: LatencyTable, space: FBNetSpace, n: int, *, key, batch_size: int | None = None,
                   warmup: int = DEFAULT_WARMUP, repeats: int = DEFAULT_REPEATS, rounds: int = DEFAULT_ROUNDS,
                   progress: ProgressFn | None = None) -> Validation:
    """Time `n` random whole subnets (`space.sample(key, n)`) and compare with the table's sum.

    `batch_size` defaults to the one the table was profiled at: a table predicts latency at
    its own batch size only.
    """
    if not isinstance(space, FBNetSpace):
        raise ValueError(f"validate_table needs an FBNet space, got {getattr(space, 'name', type(space).__name__)!r}")
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    table.check_space(space)
    batch_size = int(batch_size or table.device.get("batch_size", 1))
    archs = np.asarray(space.sample(key, n)) if n else np.zeros((0, space.num_decisions), np.int32)
    predicted = np.asarray(table.cost(archs), np.float64) if n else np.zeros(0)
    x = _subnet_input(space.macro, batch_size)
    # Compile every subnet first (in parallel), then time them in interleaved rounds.
    forwards = [_subnet_forward(space.macro, arch, 0) for arch in archs]
    compile_all([fwd.lower(x) for fwd in forwards])
    timings = measure_interleaved([(fwd, x) for fwd in forwards], warmup=warmup, repeats=repeats, rounds=rounds,
                                  progress=None if progress is None else (
                                      lambda i, r: progress(r * n + i + 1, n * min(rounds, repeats), f"subnet {i}")))
    rows = []
    for arch, p, t in zip(archs, predicted, timings):
        p = float(p)
        rows.append(ValidationRow(space.to_public(arch), p, t.median_ms, 100.0 * (p - t.median_ms) / t.median_ms))
    return Validation(rows, summarize([r.predicted_ms for r in rows], [r.measured_ms for r in rows]))
