"""Local search over single-decision neighbours, restarting at local optima.

White, Nolen, Ravi & Dey, "Exploring the Loss Landscape in Neural Architecture Search",
UAI 2021: hill climbing on the "change one decision" neighbourhood is a baseline that is hard
to beat on NAS-Bench-201 and the DARTS space. The neighbourhood of `a` is

    N(a) = { a with a_i replaced by c : i a decision, c != a_i },   |N(a)| = K = sum_i (card_i - 1)

and one step is best-improvement hill climbing:

    a <- argmin_{b in N(a)} f(b)   if that f(b) < f(a),   else a is a local optimum: restart

from a uniformly random architecture. The best architecture ever told is kept in the state.

Fixed shapes: `ask` proposes `batch_size` neighbours at a time, scanning `N(current)` in a
random order (a permutation of the K static neighbour indices drawn when a scan starts);
`tell` moves to the best told neighbour as soon as a chunk contains one better than the
current architecture (best improvement within the chunk, first improvement across chunks),
and declares a local optimum once all K neighbours have been told without improvement. With
the default `batch_size = K` one ask is the whole neighbourhood: plain best improvement.
After a restart the new start has no objective yet, so the first chunk carries it in row 0.
Repeats (a neighbour seen before; a don't-care decision of ofa_mbv3, whose neighbour is the
same network) cost no budget in the driver.

Scalar only (`m = 1`), like `evolution`: improvement needs a total order.

Example:
    >>> searcher = make(get_space("nasbench201"))                       # batch_size = 24
    >>> state = searcher.init(jax.random.key(0))
    >>> archs, state = searcher.ask(state, jax.random.key(1))           # [24, 6]
    >>> state = searcher.tell(state, archs, objectives)                 # [24, 1]
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float, Int, PRNGKeyArray

from searchers.base import Searcher
from searchers.pareto import mark_infeasible
from supernet.spaces.base import SearchSpace


class LocalSearchState(NamedTuple):
    """The hill climber's position and scan (fixed shapes, checkpointable)."""

    current: Int[Array, "d"]  # int32 architecture being climbed from
    current_objective: Float[Array, ""]  # its objective (meaningful when `known`)
    known: Bool[Array, ""]  # `current` has been evaluated (False right after a restart)
    order: Int[Array, "k"]  # scan order of the K neighbour indices
    cursor: Int[Array, ""]  # neighbours of `current` told so far
    restart: Bool[Array, ""]  # local optimum reached: the next ask draws a new start
    best: Int[Array, "d"]  # best architecture ever told
    best_objective: Float[Array, ""]
    restarts: Int[Array, ""]  # local optima left so far


def neighbour_table(cardinalities) -> tuple[np.ndarray, np.ndarray]:
    """Static `(decision, shift)` of each of the K neighbours: `a_i <- (a_i + shift) % card_i`.

    `shift` runs over `1 .. card_i - 1`, so each neighbour changes one decision to another
    choice and every other choice of it appears exactly once.
    """
    cards = np.asarray(cardinalities, np.int64)
    decision = np.repeat(np.arange(cards.size), cards - 1).astype(np.int32)
    shift = np.concatenate([np.arange(1, c) for c in cards] or [np.zeros(0)]).astype(np.int32)
    return decision, shift


def make(
    space: SearchSpace,
    *,
    num_objectives: int = 1,
    batch_size: int | None = None,
) -> Searcher:
    """A restarting local searcher over `space`; `batch_size` defaults to the neighbourhood size K."""
    if num_objectives != 1:
        raise ValueError(
            f"local search needs one scalar objective, got num_objectives={num_objectives}; fold "
            "latency into one objective (searchers.objectives) or use nsga2 for a Pareto front"
        )
    decision, shift = neighbour_table(space.cardinalities)
    k = int(decision.size)
    if k == 0:
        raise ValueError(f"{space.name}: every decision has one choice; there is nothing to search")
    batch_size = k if batch_size is None else batch_size
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    d, b = space.num_decisions, batch_size
    decision_j, shift_j = jnp.asarray(decision), jnp.asarray(shift)
    cards = jnp.asarray(space.cardinalities, jnp.int32)

    def init(key: PRNGKeyArray) -> LocalSearchState:
        k_start, k_order = jax.random.split(key)
        start = space.sample(k_start, 1)[0]
        return LocalSearchState(
            current=start,
            current_objective=jnp.float32(jnp.inf),
            known=jnp.bool_(False),
            order=jax.random.permutation(k_order, k).astype(jnp.int32),
            cursor=jnp.int32(0),
            restart=jnp.bool_(False),
            best=start,
            best_objective=jnp.float32(jnp.inf),
            restarts=jnp.int32(0),
        )

    def ask(state: LocalSearchState, key: PRNGKeyArray) -> tuple[Int[Array, "n d"], LocalSearchState]:
        k_start, k_order = jax.random.split(key)
        current = jnp.where(state.restart, space.sample(k_start, 1)[0], state.current)
        known = state.known & ~state.restart
        cursor = jnp.where(state.restart, 0, state.cursor)
        order = jnp.where(cursor == 0, jax.random.permutation(k_order, k).astype(jnp.int32), state.order)
        # An unevaluated start takes row 0, so the chunk holds one neighbour fewer.
        offset = (~known).astype(jnp.int32)
        nb = order[(cursor - offset + jnp.arange(b)) % k]
        which, by = decision_j[nb], shift_j[nb]
        rows = jnp.arange(b)
        archs = jnp.broadcast_to(current, (b, d)).at[rows, which].set((current[which] + by) % cards[which])
        archs = archs.at[0].set(jnp.where(known, archs[0], current))
        restarts = state.restarts + state.restart.astype(jnp.int32)
        return archs, state._replace(current=current, known=known, cursor=cursor, order=order,
                                     restart=jnp.bool_(False), restarts=restarts)

    def tell(state: LocalSearchState, archs: Int[Array, "n d"], objectives: Float[Array, "n 1"]) -> LocalSearchState:
        archs = jnp.asarray(archs, jnp.int32)
        objectives = jnp.asarray(objectives, jnp.float32)
        if archs.shape != (b, d) or objectives.shape != (b, 1):
            raise ValueError(f"local.tell needs the asked archs [{b}, {d}] and objectives [{b}, 1], "
                             f"got {archs.shape} and {objectives.shape}")
        f = mark_infeasible(objectives)[:, 0]
        here = jnp.where(state.known, state.current_objective, f[0])  # row 0 was the start
        j = jnp.argmin(f)
        improved = f[j] < here
        cursor = state.cursor + b - (~state.known).astype(jnp.int32)
        better = f[j] < state.best_objective
        return LocalSearchState(
            current=jnp.where(improved, archs[j], state.current),
            current_objective=jnp.where(improved, f[j], here),
            known=jnp.bool_(True),
            order=state.order,
            cursor=jnp.where(improved, 0, cursor),
            restart=~improved & (cursor >= k),
            best=jnp.where(better, archs[j], state.best),
            best_objective=jnp.where(better, f[j], state.best_objective),
            restarts=state.restarts,
        )

    return Searcher(
        name="local",
        init=jax.jit(init),
        ask=jax.jit(ask),
        tell=jax.jit(tell),
        batch_size=batch_size,
        num_objectives=1,
    )
