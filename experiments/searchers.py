"""NAS-Bench-201 benchmark of the searchers: hypervolume ratio to the true front, constrained regret.

Runbook:
    .venv/bin/pip install optuna pymoo          # the peers (optional; skipped with a note if missing)
    OPENBLAS_NUM_THREADS=1 python experiments/searchers.py --out experiments/results    # the committed run
    python experiments/searchers.py --devices raspi4 --budgets 50,100,300 --seeds 3 --peers none  # ~1 min
    python experiments/searchers.py --searchers random,nsga2 --json    # one JSON object on stdout
    python experiments/searchers.py --render experiments/results      # re-write md and PNGs from the JSON
    OPENBLAS_NUM_THREADS=1 python experiments/searchers.py --speed-only --out experiments/results  # re-time only

`--out DIR` writes `searchers.json` (every run and every summary), `searchers.md` (the command
first, then the tables), `searchers_ratio.png` (median ratio vs budget, IQR shaded, one panel
per device), `searchers_pareto.png` (true front and the fronts found at budget 300, seed 0) and
`searchers_regret.png` (constrained regret vs budget), and `searchers_units.jsonl` as the run goes
(one line per finished unit of work; `--resume` reuses them after an interruption, and the
JSON's `resumed_units` and the markdown's date line say how many it reused). Without
`--out` only stdout is written:
the tables (or, with `--json`, one JSON object). Progress goes to stderr.

What is measured, per device of `latency_ms.csv` (`--devices`, default all ten):

* The true front: all 15,625 cells enumerated (`searchers.reference.true_front`) in the plane
  `(-validation accuracy / 100, log latency_ms)`, reference point 85% accuracy and the slowest
  latency on the true front.
* Pareto task (`pareto` objective). For every method, budget (`--budgets`, distinct
  architectures evaluated) and seed (`--seeds`): the hypervolume ratio of everything the
  search evaluated, found / true (`searchers.reference.hypervolume_ratio`, as `hwnas search`
  computes it); median and IQR (25th-75th percentile) over seeds.
* Constrained task (`max-acc:lat<=T`): `T` = the median latency of the true-front cells with
  at least 85% validation accuracy (the part of the front inside the hypervolume box), per
  device. Regret at budget b = (best validation accuracy of any cell with latency <= T) -
  (best validation accuracy among the feasible cells the search evaluated in its first b),
  in accuracy points; a seed that found no feasible cell has regret inf (counted).
* A test-accuracy oracle (no search): the ratio of the first 50 and 300 cells by Pareto layer
  of (test accuracy, latency). Test accuracy is the same trained networks measured on other
  images, so this shows what the Pareto task asks of a searcher whose accuracy predictor were
  that good (`oracle_ratios`; listed in "What a ratio of 0.97 asks for").
* Speed: evaluations/second of evolution and nsga2 against the tabular evaluator (median of 5
  searches of 1,000 evaluations after a warm-up search, first device), and the time of one BO
  `ask` with 300 (and 1,000) observations, after compilation (median of 5). The searches'
  results depend only on code and seeds, their timings on the machine's load: `--speed-only`
  re-times a finished run in `--out DIR` and records when.

Methods. Ours (`--searchers`, default all of `searchers.SEARCHER_NAMES`, default options; a
`name[key=value,...]` entry runs a non-default variant, e.g. `nsga2[population=100]`). Every
one of ours gets the `pareto` objective itself (m = 2) in the Pareto task, in its native
multi-objective mode: random and nsga2 as they are; evolution with random-weight Chebyshev
tournaments; local as Pareto local search; reinforce with a dominance-count reward; bo as
ParEGO (see each module's docstring). No searcher sees anything of the true front. (Before
these modes existed, evolution, local and reinforce minimized an augmented Chebyshev
scalarization with per-seed weights on an oracle box of the true front; `Chebyshev` and
`SCALAR_ONLY` below keep that path for a searcher that is scalar only.) In the constrained task
every searcher gets `max-acc:lat<=T` (m = 1).

Peers (`--peers`, default all installed): Optuna's TPESampler and NSGAIISampler (library
defaults, `seed=seed`; six categorical parameters; the constrained task passes `lat - T` as
`constraints_func`), and pymoo's NSGA2 (pop_size 100, integer variables with the library's
documented discrete recipe: integer random sampling, SBX(eta=3) and PM(eta=3) with rounding
repair, duplicates eliminated; constrained: `G = lat - T`). They see the same objective
vectors as ours. Like our driver, a peer's budget counts distinct architectures: a repeat is
answered from the history for free; a peer that proposes nothing new for 50 rounds (pymoo
generations) or 500 trials (Optuna) in a row is stopped, as the driver stops a stalled search,
and an Optuna search stops after 3 x its budget trials in all (a time guard: each repeat is a
trial, and a multi-objective TPE trial costs time linear in the trials so far).
A peer that is not installed is skipped and the output says so.

Budgets. A search's first b evaluations do not depend on its budget (no searcher or peer reads
it; the driver only cuts the last batch), so each (method, device, task, seed) runs once, at the
largest budget, and every smaller budget is read off the prefix of its history. A search that
stops early (stalled: only repeats) is scored on what it evaluated; such cells are marked `*`.
`--limit METHOD[/TASK]:max_budget=B,seeds=S,devices=D1+D2` restricts an expensive method, or
one task of it (repeatable; `METHOD:none` lifts its limits). The default limits (`DEFAULT_LIMITS`
below, with the timings that motivated them) keep the full run at about 32 minutes with
`--workers 2` on 2 free CPU cores, and are printed with the results: BO, Optuna's TPE and
Optuna's NSGA-II (constrained task) run to budget 300, on every device and seed.
`--workers N` runs (device, method, task) units in N processes; results do not depend on it.

Set OPENBLAS_NUM_THREADS=1 on 2-core machines (see searchers/bo.py; the script sets it if unset).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import importlib.util
import json
import math
import os
import platform
import re
import shlex
import sys
import time
import warnings
from pathlib import Path
from typing import Any

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # before scipy's LAPACK loads (searchers/bo.py)

_HERE = Path(__file__).resolve().parent
_ROOT = _HERE.parent
# This file is named like the `searchers` package: keep its folder off the import path.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_ROOT))

import jax  # noqa: E402
import numpy as np  # noqa: E402

from searchers import SEARCHER_NAMES, get_searcher, parse_objective, run_search  # noqa: E402
from searchers.evaluators import TabularEvaluator  # noqa: E402
from searchers.objectives import ACCURACY, LATENCY, Objective  # noqa: E402
from searchers.reference import (MIN_ACCURACY, ReferenceFront, hypervolume_ratio, plane_points, staircase,  # noqa: E402
                                 true_front)

DEFAULT_BUDGETS = (50, 100, 300, 1000)
DEFAULT_SEEDS = 10
ORACLE_CELLS = (50, 300)  # cells the test-accuracy oracle takes (`oracle_ratios`)
PEER_NAMES = ("optuna-tpe", "optuna-nsga2", "pymoo-nsga2")
# Searchers that rank by one scalar only; the Pareto task gives them the oracle-box Chebyshev
# scalarization below. Every searcher of ours now has a native multi-objective mode.
SCALAR_ONLY: frozenset = frozenset()
PARETO_MODES = {  # how each of ours handles the two objectives of the Pareto task
    "random": "pareto",
    "nsga2": "pareto",
    "evolution": "pareto (random-weight Chebyshev tournaments)",
    "local": "pareto (Pareto local search)",
    "reinforce": "pareto (dominance-count reward, PPO-clipped epochs)",
    "bo": "pareto (ParEGO)",
    "tpe": "pareto (MOTPE: good = best Pareto ranks)",
    "thompson": "pareto (hypervolume improvement of a Thompson draw)",
}
TASKS = ("pareto", "constrained")
RHO = 0.05  # augmented Chebyshev (ParEGO's value, as searchers/bo.py)
WEIGHT_STREAM = 201  # second entropy word of the per-seed weight generator
PEER_PATIENCE_ROUNDS = 50  # pymoo generations without a new architecture (the driver's default)
PEER_PATIENCE_TRIALS = 500  # Optuna trials without a new architecture
# Optuna trials in all, per search, as a multiple of its (largest) budget: a time guard. Every
# repeat is an Optuna trial, and a multi-objective TPE trial costs time linear in the trials so
# far; on 1080ti_1 TPE had made 2,200 trials for 242 distinct cells after 135 s (one seed).
PEER_TRIAL_FACTOR = 3
# The expensive methods stop at budget 300 (measured on raspi4, one core, per search): BO 9 s
# to 300 evaluations, 85 s to 1000 (its GP grows to a 1024 bucket); Optuna's multi-objective
# TPE 20 s to 300 and over 12 min to 1000; TPE constrained 2 s to 300, 16 s to 1000; Optuna
# NSGA-II constrained 0.4 s to 300 and 113 s to 1000 (a converged population proposes thousands
# of repeats, each an Optuna trial). Our TPE runs the whole grid: on raspi4, one core, 4.5 s
# per Pareto search to 1000 and 1.6 s constrained; the whole grid took 23.4 min with
# --workers 2 on 2 free cores (2026-11-29). Earlier runs also cut BO and Optuna's TPE to 3
# devices, and our TPE to 300. Thompson runs the whole grid: 9 s per Pareto search to 1000 on
# raspi4, one core (an ask costs the same at any count: fixed-size memory and pool).
DEFAULT_LIMITS = (
    "bo:max_budget=300",
    "optuna-tpe:max_budget=300",
    "optuna-nsga2/constrained:max_budget=300",
)
RESULTS_NAME = "searchers"


# ============================================================================ scalarization
@dataclasses.dataclass(frozen=True, kw_only=True)
class Chebyshev(Objective):
    """Augmented Chebyshev scalarization in the hypervolume plane, normalized to a box (minimized).

    `f = (p - ideal) / (nadir - ideal)` with `p = (-acc / 100, log latency_ms)`, and
    `s = max_j w_j f_j + rho * sum_j w_j f_j` (Knowles 2006).
    """

    weights: tuple[float, float]
    ideal: tuple[float, float]
    nadir: tuple[float, float]
    rho: float = RHO

    @property
    def columns(self):
        return ("chebyshev",)

    @property
    def spec(self):
        w = ",".join(f"{x:.4f}" for x in self.weights)
        return f"chebyshev:w=({w}),ideal={tuple(round(x, 6) for x in self.ideal)},nadir=" \
               f"{tuple(round(x, 6) for x in self.nadir)}"

    def _uses(self):
        return (ACCURACY, LATENCY)

    def _values(self, metrics):
        p = plane_points(metrics)
        ideal, nadir = np.asarray(self.ideal), np.asarray(self.nadir)
        wf = np.asarray(self.weights) * (p - ideal) / (nadir - ideal)
        return wf.max(axis=1) + self.rho * wf.sum(axis=1)


def seed_weights(seed: int) -> tuple[float, float]:
    """`(lambda_acc, lambda_lat)` of a seed: uniform on the 2-simplex, independent of the device."""
    lam = float(np.random.default_rng([int(seed), WEIGHT_STREAM]).uniform())
    return lam, 1.0 - lam


# ============================================================================ per-device setup
@dataclasses.dataclass
class Device:
    name: str
    evaluator: TabularEvaluator
    front: ReferenceFront
    bound_ms: float  # T of the constrained task
    best_feasible_accuracy: float  # best validation accuracy with latency <= T (whole space)
    box_ideal: tuple[float, float]
    box_nadir: tuple[float, float]
    oracle_ratio: dict  # str(k) -> ratio of the first k cells by (test accuracy, latency) layer

    @property
    def constrained_objective(self) -> Objective:
        return parse_objective(f"max-acc:lat<={self.bound_ms:.12g}")

    def chebyshev(self, seed: int) -> Chebyshev:
        return Chebyshev(weights=seed_weights(seed), ideal=self.box_ideal, nadir=self.box_nadir)

    def describe(self) -> dict:
        pts = self.front.points
        in_box = pts[:, 0] < self.front.reference[0]
        return {
            "true_front_size": int(len(pts)), "true_front_in_box": int(in_box.sum()),
            "true_hypervolume": float(self.front.hypervolume),
            "reference": {"accuracy": MIN_ACCURACY, "latency_ms": float(math.exp(self.front.reference[1]))},
            "latency_bound_ms": self.bound_ms, "best_feasible_accuracy": self.best_feasible_accuracy,
            "feasible_fraction": float((self.evaluator.table[LATENCY] <= self.bound_ms).mean()),
            "chebyshev_box": {"ideal": list(self.box_ideal), "nadir": list(self.box_nadir)},
            "test_oracle_ratio": self.oracle_ratio,
            "true_front": [[float(-a * 100), float(math.exp(b))] for a, b in pts],  # (accuracy %, ms)
        }


def load_devices(data_dir: Path, names: list[str] | None) -> dict[str, Device]:
    from costs.measured import devices as measured_devices
    from costs.measured import load_nasbench201

    data = load_nasbench201(data_dir)
    known = list(measured_devices(data))
    names = names or known
    unknown = [n for n in names if n not in known]
    if unknown:
        raise SystemExit(f"unknown device(s) {', '.join(unknown)}; devices: {', '.join(known)}")
    out = {}
    for name in names:
        ev = TabularEvaluator.from_measured(data, name)
        front = true_front(ev)
        in_box = front.points[:, 0] < front.reference[0]  # >= 85% (strictly better than the reference)
        lat = np.exp(front.points[in_box, 1])
        bound = float(np.median(lat))
        feasible = ev.table[LATENCY] <= bound
        ideal = (float(front.points[in_box, 0].min()), float(front.points[in_box, 1].min()))
        nadir = (float(front.reference[0]), float(front.reference[1]))
        out[name] = Device(name, ev, front, bound, float(ev.table[ACCURACY][feasible].max()), ideal, nadir,
                           oracle_ratios(ev, front))
    return out


def oracle_order_by_test_accuracy(table: dict, count: int) -> np.ndarray:
    """The first `count` rows of `table` by Pareto layer of (test accuracy, latency).

    Layers are peeled with `staircase` (front 0, then the front of the rest, ...); within a
    layer the more accurate row comes first, so a partly taken layer keeps its accurate end.
    """
    points = plane_points({ACCURACY: table["test_accuracy"], LATENCY: table[LATENCY]})
    remaining, order = np.arange(len(points)), []
    while len(order) < count and len(remaining):
        layer = remaining[staircase(points[remaining])]  # sorted by -accuracy: most accurate first
        order.extend(layer.tolist())
        remaining = np.setdiff1d(remaining, layer)
    return np.asarray(order[:count], np.int64)


def oracle_ratios(evaluator: TabularEvaluator, front: ReferenceFront) -> dict:
    """Ratio reached by the first k cells of `oracle_order_by_test_accuracy`, for k in ORACLE_CELLS.

    A stand-in for a searcher whose accuracy predictor is as good as one can hope for: each
    cell's *test* accuracy comes from the same trained networks as the validation accuracy the
    ratio scores, measured on other images. Latency is exact. It shows how many evaluations the
    Pareto task needs when prediction is not the limit (the search never sees test accuracy).
    """
    order = oracle_order_by_test_accuracy(evaluator.table, max(ORACLE_CELLS))
    return {str(k): hypervolume_ratio({n: col[order[:k]] for n, col in evaluator.table.items()}, front)
            for k in ORACLE_CELLS}


# ============================================================================ method specs
@dataclasses.dataclass(frozen=True)
class Method:
    label: str  # what the tables show: "nsga2", "nsga2[population=20]", "optuna-tpe"
    name: str  # searcher or peer name
    options: dict
    peer: bool

    @property
    def scalar_only(self) -> bool:
        return (not self.peer) and self.name in SCALAR_ONLY


def parse_method(text: str, peer: bool) -> Method:
    text = text.strip()
    name, _, rest = text.partition("[")
    options = {}
    if rest:
        if not rest.endswith("]"):
            raise SystemExit(f"{text!r}: options go in brackets, e.g. nsga2[population=20]")
        for item in rest[:-1].split(","):
            key, sep, value = item.partition("=")
            if not sep:
                raise SystemExit(f"{text!r}: expected key=value inside the brackets")
            try:
                options[key.strip()] = json.loads(value)
            except json.JSONDecodeError:
                options[key.strip()] = value.strip()
    known = PEER_NAMES if peer else SEARCHER_NAMES
    if name not in known:
        raise SystemExit(f"unknown {'peer' if peer else 'searcher'} {name!r}; choose from {', '.join(known)}")
    if peer and options:
        raise SystemExit(f"peer {name!r} takes no options here (library defaults)")
    return Method(text, name, options, peer)


@dataclasses.dataclass(frozen=True)
class Limit:
    """What subset of the grid a method (or one task of it) runs: None = everything asked for."""

    max_budget: int | None = None
    seeds: int | None = None
    devices: tuple[str, ...] | None = None

    def describe(self) -> str:
        parts = []
        if self.max_budget is not None:
            parts.append(f"budgets <= {self.max_budget}")
        if self.seeds is not None:
            parts.append(f"seeds 0-{self.seeds - 1}")
        if self.devices is not None:
            parts.append(f"devices {', '.join(self.devices)}")
        return ", ".join(parts) or "the full grid"


def parse_limits(items: list[str]) -> dict[str, Limit]:
    """`METHOD[/TASK]:key=value,...` (or `:none`) -> {"METHOD" or "METHOD/TASK": Limit}; later wins."""
    limits: dict[str, Limit] = {}
    for item in items:
        key_, sep, rest = item.partition(":")
        if not sep:
            raise SystemExit(f"--limit {item!r}: expected METHOD[/TASK]:key=value,... or METHOD[/TASK]:none")
        key_ = key_.strip()
        if "/" in key_ and key_.split("/", 1)[1] not in TASKS:
            raise SystemExit(f"--limit {item!r}: the task after '/' must be one of {', '.join(TASKS)}")
        if rest.strip() == "none":
            for k in [k for k in limits if k == key_ or k.startswith(key_ + "/")]:
                del limits[k]
            continue
        kw: dict[str, Any] = {}
        for part in rest.split(","):
            key, sep, value = part.partition("=")
            key = key.strip()
            if key in ("max_budget", "seeds"):
                kw[key] = int(value)
            elif key == "devices":
                kw[key] = tuple(v for v in value.split("+") if v)
            else:
                raise SystemExit(f"--limit {item!r}: unknown key {key!r} (max_budget, seeds, devices)")
        limits[key_] = Limit(**kw)
    return limits


def limit_for(limits: dict[str, Limit], label: str, task: str) -> Limit:
    return limits.get(f"{label}/{task}", limits.get(label, Limit()))


# ============================================================================ runs
def budget_stats(acc: np.ndarray, lat: np.ndarray, task: str, device: Device, budgets) -> list:
    """Per budget: the hypervolume ratio (pareto) or regret (constrained) of the history prefix."""
    out = []
    for b in budgets:
        a, l = acc[:b], lat[:b]
        if task == "pareto":
            out.append(hypervolume_ratio({ACCURACY: a, LATENCY: l}, device.front) if len(a) else 0.0)
        else:
            feasible = l <= device.bound_ms
            out.append(float(device.best_feasible_accuracy - a[feasible].max()) if feasible.any() else None)
    return out


def front_points(acc: np.ndarray, lat: np.ndarray) -> list[list[float]]:
    """The non-dominated (accuracy %, latency ms) pairs of a history, fastest first."""
    from searchers.reference import staircase

    if len(acc) == 0:
        return []
    idx = staircase(plane_points({ACCURACY: acc, LATENCY: lat}))
    idx = idx[np.argsort(lat[idx], kind="stable")]
    return [[float(acc[i]), float(lat[i])] for i in idx]


class Ours:
    """Our searchers, each built (and so compiled) once per (method, number of objectives)."""

    def __init__(self, space):
        self.space = space
        self._cache: dict[tuple[str, int], Any] = {}

    def searcher(self, method: Method, m: int):
        key = (method.label, m)
        if key not in self._cache:
            self._cache[key] = get_searcher(method.name, self.space, num_objectives=m, **method.options)
        return self._cache[key]

    def run(self, method: Method, device: Device, task: str, seed: int, budget: int):
        if task == "pareto":
            objective = device.chebyshev(seed) if method.scalar_only else parse_objective("pareto")
        else:
            objective = device.constrained_objective
        searcher = self.searcher(method, objective.num_objectives)
        result = run_search(searcher, self.space, device.evaluator, budget, seed, objective=objective, progress=False)
        return (result.metrics[ACCURACY], result.metrics[LATENCY], len(result), result.stop_reason,
                objective.spec)


class _Budgeted:
    """A peer's evaluations: distinct architectures count against the budget, repeats are free."""

    def __init__(self, device: Device, task: str, budget: int):
        self.device, self.task, self.budget = device, task, budget
        self.pareto = parse_objective("pareto")
        self.cache: dict[tuple, tuple[np.ndarray, float]] = {}  # arch -> (objective row, latency)
        self.acc: list[float] = []
        self.lat: list[float] = []

    @property
    def done(self) -> bool:
        return len(self.acc) >= self.budget

    def evaluate(self, archs: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
        """Objective rows and latencies of `archs` (`None` row where the budget ran out), new count."""
        archs = np.asarray(archs, np.int32).reshape(len(archs), -1)
        new = 0
        rows, lats = [], []
        for arch in archs:
            key = tuple(int(x) for x in arch)
            if key not in self.cache:
                if self.done:
                    rows.append(None)
                    lats.append(None)
                    continue
                metrics = self.device.evaluator(arch[None])
                if self.task == "pareto":
                    row = self.pareto(metrics)[0].astype(np.float64)
                else:
                    row = np.array([-metrics[ACCURACY][0] / 100.0])
                self.cache[key] = (row, float(metrics[LATENCY][0]))
                self.acc.append(float(metrics[ACCURACY][0]))
                self.lat.append(float(metrics[LATENCY][0]))
                new += 1
            row, lat = self.cache[key]
            rows.append(row)
            lats.append(lat)
        return rows, lats, new


def run_optuna(sampler_name: str, device: Device, task: str, seed: int, budget: int):
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    constrained = task == "constrained"
    constraints = (lambda t: t.user_attrs["constraint"]) if constrained else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ExperimentalWarning for constraints_func, etc.
        if sampler_name == "tpe":
            sampler = optuna.samplers.TPESampler(seed=seed, constraints_func=constraints)
        else:
            sampler = optuna.samplers.NSGAIISampler(seed=seed, constraints_func=constraints)
        m = 1 if constrained else 2
        study = optuna.create_study(directions=["minimize"] * m, sampler=sampler)
        space = device.evaluator.space
        cards = [int(c) for c in space.cardinalities]
        book = _Budgeted(device, task, budget)
        stale, stop, trials = 0, "budget", 0
        while not book.done:
            if stale >= PEER_PATIENCE_TRIALS:
                stop = "stalled"
                break
            if trials >= PEER_TRIAL_FACTOR * budget:
                stop = "trial cap"
                break
            trials += 1
            trial = study.ask()
            arch = np.array([[trial.suggest_categorical(f"e{i}", list(range(c))) for i, c in enumerate(cards)]])
            rows, lats, new = book.evaluate(arch)
            stale = 0 if new else stale + 1
            if constrained:
                trial.set_user_attr("constraint", [lats[0] - device.bound_ms])
            study.tell(trial, [float(x) for x in rows[0]])
    return np.array(book.acc), np.array(book.lat), len(book.acc), stop


def run_pymoo(device: Device, task: str, seed: int, budget: int):
    from pymoo.algorithms.moo.nsga2 import NSGA2
    from pymoo.core.evaluator import Evaluator
    from pymoo.core.problem import Problem
    from pymoo.core.termination import NoTermination
    from pymoo.operators.crossover.sbx import SBX
    from pymoo.operators.mutation.pm import PM
    from pymoo.operators.repair.rounding import RoundingRepair
    from pymoo.operators.sampling.rnd import IntegerRandomSampling
    from pymoo.problems.static import StaticProblem

    constrained = task == "constrained"
    space = device.evaluator.space
    cards = np.asarray(space.cardinalities)
    problem = Problem(n_var=len(cards), n_obj=1 if constrained else 2, n_ieq_constr=1 if constrained else 0,
                      xl=np.zeros(len(cards)), xu=cards - 1, vtype=int)
    algorithm = NSGA2(pop_size=100, sampling=IntegerRandomSampling(),
                      crossover=SBX(prob=1.0, eta=3.0, vtype=float, repair=RoundingRepair()),
                      mutation=PM(prob=1.0, eta=3.0, vtype=float, repair=RoundingRepair()),
                      eliminate_duplicates=True)
    algorithm.setup(problem, termination=NoTermination(), seed=int(seed), verbose=False)
    book = _Budgeted(device, task, budget)
    stale, stop = 0, "budget"
    while not book.done:
        if stale >= PEER_PATIENCE_ROUNDS:
            stop = "stalled"
            break
        pop = algorithm.ask()
        x = np.clip(np.rint(pop.get("X")).astype(np.int32), 0, cards - 1)
        rows, lats, new = book.evaluate(x)
        stale = 0 if new else stale + 1
        if book.done and any(r is None for r in rows):
            break  # the budget ran out inside this generation: the history is complete
        f = np.stack(rows)
        kwargs = {"F": f}
        if constrained:
            kwargs["G"] = (np.asarray(lats) - device.bound_ms)[:, None]
        Evaluator().eval(StaticProblem(problem, **kwargs), pop)
        algorithm.tell(infills=pop)
    return np.array(book.acc), np.array(book.lat), len(book.acc), stop


def peer_available(name: str) -> str | None:
    """None if the peer's library imports, else why it is skipped."""
    module = "optuna" if name.startswith("optuna") else "pymoo"
    if importlib.util.find_spec(module) is None:
        return f"{module} is not installed (pip install {module})"
    try:
        __import__(module)
    except Exception as err:  # noqa: BLE001 - any import failure skips the peer
        return f"{module} failed to import: {err}"
    return None


def run_peer(method: Method, device: Device, task: str, seed: int, budget: int):
    if method.name == "optuna-tpe":
        out = run_optuna("tpe", device, task, seed, budget)
    elif method.name == "optuna-nsga2":
        out = run_optuna("nsga2", device, task, seed, budget)
    else:
        out = run_pymoo(device, task, seed, budget)
    spec = "pareto" if task == "pareto" else device.constrained_objective.spec
    return (*out, spec)


# ============================================================================ statistics
def quantile(values: list[float], q: float) -> float:
    """Linear-interpolated quantile that treats inf as a value (inf wherever it is involved)."""
    x = np.sort(np.asarray(values, np.float64))
    pos = q * (len(x) - 1)
    lo, hi = int(math.floor(pos)), int(math.ceil(pos))
    if lo == hi or x[lo] == x[hi]:
        return float(x[lo])
    if not (math.isfinite(x[lo]) and math.isfinite(x[hi])):
        return math.inf
    return float(x[lo] + (pos - lo) * (x[hi] - x[lo]))


def summarize_values(values: list) -> dict:
    vals = [math.inf if v is None else float(v) for v in values]
    return {"median": quantile(vals, 0.5), "q25": quantile(vals, 0.25), "q75": quantile(vals, 0.75),
            "n": len(vals), "missing": sum(v is None for v in values)}


def summarize(runs: list[dict], budgets) -> dict:
    """device -> task -> method -> budget -> {median, q25, q75, n, short}."""
    out: dict = {}
    groups: dict = {}
    for r in runs:
        groups.setdefault((r["device"], r["task"], r["method"]), []).append(r)
    for (dev, task, method), rs in groups.items():
        cell = out.setdefault(dev, {}).setdefault(task, {}).setdefault(method, {})
        for j, b in enumerate(budgets):
            if b > rs[0]["max_budget"]:
                continue
            vals = [r["values"][j] for r in rs]
            stats = summarize_values(vals)
            stats["short"] = sum(r["evaluated"] < b for r in rs)  # seeds that stopped before b
            cell[str(b)] = stats
    return out


# ============================================================================ speed
SPEED_RUNS = 5  # timed searches per searcher; the median evaluations per second is reported
SPEED_TARGET = 10_000  # evaluations per second the issue asks of evolution and NSGA-II
BO_ASK_TARGET_S = 1.0  # seconds for one BO ask with 300 observations


def measure_speed(space, device: Device, methods: list[Method]) -> dict:
    """Evaluations per second of evolution and NSGA-II (whole searches through the driver against
    the tabular evaluator, Pareto objective, budget 1,000; median of `SPEED_RUNS` seeds after
    one untimed search that compiles ask and tell) and BO's ask time."""
    out: dict = {}
    names = {m.name for m in methods if not m.peer}
    for name in ("evolution", "nsga2"):
        if name not in names:
            continue
        method = Method(name, name, {}, False)
        ours = Ours(space)
        ours.run(method, device, "pareto", 1000, 1000)  # warm-up: compiles ask and tell
        rates, spec = [], ""
        for seed in range(SPEED_RUNS):
            t = time.perf_counter()
            _, _, n, _, spec = ours.run(method, device, "pareto", seed, 1000)
            rates.append(n / (time.perf_counter() - t))
        out[f"{name}_evals_per_s"] = {"value": float(np.median(rates)), "samples": rates, "evaluations": 1000,
                                      "objective": spec, "device": device.name}
    if "bo" in names:
        out.update(_bo_ask_time(space, device))
    return out


def speed_checks(speed: dict) -> list[str]:
    """The issue's speed expectations, each as 'met'/'NOT met' with the measured value."""
    lines = []
    for name in ("evolution", "nsga2"):
        v = speed.get(f"{name}_evals_per_s")
        if v is not None:
            verdict = "met" if v["value"] > SPEED_TARGET else "NOT met"
            lines.append(f"**{verdict}**: {name} sustains over {SPEED_TARGET:,} evaluations per second "
                         f"(median {v['value']:,.0f}, range {min(v['samples']):,.0f}-{max(v['samples']):,.0f} over "
                         f"{len(v['samples'])} searches of {v['evaluations']:,})")
    v = speed.get("bo_ask_s_300_observations")
    if v is not None:
        verdict = "met" if v["value"] < BO_ASK_TARGET_S else "NOT met"
        lines.append(f"**{verdict}**: one BO ask with 300 observations under {BO_ASK_TARGET_S:g} s "
                     f"({v['value']:.3f} s, batch of {v['batch_size']})")
    return lines


def speed_line(name: str, v: dict) -> str:
    """One measurement of the speed section as text (searches per second, or BO ask seconds)."""
    if "evaluations" not in v:  # a BO ask time
        return f"{name}: {v['value']:.4g} s (batch of {v['batch_size']}; median of {len(v.get('samples', [])) or 5})"
    if "samples" in v:
        return (f"{name}: {v['value']:.4g} (median of {len(v['samples'])} searches of {v['evaluations']} "
                f"evaluations, {v['device']})")
    return f"{name}: {v['value']:.4g} ({v['evaluations']} evaluations in {v['seconds']:.2f} s, {v['device']})"


def remeasure_speed(out_dir: Path, data_dir: Path, argv) -> int:
    """Measure the speed section again into a finished run's JSON and re-render its markdown.

    The searches' results are a pure function of code and seeds, while timings depend on the
    machine's load at the time: this re-times without re-running every search, and records
    when and how the speed section was measured.
    """
    path = out_dir / f"{RESULTS_NAME}.json"
    if not path.exists():
        raise SystemExit(f"--speed-only needs a finished run: {path} does not exist")
    payload = _unjson(json.loads(path.read_text()))
    devices = load_devices(data_dir, [next(iter(payload["devices"]))])
    device = next(iter(devices.values()))
    methods = [Method(m["label"], m["name"], m["options"], m["kind"] == "peer") for m in payload["config"]["methods"]]
    payload["speed"] = measure_speed(device.evaluator.space, device, methods)
    payload["speed_measured"] = {"command": _command(argv), "date": datetime.datetime.now(
        datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "load_average": list(os.getloadavg())}
    path.write_text(json.dumps(_jsonable(payload), indent=1) + "\n")
    write_markdown(payload, out_dir / f"{RESULTS_NAME}.md")
    return 0


def _bo_ask_time(space, device: Device) -> dict:
    import jax.numpy as jnp

    out = {}
    searcher = get_searcher("bo", space, num_objectives=2)
    pareto = parse_objective("pareto")
    for n_obs in (300, 1000):
        rng = np.random.default_rng(n_obs)
        idx = rng.choice(len(device.evaluator.archs), n_obs, replace=False)
        archs = device.evaluator.archs[idx]
        objs = pareto(device.evaluator(archs))
        state = searcher.tell(searcher.init(jax.random.key(0)), jnp.asarray(archs), jnp.asarray(objs))
        jax.block_until_ready(searcher.ask(state, jax.random.key(1)))  # compile
        times = []
        for i in range(5):
            t = time.perf_counter()
            jax.block_until_ready(searcher.ask(state, jax.random.key(2 + i)))
            times.append(time.perf_counter() - t)
        out[f"bo_ask_s_{n_obs}_observations"] = {"value": float(np.median(times)), "samples": times,
                                                 "batch_size": int(searcher.batch_size)}
    return out


# ============================================================================ checks
def expectation_checks(summary: dict, devices, budgets, ours: list[str], peers: list[str]) -> list[dict]:
    """The issue's expected numbers, each with whether this run met it (medians over seeds)."""
    checks = []

    def med(dev, method, b):
        cell = summary.get(dev, {}).get("pareto", {}).get(method, {}).get(str(b))
        return None if cell is None else cell["median"]

    big = [b for b in budgets if b >= 100]
    if "random" in ours:
        misses, compared = [], 0
        for dev in devices:
            for m in ours:
                if m == "random":
                    continue
                for b in big:
                    x, r = med(dev, m, b), med(dev, "random", b)
                    if x is not None and r is not None:
                        compared += 1
                        if not x > r:
                            misses.append(f"{m}@{b} on {dev}: {x:.3f} <= random {r:.3f}")
        checks.append({"claim": "every searcher beats random search (median ratio) at every budget >= 100",
                       "met": (not misses) if compared else None, "compared": compared, "misses": misses})
    if peers:
        misses, compared = [], 0
        for dev in devices:
            for b in budgets:
                o = [x for m in ours if (x := med(dev, m, b)) is not None]
                p = [x for m in peers if (x := med(dev, m, b)) is not None]
                if o and p:
                    compared += 1
                    if not max(o) > max(p):
                        misses.append(f"{dev}@{b}: best of ours {max(o):.3f} <= best peer {max(p):.3f}")
        checks.append({"claim": "the best of ours beats the best peer's median ratio at every budget",
                       "met": (not misses) if compared else None, "compared": compared, "misses": misses})
    if 300 in budgets:
        misses, hits = [], []
        for dev in devices:
            o = [(x, m) for m in ours if (x := med(dev, m, 300)) is not None]
            if o:
                best = max(o)
                # Four digits: 0.9698 would print as a misleading 0.970 with three.
                (misses if best[0] < 0.97 else hits).append(f"{dev}: {best[1]} {best[0]:.4f}")
        checks.append({"claim": "the best of ours reaches a median ratio >= 0.97 at 300 evaluations on every device",
                       "met": (not misses) if misses or hits else None, "compared": len(misses) + len(hits),
                       "misses": misses, "values": hits + misses})
    for b, lo, hi in ((300, 0.83, 0.90), (1000, 0.90, 0.95)):
        if b in budgets and "random" in ours:
            vals = {dev: med(dev, "random", b) for dev in devices}
            vals = {d: v for d, v in vals.items() if v is not None}
            misses = [f"{d}: {v:.3f}" for d, v in vals.items() if not lo <= v <= hi]
            checks.append({"claim": f"random search at {b} scores about {lo:.2f}-{hi:.2f}",
                           "met": (not misses) if vals else None, "compared": len(vals), "misses": misses,
                           "values": [f"{d}: {v:.3f}" for d, v in vals.items()]})
    return checks


# ============================================================================ output
def fmt_cell(cell: dict | None, digits: int = 3) -> str:
    if cell is None:
        return "-"

    def f(x):
        return "inf" if math.isinf(x) else f"{x:.{digits}f}"

    star = "*" if cell.get("short") else ""
    miss = f" ({cell['missing']}/{cell['n']} none)" if cell.get("missing") else ""
    return f"{f(cell['median'])} [{f(cell['q25'])}, {f(cell['q75'])}]{star}{miss}"


def tables(payload: dict) -> list[tuple[str, list[str], list[list[str]]]]:
    """(title, headers, rows) of every table: summary, then per device HV ratio and regret."""
    budgets = payload["config"]["budgets"]
    methods = payload["config"]["methods"]
    summary = payload["summary"]
    out = []
    # Across devices: median over devices of the per-device medians, and the worst device.
    rows = []
    for m in methods:
        row = [m["label"], m["kind"], m["pareto_objective"]]
        for b in budgets:
            meds = [summary[d]["pareto"][m["label"]][str(b)]["median"] for d in payload["devices"]
                    if str(b) in summary.get(d, {}).get("pareto", {}).get(m["label"], {})]
            row.append(f"{np.median(meds):.3f} (min {min(meds):.3f}, {len(meds)} dev)" if meds else "-")
        rows.append(row)
    out.append(("Hypervolume ratio across devices: median over devices of the per-device median over seeds "
                "(worst device)", ["method", "kind", "pareto objective"] + [f"b={b}" for b in budgets], rows))
    rows = []
    for m in methods:
        row = [m["label"]]
        for b in budgets:
            meds = [summary[d]["constrained"][m["label"]][str(b)]["median"] for d in payload["devices"]
                    if str(b) in summary.get(d, {}).get("constrained", {}).get(m["label"], {})]
            row.append(f"{np.median(meds):.3f} (max {max(meds):.3f}, {len(meds)} dev)" if meds else "-")
        rows.append(row)
    out.append(("Constrained regret across devices (accuracy points; median over devices of the per-device "
                "median over seeds (worst device))", ["method"] + [f"b={b}" for b in budgets], rows))
    for dev, info in payload["devices"].items():
        for task, what in (("pareto", "hypervolume ratio, median [IQR] over seeds"),
                           ("constrained", f"regret (points) at lat <= {info['latency_bound_ms']:.4g} ms "
                                           f"(best feasible {info['best_feasible_accuracy']:.2f}%), median [IQR]")):
            rows = []
            for m in methods:
                cells = summary.get(dev, {}).get(task, {}).get(m["label"])
                if cells is None:
                    continue
                n = max((c["n"] for c in cells.values()), default=0)
                rows.append([m["label"], str(n)] + [fmt_cell(cells.get(str(b)), 3 if task == "pareto" else 2)
                                                    for b in budgets])
            if rows:
                out.append((f"{dev}: {what}", ["method", "seeds"] + [f"b={b}" for b in budgets], rows))
    return out


def print_text_table(title: str, headers: list[str], rows: list[list[str]], file=sys.stdout) -> None:
    widths = [max(len(str(x)) for x in col) for col in zip(headers, *rows)]
    print(f"\n{title}", file=file)
    print("  ".join(h.ljust(w) for h, w in zip(headers, widths)), file=file)
    print("  ".join("-" * w for w in widths), file=file)
    for r in rows:
        print("  ".join(str(x).ljust(w) for x, w in zip(r, widths)), file=file)


def markdown_table(headers, rows) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(str(x) for x in r) + " |" for r in rows]
    return "\n".join(lines)


def notes_lines(payload: dict) -> list[str]:
    cfg = payload["config"]
    lines = [
        f"Devices: {', '.join(payload['devices'])}. Budgets: {', '.join(map(str, cfg['budgets']))} distinct "
        f"architectures. Seeds: 0-{cfg['seeds'] - 1} unless limited below. Our searchers run with their "
        "defaults (evolution P=20, S=10, batch 10; nsga2 P=12; local batch 8; reinforce categorical, batch 8 "
        "(Pareto) or 16, Adam 0.3 (Pareto) or 0.15, 4 clipped steps per batch (Pareto) or 1, entropy 0.05; "
        "bo batch 4; tpe batch 1, gamma 0.15, 24 candidates, mixture density; thompson batch 1, 2,048 "
        "candidates (3/4 mutations of the front), pair features); none re-proposes an architecture it was "
        "told (`searchers.memory`).",
        "Hypervolume ratio: found / true in the plane (validation accuracy, log latency), reference point 85% "
        "and the slowest latency on the true front (`searchers.reference`); everything a search evaluated counts.",
        "Every searcher of ours gets the `pareto` objective itself in the Pareto task, in its native "
        "multi-objective mode (column 'pareto objective'): evolution ranks each tournament by an augmented "
        "Chebyshev scalarization with its own random weights on rank-normalized objectives, local is Pareto "
        "local search (single-decision neighbours of the found front, ordered by a ridge surrogate), reinforce "
        "rewards dominance (minus the fraction of recent points that dominate a sample), bo is ParEGO (rank-"
        "normalized), tpe is MOTPE (its good rows are the best by non-dominated rank), thompson proposes the "
        "largest hypervolume improvement under one posterior draw of its linear models. None uses anything of "
        "the true front.",
        "Constrained task: `max-acc:lat<=T`, T = median latency of the true-front cells with >= 85% validation "
        "accuracy; regret = best feasible validation accuracy in the space - best feasible found (points); "
        "inf when a seed found no feasible cell.",
        "Each (method, device, task, seed) runs once at its largest budget; smaller budgets are its history's "
        "prefix (identical to a run with that budget). `*`: some seed stopped before that budget (stalled: only "
        "repeats), scored on what it evaluated.",
        "Peers: Optuna TPESampler / NSGAIISampler (library defaults, seed), pymoo NSGA2 (pop 100, integer "
        "SBX/PM with rounding, duplicates eliminated); their budget counts distinct architectures (repeats free); "
        "an Optuna search stops after 500 trials in a row without a new cell or 3 x its budget trials in all "
        "(time guard; counted as stopping short, `*`).",
    ]
    for method, limit in cfg["limits"].items():
        lines.append(f"Limited (time): `{method}` ran {limit} only; its cells use those seeds, and it is "
                     "absent where no cell is shown.")
    for peer, why in payload["skipped_peers"].items():
        lines.append(f"Skipped peer `{peer}`: {why}.")
    return lines


def headroom_rows(payload: dict) -> list[list[str]]:
    """Per device: the mean accuracy gap a ratio of 0.97 allows, next to what our searchers reach at 300."""
    ours = {m["label"] for m in payload["config"]["methods"] if m["kind"] == "ours"}
    rows = []
    for dev, info in payload["devices"].items():
        front = np.asarray(info.get("true_front", []), np.float64)  # (accuracy %, ms)
        if not len(front):
            continue
        above = front[front[:, 0] > MIN_ACCURACY]
        if not len(above):
            continue
        span = math.log(info["reference"]["latency_ms"]) - math.log(above[:, 1].min())
        allowed = 0.03 * info["true_hypervolume"] / span * 100.0
        cells = payload["summary"].get(dev, {})

        def best(task, pick):
            vals = [c["300"]["median"] for m, c in cells.get(task, {}).items()
                    if m in ours and "300" in c and math.isfinite(c["300"]["median"])]
            return pick(vals) if vals else None

        regret, ratio = best("constrained", min), best("pareto", max)
        oracle = info.get("test_oracle_ratio", {})
        rows.append([dev, f"{allowed:.3f}", "-" if regret is None else f"{regret:.3f}",
                     "-" if ratio is None else f"{ratio:.3f}",
                     " / ".join(f"{oracle[str(k)]:.3f}" if str(k) in oracle else "-" for k in ORACLE_CELLS)])
    return rows


def resumed_note(payload: dict) -> str:
    """How many units came from the units file of an earlier run (`--resume`), for the date line."""
    resumed, total = payload.get("resumed_units", (0, 0))
    if not resumed:
        return ""
    return (f" ({resumed} of {total} units resumed from `{RESULTS_NAME}_units.jsonl` of an earlier run; "
            "the method wall times below include their earlier seconds)")


def write_markdown(payload: dict, path: Path) -> None:
    lines = ["# Searchers on NAS-Bench-201: hypervolume ratio and constrained regret", "",
             "Produced by:", "", "```", payload["command"], "```", "",
             f"{payload['date']}, {payload['machine']}, wall time {payload['wall_s'] / 60:.1f} min{resumed_note(payload)}. "
             f"Versions: {', '.join(f'{k} {v}' for k, v in payload['versions'].items())}.", ""]
    lines += [f"- {x}" for x in notes_lines(payload)]
    lines += ["", "## Expectations (from the issue; benchmarks, not tests)", ""]
    for c in payload["checks"]:
        detail = ""
        if c.get("values"):
            detail = f" (per device: {'; '.join(c['values'])})"
        elif c["misses"]:
            detail = f" ({len(c['misses'])} of {c['compared']} comparisons missed: {'; '.join(c['misses'][:15])}" \
                     f"{' ...' if len(c['misses']) > 15 else ''})"
        elif c.get("compared"):
            detail = f" ({c['compared']} comparisons)"
        lines.append(f"- **{_verdict(c)}**: {c['claim']}{detail}")
    if payload["speed"]:
        lines += ["", "## Speed", ""]
        if payload.get("speed_measured"):
            sm = payload["speed_measured"]
            lines += [f"Measured again on {sm['date']} (load average {sm['load_average'][0]:.2f}) by", "", "```",
                      sm["command"], "```", ""]
        lines += [f"- {x}" for x in speed_checks(payload["speed"])]
        lines += [f"- {speed_line(k, v)}" for k, v in payload["speed"].items()]
    short: dict = {}
    for r in payload["runs"]:
        total, stopped, reasons = short.get((r["method"], r["task"]), (0, [], {}))
        if r["evaluated"] < r["max_budget"]:
            stopped = stopped + [r["evaluated"]]
            reasons = {**reasons, r["stop_reason"]: reasons.get(r["stop_reason"], 0) + 1}
        short[(r["method"], r["task"])] = (total + 1, stopped, reasons)
    rows = [[m, t, f"{len(st)} / {n}", ", ".join(f"{k} {v}" for k, v in why.items()),
             f"{int(np.median(st))} ({min(st)}-{max(st)})"] for (m, t), (n, st, why) in short.items() if st]
    if rows:
        lines += ["", "## Searches that stopped before their largest budget", "",
                  "`stalled`: our driver's patience, 50 rounds in a row that proposed only architectures already "
                  "evaluated (peers: 50 pymoo generations or 500 Optuna trials); `trial cap`: 3 x budget Optuna "
                  "trials in all.", "",
                  markdown_table(["method", "task", "runs stopped / runs", "why", "evaluated: median (range)"], rows)]
    headroom = headroom_rows(payload)
    if headroom:
        lines += ["", "## What a ratio of 0.97 asks for", "",
                  "The ratio's shortfall is the area between the true staircase and the found one, so a ratio "
                  "of 0.97 allows an accuracy gap averaged over the front's log-latency span (from its fastest "
                  "cell above 85% to the reference) of `0.03 * HV / span` points. For comparison: the best median "
                  "regret of ours at 300 in the constrained task, where the whole budget serves one latency "
                  "bound, and the best median ratio of ours at 300. Last, a test-accuracy oracle: the first "
                  f"{' and '.join(map(str, ORACLE_CELLS))} cells by Pareto layer of (test accuracy, latency), "
                  "scored as everything else on validation accuracy. Test accuracy comes from the same trained "
                  "networks, measured on other images, so this is what a searcher would reach by evaluating only "
                  "the cells a predictor that good ranks first (`oracle_ratios`).", "",
                  markdown_table(["device", "mean gap allowed at 0.97 (points)", "best constrained regret @300 "
                                  "(points)", "best ratio @300",
                                  f"test-accuracy oracle, first {' / '.join(map(str, ORACLE_CELLS))} cells"],
                                 headroom),
                  "", "On the two TFLite devices (pixel3, raspi4) part of the true front is measurement noise: "
                  "many cells run the same graph, and the front keeps the luckiest measurement of each. "
                  "`latency_lottery.md` (`experiments/latency_lottery.py`) scores a searcher that finds every "
                  "graph of the front but measures only k of its cells."]
    lines += ["", "Method wall time (s, all devices, tasks and seeds): " + ", ".join(
        f"{k} {v:.0f}" for k, v in payload["method_seconds"].items())]
    for title, headers, rows in tables(payload):
        lines += ["", f"## {title}", "", markdown_table(headers, rows)]
    lines += ["", "Plots: `searchers_ratio.png`, `searchers_pareto.png`, `searchers_regret.png`.", ""]
    path.write_text("\n".join(lines))


def _legend(fig, axes) -> None:
    """One legend for all panels (every method that drew anywhere), below them."""
    seen = {}
    for ax in axes.flat:
        for h, label in zip(*ax.get_legend_handles_labels()):
            seen.setdefault(label, h)
    if not seen:
        fig.tight_layout()
        return
    ncol = min(len(seen), 6)
    rows = math.ceil(len(seen) / max(ncol, 1))
    fig.legend(list(seen.values()), list(seen), loc="lower center", ncol=ncol, fontsize=8)
    height = fig.get_size_inches()[1]
    fig.tight_layout(rect=(0, min(0.3, 0.25 * rows / height + 0.02), 1, 1))


def plot_all(payload: dict, out_dir: Path) -> list[str]:
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        return []
    budgets = payload["config"]["budgets"]
    methods = [m["label"] for m in payload["config"]["methods"]]
    devs = list(payload["devices"])
    colors = {m: f"C{i % 10}" for i, m in enumerate(methods)}
    styles = {m["label"]: ("--" if m["kind"] == "peer" else "-") for m in payload["config"]["methods"]}
    ncol = min(5, len(devs))
    nrow = math.ceil(len(devs) / ncol)
    written = []
    for task, fname, ylabel in (("pareto", "searchers_ratio.png", "hypervolume ratio"),
                                ("constrained", "searchers_regret.png", "regret (acc. points)")):
        if task not in payload["config"]["tasks"]:
            continue
        fig = Figure(figsize=(3.6 * ncol, 3.0 * nrow + 0.9), dpi=110)
        FigureCanvasAgg(fig)
        axes = fig.subplots(nrow, ncol, squeeze=False)
        for ax, dev in zip(axes.flat, devs):
            for m in methods:
                cells = payload["summary"].get(dev, {}).get(task, {}).get(m, {})
                bs = [b for b in budgets if str(b) in cells]
                if not bs:
                    continue
                med = np.array([cells[str(b)]["median"] for b in bs])
                lo = np.array([cells[str(b)]["q25"] for b in bs])
                hi = np.array([cells[str(b)]["q75"] for b in bs])
                ax.plot(bs, med, styles[m], marker="o", ms=3, c=colors[m], label=m)
                ok = np.isfinite(lo) & np.isfinite(hi)
                ax.fill_between(np.array(bs)[ok], lo[ok], hi[ok], color=colors[m], alpha=0.12, lw=0)
            ax.set_xscale("log")
            ax.set_xticks(budgets, [str(b) for b in budgets])
            ax.minorticks_off()
            if task == "pareto":
                ax.axhline(0.97, c="0.5", lw=0.8, ls=":")
            else:
                ax.set_yscale("symlog", linthresh=0.1)
                ax.set_ylim(bottom=0)
            ax.set_title(dev, fontsize=9)
            ax.set_xlabel("budget (distinct archs)", fontsize=8)
            ax.set_ylabel(ylabel, fontsize=8)
            ax.tick_params(labelsize=7)
        for ax in list(axes.flat)[len(devs):]:
            ax.set_visible(False)
        _legend(fig, axes)
        fig.savefig(out_dir / fname)
        written.append(fname)
    # Fronts found at budget 300 (or the largest <= 300), seed 0.
    b_show = max([b for b in budgets if b <= 300] or budgets[:1])
    fig = Figure(figsize=(3.6 * ncol, 3.0 * nrow + 0.9), dpi=110)
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrow, ncol, squeeze=False)
    for ax, dev in zip(axes.flat, devs):
        info = payload["devices"][dev]
        tf = np.array(info["true_front"])
        ax.step(tf[:, 1], tf[:, 0], where="post", c="k", lw=1.2, label="true front")
        ax.axhline(MIN_ACCURACY, c="0.6", lw=0.6, ls=":")
        for r in payload["runs"]:
            if r["device"] == dev and r["task"] == "pareto" and r["seed"] == 0 and r.get("fronts"):
                pts = np.array(r["fronts"].get(str(b_show)) or [[np.nan, np.nan]])
                ax.step(pts[:, 1], pts[:, 0], styles[r["method"]], where="post", c=colors[r["method"]], lw=0.9,
                        marker=".", ms=3, label=r["method"])
        ax.set_xscale("log")
        box = tf[tf[:, 0] > MIN_ACCURACY]
        ax.set_xlim(box[:, 1].min() / 1.3, info["reference"]["latency_ms"] * 1.3)
        ax.set_ylim(MIN_ACCURACY - 1, tf[:, 0].max() + 0.5)
        from matplotlib.ticker import LogLocator, ScalarFormatter
        ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        ax.xaxis.set_major_formatter(ScalarFormatter())
        ax.xaxis.set_minor_formatter("")
        ax.set_title(f"{dev} (b={b_show}, seed 0)", fontsize=9)
        ax.set_xlabel("latency (ms)", fontsize=8)
        ax.set_ylabel("validation accuracy (%)", fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[len(devs):]:
        ax.set_visible(False)
    _legend(fig, axes)
    fig.savefig(out_dir / "searchers_pareto.png")
    written.append("searchers_pareto.png")
    return written


# ============================================================================ work units
_WORKER: dict = {}


def _init_worker(data_dir: str, device_names: list[str], methods: list[Method], devices=None) -> None:
    """Per process: the devices (data loaded once) and our searchers (compiled once)."""
    devices = devices if devices is not None else load_devices(Path(data_dir), device_names)
    _WORKER.update(devices=devices, methods=methods, ours=Ours(next(iter(devices.values())).evaluator.space))


def _unit_key(unit, methods: list[Method]) -> list:
    dev_name, i, task, seeds, b_run = unit
    return [dev_name, methods[i].label, task, seeds, list(b_run)]


def _work(unit):
    """All seeds of one (device, method, task): run records and the seconds spent."""
    dev_name, i, task, seeds, b_run = unit
    device, method, ours = _WORKER["devices"][dev_name], _WORKER["methods"][i], _WORKER["ours"]
    runner = run_peer if method.peer else ours.run
    records = []
    start = time.perf_counter()
    for seed in range(seeds):
        t = time.perf_counter()
        acc, lat, evaluated, stop, spec = runner(method, device, task, seed, b_run[-1])
        acc, lat = np.asarray(acc, np.float64), np.asarray(lat, np.float64)
        record = {"device": dev_name, "method": method.label, "kind": "peer" if method.peer else "ours",
                  "task": task, "seed": seed, "objective": spec, "max_budget": b_run[-1], "budgets": b_run,
                  "evaluated": int(evaluated), "stop_reason": stop,
                  "values": budget_stats(acc, lat, task, device, b_run), "seconds": time.perf_counter() - t}
        if task == "pareto" and seed == 0:
            record["fronts"] = {str(b): front_points(acc[:b], lat[:b]) for b in b_run}
        records.append(record)
    return unit, records, time.perf_counter() - start


# ============================================================================ main
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="See the module docstring (runbook) for what is measured.")
    p.add_argument("--data", default=str(_ROOT.parent / "shared" / "data"), metavar="DIR",
                   help="data folder holding nasbench201/ (default: ../shared/data beside the checkout)")
    p.add_argument("--devices", default=None, help="comma-separated devices of latency_ms.csv (default: all)")
    p.add_argument("--budgets", default=",".join(map(str, DEFAULT_BUDGETS)), help="comma-separated budgets")
    p.add_argument("--seeds", type=int, default=DEFAULT_SEEDS, help="seeds 0..N-1 per cell (default 10)")
    p.add_argument("--searchers", default=",".join(SEARCHER_NAMES),
                   help="comma-separated searchers; name[key=value,...] for a non-default variant")
    p.add_argument("--peers", default=",".join(PEER_NAMES), help=f"comma-separated of {', '.join(PEER_NAMES)}, "
                   "or none")
    p.add_argument("--tasks", default=",".join(TASKS), help="pareto, constrained or both (default both)")
    p.add_argument("--limit", action="append", default=None, metavar="METHOD[/TASK]:KEY=VALUE,...",
                   help="restrict a method (or one of its tasks): max_budget=B, seeds=S, devices=D1+D2; "
                        f"METHOD:none lifts the defaults ({' '.join(DEFAULT_LIMITS)})")
    p.add_argument("--workers", type=int, default=1, help="processes (default 1; results do not depend on it)")
    p.add_argument("--resume", action="store_true",
                   help="reuse the units already in DIR/searchers_units.jsonl (written as a run goes)")
    p.add_argument("--render", default=None, metavar="DIR",
                   help="only re-write searchers.md and the PNGs in DIR from its searchers.json (no search)")
    p.add_argument("--no-speed", action="store_true", help="skip the evaluations/second and BO ask timings")
    p.add_argument("--speed-only", action="store_true",
                   help="only measure the speed section again into the finished run in --out DIR")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the tables")
    p.add_argument("--out", default=None, metavar="DIR", help="write searchers.json, searchers.md and PNGs here")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.render:
        return render(Path(args.render))
    if args.speed_only:
        if not args.out:
            raise SystemExit("--speed-only needs --out DIR holding a finished run")
        return remeasure_speed(Path(args.out), Path(args.data), argv)
    started = time.perf_counter()
    budgets = sorted({int(b) for b in args.budgets.split(",") if b.strip()})
    if not budgets or budgets[0] < 1:
        raise SystemExit("--budgets must be positive integers")
    if args.seeds < 1:
        raise SystemExit("--seeds must be >= 1")
    tasks = [t for t in args.tasks.split(",") if t]
    if bad := [t for t in tasks if t not in TASKS]:
        raise SystemExit(f"unknown task(s) {bad}; tasks: {', '.join(TASKS)}")
    methods = [parse_method(s, False) for s in re.split(r",(?![^\[]*\])", args.searchers) if s.strip()]
    peer_specs = [] if args.peers.strip() in ("", "none") else [s for s in args.peers.split(",") if s.strip()]
    skipped: dict[str, str] = {}
    for s in peer_specs:
        method = parse_method(s, True)
        why = peer_available(method.name)
        if why:
            skipped[method.name] = why
            print(f"note: peer {method.name} skipped: {why}", file=sys.stderr)
        else:
            methods.append(method)
    labels = [m.label for m in methods]
    if len(set(labels)) != len(labels):
        raise SystemExit(f"a method is listed twice: {labels}")
    limits = parse_limits(list(DEFAULT_LIMITS) + list(args.limit or []))
    limits = {k: v for k, v in limits.items() if k.split("/")[0] in labels and v != Limit()}

    device_names = [d for d in (args.devices or "").split(",") if d] or None
    devices = load_devices(Path(args.data), device_names)
    space = next(iter(devices.values())).evaluator.space
    units = []  # (device, method index, task, seeds, budgets): one unit of work
    for dev_name in devices:
        for i, method in enumerate(methods):
            for task in tasks:
                limit = limit_for(limits, method.label, task)
                if limit.devices is not None and dev_name not in limit.devices:
                    continue
                b_run = [b for b in budgets if b <= (limit.max_budget or budgets[-1])]
                if b_run:
                    units.append((dev_name, i, task, min(args.seeds, limit.seeds or args.seeds), b_run))
    runs: list[dict] = []
    total_units = len(units)
    method_seconds: dict[str, float] = {m.label: 0.0 for m in methods}
    log = None  # every finished unit is appended here, so an interrupted run can --resume
    if args.out:
        Path(args.out).mkdir(parents=True, exist_ok=True)
        log_path = Path(args.out) / f"{RESULTS_NAME}_units.jsonl"
        done = {}
        if args.resume and log_path.exists():
            for line in log_path.read_text().splitlines():
                entry = json.loads(line)
                done[json.dumps(entry["unit"])] = entry
        kept = []
        for unit in units:
            entry = done.get(json.dumps(_unit_key(unit, methods)))
            if entry is None:
                kept.append(unit)
                continue
            runs.extend(entry["records"])
            method_seconds[methods[unit[1]].label] += entry["seconds"]
        if done:
            print(f"resumed {len(units) - len(kept)} of {len(units)} units from {log_path}", file=sys.stderr)
        units = kept
        log = log_path.open("a" if done else "w")
    context = (str(args.data), list(devices), methods)
    if args.workers > 1:
        import multiprocessing

        pool = multiprocessing.get_context("spawn").Pool(args.workers, initializer=_init_worker, initargs=context)
        results = pool.imap_unordered(_work, units)
    else:
        _init_worker(*context, devices=devices)
        pool, results = None, map(_work, units)
    try:
        for unit, unit_runs, seconds in results:
            runs.extend(unit_runs)
            method_seconds[methods[unit[1]].label] += seconds
            if log is not None:
                log.write(json.dumps(_jsonable({"unit": _unit_key(unit, methods), "records": unit_runs,
                                                "seconds": seconds})) + "\n")
                log.flush()
            print(f"[{time.perf_counter() - started:7.1f}s] {unit[0]:12s} {methods[unit[1]].label:22s} "
                  f"{unit[2]:12s} {unit[3]:2d} seeds to {unit[4][-1]:5d}: {seconds:6.1f}s", file=sys.stderr, flush=True)
    finally:
        if log is not None:
            log.close()
        if pool is not None:
            pool.close()
            pool.join()
    order = {(d, m.label, t): k for k, (d, m, t) in enumerate(
        (d, m, t) for d in devices for m in methods for t in tasks)}
    runs.sort(key=lambda r: (order[(r["device"], r["method"], r["task"])], r["seed"]))

    speed = {} if args.no_speed else measure_speed(space, next(iter(devices.values())), methods)
    summary = summarize(runs, budgets)
    ours_labels = [m.label for m in methods if not m.peer]
    peer_labels = [m.label for m in methods if m.peer]
    checks = expectation_checks(summary, list(devices), budgets, ours_labels, peer_labels)
    payload = {
        "command": _command(argv),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores, jax backend {jax.default_backend()}",
        "versions": _versions(),
        "config": {
            "budgets": budgets, "seeds": args.seeds, "tasks": tasks,
            "methods": [{"label": m.label, "name": m.name, "options": m.options,
                         "kind": "peer" if m.peer else "ours",
                         "pareto_objective": ("chebyshev (per-seed weights)" if m.scalar_only else
                                              ("pareto" if m.peer else PARETO_MODES.get(m.name, "pareto")))}
                        for m in methods],
            "limits": {k: v.describe() for k, v in limits.items()},
            "scalarization": ({"form": "augmented Chebyshev", "rho": RHO,
                               "weights": {str(s): list(seed_weights(s)) for s in range(args.seeds)},
                               "normalization": "hypervolume box of the true front (oracle)",
                               "methods": [m.label for m in methods if m.scalar_only]}
                              if any(m.scalar_only for m in methods) else None),
            "peer_patience": {"pymoo_generations": PEER_PATIENCE_ROUNDS, "optuna_trials": PEER_PATIENCE_TRIALS,
                              "optuna_max_trials": f"{PEER_TRIAL_FACTOR} x budget"},
        },
        "devices": {name: d.describe() for name, d in devices.items()},
        "skipped_peers": skipped,
        "resumed_units": [total_units - len(units), total_units],
        "summary": summary,
        "checks": checks,
        "speed": speed,
        "method_seconds": method_seconds,
        "runs": runs,
    }
    payload["wall_s"] = time.perf_counter() - started
    if args.out:
        out_dir = Path(args.out)
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / f"{RESULTS_NAME}.json").write_text(json.dumps(_jsonable(payload), indent=1) + "\n")
        write_markdown(payload, out_dir / f"{RESULTS_NAME}.md")
        payload["plots"] = plot_all(payload, out_dir)
    if args.json:
        print(json.dumps(_jsonable(payload)))
    else:
        for line in notes_lines(payload):
            print(f"- {line}")
        for title, headers, rows in tables(payload):
            print_text_table(title, headers, rows)
        print()
        for c in checks:
            print(f"{_verdict(c)}: {c['claim']}")
            for miss in c["misses"]:
                print(f"    {miss}")
        for k, v in speed.items():
            print(f"{k}: {v['value']:.4g}")
        print(f"wall time {payload['wall_s']:.1f} s")
    return 0


def render(out_dir: Path) -> int:
    """Re-write the markdown and the plots of a finished run from its JSON (same numbers; the
    expectation checks are recomputed from its summary)."""
    payload = _unjson(json.loads((out_dir / f"{RESULTS_NAME}.json").read_text()))
    methods = payload["config"]["methods"]
    payload["checks"] = expectation_checks(  # recomputed, so a change to how they are stated shows
        payload["summary"], list(payload["devices"]), payload["config"]["budgets"],
        [m["label"] for m in methods if m["kind"] == "ours"], [m["label"] for m in methods if m["kind"] == "peer"])
    write_markdown(payload, out_dir / f"{RESULTS_NAME}.md")
    plot_all(payload, out_dir)
    return 0


def _unjson(x):
    """Inverse of `_jsonable` for the infinities it wrote as strings."""
    if isinstance(x, dict):
        return {k: _unjson(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_unjson(v) for v in x]
    if x in ("inf", "-inf", "nan"):
        return float(x)
    return x


def _verdict(check: dict) -> str:
    return "not measured" if check["met"] is None else ("met" if check["met"] else "NOT met")


def _command(argv) -> str:
    args = sys.argv[1:] if argv is None else list(argv)
    return "OPENBLAS_NUM_THREADS=1 python experiments/searchers.py " + " ".join(shlex.quote(a) for a in args)


def _versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for pkg in ("jax", "numpy", "optuna", "pymoo"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    return out


def _jsonable(x):
    """inf/nan as null-free strings JSON can hold: inf -> "inf" (strict JSON has no Infinity)."""
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, (np.floating, float)):
        x = float(x)
        return x if math.isfinite(x) else ("inf" if x > 0 else ("-inf" if x < 0 else "nan"))
    if isinstance(x, np.integer):
        return int(x)
    return x


if __name__ == "__main__":
    sys.exit(main())
