"""Learned cost predictors (xgboost, mlp, gp): recovery of a known cost, files, errors, uncertainty.

Tiny settings keep every fit a few seconds on 2 cores; the measured-data comparison against
`lut` lives in the report, not here (minutes per device).
"""

import jax
import numpy as np
import pytest

from costs.metrics import prediction_metrics
from costs.predictors import PredictorError, get_predictor, load_predictor
from supernet.spaces import get_space

# Small enough to compile and fit in seconds, large enough to learn an additive cost.
FAST = {
    "xgboost": {"num_boost_round": 200, "params": {"eta": 0.3, "max_depth": 2}},
    "mlp": {"hidden": [16], "steps": 400, "batch_size": 0},
    "gp": {"steps": 20, "hyper_size": 100, "robust_rounds": 1},
}
N_TRAIN, N_TEST = 300, 500


def _additive_task(space, seed=0):
    """Archs and a cost that is a random positive table summed per decision, plus a fixed part."""
    rng = np.random.default_rng(seed)
    table = rng.uniform(0.1, 1.0, size=(space.num_decisions, int(max(space.cardinalities))))
    archs = np.stack([rng.integers(0, c, N_TRAIN + N_TEST) for c in space.cardinalities], 1).astype(np.int32)
    cost = 2.0 + table[np.arange(space.num_decisions), archs].sum(1)
    return archs[:N_TRAIN], cost[:N_TRAIN], archs[N_TRAIN:], cost[N_TRAIN:]


@pytest.fixture(scope="module")
def nb201():
    return get_space("nasbench201")


@pytest.fixture(scope="module")
def fitted(nb201):
    """Each model fitted once on the synthetic additive cost (shared by the tests below)."""
    x, y, _, _ = _additive_task(nb201)
    return {name: get_predictor(name, nb201, **opts).fit(x, y) for name, opts in FAST.items()}


# Held-out accuracy each model reaches on the synthetic additive cost (costs 2.6 .. 8.0).
# xgboost's trees approximate a sum of 6 terms by splits, so it gets the loosest bound.
TOLERANCE = {"xgboost": (0.9, 0.03), "mlp": (0.95, 0.01), "gp": (0.99, 0.005)}


@pytest.mark.parametrize("name", list(FAST))
def test_recovers_additive_cost(name, nb201, fitted):
    _, _, x_test, y_test = _additive_task(nb201)
    m = prediction_metrics(y_test, fitted[name].predict(x_test))
    tau_min, mape_max = TOLERANCE[name]
    assert m.kendall_tau > tau_min and m.mape < mape_max, (name, m)


@pytest.mark.parametrize("name", list(FAST))
def test_save_load_round_trip(name, nb201, fitted, tmp_path):
    _, _, x_test, _ = _additive_task(nb201)
    path = fitted[name].save(tmp_path / f"{name}.npz")
    loaded = load_predictor(path, nb201)
    assert type(loaded) is type(fitted[name]) and loaded.options == fitted[name].options
    np.testing.assert_array_equal(loaded.predict(x_test), fitted[name].predict(x_test))
    if name == "gp":  # the loaded GP refactors K_y from the saved noise: same std to rounding
        np.testing.assert_allclose(loaded.predict_std(x_test[:50]), fitted[name].predict_std(x_test[:50]),
                                   rtol=1e-6, atol=1e-9)
    with np.load(path, allow_pickle=False) as npz:  # plain arrays only: loading runs no code
        assert all(npz[k].dtype != object for k in npz.files)


@pytest.mark.parametrize("name", ["xgboost", "mlp"])
def test_fit_is_deterministic(name, nb201):
    x, y, x_test, _ = _additive_task(nb201, seed=1)
    a = get_predictor(name, nb201, **FAST[name], seed=3).fit(x, y).predict(x_test)
    b = get_predictor(name, nb201, **FAST[name], seed=3).fit(x, y).predict(x_test)
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("name", ["xgboost", "mlp"])
def test_load_into_other_configuration_is_refused(name, tmp_path):
    # cifar and cifar100 have the same 22 decisions: only the fingerprint tells them apart,
    # and a predictor fitted on one would silently predict the other's latency.
    cifar, cifar100 = get_space("fbnet", preset="cifar"), get_space("fbnet", preset="cifar100")
    archs = np.asarray(cifar.sample(jax.random.key(0), 40))
    y = 1.0 + archs.sum(1).astype(np.float64)
    opts = {**FAST[name], "steps": 5} if name == "mlp" else {**FAST[name], "num_boost_round": 5}
    path = get_predictor(name, cifar, **opts).fit(archs, y).save(tmp_path / "p.npz")
    with pytest.raises(PredictorError, match="another configuration"):
        load_predictor(path, cifar100)


@pytest.mark.parametrize("name", list(FAST))
def test_bad_inputs_name_the_problem(name, nb201, fitted):
    fresh = get_predictor(name, nb201, **FAST[name])
    x, y, _, _ = _additive_task(nb201)
    with pytest.raises(PredictorError, match="before fit"):
        fresh.predict(x[:2])
    bad_y = y.copy()
    bad_y[7] = np.nan
    with pytest.raises(PredictorError, match=r"y\[7\] is nan"):
        fresh.fit(x, bad_y)
    with pytest.raises(PredictorError, match="shape"):
        fitted[name].predict(x[:, :5])  # nasbench201 has 6 decisions
    with pytest.raises(PredictorError, match=name):
        fitted[name].predict(np.full((2, 6), 9))  # choice out of range
    with pytest.raises(PredictorError, match="features"):
        get_predictor(name, nb201, features="pixels")


def test_log_target_needs_positive_costs(nb201):
    x, y, _, _ = _additive_task(nb201)
    y = y - 5.0  # some costs now <= 0
    with pytest.raises(PredictorError, match="needs costs > 0"):
        get_predictor("xgboost", nb201, log_target=True).fit(x, y)


def test_gp_std_positive_and_larger_far_from_data(nb201):
    # Train only on cells whose every edge is op 0, 1 or 2; cells of ops 3 and 4 lie far away.
    x, y, _, _ = _additive_task(nb201, seed=2)
    near = np.all(x < 3, axis=1)
    gp = get_predictor("gp", nb201, **FAST["gp"]).fit(x[near], y[near])
    far = np.full((4, 6), 3, np.int32)
    far[2:] = 4
    std_train, std_far = gp.predict_std(x[near][:20]), gp.predict_std(far)
    assert np.all(std_train > 0) and np.all(std_far > 0)
    assert std_far.min() > 3 * std_train.max(), (std_far, std_train)
    with pytest.raises(PredictorError, match="before fit"):
        get_predictor("gp", nb201).predict_std(x[:2])


def test_mlp_predict_compiles_once(nb201, fitted):
    from costs.predictors import mlp

    model = fitted["mlp"]
    model.predict(np.zeros((3, 6), np.int32))
    before = mlp._forward._cache_size()
    model.predict(np.zeros((10_000, 6), np.int32))  # two chunks, another batch size
    assert mlp._forward._cache_size() == before
