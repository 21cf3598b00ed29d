"""Evaluators: NAS-Bench-201 tabular lookup against the CSVs, predictors, target checks, the true front."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from costs.analytic import analytic_costs
from costs.lut import LatencyTable, device_info
from costs.measured import load_fbnet, load_nasbench201
from searchers.evaluators import (
    AnalyticCostModel,
    LUTCostModel,
    PredictorEvaluator,
    RidgeRegressor,
    TabularEvaluator,
    check_targets,
    tabular_search_evaluator,
)
from searchers.objectives import parse_objective
from searchers.reference import hypervolume_ratio, plane_points, staircase, true_front
from supernet.spaces import get_space
from tests.conftest import SHARED_DATA


@pytest.fixture(scope="module")
def nb201():
    return load_nasbench201(SHARED_DATA)


@pytest.fixture(scope="module")
def evaluator(nb201):
    return TabularEvaluator.from_measured(nb201, "raspi4")


def test_nasbench201_metrics_are_the_csv_rows_of_each_arch(nb201, evaluator):
    space = evaluator.space
    archs = np.asarray(space.sample(jax.random.key(0), 64))
    rows = np.searchsorted(nb201.index, space.to_index(archs))  # the CSV is in index order
    assert (nb201.index[rows] == space.to_index(archs)).all()
    out = evaluator(archs)
    assert set(out) == {"accuracy", "test_accuracy", "latency_ms", "macs", "params", "peak_activation_bytes"}
    np.testing.assert_array_equal(out["accuracy"], nb201.metrics["valid_accuracy"][rows])  # search: validation
    np.testing.assert_array_equal(out["test_accuracy"], nb201.metrics["test_accuracy"][rows])
    np.testing.assert_array_equal(out["latency_ms"], nb201.metrics["latency_ms/raspi4"][rows])
    np.testing.assert_array_equal(out["macs"], analytic_costs(space, archs).macs)


def test_whole_space_in_one_vectorized_call(evaluator):
    everything = evaluator(evaluator.space.enumerate())
    assert everything["accuracy"].shape == (15625,)
    assert evaluator.covers_space
    lo, hi = evaluator.metric_range("latency_ms")
    assert lo == everything["latency_ms"].min() and hi == everything["latency_ms"].max()


def test_unknown_device_lists_the_devices(nb201):
    with pytest.raises(ValueError, match="no latency for device 'tpu9'.*raspi4"):
        TabularEvaluator.from_measured(nb201, "tpu9")
    with pytest.raises(ValueError, match="choose a device.*pixel3"):
        TabularEvaluator.from_measured(nb201, None)


def test_fbnet_table_looks_up_measured_archs_and_refuses_others():
    data = load_fbnet(SHARED_DATA)
    ev = TabularEvaluator.from_measured(data, "raspi4")
    np.testing.assert_array_equal(ev(data.archs[10:20])["latency_ms"], data.metrics["latency_ms/raspi4"][10:20])
    assert "accuracy" not in ev.metric_names and not ev.covers_space and ev.metric_range("latency_ms") is None
    unmeasured = np.asarray(ev.space.sample(jax.random.key(0), 3))
    with pytest.raises(ValueError, match="3 of 3 architectures are not in the fbnet table"):
        ev(unmeasured)
    with pytest.raises(ValueError, match="fbnet: the measured data holds 5000 .* no accuracy"):
        tabular_search_evaluator("fbnet", SHARED_DATA, "raspi4")


def test_ridge_predictor_recovers_an_additive_function():
    space = get_space("nasbench201")
    per_choice = np.asarray(jax.random.normal(jax.random.key(1), (6, 5)))
    archs = np.asarray(space.sample(jax.random.key(2), 300))
    target = 80 + per_choice[np.arange(6), archs].sum(1)
    ev = PredictorEvaluator(space, AnalyticCostModel(space), RidgeRegressor(l2=1e-6)).fit(archs, {"accuracy": target})
    test = np.asarray(space.sample(jax.random.key(3), 50))
    out = ev(test)
    np.testing.assert_allclose(out["accuracy"], 80 + per_choice[np.arange(6), test].sum(1), atol=1e-4)
    assert set(out) == {"macs", "params", "peak_activation_bytes", "accuracy"}
    np.testing.assert_array_equal(out["params"], analytic_costs(space, test).params)


def test_predictor_regressor_is_pluggable_and_must_be_fitted_first():
    space = get_space("nasbench201")

    class Mean:
        def fit(self, features, targets):
            return lambda f: np.full(len(f), np.mean(targets))

    archs = np.asarray(space.sample(jax.random.key(0), 8))
    bare = PredictorEvaluator(space, regressor=Mean())
    with pytest.raises(ValueError, match="no fitted predictor"):
        bare(archs)
    fitted = bare.fit(archs, {"accuracy": np.arange(8.0)})
    np.testing.assert_allclose(fitted(archs)["accuracy"], 3.5)
    with pytest.raises(ValueError, match="comes from the cost model"):
        PredictorEvaluator(space, AnalyticCostModel(space)).fit(archs, {"params": np.ones(8)})


def test_targets_checked_on_the_whole_table_or_from_lut_ranges(evaluator):
    check = check_targets(parse_objective("max-acc:lat<=0.001"), evaluator)
    fastest = evaluator.table["latency_ms"].min()
    assert check.infeasible.startswith("no architecture of nasbench201 meets the constraint latency_ms <= 0.001")
    assert check.unmet[0].best == fastest and f"{fastest:.6g} ms" in check.infeasible
    assert check_targets(parse_objective("max-acc:lat<=10"), evaluator).infeasible is None
    soft = check_targets(parse_objective("mnas:0.001"), evaluator)
    assert soft.infeasible is None and not soft.unmet[0].hard

    space = evaluator.space
    lut = LatencyTable.for_space(space, np.ones((6, 5)), fixed=2.0, device=device_info("toy"))
    ev = PredictorEvaluator(space, LUTCostModel(space, (lut,)))
    check = check_targets(parse_objective("max-acc:lat<=7.5"), ev)  # every arch costs exactly 8 ms
    assert "smallest latency_ms achievable is 8 ms" in check.infeasible
    assert check_targets(parse_objective("max-acc:params<=1"), ev) is None  # unknown range: no verdict


def test_staircase_front_agrees_with_pareto_module():
    from searchers.pareto import non_dominated_mask

    rng = np.random.default_rng(0)
    points = np.round(rng.normal(size=(400, 2)), 1)  # rounding makes ties and duplicates
    mask = np.asarray(non_dominated_mask(jnp.asarray(points)))
    expected = np.unique(points[mask], axis=0)
    found = points[staircase(points)]
    np.testing.assert_array_equal(np.unique(found, axis=0), expected)
    assert len(found) == len(expected)


def test_hypervolume_ratio_of_the_true_front_and_of_subsets(evaluator):
    front = true_front(evaluator)
    assert front.reference[0] == -0.85 and front.hypervolume > 0
    assert np.all(np.diff(front.points[:, 1]) > 0) and np.all(np.diff(front.points[:, 0]) < 0)
    assert hypervolume_ratio(evaluator.table, front) == pytest.approx(1.0)
    on_front = evaluator(front.archs)
    assert hypervolume_ratio(on_front, front) == pytest.approx(1.0)
    half = {k: v[::2] for k, v in on_front.items()}
    assert 0.0 < hypervolume_ratio(half, front) < 1.0
    bad = {"accuracy": np.array([50.0]), "latency_ms": np.array([1.0])}
    assert hypervolume_ratio(bad, front) == 0.0
    np.testing.assert_allclose(plane_points(bad), [[-0.5, 0.0]])
