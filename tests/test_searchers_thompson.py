"""Thompson sampling with a Bayesian linear model: each piece against numpy, synthetic problems."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.stats import norm

from searchers import thompson
from searchers.pareto import hypervolume
from supernet.spaces import SPACE_NAMES, get_space
from tests.searcher_checks import check_finds_a_hidden_target, check_fixed_shapes_one_compile_and_purity, needle_front
from tests.test_searchers_evo import COST, NB201, cost_quality, search


def test_feature_map_sets_one_choice_and_one_pair_per_decision_and_pair():
    cards = [2, 3, 2]
    fmap = thompson.FeatureMap(cards, pairs=True)
    assert fmap.size == thompson.FeatureMap.size_of(cards, True) == 1 + 7 + (6 + 4 + 6)
    archs = np.array(list(itertools.product(range(2), range(3), range(2))), np.int32)
    phi = np.asarray(fmap(jnp.asarray(archs)))
    # By hand: the constant, then decision i's choice c, then pair (i, k)'s choices (c, c').
    names = ["1"] + [f"{i}={c}" for i, k in enumerate(cards) for c in range(k)]
    names += [f"{i}={c},{k}={e}" for i, k in itertools.combinations(range(3), 2)
              for c in range(cards[i]) for e in range(cards[k])]
    for a, row in zip(archs, phi):
        on = {"1"} | {f"{i}={c}" for i, c in enumerate(a)}
        on |= {f"{i}={a[i]},{k}={a[k]}" for i, k in itertools.combinations(range(3), 2)}
        assert {names[j] for j in np.flatnonzero(row)} == on and row.sum() == len(on) == 7
    assert len({tuple(r) for r in phi}) == len(archs)  # distinct architectures, distinct features
    assert thompson.FeatureMap(cards, pairs=False).size == 8


def test_normal_scores_are_rank_based_and_infeasible_rows_get_the_worst():
    objectives = jnp.array([[3.0, 0.1], [1.0, 0.3], [jnp.inf, jnp.inf], [2.0, 0.2], [9.0, 9.0]])
    filled = jnp.array([True, True, True, True, False])
    scores = np.asarray(thompson.normal_scores(objectives, filled))
    ranks = np.array([[2, 0], [0, 2], [2, 2], [1, 1]])  # the infeasible row: the worst feasible rank
    np.testing.assert_allclose(scores[:4], norm.ppf((ranks + 0.5) / 3), rtol=1e-5)
    np.testing.assert_array_equal(scores[4], [0.0, 0.0])


def test_linear_posterior_is_ridge_regression_and_draws_have_its_covariance():
    rng = np.random.default_rng(0)
    phi = rng.normal(size=(12, 3)).astype(np.float32)
    y = (phi @ np.array([1.0, -2.0, 0.5]) + 0.3 * rng.normal(size=12)).astype(np.float32)[:, None]
    filled = np.arange(12) < 10  # the last two rows are padding
    post = thompson.linear_posterior(jnp.asarray(phi), jnp.asarray(phi[:10].T @ phi[:10]), jnp.asarray(y),
                                     jnp.asarray(filled), alpha=2.0, min_noise=1e-3)
    a = phi[:10].T @ phi[:10] + 2.0 * np.eye(3)
    mean = np.linalg.solve(a, phi[:10].T @ y[:10])
    noise = np.sum((y[:10] - phi[:10] @ mean) ** 2) / 9
    np.testing.assert_allclose(np.asarray(post.mean), mean, rtol=1e-4)
    np.testing.assert_allclose(np.asarray(post.noise), [noise], rtol=1e-4)
    draws = np.asarray(jax.vmap(lambda k: thompson.posterior_draw(k, post))(jax.random.split(jax.random.key(0), 20000)))
    cov = noise * np.linalg.inv(a)
    np.testing.assert_allclose(draws[:, :, 0].mean(0), mean[:, 0], atol=4 * np.sqrt(np.diag(cov) / 20000).max())
    np.testing.assert_allclose(np.cov(draws[:, :, 0].T), cov, atol=0.05 * np.abs(cov).max())


def test_leave_one_out_error_equals_refitting_without_each_row():
    fmap = thompson.FeatureMap([3, 2, 2], pairs=True)
    archs = jnp.asarray(np.random.default_rng(2).integers(0, 2, size=(9, 3)), jnp.int32)
    phi = np.asarray(fmap(archs), np.float64)
    y = np.random.default_rng(3).normal(size=(9, 2)).astype(np.float32)
    filled = np.arange(9) < 7  # the last two rows are padding
    post = thompson.linear_posterior(jnp.asarray(phi, jnp.float32), jnp.asarray(phi[:7].T @ phi[:7], jnp.float32),
                                     jnp.asarray(y), jnp.asarray(filled), alpha=0.5, min_noise=1e-3)
    error = np.asarray(thompson.leave_one_out_error(fmap.columns(archs), post, jnp.asarray(y), jnp.asarray(filled)))
    expected = np.zeros(2)
    for i in range(7):
        rest = [k for k in range(7) if k != i]
        w = np.linalg.solve(phi[rest].T @ phi[rest] + 0.5 * np.eye(phi.shape[1]), phi[rest].T @ y[rest])
        expected += (y[i] - phi[i] @ w) ** 2
    np.testing.assert_allclose(error, expected, rtol=1e-3)


def test_each_objective_is_fitted_in_the_view_that_predicts_it():
    # Objective 0 depends on the functional form only (like accuracy), objective 1 on the cell as
    # built (like a latency that pays for idle ops); cross-validation tells the views apart.
    rng = np.random.default_rng(3)
    archs = jnp.asarray(NB201.sample(jax.random.key(3), 200), jnp.int32)
    fmap = thompson.FeatureMap(NB201.cardinalities, True)
    views = jnp.stack([archs, jnp.asarray(NB201.functional_form(archs), jnp.int32)])
    phis = jax.vmap(fmap)(views)
    y = jnp.stack([phis[1] @ rng.normal(size=406), phis[0] @ rng.normal(size=406)], axis=1).astype(jnp.float32)
    grams = jnp.einsum("vnp,vnq->vpq", phis, phis)
    filled = jnp.ones(200, bool)
    _, view_of = thompson.fit_views(fmap, views, grams, y, filled, filled, alpha=1.0, min_noise=1e-3)
    assert np.asarray(view_of).tolist() == [1, 0]
    # One infeasible row: a constraint on a cost is mixed in, so both stay in the view as built.
    _, view_of = thompson.fit_views(fmap, views, grams, y, filled, filled.at[7].set(False), alpha=1.0, min_noise=1e-3)
    assert np.asarray(view_of).tolist() == [0, 0]


def test_hypervolume_improvement_matches_the_difference_of_hypervolumes():
    rng = np.random.default_rng(1)
    ref = np.array([1.1, 1.2], np.float32)
    for _ in range(20):
        told = rng.random((9, 2)).astype(np.float32)
        on_front = np.asarray(front_mask(told)) & (rng.random(9) < 0.9)  # any subset of the front
        points = rng.random((6, 2)).astype(np.float32) * 1.3
        gain = np.asarray(thompson.hypervolume_improvement_2d(jnp.asarray(told), jnp.asarray(on_front),
                                                              jnp.asarray(points), jnp.asarray(ref)))
        base = hypervolume(told[on_front], ref) if on_front.any() else 0.0
        expected = [(hypervolume(np.vstack([told[on_front], p[None]]), ref) if (p < ref).all() else base) - base
                    for p in points]
        np.testing.assert_allclose(gain, expected, atol=1e-5)


def front_mask(points):
    from searchers.pareto import non_dominated_mask
    return non_dominated_mask(jnp.asarray(points))


def test_thompson_finds_a_hidden_target():
    check_finds_a_hidden_target(thompson.make(NB201, pool_size=256))


def test_thompson_finds_a_needle_front_that_random_search_misses():
    # The linear models learn both objectives from the 10 uniform draws on.
    ratio, random, found = needle_front(thompson.make(NB201, num_objectives=2, batch_size=2, pool_size=512), rounds=100)
    assert ratio > max(0.9, random + 0.1), (ratio, random)
    assert found >= 6


def test_three_objectives_use_random_scalarizations_and_infeasible_rows_are_avoided():
    # Op 4 on the first edge is infeasible; proposals learn to avoid it; nothing repeats.
    def evaluate(a):
        two = cost_quality(a, infeasible_op0=4)
        return jnp.concatenate([two, jnp.where(jnp.isfinite(two[:, :1]), COST[a][:, :2].sum(1, keepdims=True), jnp.inf)],
                               axis=1)
    searcher = thompson.make(NB201, num_objectives=3, batch_size=4, pool_size=256)
    state, asked = search(searcher, evaluate, seed=1, rounds=40)
    rows = [tuple(a) for b in asked for a in b]
    assert len(set(rows)) == len(rows) == 160
    assert (np.concatenate(asked[10:])[:, 0] == 4).mean() < 0.1


def test_tell_keeps_a_repeat_once_and_the_gram_matrix_of_what_it_kept():
    searcher = thompson.make(NB201, num_objectives=2, capacity=3)
    state = searcher.init(jax.random.key(0))
    archs = jnp.array([[1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1], [0, 1, 2, 3, 4, 0]], jnp.int32)
    state = searcher.tell(state, archs, jnp.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]))
    state = searcher.tell(state, jnp.array([[2, 2, 2, 2, 2, 2], [3, 3, 3, 3, 3, 3]], jnp.int32), jnp.ones((2, 2)))
    kept = np.asarray(state.archive.archs)
    assert int(state.archive.count) == 3 and kept[:3].tolist() == [[1] * 6, [0, 1, 2, 3, 4, 0], [2] * 6]
    fmap = thompson.FeatureMap(NB201.cardinalities, True)
    phi = np.asarray(fmap(jnp.asarray(kept)))
    np.testing.assert_allclose(np.asarray(state.gram[0]), phi.T @ phi)  # capacity 3: [3]*6 was dropped
    # The functional view: in [0, 1, 2, 3, 4, 0] node 1 gets no input and node 2 reaches no output,
    # so only edge 3<-0 (conv 3x3) is live.
    functional = kept.copy()
    functional[1] = [0, 0, 0, 3, 0, 0]
    phi = np.asarray(fmap(jnp.asarray(functional)))
    np.testing.assert_allclose(np.asarray(state.gram[1]), phi.T @ phi)
    with pytest.raises(ValueError, match="thompson.tell needs archs"):
        searcher.tell(state, archs, jnp.zeros((3, 3)))
    with pytest.raises(ValueError, match="pool_size >= 2"):
        thompson.make(NB201, pool_size=1)
    with pytest.raises(ValueError, match="mutation_share must be in"):
        thompson.make(NB201, mutation_share=1.0)
    with pytest.raises(ValueError, match="the pool's 2 uniform rows are fewer than batch_size 4"):
        thompson.make(NB201, pool_size=8, mutation_share=0.75, batch_size=4)


def test_pair_features_are_dropped_past_max_features():
    fbnet = get_space("fbnet")
    state = thompson.make(fbnet).init(jax.random.key(0))
    assert state.gram.shape == (1,) + (1 + 22 * 9,) * 2  # FBNet's 18,711 pairs exceed the default 4096
    # NAS-Bench-201 has a functional form finer than its canonical one: two views.
    assert thompson.make(NB201).init(jax.random.key(0)).gram.shape == (2, 406, 406)
    assert thompson.make(NB201, functional_view=False).init(jax.random.key(0)).gram.shape == (1, 406, 406)


@pytest.mark.parametrize("space_name", SPACE_NAMES)
def test_fixed_shape_state_valid_archs_one_compile_and_pure(space_name):
    space = get_space(space_name)
    check_fixed_shapes_one_compile_and_purity(
        thompson.make(space, num_objectives=2, batch_size=3, num_initial=4, capacity=64, pool_size=64), space)
