"""Objectives against their formulas (MNAS, TuNAS, constraints, weighted sum/product, Pareto) and the spec parser."""

import math

import numpy as np
import pytest

from searchers.objectives import (
    MNAS,
    Constraint,
    MaxAccuracy,
    ObjectiveError,
    Pareto,
    TuNAS,
    WeightedProduct,
    WeightedSum,
    parse_objective,
)

ACC = np.array([90.0, 80.0, 70.0, 95.0])  # percent
LAT = np.array([2.0, 5.0, 10.0, 20.0])  # ms
PARAMS = np.array([1e6, 2e5, 3e6, 5e5])
METRICS = {"accuracy": ACC, "latency_ms": LAT, "params": PARAMS}


def test_mnas_soft_constraint_matches_the_paper_formula():
    t, alpha, beta = 5.0, -0.07, -0.15  # distinct exponents show the switch at T
    out = MNAS(target=t, alpha=alpha, beta=beta)(METRICS)
    expected = [-(a / 100) * (l / t) ** (alpha if l <= t else beta) for a, l in zip(ACC, LAT)]
    assert out.dtype == np.float32 and out.shape == (4, 1)
    np.testing.assert_allclose(out[:, 0], expected, rtol=1e-6)
    # defaults are MNASNet's soft constraint: alpha = beta = -0.07
    default = MNAS(target=t)(METRICS)[:, 0]
    np.testing.assert_allclose(default, -(ACC / 100) * (LAT / t) ** -0.07, rtol=1e-6)


def test_mnas_hard_variant_does_not_reward_being_faster_than_target():
    out = MNAS(target=5.0, alpha=0.0, beta=-1.0)(METRICS)[:, 0]
    assert out[0] == pytest.approx(-0.9) and out[1] == pytest.approx(-0.8)  # at or below T: accuracy alone
    assert out[2] == pytest.approx(-0.7 * 0.5, rel=1e-6)  # twice T: halved


def test_tunas_absolute_reward_matches_the_formula_and_is_symmetric_around_target():
    t, beta = 5.0, -0.3
    out = TuNAS(target=t, beta=beta)(METRICS)[:, 0]
    np.testing.assert_allclose(out, -(ACC / 100 + beta * np.abs(LAT / t - 1)), rtol=1e-6)
    same_acc = {"accuracy": np.array([90.0, 90.0]), "latency_ms": np.array([2.5, 7.5])}
    below, above = TuNAS(target=t)(same_acc)[:, 0]
    assert below == pytest.approx(above)  # |lat/T - 1| = 0.5 on both sides
    assert TuNAS(target=t).beta == -0.10  # the released TuNAS search's default


def test_hard_constraints_put_inf_in_every_column_and_keep_the_rest():
    obj = Pareto(costs=("latency_ms", "params"), constraints=(Constraint("latency_ms", 10.0),
                                                              Constraint("accuracy", 75.0, upper=False)))
    out = obj(METRICS)
    assert out.shape == (4, 3)
    feasible = (LAT <= 10) & (ACC >= 75)
    assert np.isinf(out[~feasible]).all() and np.isfinite(out[feasible]).all()
    np.testing.assert_allclose(out[0], [-0.9, math.log(2.0), math.log(1e6)], rtol=1e-6)


def test_max_accuracy_under_constraint_on_any_metric():
    out = parse_objective("max-acc:params<=1M,lat<=10")(METRICS)[:, 0]
    np.testing.assert_allclose(out, [-0.9, -0.8, np.inf, np.inf])
    assert MaxAccuracy()(METRICS)[:, 0].tolist() == pytest.approx((-ACC / 100).tolist())


def test_weighted_sum_and_product():
    ws = WeightedSum(weights=(("accuracy", -1.0), ("latency_ms", 0.01)))(METRICS)[:, 0]
    np.testing.assert_allclose(ws, -ACC / 100 + 0.01 * LAT, rtol=1e-6)
    wp = WeightedProduct(weights=(("accuracy", -1.0), ("latency_ms", 0.07)))(METRICS)[:, 0]
    np.testing.assert_allclose(wp, (ACC / 100) ** -1 * LAT ** 0.07, rtol=1e-6)
    # the product ranks like MNAS's soft reward (same exponent on both sides of T)
    assert np.argsort(wp).tolist() == np.argsort(MNAS(target=5.0)(METRICS)[:, 0]).tolist()


def test_pareto_vector_is_minus_accuracy_and_log_costs():
    out = Pareto()(METRICS)
    np.testing.assert_allclose(out, np.stack([-ACC / 100, np.log(LAT)], 1), rtol=1e-6)
    assert Pareto().columns == ("-accuracy", "log latency_ms")


@pytest.mark.parametrize("spec, expected", [
    ("pareto", Pareto()),
    ("pareto:lat,energy", Pareto(costs=("latency_ms", "energy_mj"))),
    ("mnas:5", MNAS(target=5.0)),
    ("mnas:5,alpha=0,beta=-1", MNAS(target=5.0, alpha=0.0, beta=-1.0)),
    ("tunas:2.5,beta=-0.3", TuNAS(target=2.5, beta=-0.3)),
    ("max-acc:lat<=5", MaxAccuracy(constraints=(Constraint("latency_ms", 5.0),))),
    ("max-acc:energy<=2", MaxAccuracy(constraints=(Constraint("energy_mj", 2.0),))),
    ("params<=1.5M", MaxAccuracy(constraints=(Constraint("params", 1.5e6),))),
    ("mem<=64k,acc>=90", MaxAccuracy(constraints=(Constraint("peak_activation_bytes", 64e3),
                                                   Constraint("accuracy", 90.0, upper=False)))),
    ("wsum:acc=-1,lat=0.01", WeightedSum(weights=(("accuracy", -1.0), ("latency_ms", 0.01)))),
    ("wprod:acc=-1,macs=0.07", WeightedProduct(weights=(("accuracy", -1.0), ("macs", 0.07)))),
    ("mnas:5,params<=1M", MNAS(target=5.0, constraints=(Constraint("params", 1e6),))),
])
def test_parser_reads_every_form_and_spec_round_trips(spec, expected):
    obj = parse_objective(spec)
    assert obj == expected
    assert parse_objective(obj.spec) == obj


@pytest.mark.parametrize("spec, message", [
    ("frobnicate", "unknown objective 'frobnicate'"),
    ("", "empty objective"),
    ("mnas", "mnas takes one target T"),
    ("mnas:fast", "'fast' is not a number"),
    ("mnas:5,gamma=2", "unknown option 'gamma'"),
    ("tunas:0", "must be a positive number"),
    ("lat=5", "unknown objective"),
    ("lat<5", "unknown objective"),
    ("max-acc:5", "max-acc takes constraints"),
    ("wsum:acc", "wsum takes METRIC=WEIGHT"),
    ("pareto:lat,lat", "must be distinct"),
    ("max-acc:lat<=5,,params<=1M", "empty item"),
])
def test_parser_rejects_unknown_forms_clearly(spec, message):
    with pytest.raises(ObjectiveError, match=message) as info:
        parse_objective(spec)
    assert "\n" not in str(info.value)


def test_missing_and_nan_metrics_are_refused_with_names():
    with pytest.raises(ObjectiveError, match="needs metric 'energy_mj'.*accuracy, latency_ms, params"):
        parse_objective("max-acc:energy<=1")(METRICS)
    with pytest.raises(ObjectiveError, match="'latency_ms' is NaN at row 1"):
        MNAS(target=5.0)({"accuracy": ACC, "latency_ms": np.array([1.0, np.nan, 2.0, 3.0])})
    with pytest.raises(ObjectiveError, match="must be positive"):
        Pareto()({"accuracy": ACC, "latency_ms": np.array([1.0, 0.0, 2.0, 3.0])})


def test_infeasible_constraint_reports_the_smallest_achievable_value():
    obj = parse_objective("max-acc:lat<=1")
    assert np.isinf(obj(METRICS)).all()
    message = obj.infeasible_message(METRICS, "architecture of toy", exhaustive=True)
    assert message == ("no architecture of toy meets the constraint latency_ms <= 1: "
                       "the smallest latency_ms achievable is 2 ms")
    (unmet,) = obj.unmet_targets(METRICS)
    assert unmet.best == 2.0 and unmet.hard
    # '>=' constraints report the largest value instead
    assert "largest accuracy found is 95%" in parse_objective("acc>=99").infeasible_message(METRICS)
    # each constraint met alone, never together
    joint = parse_objective("lat<=2,params<=2e5")
    assert "at once" in joint.infeasible_message(METRICS)
    assert parse_objective("lat<=5").infeasible_message(METRICS) is None


def test_soft_target_below_every_latency_is_reported_but_still_ranks():
    obj = parse_objective("mnas:1")
    assert np.isfinite(obj(METRICS)).all()
    assert obj.infeasible_message(METRICS) is None
    (unmet,) = obj.unmet_targets(METRICS)
    assert not unmet.hard and unmet.best == 2.0 and "soft target" in unmet.message()
