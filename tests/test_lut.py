"""Lookup tables: costs by gather+sum, expected cost and its gradient, the file format's checks."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from costs.lut import LatencyTable, LUTError
from supernet.spaces import get_space


@pytest.fixture
def space():
    return get_space("fbnet", "tiny")


@pytest.fixture
def table(space):
    rng = np.random.default_rng(0)
    return LatencyTable.for_space(space, rng.uniform(0.1, 2.0, (6, 9)), fixed=0.5,
                                  device={"name": "toy", "backend": "cpu"}, spread=np.full((6, 9), 0.01))


def test_cost_is_fixed_plus_the_chosen_entries(space, table):
    archs = np.asarray(space.sample(jax.random.key(0), 64))
    expected = 0.5 + np.array([sum(table.table[i, a[i]] for i in range(6)) for a in archs])
    np.testing.assert_allclose(table.cost(archs), expected, rtol=1e-6)
    np.testing.assert_allclose(jax.jit(table.cost)(archs[0]), expected[0], rtol=1e-6)
    assert table.min_cost == pytest.approx(0.5 + table.table.min(axis=1).sum())


def test_expected_cost_gradient_is_the_lut(space, table):
    probs = jax.nn.softmax(jax.random.normal(jax.random.key(1), (6, 9)), axis=-1)
    value, grad = jax.value_and_grad(table.expected_cost)(probs)
    assert value == pytest.approx(0.5 + float(jnp.sum(probs * table.table)), rel=1e-6)
    np.testing.assert_allclose(grad, table.table, rtol=1e-6)
    # Through a softmax over alpha: moving mass between two candidates changes the expected
    # cost by the difference of their LUT entries (the column differences).
    alpha = jnp.zeros((6, 9))
    g = jax.grad(lambda a: table.expected_cost(jax.nn.softmax(a, axis=-1)))(alpha)
    row = table.table[0]
    np.testing.assert_allclose(g[0, 3] - g[0, 5], (row[3] - row[5]) / 9, rtol=1e-5)
    # A one-hot probability is exactly that architecture's cost.
    arch = np.array([1, 8, 0, 2, 7, 4])
    np.testing.assert_allclose(table.expected_cost(jax.nn.one_hot(arch, 9)), table.cost(arch), rtol=1e-6)


def test_save_load_round_trip(space, table, tmp_path):
    path = table.save(tmp_path / "lut.json")
    back = LatencyTable.load(path, space)
    np.testing.assert_array_equal(back.table, table.table)
    np.testing.assert_array_equal(back.spread, table.spread)
    assert back.fixed == table.fixed and back.device["name"] == "toy" and back.unit == "ms"


def test_wrong_fingerprint_is_refused(table, tmp_path):
    path = table.save(tmp_path / "lut.json")
    with pytest.raises(LUTError, match="does not match space fbnet"):
        LatencyTable.load(path, get_space("fbnet"))


def _edit(table, tmp_path, change):
    payload = table.to_json()
    change(payload)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(payload))
    return path


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda p: p["table"].pop(), "one row per decision"),
        (lambda p: p["table"][2].pop(), "row for decision 'layer2' needs 9 entries"),
        (lambda p: p["table"][1].__setitem__(4, -1.0), r"entry \['layer1'\]\['k5_e1'\] is -1.0"),
        (lambda p: p["table"][3].__setitem__(0, None), r"entry \['layer3'\]\['k3_e1'\] is missing"),
        (lambda p: p["table"][3].__setitem__(0, "fast"), "is not a number"),
        (lambda p: p.pop("device"), r"missing field\(s\) \['device'\]"),
        (lambda p: p.update(format="other"), "not an hwnas lookup table"),
        (lambda p: p.update(fixed=float("nan")), "fixed cost must be finite"),
    ],
)
def test_malformed_tables_are_refused(table, tmp_path, change, message):
    with pytest.raises(LUTError, match=message) as info:
        LatencyTable.load(_edit(table, tmp_path, change))
    assert "bad.json" in str(info.value)


def test_nan_in_json_and_missing_file(tmp_path):
    bad = tmp_path / "nan.json"
    bad.write_text("{not json")
    with pytest.raises(LUTError, match="not a JSON lookup table"):
        LatencyTable.load(bad)
    with pytest.raises(LUTError, match="hwnas profile"):
        LatencyTable.load(tmp_path / "absent.json")
