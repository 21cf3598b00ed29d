"""Evaluators: plain callables `archs int32 [n, d] -> metrics` (a dict of `[n]` arrays).

The driver calls an evaluator on the distinct architectures a searcher proposes; an objective
(`searchers.objectives`) turns the metrics into what the searcher minimizes. Metric names and
units follow `searchers.objectives` (accuracy in percent, latency in ms, ...). Two kinds here:

* `TabularEvaluator`: a lookup in measured data. For NAS-Bench-201 (every one of the 15,625
  cells measured) it returns `accuracy` = the *validation* accuracy (what a search may see),
  `test_accuracy` (reported, never searched on), `latency_ms` on one device, and the analytic
  `macs`, `params`, `peak_activation_bytes`. It works for any `costs.measured.MeasuredData`:
  FBNet's and OFA's public tables hold latencies of 5,000 sampled networks of spaces with
  ~10^21 networks and no accuracy, so a searcher would almost never propose a measured one.
  For those spaces the tabular evaluator is refused for search (an architecture outside the
  table is an error, never a guess) and serves as training data: fit a `PredictorEvaluator`'s
  latency predictor on it, and take accuracy from a predictor fitted on trained networks (or
  the supernet evaluator, later).
* `PredictorEvaluator`: any cost model (a callable `archs -> metrics`: analytic counts, a
  lookup table) plus regressors over `space.encode` features fitted on architectures already
  evaluated, by default ridge regression (one-hot features make it an additive per-decision
  model, the usual first predictor of NAS surveys). The regressor is pluggable.

Evaluators may also tell the exact range of a metric over the whole space
(`metric_range(name) -> (low, high) | None`), which is how an objective no architecture can
meet is reported with the smallest achievable value before any budget is spent.

Example:
    >>> ev = TabularEvaluator.nasbench201("../shared/data", device="raspi4")
    >>> ev(space.sample(key, 3))["latency_ms"]     # float64 [3]
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping, NamedTuple, Protocol, Sequence

import numpy as np
from jaxtyping import Array, Int

from searchers.objectives import ACCURACY, LATENCY, PERCENT_METRICS, Objective, Unmet
from supernet.spaces import SearchSpace, get_space

Metrics = dict[str, np.ndarray]
# Measured-data columns renamed on the way out: the search sees `accuracy` only.
SEARCH_ACCURACY_COLUMN = "valid_accuracy"
REPORTED_COLUMNS = ("test_accuracy",)
ANALYTIC_METRICS = ("macs", "params", "peak_activation_bytes")


class Evaluator(Protocol):
    """What the driver needs: a callable with the names of the metrics it returns."""

    metric_names: tuple[str, ...]

    def __call__(self, archs: Int[Array, "n d"]) -> Metrics: ...


# ============================================================================ row lookup
def row_keys(archs: np.ndarray) -> np.ndarray:
    """One opaque, sortable key per row (`[n]` void): rows are equal iff their keys are.

    Viewing each int32 row as raw bytes lets numpy sort, search and compare whole
    architectures without a Python loop or a mixed-radix code (FBNet's 9**22 overflows int64).
    """
    archs = np.ascontiguousarray(archs, np.int32)
    return archs.view(np.dtype((np.void, archs.dtype.itemsize * archs.shape[1]))).reshape(archs.shape[0])


class RowIndex:
    """Position of architectures in a fixed table of architectures, by sorted keys."""

    def __init__(self, archs: np.ndarray):
        keys = row_keys(archs)
        self._order = np.argsort(keys, kind="stable")
        self._keys = keys[self._order]
        if len(self._keys) > 1 and (self._keys[1:] == self._keys[:-1]).any():
            raise ValueError("the table lists one architecture twice")

    def find(self, archs: np.ndarray) -> np.ndarray:
        """Row of each architecture in the table, `-1` where it is absent (`int64 [n]`)."""
        keys = row_keys(archs)
        if len(self._keys) == 0:
            return np.full(len(keys), -1, np.int64)
        pos = np.minimum(np.searchsorted(self._keys, keys), len(self._keys) - 1)
        hit = self._keys[pos] == keys
        return np.where(hit, self._order[pos], -1).astype(np.int64)


# ============================================================================ tabular
@dataclasses.dataclass(frozen=True, eq=False)
class TabularEvaluator:
    """Metrics looked up in a table of measured architectures (vectorized, no per-arch loop).

    `archs` are the table's architectures in canonical form, `table` one `[N]` column per
    metric; `device` names the latency column's device (None when there is none).
    """

    space: SearchSpace
    archs: np.ndarray
    table: Mapping[str, np.ndarray]
    device: str | None = None
    _index: RowIndex = dataclasses.field(init=False, repr=False)

    def __post_init__(self):
        archs = self.space.validate(np.asarray(self.archs).reshape(-1, self.space.num_decisions))
        archs = np.asarray(self.space.canonical(archs), np.int32)
        object.__setattr__(self, "archs", archs)
        object.__setattr__(self, "table", {k: np.asarray(v, np.float64) for k, v in self.table.items()})
        for name, col in self.table.items():
            if col.shape != (len(archs),):
                raise ValueError(f"tabular metric {name!r} has shape {col.shape}, expected ({len(archs)},)")
        try:
            object.__setattr__(self, "_index", RowIndex(archs))
        except ValueError as err:
            raise ValueError(f"{self.space.name} table: {err} (in canonical form)") from None

    @classmethod
    def from_measured(cls, data, device: str | None = None, *, space: SearchSpace | None = None,
                      accuracy_column: str = SEARCH_ACCURACY_COLUMN, reported: Sequence[str] = REPORTED_COLUMNS,
                      analytic: bool = True) -> "TabularEvaluator":
        """From `costs.measured.MeasuredData`: search accuracy, reported columns, one device.

        `accuracy_column` becomes `accuracy` (NAS-Bench-201: validation accuracy, so that
        the search never sees test accuracy); `reported` columns keep their names; the
        device's latency becomes `latency_ms`; `analytic` adds MACs, params and peak memory.
        """
        from costs import measured  # late: loading data is this constructor's business only

        space = space or get_space(data.space)
        table: dict[str, np.ndarray] = {}
        if accuracy_column in data.metrics:
            table[ACCURACY] = data.metrics[accuracy_column]
        for name in reported:
            if name in data.metrics:
                table[name] = data.metrics[name]
        known = measured.devices(data)
        if device is not None:
            table[LATENCY] = measured.latency(data, device)  # unknown device: lists the known ones
        elif known:
            raise ValueError(f"choose a device for the {data.space} latency; devices: {', '.join(known)}")
        if analytic:
            table.update(_analytic(space, data.archs))
        return cls(space, data.archs, table, device)

    @classmethod
    def nasbench201(cls, data_dir, device: str, **kwargs) -> "TabularEvaluator":
        """NAS-Bench-201 CIFAR-10 from `data_dir/nasbench201/` with `device`'s latency."""
        from costs.measured import load_nasbench201

        return cls.from_measured(load_nasbench201(data_dir), device, **kwargs)

    @property
    def metric_names(self) -> tuple[str, ...]:
        return tuple(self.table)

    @property
    def covers_space(self) -> bool:
        """Whether every architecture of the space is in the table (NAS-Bench-201: yes)."""
        return len(self.archs) == self.space.size

    def rows(self, archs: Int[Array, "n d"]) -> np.ndarray:
        """Table row of each architecture (`-1` where absent)."""
        archs = self.space.validate(np.atleast_2d(np.asarray(archs)))
        return self._index.find(np.asarray(self.space.canonical(archs), np.int32))

    def __call__(self, archs: Int[Array, "n d"]) -> Metrics:
        rows = self.rows(archs)
        missing = rows < 0
        if missing.any():
            first = self.space.to_public(np.atleast_2d(np.asarray(archs))[int(np.argmax(missing))])
            raise ValueError(
                f"{int(missing.sum())} of {len(rows)} architectures are not in the {self.space.name} table "
                f"(e.g. {first}); it holds {len(self.archs)} of the space's {self.space.size} networks, so "
                f"search with a PredictorEvaluator fitted on it instead")
        return {name: col[rows] for name, col in self.table.items()}

    def metric_range(self, name: str) -> tuple[float, float] | None:
        """Exact `(min, max)` of a metric over the whole space; None unless the table covers it."""
        if not self.covers_space or name not in self.table or len(self.archs) == 0:
            return None
        col = self.table[name]
        return float(col.min()), float(col.max())


def tabular_search_evaluator(space_name: str, data_dir, device: str | None) -> TabularEvaluator:
    """The tabular evaluator a search can run on: measured accuracy for every architecture.

    Only NAS-Bench-201 qualifies among the shared data; FBNet's and OFA's tables are refused
    with the reason (latency only, 5,000 of ~10^21 networks) rather than searched blindly.
    """
    from costs.measured import load_measured

    evaluator = TabularEvaluator.from_measured(load_measured(space_name, data_dir), device)
    if ACCURACY not in evaluator.table or not evaluator.covers_space:
        what = "no accuracy" if ACCURACY not in evaluator.table else "accuracy for part of the space"
        raise ValueError(
            f"{evaluator.space.name}: the measured data holds {len(evaluator.archs)} of the space's "
            f"{evaluator.space.size} networks and {what}, so it cannot drive a tabular search; search "
            f"nasbench201, or fit a PredictorEvaluator on this table (or use the supernet evaluator)")
    return evaluator


def _analytic(space: SearchSpace, archs: np.ndarray) -> Metrics:
    from costs.analytic import analytic_costs

    costs = analytic_costs(space, archs)
    return {name: np.asarray(getattr(costs, name), np.float64) for name in ANALYTIC_METRICS}


# ============================================================================ cost models
@dataclasses.dataclass(frozen=True, eq=False)
class AnalyticCostModel:
    """`costs.analytic` as a cost model: MACs, params and peak activation bytes."""

    space: SearchSpace
    metric_names: tuple[str, ...] = ANALYTIC_METRICS

    def __call__(self, archs: Int[Array, "n d"]) -> Metrics:
        return _analytic(self.space, np.atleast_2d(np.asarray(archs)))

    def metric_range(self, name: str) -> tuple[float, float] | None:
        return None


@dataclasses.dataclass(frozen=True, eq=False)
class LUTCostModel:
    """Lookup tables (`costs.lut.LatencyTable`) and fitted cost predictors
    (`costs.predictors`, e.g. `hwnas costs fit`), one metric each, as one cost model."""

    space: SearchSpace
    tables: tuple[Any, ...]

    def __post_init__(self):
        for t in self.tables:
            if hasattr(t, "check_space"):
                t.check_space(self.space)
            elif t.space.fingerprint() != self.space.fingerprint():  # a predictor
                raise ValueError(f"cost predictor {t.name!r} was fitted for another {t.space.name} configuration")
        names = [t.metric for t in self.tables]
        if len(set(names)) != len(names):
            raise ValueError(f"two cost models give the same metric: {names}")

    @property
    def metric_names(self) -> tuple[str, ...]:
        return tuple(t.metric for t in self.tables)

    def __call__(self, archs: Int[Array, "n d"]) -> Metrics:
        archs = self.space.validate(np.atleast_2d(np.asarray(archs)))
        return {t.metric: np.asarray(t.cost(archs) if hasattr(t, "cost") else t.predict(archs), np.float64)
                for t in self.tables}

    def metric_range(self, name: str) -> tuple[float, float] | None:
        for t in self.tables:
            if t.metric == name and hasattr(t, "min_cost"):
                return t.min_cost, t.max_cost
        return None


# ============================================================================ predictors
class Regressor(Protocol):
    """`fit(features [n, f], targets [n]) -> predict`, a function `features [m, f] -> [m]`."""

    def fit(self, features: np.ndarray, targets: np.ndarray) -> Callable[[np.ndarray], np.ndarray]: ...


@dataclasses.dataclass(frozen=True)
class RidgeRegressor:
    """Ridge regression `w = argmin |X w + b - y|^2 + l2 |w|^2` (bias unpenalized), closed form.

    On one-hot `space.encode` features this is an additive model: one learned value per
    choice of every decision. Solved in float64 by `lstsq` on the centered data augmented
    with `sqrt(l2) I`, which stays stable when features are collinear (one-hot blocks are).
    """

    l2: float = 1.0

    def fit(self, features: np.ndarray, targets: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
        x = np.asarray(features, np.float64)
        y = np.asarray(targets, np.float64)
        if x.ndim != 2 or y.shape != (x.shape[0],):
            raise ValueError(f"ridge: features must be [n, f] and targets [n], got {x.shape} and {y.shape}")
        if x.shape[0] == 0:
            raise ValueError("ridge: cannot fit on zero architectures")
        if not np.isfinite(y).all():
            raise ValueError("ridge: targets must be finite (drop infeasible or failed architectures first)")
        x_mean, y_mean = x.mean(0), y.mean()
        a = np.concatenate([x - x_mean, np.sqrt(self.l2) * np.eye(x.shape[1])])
        b = np.concatenate([y - y_mean, np.zeros(x.shape[1])])
        w = np.linalg.lstsq(a, b, rcond=None)[0]
        bias = y_mean - x_mean @ w

        def predict(f: np.ndarray) -> np.ndarray:
            return np.asarray(f, np.float64) @ w + bias

        return predict


@dataclasses.dataclass(frozen=True, eq=False)
class PredictorEvaluator:
    """A cost model plus regressors fitted on evaluated architectures (default: accuracy).

    `fit(archs, {"accuracy": values})` returns a new evaluator whose calls return the cost
    model's metrics plus the predicted ones. Predicted percent metrics are clipped to
    [0, 100]. Metrics the cost model already gives cannot also be predicted.

        ev = PredictorEvaluator(space, AnalyticCostModel(space)).fit(archs, {"accuracy": acc})
        ev(new_archs)   # {"macs", "params", "peak_activation_bytes", "accuracy"}
    """

    space: SearchSpace
    cost_model: Callable[[Any], Metrics] | None = None
    regressor: Regressor = RidgeRegressor()
    predictors: Mapping[str, Callable[[np.ndarray], np.ndarray]] = dataclasses.field(default_factory=dict)

    def fit(self, archs: Int[Array, "n d"], targets: Mapping[str, np.ndarray]) -> "PredictorEvaluator":
        archs = self.space.validate(np.atleast_2d(np.asarray(archs)))
        features = self._features(archs)
        fitted = dict(self.predictors)
        for name, values in targets.items():
            if name in self._cost_names():
                raise ValueError(f"metric {name!r} comes from the cost model; it cannot also be predicted")
            values = np.asarray(values, np.float64)
            if values.shape != (len(archs),):
                raise ValueError(f"targets {name!r} have shape {values.shape}, expected ({len(archs)},)")
            fitted[name] = self.regressor.fit(features, values)
        return dataclasses.replace(self, predictors=fitted)

    @property
    def metric_names(self) -> tuple[str, ...]:
        return self._cost_names() + tuple(self.predictors)

    def __call__(self, archs: Int[Array, "n d"]) -> Metrics:
        if not self.predictors:
            raise ValueError("PredictorEvaluator has no fitted predictor: call fit(archs, {'accuracy': ...}) first")
        archs = self.space.validate(np.atleast_2d(np.asarray(archs)))
        out = dict(self.cost_model(archs)) if self.cost_model is not None else {}
        features = self._features(archs)
        for name, predict in self.predictors.items():
            pred = np.asarray(predict(features), np.float64).reshape(len(archs))
            out[name] = np.clip(pred, 0.0, 100.0) if name in PERCENT_METRICS else pred
        return out

    def metric_range(self, name: str) -> tuple[float, float] | None:
        if name in self._cost_names() and hasattr(self.cost_model, "metric_range"):
            return self.cost_model.metric_range(name)
        return None

    def _features(self, archs: np.ndarray) -> np.ndarray:
        canonical = self.space.canonical(archs)  # equivalent archs must get the same prediction
        return np.asarray(self.space.encode(canonical), np.float64)

    def _cost_names(self) -> tuple[str, ...]:
        return tuple(getattr(self.cost_model, "metric_names", ())) if self.cost_model is not None else ()


def metric_range(evaluator, name: str) -> tuple[float, float] | None:
    """`evaluator.metric_range(name)` if the evaluator knows it, else None."""
    fn = getattr(evaluator, "metric_range", None)
    return fn(name) if fn is not None else None


class TargetCheck(NamedTuple):
    """What the whole space can achieve against an objective's targets, before any search."""

    infeasible: str | None  # why no architecture can meet the hard constraints, or None
    unmet: tuple[Unmet, ...]  # hard constraints and soft targets no architecture meets


def check_targets(objective: Objective, evaluator) -> TargetCheck | None:
    """Targets of `objective` that no architecture of the evaluator's space can meet.

    Exact when the evaluator tabulates the whole space (every constraint, and all of them at
    once); per constraint when it knows metric ranges (`metric_range`); None when it knows
    neither, and the driver's history is the only evidence.
    """
    population = f"architecture of {evaluator.space.name}"
    if getattr(evaluator, "covers_space", False):
        table = evaluator.table
        return TargetCheck(objective.infeasible_message(table, population, exhaustive=True),
                           objective.unmet_targets(table))
    unmet, known = [], True
    for hard, targets in ((True, objective.constraints), (False, objective.soft_targets)):
        for c in targets:
            rng = metric_range(evaluator, c.metric)
            if rng is None:
                known = False
                continue
            lo, hi = rng
            if (c.upper and lo > c.bound) or (not c.upper and hi < c.bound):
                unmet.append(Unmet(c, lo if c.upper else hi, hard))
    hard_unmet = [u for u in unmet if u.hard]
    message = "; ".join(u.message(population, exhaustive=True) for u in hard_unmet) or None
    if message is None and not known:
        return None
    return TargetCheck(message, tuple(unmet))


__all__ = [
    "AnalyticCostModel", "Evaluator", "LUTCostModel", "PredictorEvaluator", "Regressor", "RidgeRegressor",
    "RowIndex", "TabularEvaluator", "TargetCheck", "check_targets", "metric_range", "row_keys",
    "tabular_search_evaluator",
]
