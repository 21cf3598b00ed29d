"""How well a cost model predicts measured costs: one definition of every metric, used everywhere.

With `y` the measured costs and `p` the predictions of `n` architectures:

    RMSE        sqrt(mean((p - y)^2)), in the unit of `y`
    MAPE        mean(|p - y| / |y|), a fraction (0.05 = 5 %)
    within_5    share of architectures with |p - y| <= 0.05 |y|  (and within_10 with 0.10):
                the accuracy figure of BRP-NAS and HW-NAS-Bench ("+-10 % accuracy")
    kendall_tau Kendall's tau-b (ties in either ranking are corrected for, which matters
                for devices measured in whole milliseconds)
    spearman    Spearman's rho: Pearson correlation of the (average-tied) ranks
    (both NaN when undefined: fewer than 2 values, or a constant list)

A searcher only needs the ranking to be right, so tau and rho are the numbers that say
whether a cost model can replace measurement in a search (Dudziak et al., "BRP-NAS",
NeurIPS 2020); RMSE, MAPE and the +-x % shares say whether it can enforce a constraint.

Example:
    >>> from costs.metrics import prediction_metrics
    >>> m = prediction_metrics(measured=[1.0, 2.0, 4.0], predicted=[1.0, 2.1, 3.0])
    >>> round(m.within_10, 3), round(m.kendall_tau, 3)
    (0.667, 1.0)
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

__all__ = ["METRIC_NAMES", "PredictionMetrics", "kendall_tau", "prediction_metrics", "spearman"]
METRIC_NAMES = ("rmse", "mape", "within_5", "within_10", "kendall_tau", "spearman")


class PredictionMetrics(NamedTuple):
    rmse: float
    mape: float
    within_5: float
    within_10: float
    kendall_tau: float
    spearman: float

    def as_dict(self) -> dict[str, float]:
        return {k: float(v) for k, v in self._asdict().items()}


def prediction_metrics(measured, predicted) -> PredictionMetrics:
    """Every metric of the module docstring for one set of predictions.

    Both arguments are 1-D with the same length >= 2; `measured` must be nonzero (MAPE and
    the +-x % shares divide by it) and both finite, else `ValueError` says which.
    """
    y = _vector(measured, "measured")
    p = _vector(predicted, "predicted")
    if y.shape != p.shape:
        raise ValueError(f"measured has {y.size} values, predicted {p.size}")
    if y.size < 2:
        raise ValueError(f"need at least 2 architectures to rank, got {y.size}")
    if np.any(y == 0):
        raise ValueError("measured costs contain 0: relative errors (MAPE, +-x %) are undefined")
    rel = np.abs(p - y) / np.abs(y)
    return PredictionMetrics(
        rmse=float(np.sqrt(np.mean((p - y) ** 2))),
        mape=float(np.mean(rel)),
        within_5=float(np.mean(rel <= 0.05 + 1e-12)),
        within_10=float(np.mean(rel <= 0.10 + 1e-12)),
        kendall_tau=kendall_tau(y, p),
        spearman=spearman(y, p),
    )


def kendall_tau(a, b) -> float:
    """Kendall's tau-b of two equal-length 1-D score lists; NaN where undefined (n < 2 or a
    constant list: no order to agree with)."""
    return _rank_corr("kendalltau", a, b)


def spearman(a, b) -> float:
    """Spearman's rho (average ranks for ties); NaN where undefined, as `kendall_tau`."""
    return _rank_corr("spearmanr", a, b)


def _rank_corr(name: str, a, b) -> float:
    from scipy import stats  # late: scipy.stats takes most of a second to import, the CLI starts without it

    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"rank correlation needs two 1-D lists of equal length, got {a.shape} and {b.shape}")
    if len(a) < 2 or np.all(a == a[0]) or np.all(b == b[0]):
        return float("nan")  # scipy would warn and return NaN; say it without the warning
    return float(getattr(stats, name)(a, b).statistic)


def _vector(values, name: str) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} has {int(np.sum(~np.isfinite(arr)))} non-finite value(s)")
    return arr
