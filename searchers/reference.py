"""How good is a found front? The hypervolume ratio against a benchmark's true front.

Measured in the plane (accuracy, latency), minimized as `p = (-acc / 100, log lat)`, the
units of the `pareto` objective (`searchers.objectives`). The *true* front is enumerated
from a table that covers the whole space (NAS-Bench-201: all 15,625 cells), and

    ratio = HV(found points, r) / HV(true front, r),   r = (-0.85, log max_{q in front} lat_q)

(HV: the area dominated by a set and bounded by `r`; `searchers.pareto.hypervolume`). The
reference sits at 85% accuracy, below which NAS-Bench-201 cells are rarely of interest, and
at the slowest latency on the true front, so every true-front point above 85% counts. A
point on or beyond the reference (less accurate than 85%, or slower than the slowest
true-front point) adds nothing; the most accurate true-front point itself sits on the
latency bound, so it adds no area either. The ratio is 1 exactly when the found set dominates
as much as the true front does, and is comparable across searchers for one device.

Example:
    >>> ev = TabularEvaluator.nasbench201("../shared/data", device="raspi4")
    >>> front = true_front(ev)
    >>> hypervolume_ratio(result.metrics, front)       # 0.0 .. 1.0
"""

from __future__ import annotations

from typing import Mapping, NamedTuple

import numpy as np

from searchers.objectives import ACCURACY, LATENCY

MIN_ACCURACY = 85.0  # percent: the reference point's accuracy


class ReferenceFront(NamedTuple):
    """The true accuracy/latency front of a fully tabulated space."""

    archs: np.ndarray  # int32 [k, d], sorted by latency
    points: np.ndarray  # float64 [k, 2]: (-acc / 100, log latency_ms)
    reference: np.ndarray  # float64 [2]
    hypervolume: float


def plane_points(metrics: Mapping[str, np.ndarray]) -> np.ndarray:
    """`(-accuracy / 100, log latency_ms)` of each row, float64 `[n, 2]`."""
    for name in (ACCURACY, LATENCY):
        if name not in metrics:
            raise ValueError(f"the hypervolume plane needs metric {name!r}; metrics: {', '.join(sorted(metrics))}")
    acc = np.asarray(metrics[ACCURACY], np.float64)
    lat = np.asarray(metrics[LATENCY], np.float64)
    if (lat <= 0).any():
        raise ValueError("latency must be positive to be measured in log scale")
    return np.stack([-acc / 100.0, np.log(lat)], axis=-1)


def true_front(evaluator, min_accuracy: float = MIN_ACCURACY) -> ReferenceFront:
    """The true front of a `TabularEvaluator` whose table covers its whole space."""
    from searchers.pareto import hypervolume

    if not getattr(evaluator, "covers_space", False):
        raise ValueError("a true front needs a table of every architecture of the space "
                         "(NAS-Bench-201's tabular evaluator has one)")
    points = plane_points(evaluator.table)
    idx = staircase(points)
    idx = idx[np.argsort(points[idx, 1], kind="stable")]  # fastest first
    reference = np.array([-min_accuracy / 100.0, points[idx, 1].max()])
    return ReferenceFront(evaluator.archs[idx], points[idx], reference, hypervolume(points[idx], reference))


def hypervolume_ratio(metrics: Mapping[str, np.ndarray], front: ReferenceFront) -> float:
    """HV of the rows of `metrics` over HV of the true front (same reference point)."""
    from searchers.pareto import hypervolume

    if front.hypervolume <= 0:
        raise ValueError("the true front has zero hypervolume at this reference point")
    points = plane_points(metrics)
    return float(hypervolume(points, front.reference) / front.hypervolume)


def staircase(points: np.ndarray) -> np.ndarray:
    """Indices of the 2-D non-dominated points, sorted by the first coordinate (one per tie).

    Sorted by `(f0, f1)`, a point is on the front iff its `f1` is below every earlier `f1`
    (Kung, Luccio & Preparata 1975): O(n log n) in float64, instant for all 15,625 cells.
    """
    order = np.lexsort((points[:, 1], points[:, 0]))
    f1 = points[order, 1]
    lowest_before = np.concatenate([[np.inf], np.minimum.accumulate(f1)[:-1]])
    return order[f1 < lowest_before]


__all__ = ["MIN_ACCURACY", "ReferenceFront", "hypervolume_ratio", "plane_points", "staircase", "true_front"]
