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

Several objectives (`num_objectives = m > 1`): Pareto local search (PLS; Paquete, Chiarandini
& Stuetzle, "Pareto Local Optimum Sets in the Biobjective Traveling Salesman Problem", 2004;
Angel, Bampis & Gourves 2004). The state is an archive `A` of every architecture told, and

    F      = non-dominated feasible members of A that are not yet explored
    ask:     lambda ~ Dirichlet(1, ..., 1); the `members` elements of F with the smallest
             augmented Chebyshev value max_j lambda_j f~_j + rho sum_j lambda_j f~_j
             (f~: rank-normalized over A, `searchers.pareto.rank_normalize`), in that order;
             propose their single-decision neighbours not in A (each in a random order)
    explored: a member all of whose K neighbours are in A

With `surrogate=True` (the default) the new neighbours of the chosen members are proposed in
the order of a cheap model's prediction rather than at random: per objective a ridge regression
on the one-hot features, `y ~ mu + x^T beta`, `beta = (X_c^T X_c + alpha I)^-1 X_c^T y_c` over
the feasible archive (centered), each prediction rank-normalized against the archive and
scalarized with the same `lambda` (the additive per-decision model that cost LUTs and the
linear predictors of NAS use; White et al., "How Powerful are Performance Predictors in NAS?",
NeurIPS 2021). It orders, it never excludes: every neighbour of an expanded member is still
proposed before the member counts as explored.

So the search walks along the front, one decision at a time, from the part of the front the
weights point at; a front member is expanded once. When no unexplored front member has a new
neighbour (a Pareto local optimum set), the remaining rows are perturbation restarts (iterated
local search, Lourenco, Martin & Stuetzle 2003): a random front member with two decisions
changed, not in A (uniform random architectures while there is no front). The archive holds
`capacity` rows (told rows beyond it are not stored, so size it to the evaluation budget);
proposals are never rows of A.

Example (several objectives):
    >>> searcher = make(get_space("nasbench201"), num_objectives=2)  # batch_size = 8

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
from searchers.memory import Archive, arch_keys, archive_add, earlier_duplicate, keys_in
from searchers.pareto import chebyshev, mark_infeasible, non_dominated_mask, random_weights, rank_normalize
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
    capacity: int = 4096,
    members: int = 8,
    surrogate: bool = True,
    ridge: float = 1.0,
) -> Searcher:
    """A restarting local searcher over `space`; `batch_size` defaults to the neighbourhood size K.

    `num_objectives > 1`: Pareto local search (module docstring), `batch_size` default 8,
    an archive of `capacity` rows, `members` front members expanded per `ask` at most.
    """
    if num_objectives < 1:
        raise ValueError(f"num_objectives must be >= 1, got {num_objectives}")
    if num_objectives > 1:
        return _make_pareto(space, num_objectives, 8 if batch_size is None else batch_size, capacity, members,
                            surrogate, ridge)
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


class ParetoLocalState(NamedTuple):
    """Pareto local search: the archive of everything told (fixed shapes, checkpointable)."""

    archs: Int[Array, "c d"]  # int32 canonical architectures; rows >= count are padding
    objectives: Float[Array, "c m"]  # as told (+inf in every column: infeasible)
    keys: Int[Array, "c"]  # searchers.memory keys of the rows (-1: padding)
    explored: Bool[Array, "c"]  # every single-decision neighbour of the row is in the archive
    count: Int[Array, ""]  # filled rows
    restarts: Int[Array, ""]  # proposals drawn at random because no front member had a new neighbour


def _ridge_predict(feats, objs, use, query, ridge):
    """Ridge regression `y ~ mean + X beta` per objective on the `use` rows; predictions at `query`."""
    w = use.astype(jnp.float32)
    y = jnp.where(use[:, None], objs, 0.0)
    count = jnp.maximum(w.sum(), 1.0)
    mean_y, mean_x = (w @ y) / count, (w @ feats) / count
    xc = (feats - mean_x) * w[:, None]
    yc = (y - mean_y) * w[:, None]
    gram = xc.T @ xc + ridge * jnp.eye(feats.shape[1], dtype=jnp.float32)
    beta = jnp.linalg.solve(gram, xc.T @ yc)
    return mean_y + (query - mean_x) @ beta


def _make_pareto(space: SearchSpace, m: int, batch_size: int, capacity: int, members: int,
                 surrogate: bool, ridge: float) -> Searcher:
    decision, shift = neighbour_table(space.cardinalities)
    k = int(decision.size)
    if k == 0:
        raise ValueError(f"{space.name}: every decision has one choice; there is nothing to search")
    if batch_size < 1 or capacity < 1 or members < 1:
        raise ValueError(f"need batch_size, capacity and members >= 1, got {batch_size}, {capacity}, {members}")
    d, b, cap, r = space.num_decisions, batch_size, capacity, min(members, capacity)
    decision_j, shift_j = jnp.asarray(decision), jnp.asarray(shift)
    cards = jnp.asarray(space.cardinalities, jnp.int32)

    def init(key: PRNGKeyArray) -> ParetoLocalState:
        del key
        return ParetoLocalState(jnp.zeros((cap, d), jnp.int32), jnp.full((cap, m), jnp.inf, jnp.float32),
                                jnp.full((cap,), -1, jnp.int32), jnp.zeros((cap,), bool), jnp.int32(0),
                                jnp.int32(0))

    def ask(state: ParetoLocalState, key: PRNGKeyArray) -> tuple[Int[Array, "n d"], ParetoLocalState]:
        k_w, k_order, k_rand = jax.random.split(key, 3)
        filled = jnp.arange(cap) < state.count
        objs = jnp.where(filled[:, None], state.objectives, jnp.inf)
        feasible = filled & jnp.all(jnp.isfinite(objs), axis=-1)
        front = non_dominated_mask(objs) & feasible & ~state.explored
        value = chebyshev(rank_normalize(objs, feasible), random_weights(k_w, 1, m)[0])
        neg, chosen = jax.lax.top_k(jnp.where(front, -value, -jnp.inf), r)
        usable = jnp.isfinite(neg)  # fewer than r unexplored front members
        # All K neighbours of each chosen member, each member's in its own random order.
        order = jax.vmap(lambda kk: jax.random.permutation(kk, k))(jax.random.split(k_order, r))  # [r, k]
        which, by = decision_j[order], shift_j[order]
        base = state.archs[chosen]  # [r, d]
        hood = jnp.broadcast_to(base[:, None, :], (r, k, d))
        new_val = (jnp.take_along_axis(base, which, axis=1) + by) % cards[which]
        hood = hood.at[jnp.arange(r)[:, None], jnp.arange(k)[None, :], which].set(new_val)
        # Restarts: two-decision perturbations of random front members (iterated local search),
        # then uniform samples when there is no front yet.
        k_pick, k_m1, k_m2, k_uni = jax.random.split(k_rand, 4)
        on_front = non_dominated_mask(objs) & feasible
        pick_p = jax.random.categorical(k_pick, jnp.where(on_front, 0.0, -jnp.inf), shape=(4 * b,))
        kicked = space.mutate(k_m2, space.mutate(k_m1, state.archs[pick_p]))
        kicked = jnp.where(jnp.any(on_front), kicked, space.sample(k_uni, 4 * b))
        cand = jnp.concatenate([hood.reshape(r * k, d), kicked, space.sample(jax.random.fold_in(k_uni, 1), 2 * b)])
        cand = jnp.asarray(space.canonical(cand), jnp.int32)
        keys = arch_keys(space, cand)
        known = keys_in(keys, state.keys)
        from_member = jnp.concatenate([jnp.repeat(usable, k), jnp.zeros((6 * b,), bool)])
        is_random = jnp.arange(r * k + 6 * b) >= r * k
        good = ~known & ~earlier_duplicate(keys) & (from_member | is_random)
        if surrogate:
            # Neighbours in the order of their predicted scalarized value under this ask's
            # weights (ridge regression on one-hot features, fit to the archive).
            pred = _ridge_predict(space.encode(state.archs), objs, feasible, space.encode(cand), ridge)
            ranks = jax.vmap(lambda col, p: jnp.searchsorted(jnp.sort(col), p), in_axes=(1, 1), out_axes=1)(
                jnp.where(feasible[:, None], objs, jnp.inf), pred)
            pred_norm = ranks.astype(jnp.float32) / jnp.maximum(feasible.sum() - 1, 1).astype(jnp.float32)
            pred_value = chebyshev(pred_norm, random_weights(k_w, 1, m)[0])
            order_key = jnp.where(is_random, jnp.inf, pred_value)
        else:
            order_key = jnp.zeros(cand.shape[:1], jnp.float32)
        # Neighbours first, then random restarts; stable sorts keep the member order on ties.
        priority = jnp.where(good, jnp.where(is_random, 1, 0), 2)
        pick = jnp.lexsort((order_key, priority))[:b]
        archs = cand[pick]
        # A chosen member none of whose remaining new neighbours was left unproposed is explored.
        new_nb = (good & ~is_random)[: r * k].reshape(r, k)
        proposed = jnp.zeros((r * k + 6 * b,), bool).at[pick].set(True)[: r * k].reshape(r, k)
        done = usable & ~jnp.any(new_nb & ~proposed, axis=1)
        explored = state.explored.at[jnp.where(done, chosen, cap)].set(True, mode="drop")
        restarts = state.restarts + jnp.sum(is_random[pick], dtype=jnp.int32)
        return archs, state._replace(explored=explored, restarts=restarts)

    def tell(state: ParetoLocalState, archs: Int[Array, "n d"], objectives: Float[Array, "n m"]) -> ParetoLocalState:
        told = archive_add(space, Archive(state.archs, state.objectives, state.keys, state.count), archs, objectives,
                           "local")
        return state._replace(archs=told.archs, objectives=told.objectives, keys=told.keys, count=told.count)

    return Searcher(name="local-pareto", init=jax.jit(init), ask=jax.jit(ask), tell=jax.jit(tell),
                    batch_size=b, num_objectives=m)
