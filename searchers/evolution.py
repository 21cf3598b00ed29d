"""Regularized (aging) evolution, optionally constrained by a cost model's predicate.

Real, Aggarwal, Huang & Le, "Regularized Evolution for Image Classifier Architecture
Search", AAAI 2019. The population is a queue of the `P` most recent architectures:

    repeat:  S = `sample_size` members drawn uniformly (with replacement) from the population
             parent = argmin_{s in S} f(s)                  (f: the objective, minimized)
             child  = mutate(parent)                        (one decision changes)
             push child; pop the oldest member              (age, not fitness, decides death)

Killing the oldest rather than the worst is the regularization: an architecture survives
only by having good descendants, not by one lucky evaluation. Here `ask` runs `batch_size`
tournaments against the same population (the paper's asynchronous workers) and `tell` pushes
their children into a ring buffer whose `head` is the oldest slot. Until `P` architectures
have been told, `ask` samples uniformly (the random initial population).

Defaults for small budgets (P = 20, S = 10, 10 children per `ask`): the paper's P = 100,
S = 25 were chosen for 20,000-model searches. At the 100-1,000 evaluations of a tabular or
hardware-in-the-loop search, P = 100 spends the first 100 evaluations on random sampling (at
a budget of 100, nothing else), and half of a budget of 300 on an unselected queue. With
P = 20 the queue turns over every two `ask`s, and a tournament of half the queue (S = 10)
selects strongly enough to make progress in a few hundred evaluations; aging still removes
every member after 20 births. (Pareto task on NAS-Bench-201, 4 devices x 5 seeds, median
hypervolume ratio at 100 / 300 / 1,000 evaluations: P = 20, S = 10: 0.81 / 0.93 / 0.98;
P = 20, S = 5: 0.83 / 0.90 / 0.97; P = 50, S = 10: 0.79 / 0.91 / 0.98; random search: 0.80 /
0.89 / 0.93.)

Never a repeat (`avoid_copies=True`, the default): the driver charges the budget per
*distinct* architecture and answers a repeat from its history, for free but without
information. The state keeps the keys of every architecture told (`searchers.memory`: a bitmap
of the space, or a ring buffer of `memory` keys), and a child that was told before, or repeats another child of the
same batch, is redrawn (new tournament, new mutation): each round draws `oversample` batches
of tournaments at once and keeps, in draw order, the first children that are new (vectorized
rejection sampling), for at most `max_tries` rounds. Without it, a converged queue fills
with copies of the best cells and their already-evaluated neighbours, and on NAS-Bench-201
a search stalls (every proposal a repeat) within a few hundred evaluations.

Several objectives (`num_objectives = m > 1`): each tournament draws its own weights
`lambda ~ Dirichlet(1, ..., 1)` and ranks its contestants by the augmented Chebyshev
scalarization of their rank-normalized objectives (`searchers.pareto.rank_normalize`, the
empirical CDF of each objective over the live population):

    parent = argmin_{s in S} max_j lambda_j f~_j(s) + rho sum_j lambda_j f~_j(s),   rho = 0.05

Different tournaments thus pull towards different parts of the front (the random-weight
scalarizations of ParEGO, Knowles, IEEE TEVC 2006, and of MOEA/D, Zhang & Li, IEEE TEVC
2007, applied per selection as in Ishibuchi & Murata's MOGLS, IEEE TSMC 1998), and the aging
queue keeps the front's neighbourhoods alive rather than one optimum's. `state.best` then
tracks the first objective. An infeasible child (`+inf`) stays in the queue until it ages out
but never wins a tournament against a feasible member.

Constraint-aware mode (the evolutionary finder of once-for-all: Cai, Gan, Wang, Zhang & Han,
"Once-for-All: Train One Network and Specialize it for Efficient Deployment", ICLR 2020):
`feasible(archs [n, d]) -> bool [n]` is a vectorized jittable predicate from a cost model,
e.g. `lambda a: lut.cost(a) <= T`. Every proposal is redrawn (new tournament and mutation,
or a new uniform sample while the population fills) until it is predicted feasible (and, with
`avoid_copies`, new: feasibility first), for at most `max_tries` vectorized rounds
inside a `lax.while_loop`. Rows still infeasible then fall back: to their (evaluated) parent,
a repeat the driver answers without spending budget, or, while the population fills, to the
infeasible sample itself. `state.fallbacks` counts them,
so a constraint no sample can meet shows up instead of silently stalling the search.

Example:
    >>> searcher = make(get_space("nasbench201"), population=50, sample_size=10, batch_size=10)
    >>> state = searcher.init(jax.random.key(0))
    >>> archs, state = searcher.ask(state, jax.random.key(1))           # [10, 6]
    >>> state = searcher.tell(state, archs, objectives)                 # [10, 1]
    >>> state.best, state.best_objective
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, Int, PRNGKeyArray

from searchers.base import Searcher
from searchers.memory import DEFAULT_CAPACITY, Seen, arch_keys, pick_new, seen_add, seen_init
from searchers.pareto import chebyshev, mark_infeasible, random_weights, rank_normalize
from supernet.spaces.base import SearchSpace

Feasible = Callable[[Int[Array, "n d"]], Bool[Array, "n"]]


class EvolutionState(NamedTuple):
    """The aging population and the best architecture ever told (fixed shapes, checkpointable)."""

    population: Int[Array, "p d"]  # int32 ring buffer of architectures
    fitness: Float[Array, "p m"]  # float32 objectives of each slot (+inf while empty)
    head: Int[Array, ""]  # slot of the oldest member: the next to be replaced
    size: Int[Array, ""]  # members told so far, capped at P
    best: Int[Array, "d"]  # best architecture ever told (the queue forgets it); m > 1: by objective 0
    best_objective: Float[Array, ""]
    fallbacks: Int[Array, ""]  # proposals that stayed infeasible after max_tries
    seen: Seen  # keys of every architecture told (searchers.memory)
    repeats: Int[Array, ""]  # proposals that were still repeats after max_tries


def make(
    space: SearchSpace,
    *,
    num_objectives: int = 1,
    batch_size: int = 10,
    population: int = 20,
    sample_size: int = 10,
    mutation_rate: float | None = None,
    feasible: Feasible | None = None,
    max_tries: int = 100,
    avoid_copies: bool = True,
    memory: int = DEFAULT_CAPACITY,
    oversample: int = 4,
) -> Searcher:
    """A regularized-evolution searcher over `space` (module docstring for the algorithm).

    Defaults for budgets of 100-1,000 evaluations (P = 20, S = 10; module docstring);
    `batch_size` children per `ask`. `mutation_rate=None` changes exactly one decision (the
    paper's mutation); a float resamples each decision with that probability.
    `feasible`/`max_tries`: constraint-aware mode; `avoid_copies`: redraw children told before
    (kept in a memory of `memory` keys) or repeated within the batch; `num_objectives > 1`:
    random-weight Chebyshev tournaments (module docstring).
    """
    if num_objectives < 1:
        raise ValueError(f"num_objectives must be >= 1, got {num_objectives}")
    if not 1 <= sample_size <= population:
        raise ValueError(f"need 1 <= sample_size <= population, got {sample_size} and {population}")
    if batch_size < 1 or max_tries < 0:
        raise ValueError(f"need batch_size >= 1 and max_tries >= 0, got {batch_size} and {max_tries}")
    d, m, pop, n = space.num_decisions, num_objectives, population, batch_size

    def init(key: PRNGKeyArray) -> EvolutionState:
        del key  # the random initial population is drawn by the first asks
        return EvolutionState(
            population=jnp.zeros((pop, d), jnp.int32),
            fitness=jnp.full((pop, m), jnp.inf, jnp.float32),
            head=jnp.int32(0),
            size=jnp.int32(0),
            best=jnp.zeros((d,), jnp.int32),
            best_objective=jnp.float32(jnp.inf),
            fallbacks=jnp.int32(0),
            seen=seen_init(space, memory),
            repeats=jnp.int32(0),
        )

    def propose(state: EvolutionState, norm: Array, key: PRNGKeyArray) -> tuple[Array, Array]:
        """`n` proposals and their parents (the parents are the infeasible fallback)."""

        def evolve():
            k_pick, k_mut, k_w = jax.random.split(key, 3)
            # S contestants, each a uniformly random member (with replacement, as in the
            # paper's Algorithm 1); floor(u * P) is several times cheaper than randint on CPU.
            u = jax.random.uniform(k_pick, (n, sample_size))
            contestants = jnp.minimum((u * pop).astype(jnp.int32), pop - 1)
            if m == 1:
                score = state.fitness[contestants, 0]
            else:  # one weight vector per tournament
                score = chebyshev(norm[contestants], random_weights(k_w, n, m)[:, None, :])
            best = jnp.argmin(score, axis=1)
            parents = state.population[jnp.take_along_axis(contestants, best[:, None], 1)[:, 0]]
            return space.mutate(k_mut, parents, rate=mutation_rate), parents

        def fill():
            random = space.sample(key, n)
            return random, random

        return jax.lax.cond(state.size < pop, fill, evolve)

    def ask(state: EvolutionState, key: PRNGKeyArray) -> tuple[Int[Array, "n d"], EvolutionState]:
        alive = jnp.arange(pop) < state.size  # slots fill in order, then all are alive
        norm = rank_normalize(state.fitness, alive) if m > 1 else state.fitness
        archs, parents = propose(state, norm, jax.random.fold_in(key, 0))
        if feasible is None and not avoid_copies:
            return archs, state
        seen = state.seen

        def draw(t):
            # `oversample` batches of tournaments at once: rejection sampling, vectorized.
            ks = jax.random.split(jax.random.fold_in(key, t), oversample)
            a, p = jax.vmap(lambda k: propose(state, norm, k))(ks)
            return a.reshape(-1, d), p.reshape(-1, d)

        def pick(archs, parents):
            # Score 2: feasible and new; 1: a feasible repeat (told before or earlier in the
            # batch; only with avoid_copies); 0: infeasible. The first n rows by score, in order.
            ok = None if feasible is None else jnp.asarray(feasible(archs), bool).reshape(-1)
            if avoid_copies:
                idx, s = pick_new(space, seen, archs, n, ok)
            else:
                s = ok.astype(jnp.int32) * 2
                idx = jnp.argsort(-s, stable=True)[:n]
                s = s[idx]
            return archs[idx], parents[idx], s

        def more(carry):
            t, _, _, s = carry
            return (t < max_tries) & jnp.any(s < 2)

        def redraw(carry):
            t, archs, parents, s = carry
            a, p = draw(t + 1)
            archs, parents, s = pick(jnp.concatenate([archs, a]), jnp.concatenate([parents, p]))
            return t + 1, archs, parents, s

        init = (jnp.int32(0), *pick(archs, parents))
        _, archs, parents, s = jax.lax.while_loop(more, redraw, init)
        archs = jnp.where((s > 0)[:, None], archs, parents)
        return archs, state._replace(fallbacks=state.fallbacks + jnp.sum(s == 0, dtype=jnp.int32),
                                     repeats=state.repeats + jnp.sum(s == 1, dtype=jnp.int32))

    def tell(state: EvolutionState, archs: Int[Array, "n d"], objectives: Float[Array, "n m"]) -> EvolutionState:
        archs = jnp.asarray(archs, jnp.int32)
        objectives = jnp.asarray(objectives, jnp.float32)
        if archs.ndim != 2 or archs.shape[1] != d or objectives.shape != (archs.shape[0], m):
            raise ValueError(f"evolution.tell needs archs [n, {d}] and objectives [n, {m}], "
                             f"got {archs.shape} and {objectives.shape}")
        f = mark_infeasible(objectives)
        j = jnp.argmin(f[:, 0])
        better = f[j, 0] < state.best_objective
        best = jnp.where(better, archs[j], state.best)
        best_objective = jnp.where(better, f[j, 0], state.best_objective)
        seen = seen_add(state.seen, arch_keys(space, archs)) if avoid_copies else state.seen
        # Only the P youngest of a batch can be alive afterwards (and a scatter with repeated
        # slots would be ambiguous), so a batch larger than the queue keeps its tail.
        archs, f = archs[-pop:], f[-pop:]
        k = archs.shape[0]
        slots = (state.head + jnp.arange(k)) % pop
        return EvolutionState(
            population=state.population.at[slots].set(archs),
            fitness=state.fitness.at[slots].set(f),
            head=(state.head + k) % pop,
            size=jnp.minimum(state.size + k, pop),
            best=best,
            best_objective=best_objective,
            fallbacks=state.fallbacks,
            seen=seen,
            repeats=state.repeats,
        )

    return Searcher(
        name="evolution",
        init=jax.jit(init),
        ask=jax.jit(ask),
        tell=jax.jit(tell),
        batch_size=batch_size,
        num_objectives=m,
    )
