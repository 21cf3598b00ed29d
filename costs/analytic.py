"""Analytic hardware costs of architectures: MACs, FLOPs, parameters, peak activation memory
and memory traffic.

Every cost here is computed from shapes alone, for a whole batch of architectures at once:
per search space we build, once, tables of the cost of every choice of every searchable layer
(`layer_cost_tables`), and cost an `[n, d]` batch by gathering from those tables and summing
(or taking the max, for peak memory). Building a table loops over layers and choices in
Python; costing never loops over architectures, so 100,000 architectures cost in milliseconds.

Example:
    >>> from supernet.spaces import get_space
    >>> space = get_space("nasbench201")
    >>> costs = analytic_costs(space, space.enumerate())     # all 15,625 cells
    >>> costs.macs.shape, costs.params.max()                  # ((15625,), 1531546.0)

Conventions
-----------
MACs
    Multiply-accumulates of weights x inputs in convolutions and linear layers only. Batch
    norm, activations, pooling, squeeze-excite gating multiplications and residual or cell
    additions are not counted. A kxk convolution with `groups` groups has
    `k*k*c_in*c_out/groups` weights and costs `H_out*W_out` times that many MACs; depthwise
    means groups = channels. A linear layer costs `n_in*n_out`. MACs and FLOPs are per input
    example (the usual way to report them); multiply by the batch size for a batch.
FLOPs
    `2 * MACs` (a multiply and an add each).
Parameters
    Conv and linear weights and biases, plus batch norm's learnable scale and shift (2 per
    channel). Running statistics are buffers, not parameters.
Spatial sizes
    'same' padding throughout: an op of stride s maps a side of `size` to `ceil(size / s)`.
Peak activation memory
    Inference at `batch_size`, executing one op (convolution, linear layer, pooling) at a time.
    While an op runs, its input and its output tensors are live, plus the block input when the
    block has a residual connection still to add (plus, in a NAS-Bench-201 cell, every node
    tensor still needed, see below). Batch norm and activations run in place on an op's output
    and residual additions accumulate in place, so they add nothing beyond the op they follow.
    The peak is the largest number of live elements over all ops of the network, from the stem
    (whose input is the network input tensor) to the classifier, times `batch_size` and
    `bytes_per_element`. Weights are not activations and are not included.

    NAS-Bench-201 cells: node 0 is the cell input; node i = sum of its incoming edges. Nodes
    are computed in order 1, 2, 3 and edges in `arch_str` order; node i's buffer exists from its
    first incoming edge (zero-initialized, so it exists even when every incoming edge is
    `none`) and every edge's result is accumulated into it. While edge j -> i runs, live are:
    node i's buffer, every earlier node still read by this or a later non-`none` edge, and the
    edge's output if the op makes a new tensor (convolutions and pooling; `skip_connect` adds
    its input into the buffer in place; `none` does nothing). An edge reading a node costs its
    full price even when that node received only `none` edges (the op still runs on zeros).

Memory traffic
    The roofline model's compulsory traffic (Williams, Waterman & Patterson, "Roofline", CACM
    2009): every convolution, depthwise convolution, linear layer and pooling reads its input
    tensor and its weights once and writes its output tensor once. So within an op every
    element is fetched once (perfect on-chip reuse), and across ops nothing stays on chip
    (every intermediate tensor goes to memory and back). For a batch of `batch_size` examples

        memory_traffic_bytes = (activation_elements * batch_size + weight_elements) * bytes_per_element

    because every activation carries the batch dimension while a weight is read once per batch
    (`act_traffic` and `weight_traffic` in the tables, elements at batch 1). Batch norm and
    activations run fused into the op before them (a BN folds into the preceding conv at
    inference), so they move nothing of their own; FBNet's channel shuffle is a permutation
    folded into the next op's read. Weight elements are the inference weights: conv and linear
    weights, plus one bias per output channel when the op has a bias or a folded BN (so a BN
    costs `c_out` here against `2*c_out` parameters). A standalone BN (NAS-Bench-201's final
    BN + ReLU, applied while the global pool reads its input) reads its 2 per-channel values.
    A residual addition is fused into the block's last op, which reads the residual operand
    once more (the block input; in NAS-Bench-201's reduction block, the main branch output).
    A squeeze-excite gate is applied while the projection conv reads its input, which reads
    the `mid`-element gate vector once more. An identity (FBNet `skip` that keeps the shape)
    moves nothing. The network input (read by the stem) and the logits are counted.

    NAS-Bench-201 cells: a non-`none` edge j -> i reads node j (its input) and adds its result
    into node i's buffer (a read and a write of the buffer, fused into the op's output write),
    so `skip_connect`, `avg_pool_3x3` and the convolutions each move 3 node-sized tensors, the
    convolutions plus their weights, and `none` moves nothing. The add is counted for every
    edge, also the first one into a node (which could write instead of add), so that traffic
    is a sum over edges, like MACs (an upper bound by at most one node tensor per node); the
    zero-initialization of node buffers is not counted.

Tables (see `layer_cost_tables`) hold MACs, parameters, peak live elements and activation and
weight traffic, all *elements at batch 1*, as float64; `analytic_costs` scales the elements to
bytes. Every activation tensor carries the batch dimension, so peak elements and activation
traffic scale linearly with the batch size; weights do not.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import NamedTuple, Union

import numpy as np

from supernet.spaces.fbnet import CANDIDATES
from supernet.spaces.nasbench201 import EDGES as NB201_EDGES
from supernet.spaces.nasbench201 import OPS as NB201_OPS
from supernet.spaces.ofa_mbv3 import make_divisible

SPACES = ("nasbench201", "fbnet", "ofa_mbv3")


# ====================================================================== public types
class AnalyticCosts(NamedTuple):
    """Costs of a batch of architectures; every field a float64 array `[n]`.

    `macs`, `flops` and `params` are per example; `peak_activation_bytes` and
    `memory_traffic_bytes` are for one forward pass of a batch of `batch_size` examples.
    """

    macs: np.ndarray
    flops: np.ndarray
    params: np.ndarray
    peak_activation_bytes: np.ndarray
    memory_traffic_bytes: np.ndarray


class CostTable(NamedTuple):
    """Costs in elements at batch 1 (see the module docstring), all of one shape.

    macs:           multiply-accumulates.
    params:         parameters.
    peak_elements:  peak live activation elements.
    act_traffic:    activation elements read and written (scales with the batch size).
    weight_traffic: weight elements read (once per batch).
    """

    macs: np.ndarray
    params: np.ndarray
    peak_elements: np.ndarray
    act_traffic: np.ndarray
    weight_traffic: np.ndarray


class FBNetTables(NamedTuple):
    """FBNet cost tables.

    fixed:  scalars (shape `()`): stem conv, head conv, global pool and classifier.
    layers: `[num_layers, num_candidates]`: searchable layer l built as candidate c
            (`CANDIDATES` order); an identity `skip` costs 0.
    Total MACs/params/traffic = fixed + sum_l layers[l, arch[l]];
    peak = max(fixed, max_l layers[l, arch[l]]).
    """

    fixed: CostTable
    layers: CostTable


class OFATables(NamedTuple):
    """OFA MobileNetV3 cost tables, indexed by the resolution *choice* first.

    fixed:  `[R]`: stem, first block, final expand conv, pool, feature mix and classifier.
    blocks: `[R, num_blocks, K, E]`: elastic block b with kernel choice k and expand choice e
            at resolution choice r.
    Total = fixed[r] + sum over *active* blocks b of blocks[r, b, k_b, e_b] (max for peak);
    blocks beyond a stage's depth cost nothing (also no traffic).
    """

    fixed: CostTable
    blocks: CostTable


class NB201Tables(NamedTuple):
    """NAS-Bench-201 cost tables for one macro setting (see `nasbench201_tables`).

    fixed:              scalars: stem, both reduction blocks, final BN, pool, classifier.
    edge_macs, edge_params, edge_act_traffic, edge_weight_traffic:
                        `[6, 5]`: cost of op o on edge e, summed over every cell of the
                        network (all cells share the searched cell).
    cell_peak_elements: `[5**6]`: peak live elements inside a cell, max over the 3 stages,
                        indexed by the cell's lexicographic code (edge 0 most significant).
                        Memory is a joint property of the cell's edges, and there are only
                        15,625 cells, so we table all of them.
    Total MACs/params/traffic = fixed + sum_e edge_*[e, arch[e]]; peak = max(fixed, cell_peak[code]).
    """

    fixed: CostTable
    edge_macs: np.ndarray
    edge_params: np.ndarray
    cell_peak_elements: np.ndarray
    edge_act_traffic: np.ndarray
    edge_weight_traffic: np.ndarray


Tables = Union[FBNetTables, OFATables, NB201Tables]


# ====================================================================== public functions
def analytic_costs(space, archs, *, batch_size: int = 1, bytes_per_element: int = 4) -> AnalyticCosts:
    """MACs, FLOPs, parameters, peak activation bytes and memory traffic of each architecture.

    `archs` is one architecture `[d]` or a batch `[n, d]` (validated by `space.validate`, so a
    bad shape or an out-of-range choice raises `ValueError`); the result always has `[n]`
    arrays (n = 1 for a single architecture). See the module docstring for the conventions.
    """
    return costs_from_tables(space, layer_cost_tables(space), archs,
                             batch_size=batch_size, bytes_per_element=bytes_per_element)


def layer_cost_tables(space) -> Tables:
    """The per-layer, per-choice cost tables of `space` (built once, cached by fingerprint).

    Returns `FBNetTables`, `OFATables` or `NB201Tables` (see each for its layout). NAS-Bench-201
    uses the benchmark's macro network; `nasbench201_tables(...)` builds other settings. The
    arrays are read-only because they are shared by every caller.
    """
    _check_space(space)
    key = (space.name, space.fingerprint())
    if key not in _TABLE_CACHE:
        builder = {"fbnet": _fbnet_tables, "ofa_mbv3": _ofa_tables, "nasbench201": _nb201_default_tables}
        _TABLE_CACHE[key] = builder[space.name](space)
    return _TABLE_CACHE[key]


def costs_from_tables(space, tables: Tables, archs, *, batch_size: int = 1,
                      bytes_per_element: int = 4) -> AnalyticCosts:
    """Cost `archs` of `space` with given `tables` (gather + sum, max for peak memory).

    `memory_traffic_bytes = (act_traffic * batch_size + weight_traffic) * bytes_per_element`.

    `analytic_costs` is this with `layer_cost_tables(space)`; call it directly to cost
    NAS-Bench-201 cells in another macro network (`nasbench201_tables(channels=...)`).
    """
    _check_space(space)
    for name, value in (("batch_size", batch_size), ("bytes_per_element", bytes_per_element)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    batch = np.atleast_2d(space.validate(archs))
    gather = {"fbnet": _fbnet_gather, "ofa_mbv3": _ofa_gather, "nasbench201": _nb201_gather}[space.name]
    expected = {"fbnet": FBNetTables, "ofa_mbv3": OFATables, "nasbench201": NB201Tables}[space.name]
    if not isinstance(tables, expected):
        raise ValueError(f"{space.name}: expected {expected.__name__}, got {type(tables).__name__}")
    c = gather(space, tables, batch)
    return AnalyticCosts(
        macs=c.macs,
        flops=2.0 * c.macs,
        params=c.params,
        peak_activation_bytes=c.peak_elements * float(batch_size) * float(bytes_per_element),
        memory_traffic_bytes=(c.act_traffic * float(batch_size) + c.weight_traffic) * float(bytes_per_element),
    )


@functools.lru_cache(maxsize=16)
def nasbench201_tables(*, channels: int = 16, cells_per_stage: int = 5, num_classes: int = 10,
                       input_size: int = 32, in_channels: int = 3) -> NB201Tables:
    """Cost tables of the NAS-Bench-201 macro network (defaults: the benchmark's CIFAR net).

    Stem 3x3 conv in_channels -> C (no bias) + BN; N cells at C; reduction block C -> 2C;
    N cells at 2C; reduction 2C -> 4C; N cells at 4C; BN + ReLU; global pool; linear
    4C -> num_classes with bias. Input `input_size` x `input_size`.
    """
    for name, value in (("channels", channels), ("cells_per_stage", cells_per_stage),
                        ("num_classes", num_classes), ("input_size", input_size),
                        ("in_channels", in_channels)):
        if value <= 0:
            raise ValueError(f"nasbench201_tables: {name} must be positive, got {value}")
    stages = _nb201_stage_shapes(channels, input_size)
    fixed = _nb201_fixed(stages, num_classes, input_size, in_channels)
    edges = _nb201_edge_tables(stages, cells_per_stage)
    largest_node = max(c * size * size for c, size in stages)
    cell_peak = _nb201_cell_live_tensors() * float(largest_node)
    return NB201Tables(fixed, edges.macs, edges.params, _frozen(cell_peak), edges.act_traffic,
                       edges.weight_traffic)


# ====================================================================== shared accounting
_TABLE_CACHE: dict[tuple[str, str], Tables] = {}


def _check_space(space) -> None:
    if getattr(space, "name", None) not in SPACES:
        raise ValueError(f"no analytic cost model for space {getattr(space, 'name', space)!r}; "
                         f"spaces: {', '.join(SPACES)}")


def _out(size: int, stride: int) -> int:
    """Side after a 'same'-padded op of stride `stride`: ceil(size / stride)."""
    return -(-size // stride)


def _frozen(array) -> np.ndarray:
    """A read-only float64 copy (tables are cached and shared)."""
    out = np.array(array, dtype=np.float64)
    out.setflags(write=False)
    return out


@dataclasses.dataclass
class _Tally:
    """Accumulates the costs of a sequence of ops: MACs, parameters, peak live elements and
    traffic (elements at batch 1; see the module docstring for what each op moves)."""

    macs: int = 0
    params: int = 0
    peak: int = 0
    act_traffic: int = 0
    weight_traffic: int = 0

    def conv(self, c_in: int, c_out: int, kernel: int, in_size: int, out_size: int, *,
             groups: int = 1, bias: bool = False, bn: bool = True) -> None:
        """A kxk conv: weights = k*k*c_in*c_out/groups; MACs = out_size**2 * weights.

        Optional bias (c_out) and batch norm (2*c_out: scale and shift) add parameters only.
        Traffic: the input and output tensors, the weights and, with a bias or a BN folded
        into the conv, one bias per output channel.
        """
        if c_in % groups or c_out % groups:
            raise ValueError(f"conv {c_in}->{c_out} cannot be split into {groups} groups")
        weights = kernel * kernel * c_in * c_out // groups
        self.macs += out_size * out_size * weights
        self.params += weights + (c_out if bias else 0) + (2 * c_out if bn else 0)
        self.act_traffic += c_in * in_size * in_size + c_out * out_size * out_size
        self.weight_traffic += weights + (c_out if bias or bn else 0)

    def depthwise(self, channels: int, kernel: int, in_size: int, out_size: int) -> None:
        """A kxk depthwise conv + BN: groups = channels, so k*k*channels weights."""
        self.conv(channels, channels, kernel, in_size, out_size, groups=channels)

    def linear(self, n_in: int, n_out: int, *, bias: bool) -> None:
        """A dense layer on a vector: n_in*n_out MACs and weights (+ n_out bias)."""
        self.macs += n_in * n_out
        self.params += n_in * n_out + (n_out if bias else 0)
        self.act_traffic += n_in + n_out
        self.weight_traffic += n_in * n_out + (n_out if bias else 0)

    def pool(self, channels: int, in_size: int, out_size: int) -> None:
        """A pooling op (no MACs, no weights): reads its input, writes its output.

        Global average pooling is `out_size = 1`.
        """
        self.act_traffic += channels * (in_size * in_size + out_size * out_size)

    def batch_norm(self, channels: int) -> None:
        """A standalone BN: 2 learnable parameters per channel, no MACs.

        It runs fused into the op that next reads its tensor, so it moves only its own 2 values
        per channel (it has no conv to fold into).
        """
        self.params += 2 * channels
        self.weight_traffic += 2 * channels

    def reads(self, elements: int) -> None:
        """Extra activation elements read or written by a fused epilogue (residual operand,
        squeeze-excite gate, a NAS-Bench-201 node accumulator)."""
        self.act_traffic += elements

    def live(self, *elements: int) -> None:
        """Record one op during which tensors of these sizes (elements) are live together."""
        self.peak = max(self.peak, sum(elements))

    def values(self) -> tuple[int, int, int, int, int]:
        """(macs, params, peak, act_traffic, weight_traffic): `CostTable` field order."""
        return self.macs, self.params, self.peak, self.act_traffic, self.weight_traffic


_NUM_COSTS = len(CostTable._fields)


def _table(values) -> CostTable:
    """CostTable from an array of `_Tally.values()` tuples (a trailing axis of `_NUM_COSTS`)."""
    arr = np.asarray(values, dtype=np.float64)
    if arr.shape[-1] != _NUM_COSTS:
        raise ValueError(f"cost tuples need {_NUM_COSTS} entries, got {arr.shape[-1]}")
    return CostTable(*(_frozen(arr[..., i]) for i in range(_NUM_COSTS)))


def _gather(table: CostTable, flat_index: np.ndarray, mask=None) -> CostTable:
    """Per row, every cost summed over the gathered entries, but the peak maxed ([n, L] -> [n]).

    `flat_index` indexes the raveled tables (one flat `take` is several times faster than
    multi-axis fancy indexing); entries where `mask` is False contribute 0 to every cost.
    """
    parts = [np.take(t.reshape(-1), flat_index) for t in table]
    if mask is not None:
        parts = [p * mask for p in parts]
    return CostTable(*(p.max(axis=1, initial=0.0) if name == "peak_elements" else p.sum(axis=1)
                       for name, p in zip(CostTable._fields, parts)))


def _plus_fixed(fixed: CostTable, gathered: CostTable) -> CostTable:
    """The fixed part plus the gathered part: sums, but the max of the two peaks."""
    return CostTable(*(np.maximum(f, g) if name == "peak_elements" else f + g
                       for name, f, g in zip(CostTable._fields, fixed, gathered)))


# ====================================================================== FBNet
def _fbnet_layer(spec, candidate) -> tuple[int, ...]:
    """Cost of one searchable FBNet layer (`LayerSpec`) built as `candidate`.

    MBConv (k, e, g): mid = c_in*e; 1x1 conv c_in->mid, groups g, at the input size; kxk
    depthwise of stride s; 1x1 conv mid->c_out, groups g, at the output size; BN after each.
    The block input stays live to the end when there is a residual (spec.keeps_shape), and
    the last conv reads it once more to add it.
    `skip` is free when the layer keeps its shape, else a strided 1x1 conv + BN.
    """
    t = _Tally()
    c_in, c_out, s_in, s_out = spec.in_channels, spec.out_channels, spec.in_size, spec.out_size
    x, y = c_in * s_in * s_in, c_out * s_out * s_out
    if candidate.is_skip:
        if not spec.keeps_shape:
            t.conv(c_in, c_out, 1, s_in, s_out)
            t.live(x, y)
        return t.values()
    mid, g, k = c_in * candidate.expand, candidate.groups, candidate.kernel
    h_in, h_out = mid * s_in * s_in, mid * s_out * s_out
    residual = x if spec.keeps_shape else 0
    t.conv(c_in, mid, 1, s_in, s_in, groups=g)
    t.live(x, h_in)  # the block input is this op's input: counted once
    t.depthwise(mid, k, s_in, s_out)
    t.live(h_in, h_out, residual)
    t.conv(mid, c_out, 1, s_out, s_out, groups=g)
    t.live(h_out, y, residual)
    t.reads(residual)
    return t.values()


def _fbnet_fixed(space) -> tuple[int, ...]:
    """Stem 3x3 conv + BN, head 1x1 conv + BN, global average pool, linear classifier (bias)."""
    c, t = space.macro, _Tally()
    stem = space.stem_out_size
    t.conv(c.in_channels, c.stem_channels, 3, c.input_size, stem)
    t.live(c.in_channels * c.input_size ** 2, c.stem_channels * stem * stem)
    specs = space.layer_specs()
    last = specs[-1].out_channels if specs else c.stem_channels
    final = space.final_size
    t.conv(last, c.head_channels, 1, final, final)
    t.live(last * final * final, c.head_channels * final * final)
    t.pool(c.head_channels, final, 1)
    t.live(c.head_channels * final * final, c.head_channels)  # global average pool
    t.linear(c.head_channels, c.num_classes, bias=True)
    t.live(c.head_channels, c.num_classes)
    return t.values()


def _fbnet_tables(space) -> FBNetTables:
    layers = [[_fbnet_layer(spec, cand) for cand in CANDIDATES] for spec in space.layer_specs()]
    layers_arr = np.asarray(layers, np.float64).reshape(len(layers), len(CANDIDATES), _NUM_COSTS)
    return FBNetTables(fixed=_table(_fbnet_fixed(space)), layers=_table(layers_arr))


def _fbnet_gather(space, tables: FBNetTables, archs: np.ndarray) -> CostTable:
    flat = np.arange(archs.shape[1])[None, :] * len(CANDIDATES) + archs  # [layer, candidate]
    return _plus_fixed(tables.fixed, _gather(tables.layers, flat))


# ====================================================================== OFA MobileNetV3
def _ofa_block(spec, in_size: int, kernel: int, expand: int) -> tuple[int, ...]:
    """Cost of one elastic OFA block (`BlockSpec`) with `kernel` and `expand` at `in_size`.

    mid = make_divisible(round(c_in*expand), 8): 1x1 expand conv + BN at the input size;
    kxk depthwise of stride s + BN; optional squeeze-excite on the pooled vector with
    se_mid = make_divisible(mid // 4, 8) (linear mid->se_mid and se_mid->mid, both with bias:
    2*mid*se_mid MACs); 1x1 project conv mid->c_out + BN. While the SE runs, the depthwise
    output stays live (it is gated afterwards, as the project conv reads it: that conv also
    reads the gate vector, and the block input when there is a residual).
    """
    t = _Tally()
    c_in, c_out = spec.in_channels, spec.out_channels
    out_size = _out(in_size, spec.stride)
    mid = make_divisible(round(c_in * expand), 8)
    x, y = c_in * in_size * in_size, c_out * out_size * out_size
    h_in, h_out = mid * in_size * in_size, mid * out_size * out_size
    residual = x if spec.has_residual else 0
    t.conv(c_in, mid, 1, in_size, in_size)
    t.live(x, h_in)
    t.depthwise(mid, kernel, in_size, out_size)
    t.live(h_in, h_out, residual)
    if spec.use_se:
        se_mid = make_divisible(mid // 4, 8)
        t.pool(mid, out_size, 1)
        t.live(h_out, mid, residual)  # global average pool
        t.linear(mid, se_mid, bias=True)
        t.live(h_out, mid, se_mid, residual)
        t.linear(se_mid, mid, bias=True)
        t.live(h_out, se_mid, mid, residual)
        t.reads(mid)  # the gate, read by the project conv
    t.conv(mid, c_out, 1, out_size, out_size)
    t.live(h_out, y, residual)
    t.reads(residual)
    return t.values()


def _ofa_block_input_sizes(space, resolution: int) -> list[int]:
    """Input side of every elastic block (depth never changes sizes: only slot 0 strides)."""
    size, sizes = _out(resolution, space.macro.stem_stride), []
    for spec in space.block_specs():
        sizes.append(size)
        size = _out(size, spec.stride)
    return sizes


def _ofa_fixed(space, resolution: int) -> tuple[int, ...]:
    """Stem, first block, final expand conv, pool, feature mix and classifier at `resolution`.

    Stem 3x3 conv (stride stem_stride) + BN; first block: 3x3 depthwise + BN, 1x1 conv
    stem->first_block_channels + BN, residual when the widths match; final 1x1 expand conv +
    BN at the final size; global pool; feature mix linear without bias or BN; classifier
    linear with bias.
    """
    c, t = space.macro, _Tally()
    s = _out(resolution, c.stem_stride)
    stem = c.stem_channels * s * s
    t.conv(c.in_channels, c.stem_channels, 3, resolution, s)
    t.live(c.in_channels * resolution * resolution, stem)
    first = c.first_block_channels * s * s
    residual = stem if c.stem_channels == c.first_block_channels else 0
    t.depthwise(c.stem_channels, 3, s, s)
    t.live(stem, stem)  # input (also the residual) and output
    t.conv(c.stem_channels, c.first_block_channels, 1, s, s)
    t.live(stem, first, residual)
    t.reads(residual)
    specs = space.block_specs()
    last = specs[-1].out_channels if specs else c.first_block_channels
    final = _out(_ofa_block_input_sizes(space, resolution)[-1], specs[-1].stride) if specs else s
    t.conv(last, c.final_expand_channels, 1, final, final)
    t.live(last * final * final, c.final_expand_channels * final * final)
    t.pool(c.final_expand_channels, final, 1)
    t.live(c.final_expand_channels * final * final, c.final_expand_channels)  # global pool
    t.linear(c.final_expand_channels, c.feature_mix_channels, bias=False)
    t.live(c.final_expand_channels, c.feature_mix_channels)
    t.linear(c.feature_mix_channels, c.num_classes, bias=True)
    t.live(c.feature_mix_channels, c.num_classes)
    return t.values()


def _ofa_tables(space) -> OFATables:
    c, specs = space.macro, space.block_specs()
    blocks = np.zeros((len(c.resolutions), len(specs), len(c.kernels), len(c.expands), _NUM_COSTS))
    for r, resolution in enumerate(c.resolutions):
        sizes = _ofa_block_input_sizes(space, resolution)
        for b, spec in enumerate(specs):
            for k, kernel in enumerate(c.kernels):
                for e, expand in enumerate(c.expands):
                    blocks[r, b, k, e] = _ofa_block(spec, sizes[b], kernel, expand)
    fixed = [_ofa_fixed(space, resolution) for resolution in c.resolutions]
    return OFATables(fixed=_table(fixed), blocks=_table(blocks))


def _ofa_active_blocks(space, archs: np.ndarray) -> np.ndarray:
    """Boolean `[n, num_blocks]`: slot < the stage's depth (numpy twin of `space.active_blocks`).

    The space's own method is a JAX function whose first call compiles; on the host this is
    the same rule without the compile, and a test checks that the two agree.
    """
    depth = np.asarray(space.macro.depths)[archs[:, space.depth_slice]]  # [n, stages]
    slot = np.arange(space.macro.max_depth)
    return (slot[None, None, :] < depth[:, :, None]).reshape(len(archs), space.num_blocks)


def _ofa_gather(space, tables: OFATables, archs: np.ndarray) -> CostTable:
    r = archs[:, space.resolution_index]
    kernel, expand = archs[:, space.kernel_slice], archs[:, space.expand_slice]
    _, num_blocks, num_k, num_e = tables.blocks.macs.shape
    blocks = np.arange(num_blocks)[None, :]
    flat = ((r[:, None] * num_blocks + blocks) * num_k + kernel) * num_e + expand  # [r, b, k, e]
    gathered = _gather(tables.blocks, flat, _ofa_active_blocks(space, archs))
    return _plus_fixed(CostTable(*(f[r] for f in tables.fixed)), gathered)


# ====================================================================== NAS-Bench-201
_NONE = NB201_OPS.index("none")
_SKIP = NB201_OPS.index("skip_connect")
_CONV1, _CONV3 = NB201_OPS.index("nor_conv_1x1"), NB201_OPS.index("nor_conv_3x3")
_POOL = NB201_OPS.index("avg_pool_3x3")
_NUM_OPS, _NUM_EDGES = len(NB201_OPS), len(NB201_EDGES)
_CODE_WEIGHTS = _NUM_OPS ** np.arange(_NUM_EDGES - 1, -1, -1, dtype=np.int64)  # edge 0 most significant


def _nb201_default_tables(space) -> NB201Tables:
    del space  # the cell space has no macro settings; the benchmark's network is the default
    return nasbench201_tables()


def _nb201_stage_shapes(channels: int, input_size: int) -> list[tuple[int, int]]:
    """(channels, side) of the cells of each of the 3 stages: C, 2C, 4C at S, S/2, S/4."""
    s2 = _out(input_size, 2)
    return [(channels, input_size), (2 * channels, s2), (4 * channels, _out(s2, 2))]


def _nb201_reduction(t: _Tally, c_in: int, c_out: int, size: int) -> None:
    """Residual reduction block c_in@size -> c_out@ceil(size/2).

    Main: ReLU-conv3x3 stride 2-BN, ReLU-conv3x3-BN (no biases). Shortcut: 2x2 average pool
    stride 2, then 1x1 conv c_in->c_out without bias or BN. The main branch runs first, with
    the block input live for the shortcut; then the shortcut runs with the main output live,
    and its 1x1 conv reads the main output once more to add it.
    """
    o = _out(size, 2)
    x, a, pooled = c_in * size * size, c_out * o * o, c_in * o * o
    t.conv(c_in, c_out, 3, size, o)
    t.live(x, a)
    t.conv(c_out, c_out, 3, o, o)
    t.live(a, a, x)
    t.pool(c_in, size, o)
    t.live(x, pooled, a)  # shortcut pool, main output waiting
    t.conv(c_in, c_out, 1, o, o, bn=False)
    t.live(pooled, a, a)
    t.reads(a)


def _nb201_fixed(stages, num_classes: int, input_size: int, in_channels: int) -> CostTable:
    """The macro skeleton: stem, two reduction blocks, final BN + ReLU, pool, classifier."""
    t = _Tally()
    (c1, s1), (c2, s2), (c3, s3) = stages
    t.conv(in_channels, c1, 3, input_size, s1)
    t.live(in_channels * input_size * input_size, c1 * s1 * s1)
    _nb201_reduction(t, c1, c2, s1)
    _nb201_reduction(t, c2, c3, s2)
    t.batch_norm(c3)
    t.pool(c3, s3, 1)
    t.live(c3 * s3 * s3, c3)  # global average pool
    t.linear(c3, num_classes, bias=True)
    t.live(c3, num_classes)
    return _table(t.values())


def _nb201_edge_op(op: int, channels: int, size: int) -> tuple[int, ...]:
    """`_Tally.values()` of one edge op in a cell of `channels` at side `size` (peak: 0).

    nor_conv_kxk = ReLU -> kxk conv C->C (no bias) -> BN: k*k*C*C*size^2 MACs, k*k*C*C + 2C
    params. none, skip_connect and avg_pool_3x3 have neither MACs nor parameters. Traffic:
    every op but `none` reads its source node, and adds its result into the target node
    (read + write of the node's buffer), so 3 node tensors; a conv also reads its weights
    (k*k*C*C + C with the BN folded in).
    """
    t, node = _Tally(), channels * size * size
    if op in (_CONV1, _CONV3):
        t.conv(channels, channels, 3 if op == _CONV3 else 1, size, size)  # input + result
    elif op == _POOL:
        t.pool(channels, size, size)  # input + result
    elif op == _SKIP:
        t.reads(2 * node)  # input + result (the input itself)
    if op != _NONE:
        t.reads(node)  # the accumulator's old value: the result is added to it
    return t.values()


def _nb201_edge_tables(stages, cells_per_stage: int) -> CostTable:
    """`[6, 5]` costs of op o on any edge, summed over all cells of all stages (peak unused)."""
    per_op = np.zeros((_NUM_OPS, _NUM_COSTS))
    for op in range(_NUM_OPS):
        for channels, size in stages:
            per_op[op] += cells_per_stage * np.asarray(_nb201_edge_op(op, channels, size), np.float64)
    # Every edge sees the same shapes, so the 6 rows are equal; keep one row per edge to gather.
    return _table(np.broadcast_to(per_op, (_NUM_EDGES, _NUM_OPS, _NUM_COSTS)))


@functools.lru_cache(maxsize=1)
def _nb201_cell_live_tensors() -> np.ndarray:
    """Peak number of node-sized tensors live in a cell, for every cell (lexicographic code).

    At edge step s (j -> i, arch_str order): live = (nodes k < i read by step s or a later
    non-`none` edge) + 1 (node i's accumulator) + 1 if the op makes a new tensor (conv, pool).
    Vectorized over the 15,625 cells; the loops run over the 6 edge steps and nodes.
    """
    codes = np.arange(_NUM_OPS ** _NUM_EDGES, dtype=np.int64)
    ops = (codes[:, None] // _CODE_WEIGHTS) % _NUM_OPS  # [cells, 6]
    reads = ops != _NONE
    makes_tensor = np.isin(ops, (_CONV1, _CONV3, _POOL))
    peak = np.zeros(len(codes), np.int64)
    for step, (dst, _) in enumerate(NB201_EDGES):
        needed = np.zeros(len(codes), np.int64)
        for node in range(dst):
            later = [t for t in range(step, _NUM_EDGES) if NB201_EDGES[t][1] == node]
            needed += reads[:, later].any(axis=1) if later else 0
        peak = np.maximum(peak, needed + 1 + makes_tensor[:, step])
    return peak.astype(np.float64)


def _nb201_gather(space, tables: NB201Tables, archs: np.ndarray) -> CostTable:
    del space
    rows = np.arange(_NUM_EDGES)[None, :]
    f = tables.fixed
    codes = archs.astype(np.int64) @ _CODE_WEIGHTS
    return CostTable(
        macs=f.macs + tables.edge_macs[rows, archs].sum(axis=1),
        params=f.params + tables.edge_params[rows, archs].sum(axis=1),
        peak_elements=np.maximum(f.peak_elements, tables.cell_peak_elements[codes]),
        act_traffic=f.act_traffic + tables.edge_act_traffic[rows, archs].sum(axis=1),
        weight_traffic=f.weight_traffic + tables.edge_weight_traffic[rows, archs].sum(axis=1),
    )
