"""A fixed-size memory of the architectures a searcher has already proposed or been told.

The driver charges the budget per *distinct* architecture and answers a repeat from its
history: a repeat costs nothing, but it teaches nothing either, and a searcher whose every
proposal is a repeat stalls (the driver stops it after `patience` such rounds). Evolutionary
and policy searchers converge, and a converged population keeps re-proposing the cells it has
already evaluated. So the searchers keep, in their state pytree, the keys of what they have
seen, and redraw a proposal that is a repeat (a bounded number of times, inside `ask`).

Keys. `arch_keys(space, archs)` maps each architecture's canonical form to an `int32` in
`[0, 2^31)`: its exact mixed-radix index `sum_i a_i prod_{j<i} card_j` when the space has at
most `2^31` architectures (NAS-Bench-201: 15,625), else a 31-bit hash (FNV-1a over the
decisions, then MurmurHash3's 32-bit finalizer). A hash collision only makes a searcher
redraw a proposal it did not have to; it never changes what is evaluated.

Memory. For a space of at most `2^20` architectures (NAS-Bench-201) `Seen` is a bitmap over
the whole space, indexed by the exact key: exact, no capacity limit, and a lookup is one
gather. For a larger space it is a ring buffer of `capacity` keys (`-1` = empty; every key is
>= 0): `seen_add` writes at `count % capacity`, so past `capacity` distinct architectures the
oldest are forgotten (a forgotten one may be proposed again: a free repeat, as before), and
membership is one `[n, capacity]` comparison. `count` is the number of distinct keys added.

`redraw_new(propose, key, seen, ...)` is the shared retry loop: draw several batches at once,
keep the first rows that are new (not in memory, not equal to an earlier kept row), and while
some kept row is a repeat and fewer than `max_tries` rounds were made, draw again.
"""

from __future__ import annotations

import math
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Int, PRNGKeyArray

from searchers.pareto import mark_infeasible

DEFAULT_CAPACITY = 4096
_EXACT_LIMIT = 2**31
_BITMAP_LIMIT = 2**20


class Seen(NamedTuple):
    """Ring buffer of architecture keys (fixed shapes, checkpointable)."""

    keys: Array  # bitmap: bool [space size]; ring buffer: int32 keys in [0, 2^31), -1 in empty slots
    count: Int[Array, ""]  # distinct keys added so far (ring buffer: the next slot is count % capacity)


def seen_init(space, capacity: int = DEFAULT_CAPACITY) -> Seen:
    """An empty memory for `space`: a bitmap if it has at most 2^20 architectures, else `capacity` keys."""
    if capacity < 1:
        raise ValueError(f"the memory capacity must be >= 1, got {capacity}")
    size = math.prod(int(c) for c in space.cardinalities)  # exact (np.prod overflows int64)
    if size <= _BITMAP_LIMIT:
        return Seen(jnp.zeros((size,), bool), jnp.int32(0))
    return Seen(jnp.full((capacity,), -1, jnp.int32), jnp.int32(0))


def _fmix32(h: Array) -> Array:
    """MurmurHash3's 32-bit finalizer (avalanche), on uint32."""
    h = h ^ (h >> 16)
    h = h * jnp.uint32(0x85EBCA6B)
    h = h ^ (h >> 13)
    h = h * jnp.uint32(0xC2B2AE35)
    return h ^ (h >> 16)


def arch_keys(space, archs: Int[Array, "n d"]) -> Int[Array, "n"]:
    """`int32` key in `[0, 2^31)` of each architecture's canonical form (module docstring)."""
    canon = jnp.asarray(space.canonical(jnp.asarray(archs, jnp.int32)), jnp.int32)
    cards = np.asarray(space.cardinalities, np.int64)
    if math.prod(int(c) for c in cards) <= _EXACT_LIMIT:
        radix = np.concatenate([[1], np.cumprod(cards)[:-1]]).astype(np.int64)
        return jnp.sum(canon.astype(jnp.uint32) * jnp.asarray(radix, jnp.uint32), axis=1).astype(jnp.int32)
    h = jnp.full(canon.shape[:1], 0x811C9DC5, jnp.uint32)
    for i in range(canon.shape[1]):  # FNV-1a over the decisions (d is small and static)
        h = (h ^ canon[:, i].astype(jnp.uint32)) * jnp.uint32(0x01000193)
    return (_fmix32(h) & jnp.uint32(0x7FFFFFFF)).astype(jnp.int32)


def seen_contains(seen: Seen, keys: Int[Array, "n"]) -> Bool[Array, "n"]:
    """Whether each key is in the memory."""
    if seen.keys.dtype == jnp.bool_:
        return seen.keys[keys]
    return keys_in(keys, seen.keys)


def earlier_duplicate(keys: Int[Array, "n"]) -> Bool[Array, "n"]:
    """Row `j` repeats some row `i < j` of the same batch."""
    # A stable sort puts each key's first occurrence first among its copies: O(n log n), not n^2.
    order = jnp.argsort(keys, stable=True)
    ranked = keys[order]
    if keys.shape[0] == 0:
        return jnp.zeros((0,), bool)
    repeat = jnp.concatenate([jnp.zeros((1,), bool), ranked[1:] == ranked[:-1]])
    return jnp.zeros(keys.shape, bool).at[order].set(repeat)


def keys_in(keys: Int[Array, "n"], table: Int[Array, "c"]) -> Bool[Array, "n"]:
    """Whether each key is among the `table`'s keys (an `Archive`'s `keys`; its `-1` padding
    matches no key): one sort of the table and a binary search per key, O((n + c) log c)."""
    table = jnp.sort(table)
    return table[jnp.minimum(jnp.searchsorted(table, keys), table.shape[0] - 1)] == keys


def seen_add(seen: Seen, keys: Int[Array, "n"]) -> Seen:
    """Write the keys not yet in memory (each once) at the ring buffer's head."""
    new = ~(seen_contains(seen, keys) | earlier_duplicate(keys))
    if seen.keys.dtype == jnp.bool_:
        return Seen(seen.keys.at[keys].set(True), seen.count + jnp.sum(new, dtype=jnp.int32))
    cap = seen.keys.shape[0]
    pos = jnp.where(new, (seen.count + jnp.cumsum(new) - 1) % cap, cap)  # cap: out of bounds, dropped
    return Seen(seen.keys.at[pos].set(keys, mode="drop"), seen.count + jnp.sum(new, dtype=jnp.int32))


def is_repeat(space, seen: Seen, archs: Int[Array, "n d"]) -> Bool[Array, "n"]:
    """Rows already in memory or equal to an earlier row of the batch."""
    keys = arch_keys(space, archs)
    return seen_contains(seen, keys) | earlier_duplicate(keys)


def pick_new(space, seen: Seen, cands: Int[Array, "k d"], n: int,
             ok: Bool[Array, "k"] | None = None) -> tuple[Int[Array, "n"], Int[Array, "n"]]:
    """Indices of `n` rows of `cands` and their scores: first the rows that are `ok` and new
    (score 2), then `ok` repeats (1), then the rest (0), each group in candidate order."""
    keys = arch_keys(space, cands)
    repeat = seen_contains(seen, keys) | earlier_duplicate(keys)
    ok = jnp.ones(keys.shape, bool) if ok is None else ok
    score = ok.astype(jnp.int32) * (2 - repeat.astype(jnp.int32))
    idx = jnp.argsort(-score, stable=True)[:n]
    return idx, score[idx]


def redraw_new(propose: Callable[[PRNGKeyArray], Array], key: PRNGKeyArray, space, seen: Seen,
               max_tries: int, oversample: int = 4) -> tuple[Int[Array, "n d"], Int[Array, ""]]:
    """`propose(key) -> archs [n, d]`, with repeats replaced by new draws (module docstring).

    Each round draws `oversample` batches at once (`vmap` over keys) and keeps, in draw order,
    the first `n` rows that are new: rejection sampling, vectorized so that a converged
    searcher whose proposals are mostly repeats needs a few rounds, not hundreds. Rows still
    repeats after `max_tries` further rounds are returned as they are; the second output
    counts them.
    """
    first = propose(jax.random.fold_in(key, 0))
    n, d = first.shape

    def draw(t):
        return jax.vmap(propose)(jax.random.split(jax.random.fold_in(key, t), oversample)).reshape(-1, d)

    cands = jnp.concatenate([first, draw(1)[n:]]) if oversample > 1 else first
    idx, s = pick_new(space, seen, cands, n)
    archs = cands[idx]

    def more(carry):
        t, _, s = carry
        return (t < max_tries) & jnp.any(s < 2)

    def redraw(carry):
        t, archs, s = carry
        cands = jnp.concatenate([archs, draw(t + 2)])
        idx, s = pick_new(space, seen, cands, n)
        return t + 1, cands[idx], s

    _, archs, s = jax.lax.while_loop(more, redraw, (jnp.int32(0), archs, s))
    return archs, jnp.sum(s < 2, dtype=jnp.int32)


class Archive(NamedTuple):
    """Every distinct architecture told, with its objectives, in fixed-capacity buffers."""

    archs: Array  # int32 [c, d] canonical architectures; rows >= count are padding
    objectives: Array  # float32 [c, m] as told (+inf in every column: infeasible)
    keys: Array  # int32 [c] `arch_keys` of the rows (-1: padding)
    count: Int[Array, ""]  # filled rows


def archive_init(capacity: int, d: int, m: int) -> Archive:
    return Archive(jnp.zeros((capacity, d), jnp.int32), jnp.full((capacity, m), jnp.inf, jnp.float32),
                   jnp.full((capacity,), -1, jnp.int32), jnp.int32(0))


def archive_add(space, archive: Archive, archs, objectives, who: str) -> Archive:
    """`archive` with the told rows it lacks appended (canonical form; a repeat keeps its first
    objectives; rows beyond the capacity are dropped). `who` names the searcher in errors."""
    cap, d = archive.archs.shape
    m = archive.objectives.shape[1]
    archs = jnp.asarray(space.canonical(jnp.asarray(archs, jnp.int32)), jnp.int32)
    objectives = jnp.asarray(objectives, jnp.float32)
    if archs.ndim != 2 or archs.shape[1] != d or objectives.shape != (archs.shape[0], m):
        raise ValueError(f"{who}.tell needs archs [n, {d}] and objectives [n, {m}], "
                         f"got {archs.shape} and {objectives.shape}")
    keys = arch_keys(space, archs)
    keep = ~(keys_in(keys, archive.keys) | earlier_duplicate(keys))
    pos = archive.count + jnp.cumsum(keep) - 1
    pos = jnp.where(keep & (pos < cap), pos, cap)  # cap: out of bounds, dropped
    return Archive(archive.archs.at[pos].set(archs, mode="drop"),
                   archive.objectives.at[pos].set(mark_infeasible(objectives), mode="drop"),
                   archive.keys.at[pos].set(keys, mode="drop"),
                   jnp.minimum(archive.count + keep.sum(), cap).astype(jnp.int32))


__all__ = ["DEFAULT_CAPACITY", "Archive", "Seen", "archive_add", "archive_init", "arch_keys", "earlier_duplicate",
           "is_repeat", "keys_in", "pick_new", "redraw_new", "seen_add", "seen_contains", "seen_init"]
