"""Latency lookup tables of the Once-for-All MobileNetV3 space, measured on the current JAX backend.

`profile_ofa(space, resolutions=...)` builds a `costs.lut.OFALatencyTable`:

    cost(a) = fixed[r] + sum over active blocks b of table[r, b, k_b, e_b]

the per-resolution block tables of Once-for-All's latency predictor (Cai et al., ICLR 2020).
For every requested resolution r it times, jitted in evaluation mode at the real input shape
`[batch, side, side, c_in]`:

* every distinct elastic block with every (kernel, expand): blocks that share input side,
  widths, stride, squeeze-excite and activation share one measurement. Within a stage the
  slots after the first have one shape, so a resolution has about 2 * stages distinct block
  shapes (10 for the 5 stages of every preset: 90 programs), and resolutions whose feature
  maps coincide at some stage share those too;
* the fixed parts: `Stem` (stem conv and first block) at `r x r` and `Head` (final expand
  conv, pool, feature mix, classifier) at the final side. `fixed[r]` is their sum.

Unrequested resolutions stay NaN in the table, which then refuses to cost them. The timing
protocol and the dispatch-overhead correction are `supernet.profile`'s (see its docstring):
all programs are compiled first in parallel threads (`compile_all`), then timed in
interleaved rounds (`measure_interleaved`), median and interquartile range; with
`overhead="chain"` the per-call boundary cost, measured from the cheapest block chained
`PROBE_CHAIN` times at shape-keeping shapes, is taken out of every entry (clipped at 0) and
counted once in `fixed[r]`. When there are more programs than `MAX_PROGRAMS_PER_PASS`, the
resolutions are profiled in several passes (each compiled, then timed) so that memory stays
bounded; the overhead probes run in the first pass.

`validate_ofa_table` times whole random `OFASubnet`s at the table's resolutions, each as one
jitted program (`measure_ofa_subnet`), and reports how well the table's sums predict and
rank them.

What we measured (2-core shared Xeon VM, XLA:CPU, batch 1, load average 4-12 from other
jobs throughout, so treat these as rough). One resolution is 92 programs (10 block shapes x
9 (kernel, expand), stem, head) plus 5 chained probes and the trivial call; nearly all the
time is compiling them (~1.4 s each here, two at a time):

    preset         resolution  repeats  profile     validation
    tiny           16 px       3        127 s       2 subnets 48 s:  MAPE 8%,  bias -8%
    fashion_mnist  28 px       20       125 s       8 subnets 226 s: MAPE 40%, bias -40%, tau 0.64

The ImageNet preset has 25 resolutions and little sharing between them (feature maps
differ from the stem on), so all of it is ~25 such runs with larger blocks: expect an hour
or more on such a CPU. Profile the resolutions you search over (`resolutions=`) and add
others later (`OFALatencyTable.merge`, `hwnas profile --merge`).

On XLA:CPU the sum of isolated blocks under-predicts whole fashion_mnist subnets: timed in
the same interleaved rounds (so not load drift), 6 subnets came out 15-34% above the LUT
sum by median, and 22-37% by the minimum over repeats (so not preemption of long calls
either). Blocks timed alone run with their weights and activations hot in cache; the
whole network streams through all of them. The error is roughly a common factor (the
ranking survives better than the scale: tau 0.64 over 8 subnets), so the table ranks
better than it predicts absolute latency; `--validate N` measures it for the device at hand.
"""

from __future__ import annotations

import os
import platform
import time
from typing import Any, NamedTuple, Sequence

import jax
import numpy as np
from flax import nnx

from costs.lut import OFALatencyTable, device_info
from supernet.layers import HostInit
from supernet.profile import (
    DEFAULT_REPEATS,
    DEFAULT_ROUNDS,
    DEFAULT_WARMUP,
    OVERHEAD_METHODS,
    OVERHEAD_MODES,
    PROBE_CHAIN,
    _TRIVIAL,
    EvalForward,
    ProgressFn,
    RawProfile,
    Timing,
    Validation,
    ValidationRow,
    _check_timing_args,
    _input,
    compile_all,
    default_device_name,
    eval_forward,
    measure_interleaved,
    measure_latency,
    summarize,
)
from supernet.spaces.ofa_mbv3 import BlockSpec, OFAMobileNetV3Space

MAX_PROBES = 6
MAX_PROGRAMS_PER_PASS = 600  # compiled executables held at once; ~6 resolutions of the paper's space


def _ofa():
    # Late import: the static modules live in supernet.ofa.subnet.
    from supernet.ofa import subnet

    return subnet


def _out(size: int, stride: int) -> int:
    return -(-size // stride)


def block_input_sides(space: OFAMobileNetV3Space, resolution: int) -> list[int]:
    """Input side of every elastic block at `resolution` (only a stage's first slot strides)."""
    side, sides = _out(resolution, space.macro.stem_stride), []
    for spec in space.block_specs():
        sides.append(side)
        side = _out(side, spec.stride)
    return sides


def final_side(space: OFAMobileNetV3Space, resolution: int) -> int:
    specs = space.block_specs()
    if not specs:
        return _out(resolution, space.macro.stem_stride)
    return _out(block_input_sides(space, resolution)[-1], specs[-1].stride)


def block_key(spec: BlockSpec, side: int) -> tuple:
    """What determines a block's cost besides (kernel, expand): widths, stride, SE, activation, side."""
    return (spec.in_channels, spec.out_channels, spec.stride, spec.use_se, spec.activation, side)


class _Chain(nnx.Module):
    """`length` copies of one shape-keeping block applied in sequence, as one program."""

    def __init__(self, spec: BlockSpec, kernel: int, expand: int, length: int, init: HostInit):
        make_block = _ofa().make_block
        self.blocks = nnx.List([make_block(spec, kernel, expand, init) for _ in range(length)])

    def __call__(self, x, train: bool):
        for block in self.blocks:
            x = block(x, train)
        return x


class OFARawProfile(NamedTuple):
    """Uncorrected per-call timings of one OFA profiling run (what `table_from_raw` builds on)."""

    blocks: dict[tuple, Timing]  # (*block_key, kernel choice, expand choice) -> one call
    stems: dict[int, Timing]  # resolution (px) -> stem + first block
    heads: dict[int, Timing]  # resolution (px) -> head at that resolution's final side
    trivial: Timing
    chains: dict[tuple, Timing]  # same keys as blocks -> `chain_length` copies in one call
    chain_length: int
    resolutions: tuple[int, ...]
    batch_size: int
    seconds: float

    # The overhead estimate is `supernet.profile.RawProfile`'s: same fields, same rule.
    boundary_overheads = RawProfile.boundary_overheads
    per_call_overhead = RawProfile.per_call_overhead


def _check_resolutions(space: OFAMobileNetV3Space, resolutions: Sequence[int] | None) -> tuple[int, ...]:
    available = space.macro.resolutions
    if resolutions is None:
        return tuple(available)
    chosen = sorted(set(int(r) for r in resolutions))
    if not chosen:
        raise ValueError("resolutions: give at least one resolution")
    bad = [r for r in chosen if r not in available]
    if bad:
        raise ValueError(f"resolution {bad[0]} is not in this space; resolutions: {', '.join(map(str, available))}")
    return tuple(chosen)


def _check_space(space) -> None:
    if not isinstance(space, OFAMobileNetV3Space):
        raise ValueError(f"expected an ofa_mbv3 space, got {getattr(space, 'name', type(space).__name__)!r}")


def profile_ofa_raw(space: OFAMobileNetV3Space, *, resolutions: Sequence[int] | None = None, batch_size: int = 1,
                    warmup: int = DEFAULT_WARMUP, repeats: int = DEFAULT_REPEATS, rounds: int = DEFAULT_ROUNDS,
                    progress: ProgressFn | None = None, seed: int = 0) -> OFARawProfile:
    """Time stems, heads, each distinct (block shape, kernel, expand) and the overhead probes."""
    _check_space(space)
    _check_timing_args(warmup, repeats, rounds)
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    chosen = _check_resolutions(space, resolutions)
    started = time.perf_counter()
    sub, cfg, specs = _ofa(), space.macro, space.block_specs()
    last = cfg.widths[-1] if cfg.widths else cfg.first_block_channels

    def shape(side: int, channels: int) -> tuple[int, ...]:
        return (batch_size, side, side, channels)

    # Per resolution: (label, result key, module factory, input shape) of every new program.
    groups: list[list[tuple]] = []
    seen: set[tuple] = set()
    keeping: dict[tuple, tuple[BlockSpec, int]] = {}
    for px in chosen:
        jobs = [(f"r{px} stem", ("stem", px), lambda: sub.Stem(cfg, HostInit(seed)), shape(px, cfg.in_channels)),
                (f"r{px} head", ("head", px), lambda: sub.Head(cfg, HostInit(seed)),
                 shape(final_side(space, px), last))]
        for spec, side in zip(specs, block_input_sides(space, px)):
            key = block_key(spec, side)
            if key in seen:
                continue
            seen.add(key)
            if spec.has_residual:
                keeping.setdefault(key, (spec, side))
            for k, kernel in enumerate(cfg.kernels):
                for e, expand in enumerate(cfg.expands):
                    jobs.append((f"r{px} block{spec.index} k{kernel}_e{expand}", key + (k, e),
                                 _block_factory(spec, kernel, expand, seed), shape(side, spec.in_channels)))
        groups.append(jobs)
    # Overhead probes: the cheapest block chained, at a few shape-keeping shapes.
    shapes = list(keeping.values())
    picks = sorted({round(j * (len(shapes) - 1) / max(MAX_PROBES - 1, 1)) for j in range(MAX_PROBES)}) if shapes else []
    probes = []
    for spec, side in (shapes[i] for i in picks):
        kernel, expand = cfg.kernels[0], cfg.expands[0]
        probes.append((f"probe block{spec.index} side{side} k{kernel}_e{expand} x{PROBE_CHAIN}",
                       ("chain", *block_key(spec, side), 0, 0),
                       _chain_factory(spec, kernel, expand, seed), shape(side, spec.in_channels)))

    # Passes of whole resolutions, at most MAX_PROGRAMS_PER_PASS programs each (the first
    # also times the trivial call and the probes).
    passes: list[list[tuple]] = [[("dispatch overhead", "trivial", None, (1,))] + probes]
    for jobs in groups:
        if len(passes[-1]) > 1 + len(probes) and len(passes[-1]) + len(jobs) > MAX_PROGRAMS_PER_PASS:
            passes.append([])
        passes[-1].extend(jobs)
    rounds = min(rounds, repeats)
    total = sum(len(p) for p in passes) * (1 + rounds)
    done = 0

    def tick(label: str) -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(done, total, label)

    results: dict[Any, Timing] = {}
    for jobs in passes:
        inputs = {s: _input(s, seed) for s in {job[3] for job in jobs}}
        programs = [(_TRIVIAL if key == "trivial" else eval_forward(factory()), inputs[s])
                    for _, key, factory, s in jobs]
        compile_all([fn.lower(x) for fn, x in programs],
                    progress=lambda: tick("compiled"))
        timings = measure_interleaved(programs, warmup=warmup, repeats=repeats, rounds=rounds,
                                      progress=lambda i, r, jobs=jobs: tick(jobs[i][0]))
        results.update({job[1]: t for job, t in zip(jobs, timings)})
        del programs
    trivial = results.pop("trivial")
    stems = {px: results.pop(("stem", px)) for px in chosen}
    heads = {px: results.pop(("head", px)) for px in chosen}
    chains = {key[1:]: results.pop(key) for key in [k for k in results if k[0] == "chain"]}
    return OFARawProfile(results, stems, heads, trivial, chains, PROBE_CHAIN, chosen, batch_size,
                         time.perf_counter() - started)


def _block_factory(spec, kernel, expand, seed):
    return lambda: _ofa().make_block(spec, kernel, expand, HostInit(seed))


def _chain_factory(spec, kernel, expand, seed):
    return lambda: _Chain(spec, kernel, expand, PROBE_CHAIN, HostInit(seed))


def table_from_raw(space: OFAMobileNetV3Space, raw: OFARawProfile, *, overhead: str = "chain",
                   device_name: str | None = None, warmup: int | None = None, repeats: int | None = None,
                   rounds: int | None = None) -> OFALatencyTable:
    """Assemble the `OFALatencyTable` (NaN at unprofiled resolutions), correcting the call overhead."""
    _check_space(space)
    if overhead not in OVERHEAD_MODES:
        raise ValueError(f"overhead must be one of {OVERHEAD_MODES}, got {overhead!r}")
    per_call = raw.per_call_overhead(overhead)

    def corrected(t: Timing) -> float:
        return max(t.median_ms - per_call, 0.0)

    cfg, specs = space.macro, space.block_specs()
    R, K, E = len(cfg.resolutions), len(cfg.kernels), len(cfg.expands)
    table = np.full((R, len(specs), K, E), np.nan)
    spread = np.full_like(table, np.nan)
    fixed, fixed_spread = np.full(R, np.nan), np.full(R, np.nan)
    for px in raw.resolutions:
        r = cfg.resolutions.index(px)
        for spec, side in zip(specs, block_input_sides(space, px)):
            key = block_key(spec, side)
            for k in range(K):
                for e in range(E):
                    t = raw.blocks[key + (k, e)]
                    table[r, spec.index, k, e], spread[r, spec.index, k, e] = corrected(t), t.iqr_ms
        # The whole network is one call: it pays the boundary once, and that once is in `fixed`.
        fixed[r] = corrected(raw.stems[px]) + corrected(raw.heads[px]) + per_call
        fixed_spread[r] = raw.stems[px].iqr_ms + raw.heads[px].iqr_ms
    device = device_info(
        device_name or default_device_name(),
        backend=jax.default_backend(), dtype="float32", batch_size=raw.batch_size,
        input_sizes=list(raw.resolutions), in_channels=cfg.in_channels,
        device_kind=jax.devices()[0].device_kind, jax_version=jax.__version__, platform=platform.machine(),
        cpu_count=os.cpu_count(), repeats=repeats, warmup=warmup, rounds=rounds, statistic="median",
        spread="interquartile range", overhead_correction=overhead, overhead_method=OVERHEAD_METHODS[overhead],
        dispatch_overhead_ms=per_call, trivial_call_ms=raw.trivial.median_ms,
        boundary_overheads_ms=[round(v, 6) for v in raw.boundary_overheads()],
        stem_ms={str(px): t.median_ms for px, t in raw.stems.items()},
        head_ms={str(px): t.median_ms for px, t in raw.heads.items()},
        distinct_measurements=len(raw.blocks) + 2 * len(raw.resolutions), profile_seconds=round(raw.seconds, 2),
    )
    return OFALatencyTable.for_space(space, table, fixed=fixed, device=device, spread=spread,
                                     fixed_spread=fixed_spread)


def profile_ofa(space: OFAMobileNetV3Space, *, resolutions: Sequence[int] | None = None, batch_size: int = 1,
                warmup: int = DEFAULT_WARMUP, repeats: int = DEFAULT_REPEATS, rounds: int = DEFAULT_ROUNDS,
                device_name: str | None = None, progress: ProgressFn | None = None, overhead: str = "chain",
                seed: int = 0) -> OFALatencyTable:
    """A `latency_ms` `OFALatencyTable` for `space` at `resolutions` (pixels; default all).

    See the module docstring for what is timed; `progress(done, total, label)` is called as
    programs compile and as each is timed.
    """
    if overhead not in OVERHEAD_MODES:
        raise ValueError(f"overhead must be one of {OVERHEAD_MODES}, got {overhead!r}")
    raw = profile_ofa_raw(space, resolutions=resolutions, batch_size=batch_size, warmup=warmup, repeats=repeats,
                          rounds=rounds, progress=progress, seed=seed)
    return table_from_raw(space, raw, overhead=overhead, device_name=device_name, warmup=warmup,
                          repeats=repeats, rounds=min(rounds, repeats))


# ---------------------------------------------------------------------------- whole subnets
def _subnet_forward(space: OFAMobileNetV3Space, arch, seed: int) -> EvalForward:
    return eval_forward(_ofa().OFASubnet(space, arch, HostInit(seed)))


def _subnet_input(space: OFAMobileNetV3Space, arch, batch_size: int, seed: int = 0):
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    arch = np.asarray(space.validate(np.asarray(arch)))
    px = space.macro.resolutions[int(arch[space.resolution_index])]
    return _input((batch_size, px, px, space.macro.in_channels), seed)


def measure_ofa_subnet(space: OFAMobileNetV3Space, arch, *, batch_size: int = 1, warmup: int = DEFAULT_WARMUP,
                       repeats: int = DEFAULT_REPEATS, seed: int = 0) -> Timing:
    """Measured latency of the standalone `OFASubnet` of `arch`: one jitted program, evaluation
    mode, input `[batch_size, r, r, in_channels]` float32 at the arch's resolution r."""
    _check_space(space)
    x = _subnet_input(space, arch, batch_size, seed)
    return measure_latency(_subnet_forward(space, arch, seed), x, warmup=warmup, repeats=repeats)


def sample_at(space: OFAMobileNetV3Space, key, n: int, resolutions: Sequence[int]) -> np.ndarray:
    """`n` uniform random architectures whose resolution is drawn from `resolutions` (pixels)."""
    chosen = _check_resolutions(space, resolutions)
    k_arch, k_res = jax.random.split(key)
    archs = np.array(space.sample(k_arch, n)) if n else np.zeros((0, space.num_decisions), np.int32)
    index = np.asarray([space.macro.resolutions.index(px) for px in chosen], np.int32)
    archs[:, space.resolution_index] = index[np.asarray(jax.random.randint(k_res, (n,), 0, len(index)))]
    return archs


def validate_ofa_table(table: OFALatencyTable, space: OFAMobileNetV3Space, n: int, *, key,
                       batch_size: int | None = None, warmup: int = DEFAULT_WARMUP,
                       repeats: int = DEFAULT_REPEATS, rounds: int = DEFAULT_ROUNDS,
                       progress: ProgressFn | None = None) -> Validation:
    """Time `n` random whole subnets at the table's resolutions and compare with its sums.

    Rows carry the public `{ks, e, d, r}` record of each subnet. `batch_size` defaults to
    the table's own.
    """
    _check_space(space)
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    table.check_space(space)
    batch_size = int(batch_size or table.device.get("batch_size", 1))
    archs = sample_at(space, key, n, table.profiled_resolutions)
    predicted = np.asarray(table.cost(archs), np.float64) if n else np.zeros(0)
    programs = [(_subnet_forward(space, a, 0), _subnet_input(space, a, batch_size)) for a in archs]
    compile_all([fwd.lower(x) for fwd, x in programs])
    timings = measure_interleaved(programs, warmup=warmup, repeats=repeats, rounds=rounds,
                                  progress=None if progress is None else (
                                      lambda i, r: progress(r * n + i + 1, n * min(rounds, repeats), f"subnet {i}")))
    rows = []
    for arch, p, t in zip(archs, predicted, timings):
        p = float(p)
        rows.append(ValidationRow(space.to_public(arch), p, t.median_ms, 100.0 * (p - t.median_ms) / t.median_ms))
    return Validation(rows, summarize([r.predicted_ms for r in rows], [r.measured_ms for r in rows]))
