"""Checks shared by the model-based searchers' tests (TPE, Thompson sampling)."""

import jax
import jax.numpy as jnp
import numpy as np

from searchers.pareto import hypervolume
from tests.test_searchers_evo import COST, NB201, TARGET, front_set, hamming, search, shapes


def needle_front(searcher, rounds: int) -> tuple[float, float, int]:
    """Search (distance to a hidden cell, cost) on NAS-Bench-201's space: the accurate end of
    the front is a handful of the 15,625 cells, as on the real table. Returns the searcher's
    hypervolume ratio, that of 200 random cells, and how many true-front cells it found."""
    evaluate = lambda a: jnp.concatenate([hamming(a), COST[a].sum(1, keepdims=True)], axis=1)
    true = front_set(evaluate(jnp.asarray(NB201.enumerate())))
    _, asked = search(searcher, evaluate, seed=0, rounds=rounds)
    told = np.asarray(evaluate(jnp.asarray(np.concatenate(asked))))
    ref = np.array([7.0, 25.0])
    whole = hypervolume(np.array(sorted(true)), ref)
    random = hypervolume(np.asarray(evaluate(NB201.sample(jax.random.key(0), 200))), ref) / whole
    return hypervolume(told, ref) / whole, random, len(front_set(told) & true)


def check_fixed_shapes_one_compile_and_purity(searcher, space) -> None:
    """Four rounds on a tiny random LUT: the state keeps its shapes, proposals are valid and
    new, `ask`/`tell` compile once, and a search is a function of its seed."""
    table = jax.random.uniform(jax.random.key(7), (space.num_decisions, int(space.cardinalities.max()), 2))
    evaluate = lambda a: table[jnp.arange(space.num_decisions), a].sum(1)
    before = shapes(searcher.init(jax.random.key(0)))
    state, asked = search(searcher, evaluate, seed=1, rounds=4)
    assert shapes(state) == before and all(isinstance(x, jax.Array) for x in jax.tree.leaves(state))
    asked = np.concatenate(asked)
    assert asked.dtype == np.int32 and ((asked >= 0) & (asked < space.cardinalities)).all()
    assert len({tuple(a) for a in asked}) == len(asked)
    assert searcher.ask._cache_size() == 1 and searcher.tell._cache_size() == 1
    _, again = search(searcher, evaluate, seed=1, rounds=4)
    _, other = search(searcher, evaluate, seed=2, rounds=4)
    np.testing.assert_array_equal(asked, np.concatenate(again))
    assert not np.array_equal(asked, np.concatenate(other))


def check_finds_a_hidden_target(searcher, rounds: int = 150) -> None:
    """Minimize the Hamming distance to a hidden cell, one proposal per round: the searcher
    reaches it (distance 0) in fewer than `rounds` rounds."""
    told = []
    evaluate = lambda a: told.append(np.asarray(hamming(a))) or jnp.asarray(told[-1])
    _, asked = search(searcher, evaluate, seed=0, rounds=rounds, stop=lambda s: min(told).min() == 0)
    best = np.concatenate(asked)[np.argmin(np.concatenate(told)[:, 0])]
    np.testing.assert_array_equal(best, TARGET)
    assert len(asked) < rounds and all(a.shape == (1, 6) for a in asked)
