"""Metrics against hand-computed values; the additive, FLOPs and transfer predictors; files.

Learned predictors (xgboost, mlp, gp) are in test_predictors_learned.py.
"""

from __future__ import annotations

import jax
import numpy as np
import pytest

from costs.analytic import analytic_costs
from costs.features import FEATURE_SETS, features
from costs.metrics import prediction_metrics
from costs.predictors import PREDICTORS, PredictorError, get_predictor, load_predictor
from supernet.spaces import get_space


# ------------------------------------------------------------------------------- metrics
def test_metrics_match_hand_computed_values():
    # y ranks [1, 2, 3, 4], predictions rank [2, 1, 3, 4]: one discordant pair of six.
    m = prediction_metrics(measured=[1.0, 2.0, 4.0, 8.0], predicted=[2.2, 1.8, 4.5, 7.0])
    assert m.rmse == pytest.approx(np.sqrt((1.2 ** 2 + 0.2 ** 2 + 0.5 ** 2 + 1.0 ** 2) / 4))
    assert m.mape == pytest.approx((1.2 + 0.1 + 0.125 + 0.125) / 4)
    assert m.within_5 == 0.0
    assert m.within_10 == 0.25  # 1.8 vs 2.0 is exactly 10 %: counted as within
    assert m.kendall_tau == pytest.approx((5 - 1) / 6)
    assert m.spearman == pytest.approx(1 - 6 * 2 / (4 * (16 - 1)))


def test_kendall_is_tau_b_with_ties():
    # One tie in the measured values (devices timed in whole milliseconds): 5 concordant
    # pairs, tau-b = 5 / sqrt((6 - 1) * (6 - 0)).
    m = prediction_metrics(measured=[1.0, 1.0, 2.0, 3.0], predicted=[1.0, 2.0, 3.0, 4.0])
    assert m.kendall_tau == pytest.approx(5 / np.sqrt(30))


def test_metrics_refuse_bad_input():
    with pytest.raises(ValueError, match="measured has 2 values, predicted 3"):
        prediction_metrics([1.0, 2.0], [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="predicted has 1 non-finite"):
        prediction_metrics([1.0, 2.0], [1.0, np.nan])
    with pytest.raises(ValueError, match="contain 0"):
        prediction_metrics([0.0, 2.0], [1.0, 2.0])
    constant = prediction_metrics([1.0, 2.0, 3.0], [5.0, 5.0, 5.0])  # no ranking at all: undefined
    assert np.isnan(constant.kendall_tau) and np.isnan(constant.spearman)


# ------------------------------------------------------------------------------- helpers
def _additive_cost(space, seed=0, fixed=3.0):
    """A random positive per-decision table and its cost function (the synthetic device)."""
    rng = np.random.default_rng(seed)
    table = rng.uniform(0.1, 2.0, size=(space.num_decisions, max(space.cardinalities)))
    rows = np.arange(space.num_decisions)
    return lambda archs: fixed + table[rows, np.asarray(archs)].sum(axis=1)


def _archs(space, n, seed):
    return np.asarray(space.sample(jax.random.key(seed), n))


# ------------------------------------------------------------------------------- features
@pytest.mark.parametrize("name", ["fbnet", "nasbench201", "ofa_mbv3"])
def test_features_one_hot_and_analytic(name):
    space = get_space(name)
    archs = _archs(space, 5, 1)
    onehot = features(space, archs, "onehot")
    assert onehot.shape == (5, int(np.sum(space.cardinalities))) and onehot.dtype == np.float32
    if name == "ofa_mbv3":
        # Inactive blocks (beyond the stage's depth) have no indicator at all.
        active = np.asarray(space.active_blocks(archs))
        assert onehot.sum(axis=1).tolist() == (2 * active.sum(axis=1) + space.num_decisions - 2 * space.num_blocks).tolist()
    else:
        assert (onehot.sum(axis=1) == space.num_decisions).all()
    both = features(space, archs, "onehot+analytic")
    np.testing.assert_array_equal(both[:, :onehot.shape[1]], onehot)
    np.testing.assert_allclose(both[:, onehot.shape[1]], np.log(analytic_costs(space, archs).macs), rtol=1e-6)
    with pytest.raises(ValueError, match="unknown feature set 'bogus'"):
        features(space, archs, "bogus")
    assert FEATURE_SETS == ("onehot", "onehot+analytic")


# ------------------------------------------------------------------------------- lut, flops
@pytest.mark.parametrize("name", ["fbnet", "nasbench201"])
def test_additive_predictor_recovers_an_additive_cost_exactly(name):
    space = get_space(name)
    cost = _additive_cost(space)
    train, test = _archs(space, 600, 0), _archs(space, 200, 1)
    model = get_predictor("lut", space).fit(train, cost(train))
    np.testing.assert_allclose(model.predict(test), cost(test), rtol=1e-6)
    # As a LatencyTable it costs architectures the same way (and enters a loss like one).
    table = model.to_table()
    np.testing.assert_allclose(np.asarray(table.cost(test)), cost(test), rtol=1e-5)


def test_additive_predictor_ignores_inactive_ofa_blocks():
    space = get_space("ofa_mbv3")
    archs = _archs(space, 400, 0)
    # Cost depends only on what runs: depth choices and active blocks' kernels.
    active = np.asarray(space.active_blocks(archs))
    y = 1.0 + (active * (1 + archs[:, space.kernel_slice])).sum(axis=1)
    model = get_predictor("lut", space).fit(archs, y)
    np.testing.assert_allclose(model.predict(archs), y, rtol=1e-6)
    with pytest.raises(PredictorError, match="per resolution and block"):
        model.to_table()


def test_flops_predictor_is_proportional_to_flops():
    space = get_space("fbnet")
    archs = _archs(space, 50, 0)
    flops = analytic_costs(space, archs).flops
    model = get_predictor("flops", space).fit(archs, 2.5e-9 * flops)
    np.testing.assert_allclose(model.predict(_archs(space, 20, 1)), 2.5e-9 * analytic_costs(space, _archs(space, 20, 1)).flops)
    with pytest.raises(PredictorError, match="needs costs > 0"):
        get_predictor("flops", space).fit(archs, -flops)


# ------------------------------------------------------------------------------- transfer
def test_transfer_recovers_a_device_that_mixes_the_sources():
    space = get_space("nasbench201")
    archs = np.asarray(space.enumerate())
    y1, y2 = _additive_cost(space, seed=1)(archs), _additive_cost(space, seed=2)(archs)
    target = np.exp(0.7 * np.log(y1) + 0.3 * np.log(y2) + 0.2)  # a device between the two
    few = np.random.default_rng(0).choice(len(archs), 20, replace=False)
    sources = {"one": (archs, y1), "two": (archs, y2)}
    alone = get_predictor("lut", space).fit(archs[few], target[few])
    stack = get_predictor("transfer", space, method="stack", base="lut").fit_sources(sources)
    stack.fit(archs[few], target[few])
    m_stack = prediction_metrics(target, stack.predict(archs))
    m_alone = prediction_metrics(target, alone.predict(archs))
    assert m_stack.mape < 0.01 and m_stack.spearman > 0.999
    assert m_stack.mape < m_alone.mape
    # `scale` maps one shared ranking: exact when the devices are power laws of each other,
    # unable to re-weight sources that disagree (then `stack` is the one to use).
    related = {"one": (archs, y1), "two": (archs, 3.0 * np.sqrt(y1))}
    power = np.exp(0.8 * np.log(y1) + 0.1)
    scale = get_predictor("transfer", space, method="scale", base="lut").fit_sources(related)
    m_scale = prediction_metrics(power, scale.fit(archs[few], power[few]).predict(archs))
    assert m_scale.mape < 0.01 and m_scale.spearman > 0.999
    mixed = get_predictor("transfer", space, method="scale", base="lut").fit_sources(sources)
    assert prediction_metrics(target, mixed.fit(archs[few], target[few]).predict(archs)).spearman < m_stack.spearman


def test_transfer_refuses_bad_setup():
    space = get_space("nasbench201")
    with pytest.raises(PredictorError, match="unknown method 'magic'; methods: scale, stack"):
        get_predictor("transfer", space, method="magic")
    with pytest.raises(PredictorError, match="unknown base model 'oracle'"):
        get_predictor("transfer", space, base="oracle")
    with pytest.raises(PredictorError, match="call fit_sources before fit"):
        get_predictor("transfer", space, base="lut").fit(_archs(space, 5, 0), np.ones(5))


# ------------------------------------------------------------------------------- files
@pytest.mark.parametrize("name", ["lut", "flops", "transfer"])
def test_save_load_round_trip_and_fingerprint_check(name, tmp_path):
    space = get_space("fbnet")
    cost = _additive_cost(space)
    train, test = _archs(space, 300, 0), _archs(space, 50, 1)
    model = get_predictor(name, space, **({"base": "lut"} if name == "transfer" else {}))
    if name == "transfer":
        model.fit_sources({"a": (train, cost(train)), "b": (train, 2 * cost(train))})
    model.fit(train[:40], 1.5 * cost(train[:40]))
    path = model.save(tmp_path / f"{name}.npz")
    loaded = load_predictor(path, space)
    assert type(loaded) is type(model) and loaded.options == model.options
    np.testing.assert_array_equal(loaded.predict(test), model.predict(test))
    other = get_space("fbnet", preset="demo")
    with pytest.raises(PredictorError, match="fitted for another configuration"):
        load_predictor(path, other)


def test_load_refuses_malformed_files(tmp_path):
    space = get_space("fbnet")
    with pytest.raises(PredictorError, match="no such predictor file"):
        load_predictor(tmp_path / "missing.npz", space)
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not a zip file")
    with pytest.raises(PredictorError, match="not an hwnas predictor file"):
        load_predictor(junk, space)
    np.savez(tmp_path / "other.npz", meta=np.asarray('{"format": "something-else"}'))
    with pytest.raises(PredictorError, match="expected \"format\""):
        load_predictor(tmp_path / "other.npz", space)


def test_predictor_input_errors():
    space = get_space("fbnet")
    model = get_predictor("lut", space)
    with pytest.raises(PredictorError, match="predict before fit"):
        model.predict(_archs(space, 2, 0))
    with pytest.raises(PredictorError, match="22 decisions"):
        model.fit(np.zeros((3, 5), np.int32), np.ones(3))
    with pytest.raises(PredictorError, match=r"y\[1\] is nan"):
        model.fit(_archs(space, 3, 0), np.array([1.0, np.nan, 2.0]))
    with pytest.raises(PredictorError, match=r"y must have shape \(3,\)"):
        model.fit(_archs(space, 3, 0), np.ones(4))
    with pytest.raises(PredictorError, match="unknown cost model 'nope'; models: lut"):
        get_predictor("nope", space)
    assert set(PREDICTORS) >= {"lut", "flops", "transfer"}


@pytest.mark.parametrize("name", ["fbnet", "nasbench201", "ofa_mbv3"])
def test_roofline_recovers_a_roofline_device(name):
    # A device that is exactly a roofline: compute- or memory-bound per unit, plus a cost per
    # op and a fixed cost; the four coefficients come back from 200 whole-network timings.
    space = get_space(name)
    model = get_predictor("analytic", space)
    truth = np.log([2e-8, 5e-9, 0.05, 1.5])  # ms per MAC, ms per byte, per op, fixed
    train, test = _archs(space, 200, 0), _archs(space, 100, 1)
    y = model._cost(truth, *model.units(train))
    model.fit(train, y)
    np.testing.assert_allclose(model.predict(test), model._cost(truth, *model.units(test)), rtol=1e-4)
    assert set(model.coefficients) == {"macs_per_unit_time", "bytes_per_unit_time", "per_op", "fixed"}
