"""Evolution, NSGA-II and local search on synthetic problems with known answers.

Each test runs its own ask -> evaluate -> tell loop (no driver), so a failure points at the
searcher. The problems live on the NAS-Bench-201 space (6 decisions x 5 ops, 15,625 cells),
small enough to enumerate for the true optimum and the true Pareto front.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from searchers import evolution, local, nsga2
from searchers.pareto import hypervolume, non_dominated_mask
from supernet.spaces import SPACE_NAMES, get_space

NB201 = get_space("nasbench201")
TARGET = jnp.array([1, 2, 3, 4, 0, 1], jnp.int32)


def hamming(archs, target=TARGET):
    """Objective [n, 1]: decisions differing from a hidden target (optimum 0 at the target)."""
    return jnp.sum(archs != target, axis=1, dtype=jnp.float32)[:, None]


def search(searcher, evaluate, seed, rounds, stop=None):
    """ask -> evaluate -> tell for `rounds` rounds; returns the final state and every batch asked."""
    keys = jax.random.split(jax.random.key(seed), rounds + 1)
    state = searcher.init(keys[0])
    asked = []
    for r in range(rounds):
        archs, state = searcher.ask(state, keys[r + 1])
        asked.append(np.asarray(archs))
        state = searcher.tell(state, archs, evaluate(archs))
        if stop is not None and stop(state):
            break
    return state, asked


def shapes(state):
    return jax.tree.map(lambda x: (x.shape, x.dtype), state)


# ---------------------------------------------------------------------------- scalar optima
@pytest.mark.parametrize("make,options,rounds", [
    (evolution.make, dict(population=20, sample_size=5, batch_size=10), 80),
    (local.make, dict(), 20),            # the whole neighbourhood per ask
    (local.make, dict(batch_size=5), 60),  # chunks of the neighbourhood
    (local.make, dict(batch_size=1), 150),
], ids=["evolution", "local-full", "local-chunk5", "local-chunk1"])
def test_scalar_searchers_find_a_hidden_target(make, options, rounds):
    searcher = make(NB201, **options)
    found = lambda s: bool(s.best_objective == 0)
    state, asked = search(searcher, hamming, seed=0, rounds=rounds, stop=found)
    np.testing.assert_array_equal(state.best, TARGET)
    assert float(state.best_objective) == 0.0
    assert all(a.shape == (searcher.batch_size, 6) for a in asked)


def test_local_search_restarts_at_local_optima_and_keeps_the_best():
    # Two basins: a local optimum at `near` (value 0) and the global one at `far` (-0.5). Moving
    # towards the closer of the two always improves, so these are the only local optima.
    near, far = jnp.array([0, 0, 0, 0, 0, 0]), jnp.array([2, 2, 2, 2, 2, 2])

    def two_basins(a):
        return jnp.minimum(hamming(a, near), hamming(a, far) - 0.5)

    searcher = local.make(NB201)
    told = []
    state, asked = search(searcher, lambda a: told.append(two_basins(a)) or told[-1], seed=3, rounds=80,
                          stop=lambda s: int(s.restarts) >= 6)
    assert int(state.restarts) >= 6  # every climb ends in a local optimum, then restarts
    np.testing.assert_array_equal(state.best, far)
    assert float(state.best_objective) == pytest.approx(-0.5) == float(np.min(np.concatenate(told)))


def test_local_search_asks_the_start_then_its_single_decision_neighbours():
    searcher = local.make(NB201)
    assert searcher.batch_size == 24  # sum(card - 1) = 6 * 4
    state = searcher.init(jax.random.key(0))
    archs, state = searcher.ask(state, jax.random.key(1))
    archs = np.asarray(archs)
    np.testing.assert_array_equal(archs[0], state.current)  # unevaluated start in row 0
    dist = (archs[1:] != archs[0]).sum(1)
    assert (dist == 1).all() and len({tuple(a) for a in archs[1:]}) == 23


# ---------------------------------------------------------------------------- Pareto front
COST = jnp.array([0.0, 1.0, 2.0, 3.0, 4.0])
QUALITY = jnp.array([0.0, 3.0, 4.0, 4.0, 5.0])  # op 3 costs more than op 2 for the same quality


def cost_quality(archs, infeasible_op0=None):
    """Two minimized objectives [n, 2]: total cost and -total quality (a latency-accuracy toy)."""
    objs = jnp.stack([COST[archs].sum(1), -QUALITY[archs].sum(1)], axis=1)
    if infeasible_op0 is not None:  # a hard constraint: +inf in every column
        objs = jnp.where((archs[:, 0] == infeasible_op0)[:, None], jnp.inf, objs)
    return objs


def front_set(objs):
    """The distinct finite objective vectors on the front of `objs`."""
    objs = np.unique(np.asarray(objs), axis=0)
    return {tuple(map(float, r)) for r in objs[np.asarray(non_dominated_mask(objs))] if np.isfinite(r).all()}


@pytest.mark.parametrize("infeasible_op0", [None, 4], ids=["unconstrained", "infeasible-region"])
def test_nsga2_finds_the_whole_true_front(infeasible_op0):
    evaluate = lambda a: cost_quality(a, infeasible_op0)
    true = front_set(evaluate(jnp.asarray(NB201.enumerate())))  # brute force over 15,625 cells
    assert len(true) >= 18
    searcher = nsga2.make(NB201, num_objectives=2, population=40)
    # The population's rank-0 members are its front (no re-sorting, no per-size compile).
    found = lambda s: {tuple(map(float, r)) for r in np.asarray(s.objectives)[np.asarray(s.rank) == 0]} == true
    state, asked = search(searcher, evaluate, seed=0, rounds=100, stop=found)
    assert found(state), sorted(true - front_set(state.objectives))
    assert front_set(state.objectives) == true
    ref = np.array([25.0, 1.0])
    assert hypervolume(state.objectives, ref) == pytest.approx(hypervolume(list(true), ref))
    assert bool(state.initialized) and np.isfinite(np.asarray(state.objectives)).all()
    # It got there with a fraction of the space (the driver would not pay for repeats).
    assert len({tuple(a) for b in asked for a in b}) < 0.3 * 15625


def test_nsga2_selection_is_elitist_and_drops_copies():
    searcher = nsga2.make(NB201, num_objectives=2, population=4, batch_size=4)
    state = searcher.init(jax.random.key(0))
    parents = jnp.array([[0, 0, 0, 0, 0, 1], [0, 0, 0, 0, 1, 0], [0, 0, 0, 1, 0, 0], [0, 0, 1, 0, 0, 0]])
    state = searcher.tell(state, parents, jnp.array([[1.0, 4], [2, 3], [3, 2], [4, 1]]))
    assert bool(state.initialized) and (np.asarray(state.rank) == 0).all()
    # Offspring: one dominates parent 0, one is a copy of parent 3, two are dominated.
    kids = jnp.array([[1, 0, 0, 0, 0, 0], [0, 0, 1, 0, 0, 0], [2, 0, 0, 0, 0, 0], [3, 0, 0, 0, 0, 0]])
    state = searcher.tell(state, kids, jnp.array([[0.5, 3.5], [4, 1], [9, 9], [10, 10]]))
    kept = {tuple(map(int, a)) for a in np.asarray(state.population)}
    assert kept == {(1, 0, 0, 0, 0, 0), (0, 0, 0, 0, 1, 0), (0, 0, 0, 1, 0, 0), (0, 0, 1, 0, 0, 0)}
    assert (np.asarray(state.rank) == 0).all()


def test_nsga2_fills_its_population_over_several_small_batches():
    searcher = nsga2.make(NB201, num_objectives=2, population=30, batch_size=8)
    state = searcher.init(jax.random.key(0))
    for r in range(4):  # 32 >= 30 told: only then do offspring replace random samples
        assert not bool(state.initialized)
        archs, state = searcher.ask(state, jax.random.key(r))
        state = searcher.tell(state, archs, cost_quality(archs))
    assert bool(state.initialized)


# ---------------------------------------------------------------------------- constraints
def test_constrained_evolution_only_proposes_feasible_archs():
    # 1 cell in 25 is feasible: op 2 on edge 0 and op 3 on edge 1 (a stand-in for LUT latency <= T).
    feasible = lambda a: (a[:, 0] == 2) & (a[:, 1] == 3)
    zeros = jnp.zeros(6, jnp.int32)
    searcher = evolution.make(NB201, population=20, sample_size=5, batch_size=10, feasible=feasible, max_tries=400)
    state, asked = search(searcher, lambda a: hamming(a, zeros), seed=0, rounds=40,
                          stop=lambda s: bool(s.best_objective == 2))
    asked = np.concatenate(asked)
    assert np.asarray(feasible(asked)).all() and int(state.fallbacks) == 0
    # The constrained optimum: the target everywhere the constraint allows.
    np.testing.assert_array_equal(state.best, [2, 3, 0, 0, 0, 0])


def test_constrained_evolution_falls_back_visibly_when_nothing_is_feasible():
    never = lambda a: jnp.zeros(a.shape[0], bool)
    searcher = evolution.make(NB201, population=10, sample_size=3, batch_size=10, feasible=never, max_tries=5)
    state = searcher.init(jax.random.key(0))
    archs, state = searcher.ask(state, jax.random.key(1))  # filling: the samples themselves
    assert int(state.fallbacks) == 10
    state = searcher.tell(state, archs, hamming(archs))
    kids, state = searcher.ask(state, jax.random.key(2))  # evolving: the (evaluated) parents
    assert int(state.fallbacks) == 20
    members = {tuple(a) for a in np.asarray(state.population)}
    assert all(tuple(k) in members for k in np.asarray(kids))


@pytest.mark.parametrize("avoid_copies", [True, False])
def test_evolution_redraws_children_that_copy_a_live_member(avoid_copies):
    # The queue holds a cell and all 24 of its neighbours; the cell is the best, so most
    # tournaments pick it and every point mutation of it is a neighbour already alive.
    center = np.array([1, 2, 3, 4, 0, 1], np.int32)
    decision, shift = local.neighbour_table(NB201.cardinalities)
    hood = np.repeat(center[None], 24, 0)
    hood[np.arange(24), decision] = (center[decision] + shift) % 5
    members = jnp.asarray(np.concatenate([center[None], hood]))
    searcher = evolution.make(NB201, population=25, sample_size=25, batch_size=20, avoid_copies=avoid_copies)
    state = searcher.tell(searcher.init(jax.random.key(0)), members, hamming(members, jnp.asarray(center)))
    kids, state = searcher.ask(state, jax.random.key(1))
    alive = {tuple(a) for a in np.asarray(members)}
    copies = sum(tuple(k) in alive for k in np.asarray(kids))
    assert (copies == 0) if avoid_copies else (copies >= 5)


def test_evolution_ages_out_the_oldest_but_remembers_the_best():
    searcher = evolution.make(NB201, population=4, sample_size=2, batch_size=2)
    state = searcher.init(jax.random.key(0))
    batches = [jnp.array([[i, 0, 0, 0, 0, 0], [i, 1, 0, 0, 0, 0]]) for i in range(4)]
    for i, archs in enumerate(batches):  # the first batch holds the best, then ages out
        state = searcher.tell(state, archs, jnp.array([[float(i)], [i + 0.5]]))
    alive = {tuple(map(int, a)) for a in np.asarray(state.population)}
    assert alive == {tuple(map(int, a)) for b in batches[2:] for a in b}
    np.testing.assert_array_equal(state.best, [0, 0, 0, 0, 0, 0])
    assert float(state.best_objective) == 0.0 and int(state.size) == 4


def test_nsga2_checks_the_told_objectives():
    searcher = nsga2.make(NB201, num_objectives=3)
    archs, state = searcher.ask(searcher.init(jax.random.key(0)), jax.random.key(1))
    with pytest.raises(ValueError, match="objectives"):
        searcher.tell(state, archs, jnp.zeros((archs.shape[0], 2)))


# ---------------------------------------------------------------------------- never a repeat
@pytest.mark.parametrize("name", ["evolution", "nsga2", "local-pareto"])
def test_no_proposal_repeats_an_evaluated_architecture(name):
    # A tiny 2-decision space region would exhaust fast; on NB201 a converging search keeps
    # proposing new cells: 30 rounds, every proposal distinct from all earlier ones.
    if name == "evolution":
        searcher, evaluate = evolution.make(NB201, population=10, sample_size=5, batch_size=10), hamming
    elif name == "nsga2":
        searcher, evaluate = nsga2.make(NB201, num_objectives=2, population=10), cost_quality
    else:
        searcher, evaluate = local.make(NB201, num_objectives=2, batch_size=10), cost_quality
    _, asked = search(searcher, evaluate, seed=0, rounds=30)
    rows = [tuple(a) for b in asked for a in b]
    assert len(set(rows)) == len(rows) == 300


def test_evolution_counts_repeats_it_could_not_avoid():
    # Four feasible cells in the whole space, all told: nothing new and feasible is left, so
    # every child is a visible repeat (a feasible copy) or falls back to its parent.
    cells = jnp.array([[i, j, 0, 0, 0, 0] for i in range(2) for j in range(2)], jnp.int32)
    feasible = lambda a: jnp.all(a[:, 2:] == 0, axis=1) & (a[:, 0] < 2) & (a[:, 1] < 2)
    searcher = evolution.make(NB201, population=4, sample_size=2, batch_size=4, feasible=feasible, max_tries=10)
    state = searcher.tell(searcher.init(jax.random.key(0)), cells, hamming(cells))
    kids, state = searcher.ask(state, jax.random.key(1))
    assert {tuple(map(int, a)) for a in np.asarray(kids)} <= {tuple(map(int, a)) for a in np.asarray(cells)}
    assert int(state.repeats) + int(state.fallbacks) == 4


# ---------------------------------------------------------------------------- several objectives
def test_pareto_local_search_finds_the_true_front():
    true = front_set(cost_quality(jnp.asarray(NB201.enumerate())))
    searcher = local.make(NB201, num_objectives=2, batch_size=8)
    assert searcher.num_objectives == 2
    told = []
    evaluate = lambda a: told.append(cost_quality(a)) or told[-1]
    state, asked = search(searcher, evaluate, seed=0, rounds=150,
                          stop=lambda s: front_set(np.concatenate(told)) >= true)
    found = front_set(np.concatenate(told))
    assert found == true, sorted(true - found)
    assert len({tuple(a) for b in asked for a in b}) < 0.1 * 15625


def test_multi_objective_evolution_covers_the_front():
    true = front_set(cost_quality(jnp.asarray(NB201.enumerate())))
    searcher = evolution.make(NB201, num_objectives=2, population=20, sample_size=5, batch_size=10)
    assert searcher.num_objectives == 2
    _, asked = search(searcher, cost_quality, seed=0, rounds=60)
    told = cost_quality(jnp.asarray(np.concatenate(asked)))
    ref = np.array([25.0, 1.0])
    ratio = hypervolume(np.asarray(told), ref) / hypervolume(np.array(sorted(true)), ref)
    random = hypervolume(np.asarray(cost_quality(NB201.sample(jax.random.key(0), 600))), ref) / \
        hypervolume(np.array(sorted(true)), ref)
    assert ratio > max(0.95, random), (ratio, random)


def test_pareto_local_search_expands_front_members_by_single_decisions():
    searcher = local.make(NB201, num_objectives=2, batch_size=8)
    state = searcher.init(jax.random.key(0))
    start = jnp.array([[1, 1, 1, 1, 1, 1], [4, 4, 4, 4, 4, 4]], jnp.int32)  # the second is dominated
    state = searcher.tell(state, start, jnp.array([[1.0, 1.0], [2.0, 2.0]]))
    archs, state = searcher.ask(state, jax.random.key(1))
    dist = (np.asarray(archs) != 1).sum(1)
    assert (dist == 1).all() and len({tuple(a) for a in np.asarray(archs)}) == 8
    # After all 24 neighbours were proposed and told, the member is explored: restarts follow.
    for r in range(2, 5):
        state = searcher.tell(state, archs, jnp.full((8, 2), 5.0))
        archs, state = searcher.ask(state, jax.random.key(r))
    assert bool(state.explored[0]) and not bool(state.explored[1])
    assert int(state.restarts) == 8  # the 25th cell on: two-decision kicks of the front member
    assert ((np.asarray(archs) != 1).sum(1) <= 2).all()


# ---------------------------------------------------------------------------- protocol
def _make(name, space):
    if name == "evolution":
        return evolution.make(space, population=16, sample_size=4, batch_size=8), 1
    if name == "nsga2":
        return nsga2.make(space, num_objectives=2, population=16, batch_size=8), 2
    if name == "local-pareto":
        return local.make(space, num_objectives=2, batch_size=8), 2
    if name == "evolution-pareto":
        return evolution.make(space, num_objectives=2, population=16, sample_size=4, batch_size=8), 2
    return local.make(space, batch_size=8), 1


@pytest.mark.parametrize("space_name", SPACE_NAMES)
@pytest.mark.parametrize("name", ["evolution", "nsga2", "local", "local-pareto", "evolution-pareto"])
def test_fixed_shape_state_valid_archs_and_one_compile(name, space_name):
    space = get_space(space_name)
    searcher, m = _make(name, space)
    table = jax.random.uniform(jax.random.key(7), (space.num_decisions, int(space.cardinalities.max()), m))
    evaluate = lambda a: table[jnp.arange(space.num_decisions), a].sum(1)  # a tiny random LUT

    state = searcher.init(jax.random.key(0))
    before = shapes(state)
    state, asked = search(searcher, evaluate, seed=1, rounds=3)  # fills, then evolves/climbs
    assert shapes(state) == before
    asked = np.concatenate(asked)
    assert asked.dtype == np.int32 and asked.shape[1] == space.num_decisions
    assert ((asked >= 0) & (asked < space.cardinalities)).all()
    # Every field is an array (orbax checkpoints the state as is).
    assert all(isinstance(x, jax.Array) for x in jax.tree.leaves(state))
    assert searcher.ask._cache_size() == 1 and searcher.tell._cache_size() == 1


@pytest.mark.parametrize("name", ["evolution", "nsga2", "local", "local-pareto"])
def test_a_search_is_a_pure_function_of_its_key(name):
    searcher, m = _make(name, NB201)
    evaluate = (lambda a: cost_quality(a)) if m == 2 else hamming
    _, a = search(searcher, evaluate, seed=5, rounds=6)
    _, b = search(searcher, evaluate, seed=5, rounds=6)
    _, c = search(searcher, evaluate, seed=6, rounds=6)
    np.testing.assert_array_equal(np.stack(a), np.stack(b))
    assert not np.array_equal(np.stack(a), np.stack(c))
