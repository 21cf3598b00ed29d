"""Objectives: turn measured or predicted metrics into what a searcher minimizes.

An evaluator returns *metrics*, a dict of `[n]` arrays keyed by name; an objective maps them
to *objectives*, `float32 [n, m]`, **minimized** (the searcher protocol's convention). Metric
names used across hwnas:

    accuracy               top-1 accuracy in percent (0..100) used for the search (validation)
    test_accuracy          percent, reported, never searched on
    latency_ms, energy_mj  measured or predicted, on one device
    macs, flops, params    analytic counts (`costs.analytic`)
    peak_activation_bytes  analytic peak activation memory

Accuracy metrics are published in percent; every formula below uses accuracy as a *fraction*
`acc = accuracy / 100`, the unit the papers' rewards are written in (TuNAS's additive penalty
in particular would be meaningless against percents).

Formulas (r is a reward, maximized; the objective is `-r`):

* MNASNet soft constraint (Tan et al., "MnasNet: Platform-Aware Neural Architecture Search
  for Mobile", CVPR 2019, eq. 2): `r = acc * (lat / T) ** w`, `w = alpha if lat <= T else
  beta`; the paper's soft constraint uses `alpha = beta = -0.07`, its hard one `alpha = 0,
  beta = -1`.
* TuNAS absolute reward (Bender et al., "Can Weight Sharing Outperform Random Architecture
  Search? An Investigation With TuNAS", CVPR 2020, sec. 3.3): `r = acc + beta * |lat / T - 1|`
  with `beta < 0`; `beta = -0.10` is the default of the authors' released search
  (`rl_cost_model_exponent` in google-research/tunas).
* Hard constraints on any metric, `x <= b` or `x >= b`: an architecture that violates one
  gets `+inf` in every column (the protocol's "infeasible").
* Weighted sum `sum_i w_i * x_i` and weighted product `prod_i x_i ** w_i`, both minimized,
  with accuracy metrics as fractions (e.g. `{"accuracy": -1, "latency_ms": 0.07}` as a
  product ranks like MNAS's reward without the switch at T).
* Pareto vector `[-acc, log c_1, ..., log c_k]` for multi-objective search; costs enter in
  log scale because latencies span orders of magnitude and a front should be spread evenly.

Every objective can say which targets no architecture meets and the best value that was
achievable instead (`unmet_targets`, `infeasible_message`), so an impossible constraint is
reported, not answered with an empty result.

Example:
    >>> obj = parse_objective("max-acc:lat<=5")
    >>> obj({"accuracy": np.array([90.0, 93.0]), "latency_ms": np.array([4.0, 6.0])})
    array([[-0.9], [inf]], dtype=float32)
"""

from __future__ import annotations

import dataclasses
import math
import re
from typing import ClassVar, Mapping, NamedTuple, Sequence

import numpy as np

ACCURACY = "accuracy"
LATENCY = "latency_ms"
# Metrics given in percent; objectives use them as fractions.
PERCENT_METRICS = frozenset({"accuracy", "test_accuracy", "train_accuracy", "valid_accuracy"})
# Short names people type on the command line -> metric keys.
METRIC_ALIASES = {
    "acc": "accuracy", "accuracy": "accuracy",
    "lat": "latency_ms", "latency": "latency_ms",
    "energy": "energy_mj",
    "mem": "peak_activation_bytes", "memory": "peak_activation_bytes",
}
UNITS = {"latency_ms": "ms", "energy_mj": "mJ", "peak_activation_bytes": "bytes", "accuracy": "%"}

MNAS_ALPHA = -0.07
MNAS_BETA = -0.07
TUNAS_BETA = -0.10

Metrics = Mapping[str, np.ndarray]


class ObjectiveError(ValueError):
    """A malformed objective spec, or metrics an objective cannot use (missing, NaN)."""


def metric_name(name: str) -> str:
    """The metric key for a name or its alias (`lat` -> `latency_ms`); others pass through."""
    return METRIC_ALIASES.get(name, name)


def format_value(metric: str, value: float) -> str:
    unit = UNITS.get(metric, "")
    text = f"{value:.6g}"
    return f"{text}{'%' if unit == '%' else (' ' + unit if unit else '')}"


# ============================================================================ constraints
@dataclasses.dataclass(frozen=True)
class Constraint:
    """`metric <= bound` (`upper=True`) or `metric >= bound`, in the metric's own units."""

    metric: str
    bound: float
    upper: bool = True

    def satisfied(self, metrics: Metrics) -> np.ndarray:
        x = _column(metrics, self.metric, raw=True)
        return x <= self.bound if self.upper else x >= self.bound

    def best(self, metrics: Metrics) -> float:
        """The best value any row reaches: the smallest for `<=`, the largest for `>=`."""
        x = _column(metrics, self.metric, raw=True)
        if x.size == 0:
            return math.nan
        return float(x.min() if self.upper else x.max())

    def __str__(self) -> str:
        return f"{self.metric} {'<=' if self.upper else '>='} {self.bound:g}"


class Unmet(NamedTuple):
    """A target that no row of some metrics meets, with the best value reached instead."""

    target: Constraint
    best: float
    hard: bool  # hard constraint (all rows infeasible) or soft target (still ranked)

    def message(self, population: str = "evaluated architecture", exhaustive: bool = False) -> str:
        """One line; `exhaustive` when `population` is the whole space (the best is achievable)."""
        kind = "the constraint" if self.hard else "the soft target"
        smallest = "smallest" if self.target.upper else "largest"
        which = "achievable" if exhaustive else "found"
        return (f"no {population} meets {kind} {self.target}: the {smallest} {self.target.metric} "
                f"{which} is {format_value(self.target.metric, self.best)}")


# ============================================================================ objectives
@dataclasses.dataclass(frozen=True, kw_only=True)
class Objective:
    """Base class: metrics -> `float32 [n, m]`, minimized, `+inf` where a constraint fails.

    Subclasses define `columns` (one name per objective), `_values` (float64 `[n, m]`),
    `_uses` (metrics read by the formula) and `spec` (the string `parse_objective` reads).
    """

    constraints: tuple[Constraint, ...] = ()
    kind: ClassVar[str] = "objective"

    @property
    def columns(self) -> tuple[str, ...]:
        raise NotImplementedError

    @property
    def num_objectives(self) -> int:
        return len(self.columns)

    @property
    def soft_targets(self) -> tuple[Constraint, ...]:
        """Targets the formula aims at without forbidding the rest (MNAS, TuNAS)."""
        return ()

    @property
    def requires(self) -> tuple[str, ...]:
        """Every metric the objective reads, formula first, then constraints."""
        names = list(self._uses()) + [c.metric for c in self.constraints]
        return tuple(dict.fromkeys(names))

    @property
    def spec(self) -> str:
        raise NotImplementedError

    def _uses(self) -> tuple[str, ...]:
        raise NotImplementedError

    def _values(self, metrics: Metrics) -> np.ndarray:
        raise NotImplementedError

    def __call__(self, metrics: Metrics) -> np.ndarray:
        """Objectives `float32 [n, m]` of the `n` rows of `metrics` (dict of `[n]` arrays)."""
        _check_metrics(metrics, self.requires, self.spec)
        values = np.asarray(self._values(metrics), np.float64).reshape(-1, self.num_objectives)
        if np.isnan(values).any():
            row = int(np.argwhere(np.isnan(values))[0, 0])
            raise ObjectiveError(f"objective {self.spec!r} is NaN at row {row}: check the metrics' domain")
        values[~self.feasible(metrics)] = np.inf
        return values.astype(np.float32)

    def feasible(self, metrics: Metrics) -> np.ndarray:
        """`bool [n]`: rows meeting every hard constraint."""
        n = _num_rows(metrics)
        ok = np.ones(n, bool)
        for c in self.constraints:
            ok &= c.satisfied(metrics)
        return ok

    def unmet_targets(self, metrics: Metrics) -> tuple[Unmet, ...]:
        """Hard constraints and soft targets that no row of `metrics` meets."""
        out = []
        for hard, targets in ((True, self.constraints), (False, self.soft_targets)):
            for c in targets:
                if not c.satisfied(metrics).any():
                    out.append(Unmet(c, c.best(metrics), hard))
        return tuple(out)

    def infeasible_message(self, metrics: Metrics, population: str = "evaluated architecture",
                           exhaustive: bool = False) -> str | None:
        """Why no row is feasible (None if one is): each unmet constraint with its best value.

        `exhaustive` says the rows are the whole space, so the best values are achievable
        ones rather than the best found so far.
        """
        if self.feasible(metrics).any():
            return None
        unmet = [u for u in self.unmet_targets(metrics) if u.hard]
        if not unmet:  # each constraint is met by some row, but never all by one row
            return f"no {population} meets all of {', '.join(map(str, self.constraints))} at once"
        return "; ".join(u.message(population, exhaustive) for u in unmet)

    def _with_constraints(self, text: str) -> str:
        """`text` followed by the constraints as `parse_objective` reads them."""
        if not self.constraints:
            return text
        return text + ("," if ":" in text else ":") + ",".join(_constraint_spec(c) for c in self.constraints)


@dataclasses.dataclass(frozen=True, kw_only=True)
class MaxAccuracy(Objective):
    """Maximize accuracy alone (usually under hard constraints): `-acc`."""

    accuracy: str = ACCURACY
    kind: ClassVar[str] = "max-acc"

    @property
    def columns(self):
        return (f"-{self.accuracy}",)

    @property
    def spec(self):
        return self._with_constraints("max-acc")

    def _uses(self):
        return (self.accuracy,)

    def _values(self, metrics):
        return -_column(metrics, self.accuracy)


@dataclasses.dataclass(frozen=True, kw_only=True)
class MNAS(Objective):
    """MNASNet's reward `acc * (lat / T) ** w`, `w = alpha if lat <= T else beta`; minimized as `-r`.

    Tan et al., CVPR 2019, eq. 2. With the soft-constraint defaults `alpha = beta = -0.07`, an
    architecture twice as slow as `T` must be about 5% more accurate (relative) to score the
    same. `alpha = 0, beta = -1` is the paper's hard-ish variant.
    """

    target: float
    metric: str = LATENCY
    alpha: float = MNAS_ALPHA
    beta: float = MNAS_BETA
    accuracy: str = ACCURACY
    kind: ClassVar[str] = "mnas"

    def __post_init__(self):
        _positive_target(self.kind, self.target)

    @property
    def columns(self):
        return ("-mnas_reward",)

    @property
    def soft_targets(self):
        return (Constraint(self.metric, self.target),)

    @property
    def spec(self):
        text = f"mnas:{_g(self.target)}" + _options(self, alpha=MNAS_ALPHA, beta=MNAS_BETA, metric=LATENCY)
        return self._with_constraints(text)

    def _uses(self):
        return (self.accuracy, self.metric)

    def _values(self, metrics):
        acc = _column(metrics, self.accuracy)
        ratio = _column(metrics, self.metric) / self.target
        w = np.where(ratio <= 1.0, self.alpha, self.beta)
        return -(acc * ratio ** w)


@dataclasses.dataclass(frozen=True, kw_only=True)
class TuNAS(Objective):
    """TuNAS's absolute reward `acc + beta * |lat / T - 1|` (beta < 0); minimized as `-r`.

    Bender et al., CVPR 2020, sec. 3.3. Unlike MNAS's product, the penalty grows on *both*
    sides of `T`, so the search is pulled to the target instead of to the fastest networks.
    """

    target: float
    metric: str = LATENCY
    beta: float = TUNAS_BETA
    accuracy: str = ACCURACY
    kind: ClassVar[str] = "tunas"

    def __post_init__(self):
        _positive_target(self.kind, self.target)

    @property
    def columns(self):
        return ("-tunas_reward",)

    @property
    def soft_targets(self):
        return (Constraint(self.metric, self.target),)

    @property
    def spec(self):
        return self._with_constraints(f"tunas:{_g(self.target)}" + _options(self, beta=TUNAS_BETA, metric=LATENCY))

    def _uses(self):
        return (self.accuracy, self.metric)

    def _values(self, metrics):
        acc = _column(metrics, self.accuracy)
        ratio = _column(metrics, self.metric) / self.target
        return -(acc + self.beta * np.abs(ratio - 1.0))


@dataclasses.dataclass(frozen=True, kw_only=True)
class WeightedSum(Objective):
    """`sum_i w_i * x_i`, minimized (accuracy metrics as fractions: give them negative weights)."""

    weights: tuple[tuple[str, float], ...]
    kind: ClassVar[str] = "wsum"

    def __post_init__(self):
        _check_weights(self.kind, self.weights)

    @property
    def columns(self):
        return ("weighted_sum",)

    @property
    def spec(self):
        return self._with_constraints("wsum:" + ",".join(f"{k}={_g(w)}" for k, w in self.weights))

    def _uses(self):
        return tuple(k for k, _ in self.weights)

    def _values(self, metrics):
        return sum(w * _column(metrics, k) for k, w in self.weights)


@dataclasses.dataclass(frozen=True, kw_only=True)
class WeightedProduct(Objective):
    """`prod_i x_i ** w_i`, minimized; metrics must be positive (accuracy as a fraction)."""

    weights: tuple[tuple[str, float], ...]
    kind: ClassVar[str] = "wprod"

    def __post_init__(self):
        _check_weights(self.kind, self.weights)

    @property
    def columns(self):
        return ("weighted_product",)

    @property
    def spec(self):
        return self._with_constraints("wprod:" + ",".join(f"{k}={_g(w)}" for k, w in self.weights))

    def _uses(self):
        return tuple(k for k, _ in self.weights)

    def _values(self, metrics):
        # Computed as exp(sum w log x): the same number, without overflow in long products.
        return np.exp(sum(w * np.log(_positive(metrics, k, self.kind)) for k, w in self.weights))


@dataclasses.dataclass(frozen=True, kw_only=True)
class Pareto(Objective):
    """The vector `[-acc, log c_1, ..., log c_k]` for Pareto search (default cost: latency)."""

    costs: tuple[str, ...] = (LATENCY,)
    accuracy: str = ACCURACY
    kind: ClassVar[str] = "pareto"

    def __post_init__(self):
        if not self.costs:
            raise ObjectiveError("pareto: give at least one cost metric besides accuracy")
        if len(set(self.costs)) != len(self.costs) or self.accuracy in self.costs:
            raise ObjectiveError(f"pareto: metrics must be distinct, got {self.accuracy}, {', '.join(self.costs)}")

    @property
    def columns(self):
        return (f"-{self.accuracy}",) + tuple(f"log {c}" for c in self.costs)

    @property
    def spec(self):
        text = "pareto" if self.costs == (LATENCY,) else "pareto:" + ",".join(self.costs)
        return self._with_constraints(text)

    def _uses(self):
        return (self.accuracy,) + self.costs

    def _values(self, metrics):
        cols = [-_column(metrics, self.accuracy)] + [np.log(_positive(metrics, c, self.kind)) for c in self.costs]
        return np.stack(cols, axis=-1)


# ============================================================================ parsing
SPEC_HELP = ("pareto[:METRIC,...], mnas:T[,alpha=A,beta=B], tunas:T[,beta=B], max-acc[:METRIC<=X,...], "
             "wsum:METRIC=W,..., wprod:METRIC=W,..., or constraints alone (lat<=5,params<=1M); any form "
             "takes extra METRIC<=X or METRIC>=X constraints")
_CONSTRAINT = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(<=|>=)\s*(\S+)\s*$")
_OPTION = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(\S+)\s*$")
_NAME = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*$")
_SUFFIX = {"k": 1e3, "K": 1e3, "M": 1e6, "G": 1e9}


def parse_objective(spec: str) -> Objective:
    """An objective from its command-line spec (see `SPEC_HELP`).

    Latency targets are in ms, energy in mJ, memory in bytes, accuracy in percent; numbers
    take a `k`/`M`/`G` suffix (`params<=1.5M`).

        pareto                  [-acc, log latency_ms]
        pareto:lat,energy       [-acc, log latency_ms, log energy_mj]
        mnas:5                  MNAS soft constraint, T = 5 ms
        tunas:5,beta=-0.3       TuNAS absolute reward
        max-acc:lat<=5          maximize accuracy subject to latency <= 5 ms
        params<=1M              shorthand for max-acc:params<=1M
    """
    if not isinstance(spec, str) or not spec.strip():
        raise ObjectiveError(f"empty objective; objectives: {SPEC_HELP}")
    text = spec.strip()
    head, sep, rest = text.partition(":")
    if _CONSTRAINT.match(head):
        # Constraints alone ("lat<=5,params<=1M"): maximize accuracy under them.
        head, rest = "max-acc", text
    head = head.strip().lower().replace("_", "-")
    if head not in _BUILDERS:
        raise ObjectiveError(f"unknown objective {spec!r}; objectives: {SPEC_HELP}")
    args = rest.split(",") if rest.strip() else []
    if sep and not args and head != "max-acc":
        raise ObjectiveError(f"objective {spec!r}: nothing after ':'; forms: {SPEC_HELP}")
    positional, options, constraints = [], {}, []
    for arg in args:
        if m := _CONSTRAINT.match(arg):
            constraints.append(Constraint(metric_name(m[1]), _number(m[3], spec), m[2] == "<="))
        elif m := _OPTION.match(arg):
            options[m[1]] = m[2]
        elif arg.strip():
            positional.append(arg.strip())
        else:
            raise ObjectiveError(f"objective {spec!r}: empty item between commas")
    try:
        return _BUILDERS[head](spec, positional, options, tuple(constraints))
    except TypeError as err:  # a dataclass rejected an option
        raise ObjectiveError(f"objective {spec!r}: {err}") from None


def _build_pareto(spec, positional, options, constraints):
    _no_options(spec, options, ())
    costs = []
    for p in positional:
        if not _NAME.match(p):
            raise ObjectiveError(f"objective {spec!r}: {p!r} is not a metric name (pareto:lat,energy)")
        costs.append(metric_name(p))
    return Pareto(costs=tuple(costs) or (LATENCY,), constraints=constraints)


def _build_target(cls, allowed):
    def build(spec, positional, options, constraints):
        if len(positional) != 1:
            raise ObjectiveError(
                f"objective {spec!r}: {cls.kind} takes one target T (e.g. {cls.kind}:5 for 5 ms), "
                f"got {len(positional)} positional value(s)")
        _no_options(spec, options, allowed + ("metric",))
        kwargs = {k: _number(v, spec) for k, v in options.items() if k != "metric"}
        if "metric" in options:
            kwargs["metric"] = metric_name(options["metric"])
        return cls(target=_number(positional[0], spec), constraints=constraints, **kwargs)
    return build


def _build_max_acc(spec, positional, options, constraints):
    _no_options(spec, options, ())
    if positional:
        raise ObjectiveError(f"objective {spec!r}: max-acc takes constraints like lat<=5, got {positional[0]!r}")
    return MaxAccuracy(constraints=constraints)


def _build_weighted(cls):
    def build(spec, positional, options, constraints):
        if positional or not options:
            raise ObjectiveError(f"objective {spec!r}: {cls.kind} takes METRIC=WEIGHT items, e.g. "
                                 f"{cls.kind}:acc=-1,lat=0.01")
        weights = tuple((metric_name(k), _number(v, spec)) for k, v in options.items())
        return cls(weights=weights, constraints=constraints)
    return build


_BUILDERS = {
    "pareto": _build_pareto,
    "mnas": _build_target(MNAS, ("alpha", "beta")),
    "tunas": _build_target(TuNAS, ("beta",)),
    "max-acc": _build_max_acc,
    "wsum": _build_weighted(WeightedSum),
    "wprod": _build_weighted(WeightedProduct),
}


# ============================================================================ helpers
def _number(text: str, spec: str) -> float:
    text = text.strip()
    scale = 1.0
    if text and text[-1] in _SUFFIX:
        text, scale = text[:-1], _SUFFIX[text[-1]]
    try:
        value = float(text) * scale
    except ValueError:
        raise ObjectiveError(f"objective {spec!r}: {text!r} is not a number") from None
    if not math.isfinite(value):
        raise ObjectiveError(f"objective {spec!r}: {text!r} must be finite")
    return value


def _no_options(spec: str, options: dict, allowed: Sequence[str]) -> None:
    for key in options:
        if key not in allowed:
            hint = f"options: {', '.join(allowed)}" if allowed else "it takes no KEY=VALUE options"
            raise ObjectiveError(f"objective {spec!r}: unknown option {key!r}; {hint}")


def _positive_target(kind: str, target: float) -> None:
    if not (target > 0 and math.isfinite(target)):
        raise ObjectiveError(f"{kind}: the target T must be a positive number, got {target}")


def _check_weights(kind: str, weights) -> None:
    if not weights:
        raise ObjectiveError(f"{kind}: give at least one METRIC=WEIGHT")
    names = [k for k, _ in weights]
    if len(set(names)) != len(names):
        raise ObjectiveError(f"{kind}: a metric appears twice in {names}")


def _options(obj, **defaults) -> str:
    """`,key=value` for each field that differs from its default (for `spec`)."""
    out = ""
    for key, default in defaults.items():
        value = getattr(obj, key)
        if value != default:
            out += f",{key}={_g(value)}" if isinstance(value, float) else f",{key}={value}"
    return out


def _constraint_spec(c: Constraint) -> str:
    return f"{c.metric}{'<=' if c.upper else '>='}{_g(c.bound)}"


def _g(x: float) -> str:
    """A number short but exact enough that `parse_objective(obj.spec) == obj`."""
    return f"{x:.12g}"


def _num_rows(metrics: Metrics) -> int:
    if not metrics:
        raise ObjectiveError("no metrics given")
    return int(np.shape(next(iter(metrics.values())))[0])


def _check_metrics(metrics: Metrics, names: Sequence[str], spec: str) -> None:
    """Every required metric present, one-dimensional, of one length, and not NaN."""
    n = _num_rows(metrics)
    for name in names:
        if name not in metrics:
            raise ObjectiveError(
                f"objective {spec!r} needs metric {name!r}; the evaluator gives: {', '.join(sorted(metrics))}")
        x = np.asarray(metrics[name])
        if x.shape != (n,):
            raise ObjectiveError(f"metric {name!r} has shape {x.shape}, expected ({n},) like the other metrics")
        if np.isnan(x).any():
            raise ObjectiveError(
                f"metric {name!r} is NaN at row {int(np.argmax(np.isnan(x)))}; objectives refuse NaN "
                f"(an infeasible architecture is +inf, an unknown one must not be evaluated)")


def _column(metrics: Metrics, name: str, raw: bool = False) -> np.ndarray:
    """Metric `name` as float64; percent metrics become fractions unless `raw`."""
    if name not in metrics:
        raise ObjectiveError(f"metric {name!r} is missing; the evaluator gives: {', '.join(sorted(metrics))}")
    x = np.asarray(metrics[name], np.float64)
    return x / 100.0 if (name in PERCENT_METRICS and not raw) else x


def _positive(metrics: Metrics, name: str, kind: str) -> np.ndarray:
    x = _column(metrics, name)
    if (x <= 0).any():
        row = int(np.argmax(x <= 0))
        raise ObjectiveError(f"{kind}: metric {name!r} must be positive (it enters a log or a power), "
                             f"got {x[row]} at row {row}")
    return x


__all__ = [
    "ACCURACY", "Constraint", "LATENCY", "MNAS", "MNAS_ALPHA", "MNAS_BETA", "MaxAccuracy", "Objective",
    "ObjectiveError", "Pareto", "SPEC_HELP", "TUNAS_BETA", "TuNAS", "Unmet", "WeightedProduct", "WeightedSum",
    "format_value", "metric_name", "parse_objective",
]
