"""Analytic costs (costs/analytic.py) against hand computations from first principles.

Every expected number is written out as arithmetic from the layer shapes, e.g. a 3x3 conv
16->32 at 16x16 output is `3*3*16*32 * 16*16` MACs and `3*3*16*32 + 2*32` params (weights +
BN scale and shift). Memory traffic is written the same way: activation elements read and
written per op (`in + out`), weight elements read once (weights + one bias per output channel
for a BN folded into the conv), e.g. that conv moves `16*32*32 + 32*16*16` activation elements
and `3*3*16*32 + 32` weight elements.
"""

import json
from pathlib import Path

import jax
import numpy as np
import pytest

from costs.analytic import (
    AnalyticCosts, FBNetTables, NB201Tables, OFATables, analytic_costs, costs_from_tables,
    layer_cost_tables, nasbench201_tables,
)
from costs.analytic import _ofa_active_blocks
from supernet.spaces import CANDIDATES, OFAConfig, OFAMobileNetV3Space, get_space

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
CAND = {c.name: i for i, c in enumerate(CANDIDATES)}
NB_OPS = {"none": 0, "skip_connect": 1, "nor_conv_1x1": 2, "nor_conv_3x3": 3, "avg_pool_3x3": 4}


def one(space, arch, **kw) -> AnalyticCosts:
    """Costs of a single architecture, as Python floats."""
    c = analytic_costs(space, np.asarray(arch, np.int32), **kw)
    assert all(v.shape == (1,) for v in c)
    return AnalyticCosts(*(float(v[0]) for v in c))


# ====================================================================== FBNet (tiny preset)
# tiny: stem 1->8 @16x16 (stride 1); stages (8,8,16,16) x layers (1,2,2,1), strides (1,2,2,1);
# head 16->32; 10 classes. Layers: L0 8->8 s1 @16; L1 8->8 s2 16->8; L2 8->8 s1 @8;
# L3 8->16 s2 8->4; L4 16->16 s1 @4; L5 16->16 s1 @4.
@pytest.fixture(scope="module")
def fbnet_tiny():
    space = get_space("fbnet", "tiny")
    shapes = [(s.in_channels, s.out_channels, s.stride, s.in_size) for s in space.layer_specs()]
    assert shapes == [(8, 8, 1, 16), (8, 8, 2, 16), (8, 8, 1, 8), (8, 16, 2, 8), (16, 16, 1, 4), (16, 16, 1, 4)]
    return space


def test_fbnet_single_layer_candidates(fbnet_tiny):
    space = fbnet_tiny
    tables = layer_cost_tables(space)
    assert isinstance(tables, FBNetTables) and tables.layers.macs.shape == (6, 9)
    cases = {
        # L1 k3_e1: mid 8; 1x1 8->8 @16x16, dw 3x3 s2 @8x8, 1x1 8->8 @8x8.
        (1, "k3_e1"): (8*8 * 16*16 + 3*3*8 * 8*8 + 8*8 * 8*8,
                       (8*8 + 2*8) + (3*3*8 + 2*8) + (8*8 + 2*8)),
        # L3 k5_e1_g2: mid 8, two groups: 1x1 weights 8*8/2 @8x8, dw 5x5 s2 @4x4, 1x1 8*16/2 @4x4.
        (3, "k5_e1_g2"): (8*8//2 * 8*8 + 5*5*8 * 4*4 + 8*16//2 * 4*4,
                          (8*8//2 + 2*8) + (5*5*8 + 2*8) + (8*16//2 + 2*16)),
        # L1 k3_e1_g2: the g2 twin of the first case.
        (1, "k3_e1_g2"): (8*8//2 * 16*16 + 3*3*8 * 8*8 + 8*8//2 * 8*8,
                          (8*8//2 + 2*8) + (3*3*8 + 2*8) + (8*8//2 + 2*8)),
        # L0 k3_e6: mid 48, all @16x16.
        (0, "k3_e6"): (8*48 * 16*16 + 3*3*48 * 16*16 + 48*8 * 16*16,
                       (8*48 + 2*48) + (3*3*48 + 2*48) + (48*8 + 2*8)),
        # L3 skip does not keep shape: strided 1x1 conv 8->16 @4x4 + BN.
        (3, "skip"): (8*16 * 4*4, 8*16 + 2*16),
        # L0 skip keeps shape: identity.
        (0, "skip"): (0, 0),
    }
    all_skip = np.full(6, CAND["skip"])
    base = one(space, all_skip)
    for (layer, name), (macs, params) in cases.items():
        assert tables.layers.macs[layer, CAND[name]] == macs, (layer, name)
        assert tables.layers.params[layer, CAND[name]] == params, (layer, name)
        # Through the public API: swap that layer's skip for the candidate.
        arch = all_skip.copy()
        arch[layer] = CAND[name]
        got = one(space, arch)
        skip_macs, skip_params = cases[(layer, "skip")] if (layer, "skip") in cases else (
            tables.layers.macs[layer, CAND["skip"]], tables.layers.params[layer, CAND["skip"]])
        assert got.macs - base.macs == macs - skip_macs
        assert got.params - base.params == params - skip_params
        assert got.flops == 2 * got.macs


def test_fbnet_all_skip_totals(fbnet_tiny):
    c = one(fbnet_tiny, np.full(6, CAND["skip"]))
    stem = (3*3*1*8 * 16*16, 3*3*1*8 + 2*8)
    l1 = (8*8 * 8*8, 8*8 + 2*8)          # 1x1 8->8 stride 2 @8x8 + BN
    l3 = (8*16 * 4*4, 8*16 + 2*16)       # 1x1 8->16 stride 2 @4x4 + BN
    head = (16*32 * 4*4, 16*32 + 2*32)   # 1x1 16->32 @4x4 + BN
    fc = (32*10, 32*10 + 10)
    parts = [stem, l1, l3, head, fc]
    assert c.macs == sum(p[0] for p in parts) == 33088
    assert c.flops == 2 * 33088
    assert c.params == sum(p[1] for p in parts) == 1234
    # Peak: L1's conv, input 8@16x16 + output 8@8x8 (stem: 1@16x16 + 8@16x16 is smaller).
    assert c.peak_activation_bytes == (8*16*16 + 8*8*8) * 4
    assert 8*16*16 + 8*8*8 > 1*16*16 + 8*16*16


def test_fbnet_peak_memory_residual_layer(fbnet_tiny):
    arch = np.full(6, CAND["skip"])
    arch[0] = CAND["k3_e6"]
    # L0 k3_e6 keeps shape: during the depthwise conv its input and output (48@16x16 each)
    # and the block input (8@16x16, waiting for the residual add) are live.
    peak = 48*16*16 + 48*16*16 + 8*16*16
    assert one(fbnet_tiny, arch).peak_activation_bytes == peak * 4
    # Every tensor has the batch dimension: peak scales with batch size and element width.
    assert one(fbnet_tiny, arch, batch_size=3, bytes_per_element=2).peak_activation_bytes == peak * 3 * 2
    # MACs are per example whatever the batch size.
    assert one(fbnet_tiny, arch, batch_size=3).macs == one(fbnet_tiny, arch).macs


def test_fbnet_single_layer_traffic(fbnet_tiny):
    tables = layer_cost_tables(fbnet_tiny).layers
    cases = {  # (activation elements, weight elements)
        # L1 k3_e1 (8@16 -> 8@8): 1x1 8->8 @16, dw 3x3 s2 16 -> 8, 1x1 8->8 @8; no residual.
        (1, "k3_e1"): ((8*16*16 + 8*16*16) + (8*16*16 + 8*8*8) + (8*8*8 + 8*8*8),
                       (8*8 + 8) + (3*3*8 + 8) + (8*8 + 8)),
        # L0 k3_e6 (8@16 -> 8@16): mid 48, and the last conv reads the block input to add it.
        (0, "k3_e6"): ((8*16*16 + 48*16*16) + (48*16*16 + 48*16*16) + (48*16*16 + 8*16*16) + 8*16*16,
                       (8*48 + 48) + (3*3*48 + 48) + (48*8 + 8)),
        # L3 k5_e1_g2 (8@8 -> 16@4): grouped 1x1 convs have half the weights, the same tensors.
        (3, "k5_e1_g2"): ((8*8*8 + 8*8*8) + (8*8*8 + 8*4*4) + (8*4*4 + 16*4*4),
                          (8*8//2 + 8) + (5*5*8 + 8) + (8*16//2 + 16)),
        # L3 skip: strided 1x1 conv 8@8 -> 16@4 + BN.
        (3, "skip"): (8*8*8 + 16*4*4, 8*16 + 16),
        (0, "skip"): (0, 0),  # identity: moves nothing
    }
    for (layer, name), (act, weights) in cases.items():
        assert tables.act_traffic[layer, CAND[name]] == act, (layer, name)
        assert tables.weight_traffic[layer, CAND[name]] == weights, (layer, name)
    # Through the public API: L0 skip -> k3_e6 adds exactly that layer's traffic.
    all_skip = np.full(6, CAND["skip"])
    arch = all_skip.copy()
    arch[0] = CAND["k3_e6"]
    act, weights = cases[(0, "k3_e6")]
    grown = one(fbnet_tiny, arch, batch_size=5, bytes_per_element=2).memory_traffic_bytes
    assert grown - one(fbnet_tiny, all_skip, batch_size=5, bytes_per_element=2).memory_traffic_bytes == \
        (act * 5 + weights) * 2


def test_fbnet_all_skip_traffic_and_batch_scaling(fbnet_tiny):
    arch = np.full(6, CAND["skip"])
    act = ((1*16*16 + 8*16*16)        # stem 1@16 -> 8@16
           + (8*16*16 + 8*8*8)        # L1: strided 1x1 8@16 -> 8@8
           + (8*8*8 + 16*4*4)         # L3: strided 1x1 8@8 -> 16@4
           + (16*4*4 + 32*4*4)        # head 1x1 16 -> 32 @4
           + (32*4*4 + 32)            # global average pool
           + (32 + 10))               # classifier
    weights = (3*3*1*8 + 8) + (8*8 + 8) + (8*16 + 16) + (16*32 + 32) + (32*10 + 10)
    assert weights == 1234 - (8 + 8 + 16 + 32)  # the parameters, less one value per folded BN
    assert one(fbnet_tiny, arch).memory_traffic_bytes == (act + weights) * 4
    # Activations scale with the batch, weights are read once per batch.
    assert one(fbnet_tiny, arch, batch_size=7, bytes_per_element=1).memory_traffic_bytes == act * 7 + weights


# ====================================================================== NAS-Bench-201
# Skeleton: stem 3->16 @32; reduction 16@32 -> 32@16; reduction 32@16 -> 64@8; BN(64); fc 64->10.
def nb201_skeleton():
    stem = (3*3*3*16 * 32*32, 3*3*3*16 + 2*16)
    red1 = (3*3*16*32 * 16*16 + 3*3*32*32 * 16*16 + 16*32 * 16*16,
            (3*3*16*32 + 2*32) + (3*3*32*32 + 2*32) + 16*32)
    red2 = (3*3*32*64 * 8*8 + 3*3*64*64 * 8*8 + 32*64 * 8*8,
            (3*3*32*64 + 2*64) + (3*3*64*64 + 2*64) + 32*64)
    last_bn = (0, 2*64)
    fc = (64*10, 64*10 + 10)
    parts = [stem, red1, red2, last_bn, fc]
    return sum(p[0] for p in parts), sum(p[1] for p in parts)


def test_nb201_all_none_is_the_macro_skeleton():
    space = get_space("nasbench201")
    c = one(space, [NB_OPS["none"]] * 6)
    macs, params = nb201_skeleton()
    assert (c.macs, c.params) == (macs, params) == (7783040, 73306)
    # Peak: the reduction block's second conv, 32@16x16 in and out, block input 16@32x32 live.
    assert c.peak_activation_bytes == (32*16*16 + 32*16*16 + 16*32*32) * 4


def test_nb201_all_conv3x3():
    space = get_space("nasbench201")
    c = one(space, [NB_OPS["nor_conv_3x3"]] * 6)
    skel_macs, skel_params = nb201_skeleton()
    # 6 edges x 5 cells per stage, each ReLU-conv3x3 CxC-BN at (C, side) = (16,32), (32,16), (64,8).
    stages = [(16, 32), (32, 16), (64, 8)]
    macs = skel_macs + sum(6 * 5 * 3*3*ch*ch * s*s for ch, s in stages)
    params = skel_params + sum(6 * 5 * (3*3*ch*ch + 2*ch) for ch, s in stages)
    assert (c.macs, c.params) == (macs, params) == (220119680, 1531546)
    # Peak: edge 3<-0 of a first-stage cell: nodes 0, 1, 2 still needed, node 3's buffer and
    # the conv output: 5 tensors of 16@32x32.
    assert c.peak_activation_bytes == 5 * 16*32*32 * 4


def test_nb201_cell_peak_skip_only():
    # Skips add in place (no new tensor): at edge 3<-0 nodes 0, 1, 2 and node 3's buffer live.
    c = one(get_space("nasbench201"), [NB_OPS["skip_connect"]] * 6)
    assert c.peak_activation_bytes == 4 * 16*32*32 * 4
    assert c.macs == nb201_skeleton()[0]


def test_nb201_one_edge_op_cost():
    space = get_space("nasbench201")
    arch = np.zeros(6, np.int32)
    base = one(space, arch)
    arch[4] = NB_OPS["nor_conv_1x1"]
    c = one(space, arch)
    stages = [(16, 32), (32, 16), (64, 8)]
    assert c.macs - base.macs == sum(5 * ch*ch * s*s for ch, s in stages)
    assert c.params - base.params == sum(5 * (ch*ch + 2*ch) for ch, s in stages)
    arch[4] = NB_OPS["avg_pool_3x3"]
    assert (one(space, arch).macs, one(space, arch).params) == (base.macs, base.params)


def nb201_skeleton_traffic():
    """(activation, weight) elements of the macro skeleton: the traffic of an all-`none` cell."""
    stem = (3*32*32 + 16*32*32, 3*3*3*16 + 16)
    # Reduction 16@32 -> 32@16: conv3x3 s2, conv3x3, 2x2 pool s2, 1x1 conv (no BN) + the add,
    # which reads the main branch output once more.
    red1 = ((16*32*32 + 32*16*16) + 2 * 32*16*16 + (16*32*32 + 16*16*16) + (16*16*16 + 32*16*16) + 32*16*16,
            (3*3*16*32 + 32) + (3*3*32*32 + 32) + 16*32)
    red2 = ((32*16*16 + 64*8*8) + 2 * 64*8*8 + (32*16*16 + 32*8*8) + (32*8*8 + 64*8*8) + 64*8*8,
            (3*3*32*64 + 64) + (3*3*64*64 + 64) + 32*64)
    head = ((64*8*8 + 64) + (64 + 10),  # BN + ReLU fused into the global pool; classifier
            2*64 + 64*10 + 10)
    parts = [stem, red1, red2, head]
    return sum(p[0] for p in parts), sum(p[1] for p in parts)


def test_nb201_traffic_all_none_is_fixed_and_edges_add():
    space = get_space("nasbench201")
    act, weights = nb201_skeleton_traffic()
    assert one(space, [NB_OPS["none"]] * 6).memory_traffic_bytes == (act + weights) * 4
    # One node tensor per cell, summed over the 5 cells of each stage.
    node = 5 * (16*32*32 + 32*16*16 + 64*8*8)
    base = one(space, [NB_OPS["none"]] * 6, batch_size=2, bytes_per_element=1).memory_traffic_bytes
    assert base == 2 * act + weights
    per_edge = {  # a non-none edge reads its input node and reads + writes the target node
        "skip_connect": (3 * node, 0),
        "avg_pool_3x3": (3 * node, 0),
        "nor_conv_1x1": (3 * node, 5 * sum(ch*ch + ch for ch in (16, 32, 64))),
        "nor_conv_3x3": (3 * node, 5 * sum(3*3*ch*ch + ch for ch in (16, 32, 64))),
    }
    for op, (edge_act, edge_weights) in per_edge.items():
        for edge in range(6):  # every edge costs the same, whatever the others hold
            arch = np.zeros(6, np.int32)
            arch[edge] = NB_OPS[op]
            got = one(space, arch, batch_size=2, bytes_per_element=1).memory_traffic_bytes
            assert got - base == 2 * edge_act + edge_weights, (op, edge)
    # Additive over edges: the cost of a cell is the skeleton plus its edges.
    rng = np.random.default_rng(0)
    archs = rng.integers(0, 5, (50, 6))
    costs = {op: per_edge.get(op, (0, 0)) for op in NB_OPS}
    by_code = {NB_OPS[op]: c for op, c in costs.items()}
    expected = [2 * (act + sum(by_code[o][0] for o in a)) + weights + sum(by_code[o][1] for o in a)
                for a in archs]
    got = analytic_costs(space, archs, batch_size=2, bytes_per_element=1).memory_traffic_bytes
    np.testing.assert_array_equal(got, expected)


def test_nb201_macro_keywords():
    space = get_space("nasbench201")
    tables = nasbench201_tables(channels=8, cells_per_stage=1, num_classes=100, input_size=16)
    assert isinstance(tables, NB201Tables)
    c = costs_from_tables(space, tables, np.full((1, 6), NB_OPS["nor_conv_3x3"]))
    stages = [(8, 16), (16, 8), (32, 4)]
    macs = (3*3*3*8 * 16*16
            + 3*3*8*16 * 8*8 + 3*3*16*16 * 8*8 + 8*16 * 8*8
            + 3*3*16*32 * 4*4 + 3*3*32*32 * 4*4 + 16*32 * 4*4
            + 32*100
            + sum(6 * 3*3*ch*ch * s*s for ch, s in stages))
    assert c.macs[0] == macs
    assert layer_cost_tables(space) is nasbench201_tables()  # the default macro network


# ====================================================================== OFA MobileNetV3
# tiny: stem 1->8 stride 1; first block 8->8; widths (8,16,16,24,24), strides (2,2,2,1,2),
# SE in stages 1, 3, 4; kernels (3,5,7), expands (3,4,6), depths (2,3,4); resolutions (16, 20).
@pytest.fixture(scope="module")
def ofa_tiny():
    return get_space("ofa_mbv3", "tiny")


def test_ofa_block_without_and_with_se(ofa_tiny):
    tables = layer_cost_tables(ofa_tiny)
    assert isinstance(tables, OFATables) and tables.blocks.macs.shape == (2, 20, 3, 3)
    specs = ofa_tiny.block_specs()
    assert (specs[0].in_channels, specs[0].out_channels, specs[0].stride, specs[0].use_se) == (8, 8, 2, False)
    assert (specs[4].in_channels, specs[4].out_channels, specs[4].stride, specs[4].use_se) == (8, 16, 2, True)
    # r=16: block 0 runs 16x16 -> 8x8. k3, e3: mid = make_divisible(8*3) = 24.
    assert tables.blocks.macs[0, 0, 0, 0] == 8*24 * 16*16 + 3*3*24 * 8*8 + 24*8 * 8*8
    assert tables.blocks.params[0, 0, 0, 0] == (8*24 + 2*24) + (3*3*24 + 2*24) + (24*8 + 2*8)
    # r=16: block 4 runs 8x8 -> 4x4. k5, e4: mid = 32; SE mid = make_divisible(32 // 4) = 8.
    assert tables.blocks.macs[0, 4, 1, 1] == 8*32 * 8*8 + 5*5*32 * 4*4 + 32*8*2 + 32*16 * 4*4
    assert tables.blocks.params[0, 4, 1, 1] == ((8*32 + 2*32) + (5*5*32 + 2*32)
                                                + (32*8 + 8) + (8*32 + 32) + (32*16 + 2*16))


def test_ofa_block_and_fixed_traffic(ofa_tiny):
    tables = layer_cost_tables(ofa_tiny)
    b = tables.blocks
    # r=16, block 0, k3 e3 (8@16 -> 8@8, stride 2, mid 24): expand, depthwise, project.
    assert b.act_traffic[0, 0, 0, 0] == (8*16*16 + 24*16*16) + (24*16*16 + 24*8*8) + (24*8*8 + 8*8*8)
    assert b.weight_traffic[0, 0, 0, 0] == (8*24 + 24) + (3*3*24 + 24) + (24*8 + 8)
    # r=16, block 1, k3 e3 (8@8 -> 8@8): residual, so the project conv reads the input again.
    assert b.act_traffic[0, 1, 0, 0] == (8*8*8 + 24*8*8) + 2 * 24*8*8 + (24*8*8 + 8*8*8) + 8*8*8
    # r=16, block 4, k5 e4 (8@8 -> 16@4, SE, mid 32, se_mid 8): the SE pools, runs two linear
    # layers, and the project conv reads the 32-element gate with its input.
    assert b.act_traffic[0, 4, 1, 1] == ((8*8*8 + 32*8*8) + (32*8*8 + 32*4*4) + (32*4*4 + 32)
                                         + (32 + 8) + (8 + 32) + 32 + (32*4*4 + 16*4*4))
    assert b.weight_traffic[0, 4, 1, 1] == ((8*32 + 32) + (5*5*32 + 32) + (32*8 + 8) + (8*32 + 32)
                                            + (32*16 + 16))
    # Fixed part at r=16: stem 1@16 -> 8@16; first block dw 8@16 + 1x1 8->8 + residual;
    # final expand 24 -> 48 at 1x1; pool; feature mix 48 -> 64 (no bias); classifier 64 -> 10.
    assert tables.fixed.act_traffic[0] == ((1*16*16 + 8*16*16) + 2 * 8*16*16 + 2 * 8*16*16 + 8*16*16
                                           + (24 + 48) + (48 + 48) + (48 + 64) + (64 + 10))
    assert tables.fixed.weight_traffic[0] == ((3*3*8 + 8) + (3*3*8 + 8) + (8*8 + 8) + (24*48 + 48)
                                              + 48*64 + (64*10 + 10))


def test_ofa_depth_masking_removes_exactly_the_dropped_blocks(ofa_tiny):
    space, tables = ofa_tiny, layer_cost_tables(ofa_tiny)
    rng = np.random.default_rng(0)
    arch = np.array(space.sample(jax.random.key(1), 1))[0]
    arch[space.depth_slice] = 2  # depth 4 everywhere
    full = one(space, arch)
    r = arch[space.resolution_index]
    for stage in range(5):
        shallow = arch.copy()
        shallow[space.depth_slice.start + stage] = 0  # depth 2: slots 2 and 3 dropped
        dropped = [stage * 4 + 2, stage * 4 + 3]
        k, e = arch[space.kernel_slice], arch[space.expand_slice]
        got = one(space, shallow)
        assert full.macs - got.macs == sum(tables.blocks.macs[r, b, k[b], e[b]] for b in dropped)
        assert full.params - got.params == sum(tables.blocks.params[r, b, k[b], e[b]] for b in dropped)
        assert full.memory_traffic_bytes - got.memory_traffic_bytes == 4 * sum(
            tables.blocks.act_traffic[r, b, k[b], e[b]] + tables.blocks.weight_traffic[r, b, k[b], e[b]]
            for b in dropped)
        # The dropped blocks' kernel and expand entries are don't-cares.
        changed = shallow.copy()
        changed[dropped] = rng.integers(0, 3, 2)
        changed[[20 + b for b in dropped]] = rng.integers(0, 3, 2)
        assert one(space, changed) == got


def test_ofa_active_mask_matches_space(ofa_tiny):
    archs = np.asarray(ofa_tiny.sample(jax.random.key(2), 64))
    np.testing.assert_array_equal(_ofa_active_blocks(ofa_tiny, archs), np.asarray(ofa_tiny.active_blocks(archs)))


def test_ofa_resolution_scales_conv_macs():
    # Without SE, every MAC but the two linear layers is a conv, and doubling the resolution
    # of this space doubles every spatial side (16: 16,8,4,2,2,1; 32: 32,16,8,4,4,2).
    space = OFAMobileNetV3Space(OFAConfig(
        stem_channels=8, stem_stride=1, first_block_channels=8, widths=(8, 16, 16, 24, 24),
        use_se=(False,) * 5, final_expand_channels=48, feature_mix_channels=64,
        resolutions=(16, 32), in_channels=1, num_classes=10))
    archs = np.array(space.sample(jax.random.key(3), 50))
    archs[:, space.resolution_index] = 0
    low = analytic_costs(space, archs)
    archs[:, space.resolution_index] = 1
    high = analytic_costs(space, archs)
    linear = 48*64 + 64*10  # feature mix (no bias) + classifier
    np.testing.assert_array_equal(high.macs - linear, 4 * (low.macs - linear))
    np.testing.assert_array_equal(high.params, low.params)


def test_ofa_imagenet_fixed_part_and_first_stage():
    space = get_space("ofa_mbv3")
    tables = layer_cost_tables(space)
    r224 = space.macro.resolutions.index(224)
    # Stem 3->16 s2 @112; first block dw3x3 16 @112 + 1x1 16->16 @112; final 1x1 160->960 @7;
    # feature mix 960->1280 (no bias); classifier 1280->1000.
    assert tables.fixed.macs[r224] == (3*3*3*16 * 112*112 + 3*3*16 * 112*112 + 16*16 * 112*112
                                       + 160*960 * 7*7 + 960*1280 + 1280*1000)
    assert tables.fixed.params[r224] == ((3*3*3*16 + 2*16) + (3*3*16 + 2*16) + (16*16 + 2*16)
                                         + (160*960 + 2*960) + 960*1280 + (1280*1000 + 1000))
    # Stage 0 at k7 e6: block 0 16@112 -> 24@56 (mid 96); blocks 1-3 24@56 (mid 144).
    assert tables.blocks.macs[r224, 0, 2, 2] == 16*96 * 112*112 + 7*7*96 * 56*56 + 96*24 * 56*56
    assert tables.blocks.macs[r224, 1, 2, 2] == 24*144 * 56*56 + 7*7*144 * 56*56 + 144*24 * 56*56
    # Peak of the largest net: block 0's depthwise conv, 96@112x112 in, 96@56x56 out.
    largest = space.from_public({"ks": [7] * 20, "e": [6] * 20, "d": [4] * 5, "r": 224})
    assert one(space, largest).peak_activation_bytes == (96*112*112 + 96*56*56) * 4


def test_ofa_every_public_record_costs():
    space = get_space("ofa_mbv3")
    with open(SHARED_DATA / "ofa" / "archs.jsonl") as f:
        archs = space.from_public_batch([json.loads(line) for line in f])
    assert len(archs) == 5000
    base = analytic_costs(space, archs)
    for v in base:
        assert v.shape == (5000,) and np.all(np.isfinite(v)) and np.all(v > 0)
    smallest = space.from_public({"ks": [3] * 20, "e": [3] * 20, "d": [2] * 5, "r": 128})
    largest = space.from_public({"ks": [7] * 20, "e": [6] * 20, "d": [4] * 5, "r": 224})
    lo, hi = one(space, smallest).macs, one(space, largest).macs
    assert np.all((base.macs >= lo) & (base.macs <= hi))
    # Raise one kernel or one expand of one active block in every record: MACs must grow.
    rng = np.random.default_rng(0)
    active = _ofa_active_blocks(space, archs)
    rows = np.arange(len(archs))
    for offset in (space.kernel_slice.start, space.expand_slice.start):
        block = np.array([rng.choice(np.flatnonzero(a)) for a in active])
        col = offset + block
        raisable = archs[rows, col] < 2
        bigger = archs.copy()
        bigger[rows, col] = np.minimum(archs[rows, col] + 1, 2)
        grown = analytic_costs(space, bigger)
        assert raisable.sum() > 1000
        assert np.all(grown.macs[raisable] > base.macs[raisable])
        assert np.all(grown.params[raisable] > base.params[raisable])
        np.testing.assert_array_equal(grown.macs[~raisable], base.macs[~raisable])


# ====================================================================== all spaces
SPACES = [get_space("nasbench201"), get_space("fbnet"), get_space("fbnet", "tiny"),
          get_space("ofa_mbv3"), get_space("ofa_mbv3", "tiny")]
IDS = ["nb201", "fbnet", "fbnet-tiny", "ofa", "ofa-tiny"]


@pytest.mark.parametrize("space", SPACES, ids=IDS)
def test_batched_equals_per_arch(space):
    archs = np.asarray(space.sample(jax.random.key(4), 8))
    batch = analytic_costs(space, archs, batch_size=2)
    for i, arch in enumerate(archs):
        single = analytic_costs(space, arch, batch_size=2)
        for b, s in zip(batch, single):
            assert s.shape == (1,) and s.dtype == np.float64
            assert b[i] == s[0]


@pytest.mark.parametrize("space", SPACES, ids=IDS)
def test_traffic_scales_with_batch_only_through_activations(space):
    archs = np.asarray(space.sample(jax.random.key(5), 16))
    t1, t2, t5 = (analytic_costs(space, archs, batch_size=b).memory_traffic_bytes for b in (1, 2, 5))
    act = t2 - t1            # activation bytes of one example
    weights = t1 - act       # weight bytes, read once per batch
    np.testing.assert_allclose(t5, 5 * act + weights, rtol=1e-12)
    params = analytic_costs(space, archs).params
    # Weight traffic is the parameters less at most half of them (a BN's two values fold into one).
    assert np.all((weights / 4 <= params) & (weights / 4 >= params / 2)) and np.all(act > 0)
    half = analytic_costs(space, archs, batch_size=5, bytes_per_element=2).memory_traffic_bytes
    np.testing.assert_allclose(half, t5 / 2, rtol=1e-12)


@pytest.mark.parametrize("space", SPACES, ids=IDS)
def test_validation_errors_propagate(space):
    arch = np.zeros(space.num_decisions, np.int32)
    bad = arch.copy()
    bad[-1] = space.cardinalities[-1]
    with pytest.raises(ValueError, match="expected 0.."):
        analytic_costs(space, bad)
    with pytest.raises(ValueError):
        analytic_costs(space, arch[:-1])
    with pytest.raises(ValueError, match="batch_size"):
        analytic_costs(space, arch, batch_size=0)
    assert analytic_costs(space, np.zeros((0, space.num_decisions), np.int32)).macs.shape == (0,)


def test_unknown_space_and_read_only_cached_tables(fbnet_tiny):
    class Other:
        name = "darts"
    with pytest.raises(ValueError, match="no analytic cost model"):
        analytic_costs(Other(), np.zeros((1, 3)))
    tables = layer_cost_tables(fbnet_tiny)
    assert layer_cost_tables(get_space("fbnet", "tiny")) is tables  # cached by fingerprint
    with pytest.raises(ValueError):
        tables.layers.macs[0, 0] = 1.0

