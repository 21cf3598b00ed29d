"""Analytic energy (costs/energy.py): hand-computed cases, and the energy lookup tables summing
to exactly the energy of each architecture, for every space.

Expected energies are written out as `MACs * pJ/MAC + traffic bytes * pJ/byte`, with the MACs
and traffic of tests/test_analytic.py's hand-computed FBNet tiny network.
"""

import jax
import numpy as np
import pytest

from costs.analytic import _ofa_active_blocks
from costs.energy import ENERGY_PRESETS, EnergyModel, energy_mj, energy_preset, energy_table
from costs.hardware_loss import HardwareLoss
from costs.lut import LatencyTable, OFALatencyTable
from supernet.spaces import CANDIDATES, get_space

SKIP = [c.name for c in CANDIDATES].index("skip")

# FBNet tiny with every layer `skip` (see test_analytic.py): 33,088 MACs; activation and weight
# elements moved: stem, the two strided 1x1 convs, head, pool, classifier.
TINY_MACS = 33088
TINY_ACT = ((1*16*16 + 8*16*16) + (8*16*16 + 8*8*8) + (8*8*8 + 16*4*4) + (16*4*4 + 32*4*4)
            + (32*4*4 + 32) + (32 + 10))
TINY_WEIGHTS = (3*3*1*8 + 8) + (8*8 + 8) + (8*16 + 16) + (16*32 + 32) + (32*10 + 10)


@pytest.fixture(scope="module")
def fbnet_tiny():
    return get_space("fbnet", "tiny")


def test_presets_are_the_documented_derivations():
    fp32, fp16, int8, eyeriss = (ENERGY_PRESETS[n] for n in
                                 ("horowitz45_fp32", "horowitz45_fp16", "horowitz45_int8", "eyeriss"))
    # Horowitz 45 nm: fp32 mult 3.7 + add 0.9; fp16 1.1 + 0.4; int8 mult 0.2 + 32-bit add 0.1;
    # DRAM 640 pJ per 32 bits = 160 pJ per byte.
    assert (fp32.pj_per_mac, fp32.pj_per_byte, fp32.bytes_per_element) == (pytest.approx(4.6), 160.0, 4)
    assert (fp16.pj_per_mac, fp16.pj_per_byte, fp16.bytes_per_element) == (pytest.approx(1.5), 160.0, 2)
    assert (int8.pj_per_mac, int8.pj_per_byte, int8.bytes_per_element) == (pytest.approx(0.3), 160.0, 1)
    # Eyeriss: a 16-bit DRAM access costs 200 MACs, normalized to 1 pJ per MAC.
    assert (eyeriss.pj_per_mac, eyeriss.pj_per_byte, eyeriss.bytes_per_element) == (1.0, 100.0, 2)
    for name, model in ENERGY_PRESETS.items():
        assert model.name == name and model.source and model.static_mw == 0.0


def test_hand_computed_energy_fbnet_tiny(fbnet_tiny):
    arch = np.full(6, SKIP)
    # fp32: 4.6 pJ per MAC, 4-byte elements at 160 pJ per byte; 1 mJ = 1e9 pJ.
    pj = TINY_MACS * 4.6 + (TINY_ACT + TINY_WEIGHTS) * 4 * 160
    assert energy_mj(fbnet_tiny, arch, "horowitz45_fp32")[0] == pytest.approx(pj / 1e9, rel=1e-12)
    # A batch of 3: three times the MACs and activations, the weights read once.
    model = EnergyModel(pj_per_mac=2.0, pj_per_byte=0.5, name="toy", bytes_per_element=2)
    pj3 = 3 * TINY_MACS * 2.0 + (3 * TINY_ACT + TINY_WEIGHTS) * 2 * 0.5
    assert energy_mj(fbnet_tiny, arch, model, batch_size=3)[0] == pytest.approx(pj3 / 1e9, rel=1e-12)
    # The element width defaults to the model's and can be overridden.
    int8 = energy_preset("horowitz45_int8")
    assert energy_mj(fbnet_tiny, arch, int8)[0] == energy_mj(fbnet_tiny, arch, int8, bytes_per_element=1)[0]
    assert energy_mj(fbnet_tiny, arch, int8, bytes_per_element=4)[0] == pytest.approx(
        (TINY_MACS * 0.3 + (TINY_ACT + TINY_WEIGHTS) * 4 * 160) / 1e9, rel=1e-12)


def test_energy_table_entries_hand_computed(fbnet_tiny):
    table = energy_table(fbnet_tiny, EnergyModel(pj_per_mac=1.0, pj_per_byte=1.0, bytes_per_element=1))
    assert (table.metric, table.unit, table.device["name"], table.device["batch_size"]) == \
        ("energy_mj", "mJ", "custom", 1)
    # L3 skip: strided 1x1 conv 8@8 -> 16@4: 8*16*4*4 MACs, (8*8*8 + 16*4*4) + (8*16 + 16) elements.
    assert table.table[3, SKIP] * 1e9 == pytest.approx(8*16*4*4 + (8*8*8 + 16*4*4) + (8*16 + 16), rel=1e-12)
    assert table.table[0, SKIP] == 0.0  # an identity costs nothing


# ====================================================================== additivity, every space
SPACES = {
    "fbnet-tiny": ("fbnet", "tiny"), "fbnet": ("fbnet", None), "nb201": ("nasbench201", None),
    "ofa-tiny": ("ofa_mbv3", "tiny"), "ofa": ("ofa_mbv3", None),
}


@pytest.mark.parametrize("which", list(SPACES))
@pytest.mark.parametrize("model", ["horowitz45_fp32", "eyeriss"])
def test_table_sums_to_energy(which, model):
    name, preset = SPACES[which]
    space = get_space(name, preset) if preset else get_space(name)
    archs = np.asarray(space.sample(jax.random.key(0), 64))
    expected = energy_mj(space, archs, model, batch_size=2)
    table = energy_table(space, model, batch_size=2)
    if name == "ofa_mbv3":
        assert isinstance(table, OFALatencyTable)
        r = archs[:, space.resolution_index]
        k, e = archs[:, space.kernel_slice], archs[:, space.expand_slice]
        blocks = table.table[r[:, None], np.arange(space.num_blocks)[None, :], k, e]
        summed = table.fixed[r] + (blocks * _ofa_active_blocks(space, archs)).sum(axis=1)
        # Inactive blocks are free in both: the canonical form (their choices zeroed) costs the same.
        canonical = np.asarray(space.canonical(archs))
        np.testing.assert_array_equal(energy_mj(space, canonical, model, batch_size=2), expected)
        np.testing.assert_allclose(np.asarray(table.cost(canonical)), expected, rtol=1e-5)
    else:
        summed = table.fixed + table.table[np.arange(space.num_decisions)[None, :], archs].sum(axis=1)
    np.testing.assert_allclose(summed, expected, rtol=1e-12)  # exact up to summation order
    np.testing.assert_allclose(np.asarray(table.cost(archs)), expected, rtol=1e-5)  # float32 on device
    # As a training-loss term: one-hot probabilities give the architecture's energy.
    width = max(space.cardinalities)
    probs = np.zeros((3, space.num_decisions, width), np.float32)
    probs[np.arange(3)[:, None], np.arange(space.num_decisions)[None, :], archs[:3]] = 1.0
    got = [float(table.expected_cost(p)) for p in probs]
    np.testing.assert_allclose(got, expected[:3], rtol=1e-5)
    loss = HardwareLoss.build([table], [1.0], [float(expected[0])], form="linear")
    assert float(loss.cost(archs[0])[0]) == pytest.approx(expected[0], rel=1e-5)


def test_table_round_trips_through_a_file(fbnet_tiny, tmp_path):
    table = energy_table(fbnet_tiny, "horowitz45_int8")
    loaded = LatencyTable.load(table.save(tmp_path / "energy.json"), fbnet_tiny)
    archs = np.asarray(fbnet_tiny.sample(jax.random.key(1), 8))
    np.testing.assert_array_equal(np.asarray(loaded.cost(archs)), np.asarray(table.cost(archs)))
    assert loaded.device["source"] == ENERGY_PRESETS["horowitz45_int8"].source


# ====================================================================== static power
def test_static_power_adds_power_times_latency(fbnet_tiny):
    space = fbnet_tiny
    archs = np.asarray(space.sample(jax.random.key(2), 16))
    dynamic = energy_preset("horowitz45_fp32")
    model = EnergyModel(dynamic.pj_per_mac, dynamic.pj_per_byte, "with_static", "test", 4, static_mw=250.0)
    rng = np.random.default_rng(0)
    latency = LatencyTable.for_space(space, rng.uniform(0.01, 0.1, (6, 9)), fixed=0.2,
                                     device={"name": "cpu", "batch_size": 1})
    lat = np.asarray(latency.cost(archs), np.float64)
    with pytest.raises(ValueError, match="latency_ms"):
        energy_mj(space, archs, model)
    got = energy_mj(space, archs, model, latency_ms=lat)
    # 250 mW for t ms is 250 * t * 1e-3 mJ.
    np.testing.assert_allclose(got, energy_mj(space, archs, dynamic) + 250.0 * lat * 1e-3, rtol=1e-12)
    with pytest.raises(ValueError, match="latency"):
        energy_table(space, model)
    table = energy_table(space, model, latency=latency)
    np.testing.assert_allclose(np.asarray(table.cost(archs)), got, rtol=1e-5)
    assert table.device["static_mw"] == 250.0 and table.device["latency_device"] == "cpu"
    with pytest.raises(ValueError, match="batch size 1"):
        energy_table(space, model, latency=latency, batch_size=4)
    # Without static power a latency changes nothing.
    plain = energy_table(space, dynamic, latency=latency)
    np.testing.assert_array_equal(plain.table, energy_table(space, dynamic).table)


# ====================================================================== errors
@pytest.mark.parametrize("field, value", [
    ("pj_per_mac", -1.0), ("pj_per_mac", float("nan")), ("pj_per_byte", float("nan")),
    ("pj_per_byte", float("inf")), ("static_mw", -0.5), ("pj_per_mac", "1.0"), ("pj_per_byte", True),
])
def test_bad_model_values_name_the_field(field, value):
    kwargs = {"pj_per_mac": 1.0, "pj_per_byte": 1.0, field: value}
    with pytest.raises(ValueError, match=field):
        EnergyModel(**kwargs)


def test_bad_element_width_and_name():
    with pytest.raises(ValueError, match="bytes_per_element"):
        EnergyModel(1.0, 1.0, bytes_per_element=0)
    with pytest.raises(ValueError, match="name"):
        EnergyModel(1.0, 1.0, name="")


def test_unknown_preset_lists_the_presets(fbnet_tiny):
    for call in (lambda: energy_preset("tpu_v9"), lambda: energy_mj(fbnet_tiny, np.zeros(6, np.int32), "tpu_v9"),
                 lambda: energy_table(fbnet_tiny, "tpu_v9")):
        with pytest.raises(ValueError, match="tpu_v9.*eyeriss, horowitz45_fp16, horowitz45_fp32, horowitz45_int8"):
            call()


def test_batch_and_archs_are_validated(fbnet_tiny):
    with pytest.raises(ValueError, match="batch_size"):
        energy_mj(fbnet_tiny, np.zeros(6, np.int32), "eyeriss", batch_size=0)
    with pytest.raises(ValueError, match="batch_size"):
        energy_table(fbnet_tiny, "eyeriss", batch_size=0)
    with pytest.raises(ValueError, match="expected 0.."):
        energy_mj(fbnet_tiny, np.full(6, 9), "eyeriss")
    assert energy_mj(fbnet_tiny, np.zeros((0, 6), np.int32), "eyeriss").shape == (0,)
