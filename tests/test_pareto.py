"""Pareto utilities: dominance, non-dominated sorting, crowding, exact hypervolume, plot."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from searchers.pareto import (
    crowding_distance,
    dominance_matrix,
    hypervolume,
    mark_infeasible,
    non_dominated_mask,
    non_dominated_sort,
    plot_pareto,
)

INF = np.inf


def naive_ranks(points: np.ndarray) -> np.ndarray:
    """Textbook peeling with Python loops: the reference the vectorized sort must match."""
    n = len(points)
    dominates = lambda u, v: np.all(u <= v) and np.any(u < v)
    rank = np.full(n, -1)
    r = 0
    while (rank < 0).any():
        left = [i for i in range(n) if rank[i] < 0]
        front = [j for j in left if not any(dominates(points[i], points[j]) for i in left if i != j)]
        rank[front] = r
        r += 1
    return rank


def grid_hypervolume(points: np.ndarray, ref: np.ndarray) -> int:
    """Exact HV of integer points: count the unit cells `c + [0,1]^m` that some point dominates."""
    cells = np.array(list(itertools.product(*[range(int(r)) for r in ref])))
    if len(points) == 0:
        return 0
    covered = np.any(np.all(points[None, :, :] <= cells[:, None, :], axis=-1), axis=1)
    return int(covered.sum())


# ---------------------------------------------------------------------------- sorting
def test_hand_computed_fronts_with_duplicates_and_infeasible_points():
    pts = np.array([
        [1, 5],      # front 0
        [2, 3],      # front 0
        [3, 4],      # dominated by (2, 3) -> front 1
        [4, 1],      # front 0
        [2, 3],      # duplicate of a front point: also front 0 (copies never dominate each other)
        [5, 5],      # dominated by (3, 4) -> front 2
        [INF, INF],  # infeasible: dominated by every finite point -> last
        [INF, INF],  # a second infeasible copy shares its rank
    ], np.float32)
    np.testing.assert_array_equal(non_dominated_sort(pts), [0, 0, 1, 0, 0, 2, 3, 3])
    np.testing.assert_array_equal(non_dominated_mask(pts), [1, 1, 0, 1, 1, 0, 0, 0])
    dom = np.asarray(dominance_matrix(jnp.asarray(pts)))
    assert dom[1, 2] and not dom[2, 1] and not dom[1, 4] and not dom[6, 7]
    assert not dom.diagonal().any()


def test_only_infeasible_points_form_one_front():
    pts = np.full((3, 2), INF, np.float32)
    np.testing.assert_array_equal(non_dominated_sort(pts), [0, 0, 0])
    np.testing.assert_array_equal(crowding_distance(pts, non_dominated_sort(pts)), [INF, 0, INF])


@pytest.mark.parametrize("m", [1, 2, 3])
def test_sort_matches_naive_peeling_on_tied_random_points(m):
    rng = np.random.default_rng(m)
    pts = rng.integers(0, 5, size=(60, m)).astype(np.float32)  # few values: many ties and copies
    pts[:3] = INF
    rank = np.asarray(jax.jit(non_dominated_sort)(pts))
    np.testing.assert_array_equal(rank, naive_ranks(pts))
    np.testing.assert_array_equal(non_dominated_mask(pts), rank == 0)


@pytest.mark.parametrize("m", [1, 2])
@pytest.mark.parametrize("until", [0, 1, 7, 30, 60, 61])
def test_sort_until_stops_after_enough_points_and_ranks_the_rest_next(until, m):
    rng = np.random.default_rng(5)
    pts = rng.integers(0, 6, size=(60, m)).astype(np.float32)
    pts[:2] = INF
    full = naive_ranks(pts)
    rank = np.asarray(jax.jit(non_dominated_sort)(pts, until))  # `until` traced
    # The front that reaches `until` (none needed for 0; all of them when it exceeds n).
    last = -1 if until <= 0 else min([r for r in range(full.max() + 1) if (full <= r).sum() >= until] or [full.max()])
    np.testing.assert_array_equal(rank, np.where(full <= last, full, last + 1))


def test_one_objective_ranks_equal_peeling_with_nan_and_inf():
    # One objective takes a dense-rank sort instead of one peel per distinct value.
    from searchers.pareto import _peel_fronts

    rng = np.random.default_rng(3)
    pts = rng.integers(0, 9, size=(50, 1)).astype(np.float32)
    pts[[0, 5]] = INF
    pts[[3, 9]] = np.nan  # never dominated: front 0, as in the dominance matrix
    for until in (None, 1, 4, 20, 50):
        np.testing.assert_array_equal(non_dominated_sort(pts, until), _peel_fronts(jnp.asarray(pts), until))


@pytest.mark.parametrize("m", [2, 3])
def test_mask_of_many_points(m):
    # m = 2 takes the sort sweep, m = 3 the blocked all-pairs test (more rows than one block).
    rng = np.random.default_rng(m)
    pts = rng.integers(0, 40, size=(1300, m)).astype(np.float32)
    pts[:5] = INF
    pts[5:10] = pts[10:15]
    dominated = np.zeros(len(pts), bool)
    for i in range(len(pts)):
        dominated |= np.all(pts[i] <= pts, 1) & np.any(pts[i] < pts, 1)
    np.testing.assert_array_equal(non_dominated_mask(pts), ~dominated)


def test_empty_input():
    empty = np.zeros((0, 2), np.float32)
    assert non_dominated_mask(empty).shape == (0,)
    assert non_dominated_sort(empty).shape == (0,)
    assert hypervolume(empty, [1.0, 1.0]) == 0.0


def test_mark_infeasible_turns_any_non_finite_row_into_all_inf():
    out = np.asarray(mark_infeasible(np.array([[1, 2], [3, INF], [np.nan, 0], [-INF, 1]], np.float32)))
    np.testing.assert_array_equal(out, [[1, 2], [INF, INF], [INF, INF], [INF, INF]])


# ---------------------------------------------------------------------------- crowding
def test_crowding_distance_by_hand():
    pts = np.array([
        [0, 10], [1, 6], [3, 3], [10, 0],  # front 0, both objectives span 10
        [5, 12], [12, 5],                  # front 1: two points, both extremes
        [INF, INF], [INF, INF], [INF, INF],  # infeasible front: finite, never NaN
    ], np.float32)
    rank = non_dominated_sort(pts)
    np.testing.assert_array_equal(rank, [0, 0, 0, 0, 1, 1, 2, 2, 2])
    dist = np.asarray(jax.jit(crowding_distance)(pts, rank))
    # (1, 6): f0 neighbours 0 and 3 -> 3/10; f1 neighbours 3 and 10 -> 7/10.
    # (3, 3): f0 neighbours 1 and 10 -> 9/10; f1 neighbours 0 and 6 -> 6/10.
    np.testing.assert_allclose(dist[:6], [INF, 1.0, 1.5, INF, INF, INF], rtol=1e-6)
    np.testing.assert_array_equal(dist[6:], [INF, 0, INF])


def test_crowding_of_a_front_with_zero_span_is_finite_inside():
    pts = np.array([[1, 3], [1, 3], [1, 3], [1, 3]], np.float32)  # four copies: one front
    dist = np.asarray(crowding_distance(pts, non_dominated_sort(pts)))
    assert not np.isnan(dist).any()
    assert np.isinf(dist).sum() == 2 and (dist[np.isfinite(dist)] == 0).all()


# ---------------------------------------------------------------------------- hypervolume
def test_hypervolume_2d_by_hand():
    front = [[1, 3], [2, 2], [3, 1]]
    assert hypervolume(front, [4, 4]) == pytest.approx(3 + 2 + 1)
    # A dominated point, a duplicate, points outside or on the reference box and infinities
    # add nothing.
    extra = front + [[3, 3], [2, 2], [5, 0], [0, 4], [4, 0], [INF, INF], [np.nan, 0]]
    assert hypervolume(extra, [4, 4]) == pytest.approx(6.0)
    assert hypervolume([[5, 5]], [4, 4]) == 0.0


def test_hypervolume_3d_by_hand():
    assert hypervolume([[0, 0, 0]], [1, 1, 1]) == pytest.approx(1.0)
    # Boxes of 0.5 and 0.25 overlapping in [0.5, 1]^3 (0.125): union 0.625.
    assert hypervolume([[0, 0, 0.5], [0.5, 0.5, 0]], [1, 1, 1]) == pytest.approx(0.625)


@pytest.mark.parametrize("m", [1, 2, 3])
def test_hypervolume_matches_cell_counting(m):
    rng = np.random.default_rng(10 + m)
    ref = np.full(m, 6)
    for _ in range(5):
        pts = rng.integers(0, 8, size=(12, m)).astype(np.float64)  # some outside the box
        keep = np.all(pts < ref, axis=1)
        assert hypervolume(pts, ref) == pytest.approx(grid_hypervolume(pts[keep], ref))


def test_hypervolume_refuses_more_than_three_objectives_and_bad_shapes():
    with pytest.raises(ValueError, match="1, 2 or 3 objectives"):
        hypervolume(np.zeros((3, 4)), np.ones(4))
    with pytest.raises(ValueError, match="len\\(reference\\)"):
        hypervolume(np.zeros((3, 2)), np.ones(3))
    with pytest.raises(ValueError, match="finite"):
        hypervolume(np.zeros((3, 2)), [1.0, INF])


# ---------------------------------------------------------------------------- plot
def test_plot_pareto_writes_an_image(tmp_path):
    pytest.importorskip("matplotlib")
    rng = np.random.default_rng(0)
    objs = rng.random((50, 2)).astype(np.float32)
    objs[:2] = INF
    path = plot_pareto(objs, non_dominated_mask(objs), tmp_path / "sub" / "front.png",
                       labels=("-accuracy", "latency (ms)"), title="test")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError):
        plot_pareto(objs[:, :1], non_dominated_mask(objs), tmp_path / "bad.png")
