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

One deviation, for searches that pay per *distinct* architecture (the driver answers a
repeat from its history, for free but without information): with `avoid_copies=True` (the
default) a child that is a copy of a live member is redrawn (new tournament, new mutation),
keeping its best draw over at most `max_tries` rounds. Without it, a converged queue fills
with copies of the best cells and their already-evaluated neighbours, and on NAS-Bench-201 a
search stalls (every proposal a repeat) within a few hundred evaluations.

Scalar only (`m = 1`): the tournament needs a total order. `make(num_objectives > 1)` raises;
fold latency into one objective first (`searchers.objectives`), constrain it with `feasible`
below, or use `nsga2` for a front. An infeasible child (`+inf`) stays in the queue until it
ages out but never wins a tournament against a feasible member.

Constraint-aware mode (the evolutionary finder of once-for-all: Cai, Gan, Wang, Zhang & Han,
"Once-for-All: Train One Network and Specialize it for Efficient Deployment", ICLR 2020):
`feasible(archs [n, d]) -> bool [n]` is a vectorized jittable predicate from a cost model,
e.g. `lambda a: lut.cost(a) <= T`. Every proposal is redrawn (new tournament and mutation,
or a new uniform sample while the population fills) until it is predicted feasible (and, with
`avoid_copies`, new to the queue: feasibility first), for at most `max_tries` vectorized rounds
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
from searchers.pareto import mark_infeasible
from supernet.spaces.base import SearchSpace

Feasible = Callable[[Int[Array, "n d"]], Bool[Array, "n"]]


class EvolutionState(NamedTuple):
    """The aging population and the best architecture ever told (fixed shapes, checkpointable)."""

    population: Int[Array, "p d"]  # int32 ring buffer of architectures
    fitness: Float[Array, "p"]  # float32 objective of each slot (+inf while empty)
    head: Int[Array, ""]  # slot of the oldest member: the next to be replaced
    size: Int[Array, ""]  # members told so far, capped at P
    best: Int[Array, "d"]  # best architecture ever told (the queue forgets it)
    best_objective: Float[Array, ""]
    fallbacks: Int[Array, ""]  # proposals that stayed infeasible after max_tries


def make(
    space: SearchSpace,
    *,
    num_objectives: int = 1,
    batch_size: int = 10,
    population: int = 100,
    sample_size: int = 25,
    mutation_rate: float | None = None,
    feasible: Feasible | None = None,
    max_tries: int = 100,
    avoid_copies: bool = True,
) -> Searcher:
    """A regularized-evolution searcher over `space` (module docstring for the algorithm).

    Defaults follow Real et al. (P = 100, S = 25); `batch_size` children per `ask` (10: a
    tenth of the queue turns over per round, close to the sequential algorithm).
    `mutation_rate=None` changes exactly one decision (the paper's mutation); a float
    resamples each decision with that probability. `feasible`/`max_tries`: constraint-aware
    mode; `avoid_copies`: redraw children already alive in the queue (module docstring).
    """
    if num_objectives != 1:
        raise ValueError(
            f"evolution ranks by one scalar objective, got num_objectives={num_objectives}; fold "
            "latency into one objective (searchers.objectives), constrain it with feasible=..., "
            "or use nsga2 for a Pareto front"
        )
    if not 1 <= sample_size <= population:
        raise ValueError(f"need 1 <= sample_size <= population, got {sample_size} and {population}")
    if batch_size < 1 or max_tries < 0:
        raise ValueError(f"need batch_size >= 1 and max_tries >= 0, got {batch_size} and {max_tries}")
    d, pop, n = space.num_decisions, population, batch_size

    def init(key: PRNGKeyArray) -> EvolutionState:
        del key  # the random initial population is drawn by the first asks
        return EvolutionState(
            population=jnp.zeros((pop, d), jnp.int32),
            fitness=jnp.full((pop,), jnp.inf, jnp.float32),
            head=jnp.int32(0),
            size=jnp.int32(0),
            best=jnp.zeros((d,), jnp.int32),
            best_objective=jnp.float32(jnp.inf),
            fallbacks=jnp.int32(0),
        )

    def propose(state: EvolutionState, key: PRNGKeyArray) -> tuple[Array, Array]:
        """`n` proposals and their parents (the parents are the infeasible fallback)."""

        def evolve():
            k_pick, k_mut = jax.random.split(key)
            # S contestants, each a uniformly random member (with replacement, as in the
            # paper's Algorithm 1); floor(u * P) is several times cheaper than randint on CPU.
            u = jax.random.uniform(k_pick, (n, sample_size))
            contestants = jnp.minimum((u * pop).astype(jnp.int32), pop - 1)
            best = jnp.argmin(state.fitness[contestants], axis=1)
            parents = state.population[jnp.take_along_axis(contestants, best[:, None], 1)[:, 0]]
            return space.mutate(k_mut, parents, rate=mutation_rate), parents

        def fill():
            random = space.sample(key, n)
            return random, random

        return jax.lax.cond(state.size < pop, fill, evolve)

    def score(state: EvolutionState, archs: Array, live: Array) -> Array:
        """Per row: 2 if feasible and not a live member's copy, 1 if a feasible copy, 0 if infeasible."""
        ok = jnp.ones((n,), bool) if feasible is None else jnp.asarray(feasible(archs), bool).reshape(n)
        copy = jnp.zeros((n,), bool)
        if avoid_copies:
            alive = jnp.arange(pop) < state.size  # slots fill in order, then all are alive
            same = jnp.all(space.canonical(archs)[:, None, :] == live[None, :, :], axis=-1)
            copy = jnp.any(same & alive[None, :], axis=1)
        return ok.astype(jnp.int32) * (2 - copy.astype(jnp.int32))

    def ask(state: EvolutionState, key: PRNGKeyArray) -> tuple[Int[Array, "n d"], EvolutionState]:
        archs, parents = propose(state, jax.random.fold_in(key, 0))
        if feasible is None and not avoid_copies:
            return archs, state
        live = space.canonical(state.population)

        def more(carry):
            t, _, _, s = carry
            return (t < max_tries) & jnp.any(s < 2)

        def redraw(carry):
            t, archs, parents, s = carry
            new, new_parents = propose(state, jax.random.fold_in(key, t + 1))
            new_s = score(state, new, live)
            take = (new_s > s)[:, None]  # a row keeps its best draw so far
            return t + 1, jnp.where(take, new, archs), jnp.where(take, new_parents, parents), jnp.maximum(s, new_s)

        init = (jnp.int32(0), archs, parents, score(state, archs, live))
        _, archs, parents, s = jax.lax.while_loop(more, redraw, init)
        archs = jnp.where((s > 0)[:, None], archs, parents)
        return archs, state._replace(fallbacks=state.fallbacks + jnp.sum(s == 0, dtype=jnp.int32))

    def tell(state: EvolutionState, archs: Int[Array, "n d"], objectives: Float[Array, "n 1"]) -> EvolutionState:
        archs = jnp.asarray(archs, jnp.int32)
        objectives = jnp.asarray(objectives, jnp.float32)
        if archs.ndim != 2 or archs.shape[1] != d or objectives.shape != (archs.shape[0], 1):
            raise ValueError(f"evolution.tell needs archs [n, {d}] and objectives [n, 1], "
                             f"got {archs.shape} and {objectives.shape}")
        f = mark_infeasible(objectives)[:, 0]
        j = jnp.argmin(f)
        better = f[j] < state.best_objective
        best = jnp.where(better, archs[j], state.best)
        best_objective = jnp.where(better, f[j], state.best_objective)
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
        )

    return Searcher(
        name="evolution",
        init=jax.jit(init),
        ask=jax.jit(ask),
        tell=jax.jit(tell),
        batch_size=batch_size,
        num_objectives=1,
    )
