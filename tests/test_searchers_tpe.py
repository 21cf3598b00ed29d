"""TPE / MOTPE: its densities by hand, and synthetic problems with known answers (no driver)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from searchers import tpe
from supernet.spaces import SPACE_NAMES, get_space
from tests.searcher_checks import check_finds_a_hidden_target, check_fixed_shapes_one_compile_and_purity, needle_front
from tests.test_searchers_evo import NB201, cost_quality, search


def test_parzen_densities_by_hand():
    # Two decisions with 2 and 3 choices; rows 0 and 1 counted, row 2 not; prior weight 1.
    archs = jnp.array([[0, 2], [0, 1], [1, 0]], jnp.int32)
    log_p = tpe.parzen_log_densities(archs, jnp.array([1.0, 1.0, 0.0]), np.array([2, 3]), 1.0)
    # decision 0: counts (2, 0) + 1/2 each, over 2 + 1;  decision 1: (0, 1, 1) + 1/3 each, over 3.
    expected = np.array([[2.5 / 3, 0.5 / 3, 0.0], [(1 / 3) / 3, (4 / 3) / 3, (4 / 3) / 3]])
    np.testing.assert_allclose(np.exp(np.asarray(log_p)), expected, rtol=1e-6)
    assert np.asarray(log_p)[0, 2] == -np.inf  # decision 0 has no third choice


def test_kernel_mixture_by_hand_and_its_sampler_draws_from_it():
    # Two decisions with 2 and 3 choices; centre 0 counted, centre 1 not; prior weight 1.
    # k_0 at a hit: (1 + 1/2) / 2 = 3/4 and (1 + 1/3) / 2 = 2/3; at a miss: 1/4 and 1/6.
    # The prior adds 1 * (1/2 * 1/3); the total weight is 1 + 1.
    centres = jnp.array([[0, 2], [1, 0]], jnp.int32)
    weight = jnp.array([1.0, 0.0])
    points = jnp.array([[a, b] for a in range(2) for b in range(3)], jnp.int32)
    log_p = tpe.kernel_log_mixture(points, centres, weight, np.array([2, 3]), 1.0)
    k0 = lambda x: (0.75 if x[0] == 0 else 0.25) * (2 / 3 if x[1] == 2 else 1 / 6)
    expected = np.array([(k0(x) + 1 / 6) / 2 for x in np.asarray(points)])
    np.testing.assert_allclose(np.exp(np.asarray(log_p)), expected, rtol=1e-6)
    assert abs(expected.sum() - 1.0) < 1e-12 and expected[2] == max(expected)  # [0, 2]: the centre

    class Tiny:  # the sampler only needs `sample`
        cardinalities = np.array([2, 3])

        def sample(self, key, n):
            return jnp.stack([jax.random.randint(k, (n,), 0, c) for k, c in
                              zip(jax.random.split(key, 2), self.cardinalities)], axis=1)

    draws = np.asarray(tpe.kernel_sample(jax.random.key(0), centres, weight, Tiny(), 1.0, 60_000))
    freq = np.array([np.mean((draws[:, 0] == x[0]) & (draws[:, 1] == x[1])) for x in np.asarray(points)])
    np.testing.assert_allclose(freq, expected, atol=0.006)  # 4 standard errors at 60k draws


def test_tpe_finds_a_hidden_target():
    check_finds_a_hidden_target(tpe.make(NB201))


@pytest.mark.parametrize("density", tpe.DENSITIES)
def test_motpe_finds_a_needle_front_that_random_search_misses(density):
    # Every density of the good rows (their per-decision frequencies, mutations of them, both)
    # leads TPE to the needle end of the front, which random search rarely reaches.
    ratio, random, found = needle_front(tpe.make(NB201, num_objectives=2, batch_size=2, density=density), rounds=100)
    assert ratio > max(0.85, random + 0.1), (ratio, random)
    assert found >= 4


def test_no_proposal_repeats_and_infeasible_rows_count_as_bad():
    # Op 4 on the first edge is infeasible: after the initial design, the bad density holds
    # those rows, so proposals move away from op 4 there; nothing is ever proposed twice.
    searcher = tpe.make(NB201, num_objectives=2, batch_size=4)
    state, asked = search(searcher, lambda a: cost_quality(a, infeasible_op0=4), seed=1, rounds=50)
    rows = [tuple(a) for b in asked for a in b]
    assert len(set(rows)) == len(rows) == 200
    later = np.concatenate(asked[10:])
    assert (later[:, 0] == 4).mean() < 0.1
    assert int(state.count) == 200 and not np.isfinite(np.asarray(state.objectives)[:200][np.array(rows)[:, 0] == 4]).any()


def test_tell_checks_shapes_and_keeps_a_repeat_once():
    searcher = tpe.make(NB201, num_objectives=2)
    state = searcher.init(jax.random.key(0))
    archs = jnp.array([[1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1]], jnp.int32)
    state = searcher.tell(state, archs, jnp.array([[1.0, 2.0], [3.0, 4.0]]))
    assert int(state.count) == 1 and np.asarray(state.objectives)[0].tolist() == [1.0, 2.0]
    with pytest.raises(ValueError, match="objectives"):
        searcher.tell(state, archs, jnp.zeros((2, 3)))
    with pytest.raises(ValueError, match="gamma"):
        tpe.make(NB201, gamma=1.0)
    with pytest.raises(ValueError, match="unknown density 'kde'; densities: mixture"):
        tpe.make(NB201, density="kde")


@pytest.mark.parametrize("space_name", SPACE_NAMES)
def test_fixed_shape_state_valid_archs_one_compile_and_pure(space_name):
    space = get_space(space_name)
    check_fixed_shapes_one_compile_and_purity(
        tpe.make(space, num_objectives=2, batch_size=3, num_initial=4, capacity=64), space)
