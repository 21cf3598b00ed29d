"""Pareto dominance for minimized objectives: fronts, ranks, crowding, hypervolume, a plot.

All objectives are **minimized** (`searchers.base`). Point `u` *dominates* `v` when

    u <= v in every objective  and  u < v in at least one.

A point is non-dominated (on the Pareto front of a set) when no point of the set dominates it.
`+inf` is an ordinary value here: an infeasible architecture (`+inf` in every column) is
dominated by every point with a finite coordinate, so it sorts last, and identical points never
dominate each other (duplicates share a rank). NaN is refused upstream (the driver); its
comparisons are all false, so a NaN row would be neither dominated nor dominating.

- `non_dominated_mask`, `non_dominated_sort`, `crowding_distance` are jitted, fixed-shape jnp
  (NSGA-II calls them inside its jitted `tell`; called directly they compile once per shape).
- `hypervolume` is exact, on the host in float64 (a metric for reports and tests).
- `plot_pareto` draws a search's history and its front with matplotlib (optional dependency).

Example:
    >>> objs = jnp.array([[1., 5.], [2., 3.], [3., 4.], [4., 1.]])
    >>> non_dominated_sort(objs)                        # [0, 0, 1, 0]
    >>> hypervolume(objs, reference=[5., 6.])           # 4*1 + 3*2 + 1*2 = 12.0
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float, Int

# Rows per block when testing n points against all n: bounds memory at O(block * n * m)
# instead of O(n^2 m), so the front of a whole search history (1e5 points) fits.
_BLOCK = 512


@jax.jit
def dominance_matrix(objectives: Float[Array, "n m"]) -> Bool[Array, "n n"]:
    """`D[i, j]`: point `i` dominates point `j` (O(n^2 m) memory; for populations)."""
    a = objectives[:, None, :]
    b = objectives[None, :, :]
    return jnp.all(a <= b, axis=-1) & jnp.any(a < b, axis=-1)


@jax.jit
def mark_infeasible(objectives: Float[Array, "n m"]) -> Float[Array, "n m"]:
    """Rows with any non-finite entry (inf, or a stray NaN) become `+inf` in every column.

    The searchers apply this to what they are told, so that a partially infinite row cannot
    dominate a feasible one and a NaN cannot sit on the front.
    """
    objectives = jnp.asarray(objectives, jnp.float32)
    ok = jnp.all(jnp.isfinite(objectives), axis=-1, keepdims=True)
    return jnp.where(ok, objectives, jnp.inf)


def _non_dominated_mask_2d(objectives: Array) -> Array:
    """m = 2 in O(n log n): sort by (f0, f1); a point is dominated iff some lexicographically
    smaller *distinct* point has `f1 <=` its own, i.e. iff the smallest f1 before its group
    of copies is `<=` its f1 (everything before the group is smaller in f0, or equal in f0
    and smaller in f1, and so dominates as soon as its f1 is no larger)."""
    n = objectives.shape[0]
    idx = jnp.arange(n)
    order = jnp.lexsort((objectives[:, 1], objectives[:, 0]))
    s0, s1 = objectives[order, 0], objectives[order, 1]
    new_group = jnp.concatenate([jnp.ones((1,), bool), (s0[1:] != s0[:-1]) | (s1[1:] != s1[:-1])])
    group_start = jax.lax.cummax(jnp.where(new_group, idx, 0))
    min_before = jnp.concatenate([jnp.full((1,), jnp.inf, s1.dtype), jax.lax.cummin(s1)[:-1]])
    dominated = (group_start > 0) & (min_before[group_start] <= s1)
    return jnp.zeros((n,), bool).at[order].set(~dominated)


@jax.jit
def non_dominated_mask(objectives: Float[Array, "n m"]) -> Bool[Array, "n"]:
    """True for the points no other point dominates (the first front; duplicates all kept).

    Two objectives take an O(n log n) sort sweep, so the front of a long search history is
    cheap; otherwise every point is tested against all others, in blocks of rows.
    """
    objectives = jnp.asarray(objectives)
    if objectives.ndim != 2:
        raise ValueError(f"objectives must be [n, m], got shape {objectives.shape}")
    n = objectives.shape[0]
    if n == 0:
        return jnp.zeros((0,), bool)
    if objectives.shape[1] == 2:
        return _non_dominated_mask_2d(objectives)

    def dominated(v):  # is `v` dominated by any point?
        return jnp.any(jnp.all(objectives <= v, axis=-1) & jnp.any(objectives < v, axis=-1))

    return ~jax.lax.map(dominated, objectives, batch_size=min(n, _BLOCK))


@jax.jit
def non_dominated_sort(objectives: Float[Array, "n m"], until=None) -> Int[Array, "n"]:
    """Front index of every point: 0 for the Pareto front, 1 for the front once 0 is removed, ...

    The fast non-dominated sort of Deb et al., "A fast and elitist multiobjective genetic
    algorithm: NSGA-II", IEEE TEVC 2002: with `S_p` the points `p` dominates and `n_p` the
    number of points dominating `p`, front 0 is `{p : n_p = 0}`; removing a front decrements
    `n_q` for every `q` in the `S_p` of its members, and the points reaching 0 form the next
    front. Here `S` is the boolean dominance matrix and one peel a vector-matrix product, in a
    `lax.while_loop` that runs once per front (at most n times). O(n^2 m) time and memory.

    `until` (an int, may be traced): stop peeling once at least that many points are ranked;
    the rest share the next rank. A caller that only needs the best `k` points by rank
    (TPE's good set) skips the many peels of the dominated tail.
    """
    objectives = jnp.asarray(objectives)
    if objectives.ndim == 2 and objectives.shape[1] == 1:
        return _ranks_1d(objectives[:, 0], until)
    return _peel_fronts(objectives, until)


def _ranks_1d(values: Float[Array, "n"], until=None) -> Int[Array, "n"]:
    """`non_dominated_sort` of one objective in O(n log n): the fronts are the distinct values
    in ascending order (a dense rank), where peeling would take one O(n^2) pass per value (a
    scalar TPE with 1,000 observations needs 150 of them per `ask`). A NaN is never dominated
    (front 0), as in the dominance matrix."""
    n = values.shape[0]
    order = jnp.argsort(values)  # NaNs last
    sorted_v = values[order]
    starts = jnp.concatenate([jnp.ones((1,), bool), sorted_v[1:] != sorted_v[:-1]]) if n else jnp.zeros((0,), bool)
    dense = jnp.zeros((n,), jnp.int32).at[order].set(jnp.cumsum(starts, dtype=jnp.int32) - 1)
    dense = jnp.where(jnp.isnan(values), 0, dense)
    if until is None or n == 0:
        return dense
    # Peeling stops after the first r fronts that rank at least `until` points; the rest share rank r.
    k = jnp.asarray(until, jnp.int32)
    kth = jnp.sort(dense)[jnp.clip(k - 1, 0, n - 1)]
    r = jnp.where(k <= 0, 0, jnp.where(k > n, dense.max() + 1, kth + 1))
    return jnp.minimum(dense, r)


def _peel_fronts(objectives: Float[Array, "n m"], until=None) -> Int[Array, "n"]:
    """`non_dominated_sort` by peeling (any number of objectives)."""
    n = objectives.shape[0]
    # As float32 a peel is one vector-matrix product (several times faster on CPU than an
    # integer reduction); 0/1 inputs with float32 accumulation keep the counts exact.
    dom = dominance_matrix(objectives).astype(jnp.float32)
    count = dom.sum(axis=0)  # n_p: how many points dominate p

    stop = n if until is None else until

    def unassigned(carry):
        rank, _, _ = carry
        return jnp.any(rank < 0) & (jnp.sum(rank >= 0) < stop)

    def peel(carry):
        rank, count, r = carry
        front = (count == 0) & (rank < 0)
        rank = jnp.where(front, r, rank)
        # Dominance is a strict partial order (acyclic), so some point always reaches 0.
        count = count - front.astype(jnp.float32) @ dom
        return rank, count, r + 1

    rank0 = jnp.full((n,), -1, jnp.int32)
    rank, _, r = jax.lax.while_loop(unassigned, peel, (rank0, count, jnp.int32(0)))
    return jnp.where(rank < 0, r, rank)


@jax.jit
def crowding_distance(objectives: Float[Array, "n m"], rank: Int[Array, "n"]) -> Float[Array, "n"]:
    """Crowding distance of every point within its own front (Deb et al. 2002, Sec. III-B).

    For each objective `k`, sort the front by `f_k`; the two extremes get `+inf` and an
    interior point `i` gets `(f_k[next] - f_k[prev]) / (max f_k - min f_k)` (its neighbours
    in the sorted front, the extremes of the front). The distance is the sum over objectives:
    large means isolated, so NSGA-II prefers it to keep the front spread. An objective whose
    range in a front is zero or not finite (the all-`+inf` front of infeasible points)
    contributes 0 to interior points instead of NaN. Ties are broken by index.
    """
    objectives = jnp.asarray(objectives)
    rank = jnp.asarray(rank, jnp.int32)
    n = objectives.shape[0]

    idx = jnp.arange(n)

    def one_objective(f):
        order = jnp.lexsort((f, rank))  # by front, then by f within the front
        fs, rs = f[order], rank[order]
        # Each front is a contiguous segment of the sorted order, its min first and max last.
        first = jnp.concatenate([jnp.ones((1,), bool), rs[1:] != rs[:-1]])
        last = jnp.concatenate([rs[:-1] != rs[1:], jnp.ones((1,), bool)])
        start = jax.lax.cummax(jnp.where(first, idx, 0))
        end = jax.lax.cummin(jnp.where(last, idx, n - 1), reverse=True)
        span = fs[end] - fs[start]
        gap = jnp.concatenate([fs[1:], fs[-1:]]) - jnp.concatenate([fs[:1], fs[:-1]])
        usable = jnp.isfinite(gap) & jnp.isfinite(span) & (span > 0)
        interior = jnp.where(usable, gap / jnp.where(usable, span, 1.0), 0.0)
        sorted_dist = jnp.where(first | last, jnp.inf, interior)
        return jnp.zeros((n,), sorted_dist.dtype).at[order].set(sorted_dist)

    if n == 0:
        return jnp.zeros((0,), jnp.float32)
    return jnp.sum(jax.vmap(one_objective, in_axes=1, out_axes=1)(objectives), axis=1)


# ---------------------------------------------------------------------------- hypervolume
def _np_non_dominated(points: np.ndarray) -> np.ndarray:
    """Host float64 filter to the non-dominated points (blocks of rows bound the memory)."""
    keep = np.empty(len(points), bool)
    for s in range(0, len(points), _BLOCK):
        v = points[s:s + _BLOCK, None, :]
        dom = np.all(points[None] <= v, axis=-1) & np.any(points[None] < v, axis=-1)
        keep[s:s + _BLOCK] = ~dom.any(axis=1)
    return points[keep]


def _hypervolume_2d(points: np.ndarray, ref: np.ndarray) -> float:
    """Sweep in increasing `f0`: each point adds the strip `[f0, r0] x [f1, lowest f1 so far)`.

    Points sorted by `f0` cover every `x >= f0`, so at height `y` the covered x-range starts at
    the first point (in `f0` order) with `f1 <= y`; the strips partition the covered y-range.
    """
    order = np.lexsort((points[:, 1], points[:, 0]))
    f0, f1 = points[order, 0], points[order, 1]
    lowest_before = np.concatenate([[ref[1]], np.minimum.accumulate(f1)[:-1]])
    return float(np.sum((ref[0] - f0) * np.maximum(lowest_before - f1, 0.0)))


def _hypervolume_3d(points: np.ndarray, ref: np.ndarray) -> float:
    """Slice along `f2` (Hypervolume by Slicing Objectives, While et al., IEEE TEVC 2006).

    Sorted by `f2`, between levels `z_i` and `z_{i+1}` (the reference after the last) the
    dominated region's cross-section is the 2-D hypervolume of the points with `f2 <= z_i`.
    O(n^2 log n) after filtering to the non-dominated points.
    """
    points = _np_non_dominated(points)
    points = points[np.argsort(points[:, 2], kind="stable")]
    z_next = np.concatenate([points[1:, 2], [ref[2]]])
    total = 0.0
    for i in range(len(points)):
        depth = z_next[i] - points[i, 2]
        if depth > 0:
            total += depth * _hypervolume_2d(points[: i + 1, :2], ref[:2])
    return total


def hypervolume(points: Float[Array, "n m"], reference: Float[Array, "m"]) -> float:
    """Exact volume of the region dominated by `points` and bounded by `reference` (m <= 3).

    `HV(P, r) = vol( U_{p in P} [p_1, r_1] x ... x [p_m, r_m] )` for minimized objectives
    (Zitzler & Thiele 1998). A point not strictly better than `r` in every objective (outside
    the box, on its boundary, infinite or NaN) contributes nothing. m = 1 is `r - min p`,
    m = 2 a sort sweep, m = 3 slicing; computed in float64 on the host. Larger m raises
    (exact algorithms there are a project of their own).
    """
    pts = np.asarray(points, np.float64)
    ref = np.asarray(reference, np.float64).reshape(-1)
    if pts.ndim != 2 or pts.shape[1] != ref.size:
        raise ValueError(f"points must be [n, m] with m = len(reference) = {ref.size}, got shape {pts.shape}")
    m = ref.size
    if m not in (1, 2, 3):
        raise ValueError(f"exact hypervolume is implemented for 1, 2 or 3 objectives, got m = {m}")
    if not np.all(np.isfinite(ref)):
        raise ValueError(f"the hypervolume reference point must be finite, got {ref.tolist()}")
    pts = pts[np.all(pts < ref, axis=1)]  # also drops inf and NaN rows
    if len(pts) == 0:
        return 0.0
    if m == 1:
        return float(ref[0] - pts[:, 0].min())
    if m == 2:
        return _hypervolume_2d(pts, ref)
    return _hypervolume_3d(pts, ref)


# ---------------------------------------------------------------------------- plot
def plot_pareto(
    history_objectives: Float[Array, "n m"],
    front_mask: Bool[Array, "n"],
    path: str | Path,
    labels: Sequence[str] = ("objective 0", "objective 1"),
    title: str | None = None,
) -> Path:
    """Scatter every evaluated point and draw the front as a staircase; save to `path`.

    Plots the first two objectives (as given: minimized, so `-accuracy` reads as such; pass
    labels that say so). Rows with a non-finite value (infeasible) are left out and counted
    in the legend. Needs matplotlib (not a core dependency); it draws on a private Agg
    figure, so it never touches pyplot's global state or the user's backend.
    """
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError("plot_pareto needs matplotlib: pip install matplotlib") from e

    objs = np.asarray(history_objectives, np.float64)
    mask = np.asarray(front_mask, bool).reshape(-1)
    if objs.ndim != 2 or objs.shape[1] < 2 or mask.shape != objs.shape[:1]:
        raise ValueError(f"need objectives [n, m>=2] and a mask [n]; got {objs.shape} and {mask.shape}")
    finite = np.all(np.isfinite(objs), axis=1)
    x, y = objs[:, 0], objs[:, 1]

    fig = Figure(figsize=(5.5, 4.0), dpi=120)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    rest = finite & ~mask
    ax.scatter(x[rest], y[rest], s=8, c="0.7", label=f"evaluated ({finite.sum()})")
    on = finite & mask
    order = np.argsort(x[on], kind="stable")
    ax.plot(x[on][order], y[on][order], "o-", drawstyle="steps-post", c="tab:red", ms=4,
            label=f"Pareto front ({on.sum()})")
    if (~finite).any():
        ax.plot([], [], " ", label=f"infeasible, not shown ({(~finite).sum()})")
    ax.set_xlabel(labels[0])
    ax.set_ylabel(labels[1])
    if title:
        ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize="small")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return path


# ---------------------------------------------------------------------------- scalarization
CHEBYSHEV_RHO = 0.05  # augmented Chebyshev (ParEGO's value, Knowles 2006)


def rank_normalize(objectives: Float[Array, "n m"], valid: Bool[Array, "n"]) -> Float[Array, "n m"]:
    """Each column mapped to its empirical CDF over the valid feasible rows, in `[0, 1]`.

    `f~_ij = #{k valid, feasible : f_kj < f_ij} / max(#valid feasible - 1, 1)`. A rank transform
    is invariant to any increasing transform of an objective (latency or log latency, accuracy
    in % or as a fraction), needs no knowledge of the front, and is not squashed by a long tail
    (a few 10%-accuracy cells would compress min-max normalized accuracy of every good cell
    into a sliver near 0). Infeasible or invalid rows come out as `+inf`. O(m n log n).
    """
    ok = valid & jnp.all(jnp.isfinite(objectives), axis=-1)
    f = jnp.where(ok[:, None], objectives, jnp.inf)
    # Strictly smaller entries of each column: a sort and a binary search, O(n log n).
    below = jax.vmap(lambda col: jnp.searchsorted(jnp.sort(col), col, side="left"), in_axes=1, out_axes=1)(f)
    norm = below.astype(jnp.float32) / jnp.maximum(ok.sum() - 1, 1).astype(jnp.float32)
    return jnp.where(ok[:, None], norm, jnp.inf)


def chebyshev(normalized: Float[Array, "... m"], weights: Float[Array, "... m"],
              rho: float = CHEBYSHEV_RHO) -> Float[Array, "..."]:
    """Augmented Chebyshev `max_j w_j f~_j + rho sum_j w_j f~_j` (broadcasting; `+inf` stays `+inf`).

    Every Pareto-optimal point minimizes it for some weights, including points in concave
    parts of the front, which a weighted sum never reaches (Miettinen 1999, Thm 3.4.5).
    """
    bad = ~jnp.all(jnp.isfinite(normalized), axis=-1)
    wf = jnp.where(jnp.isfinite(normalized), normalized, 0.0) * weights
    return jnp.where(bad, jnp.inf, wf.max(-1) + rho * wf.sum(-1))


def random_weights(key, n: int, m: int) -> Float[Array, "n m"]:
    """`n` weight vectors uniform on the simplex (Dirichlet(1, ..., 1))."""
    return jax.random.dirichlet(key, jnp.ones((m,), jnp.float32), shape=(n,))
