"""The search driver: runs a searcher against an evaluator for a budget of distinct architectures.

One round is

    key            = fold_in(key(seed), round)                  # round 0 is `init`
    archs, state   = searcher.ask(state, key)                   # [n, d]
    new            = distinct canonical archs not in the history, in batch order, cut to the budget
    metrics        = evaluate(new)                              # dict of [k] arrays
    objectives     = objective(metrics)                         # [k, m], minimized
    state          = searcher.tell(state, archs, objectives of every proposed row)

The budget counts distinct architectures (by `space.canonical`, so equivalent vectors count
once). A repeat, within the batch or of an earlier round, is answered from the history
without spending budget. When a batch holds more new architectures than the budget has left,
the first ones in batch order are evaluated and the rest are told `+inf` (as if infeasible),
so `tell` still sees one objective row per proposal. A searcher that proposes nothing new for
`patience` rounds in a row stops the search with a message, and so does a space whose every
architecture has been evaluated.

Every `checkpoint_every` rounds, the searcher state and the driver state (round counter and
the history as fixed-shape arrays sized by the budget) are saved with orbax; the search's
settings go beside them in `search.json`, so resuming with other settings is refused instead
of silently producing a different search. Since every key is derived from the seed and the
round, a search stopped and resumed yields exactly the history of one run straight through.

Example:
    >>> result = run_search(get_searcher("random", space), space, evaluate, budget=100, seed=0,
    ...                     objective=parse_objective("mnas:5"), checkpoint_dir="runs/s0")
    >>> result.records()[0]      # {"order": 0, "round": 1, "arch": "|nor_conv_3x3~0|+...", ...}
"""

from __future__ import annotations

import dataclasses
import json
import math
import sys
from pathlib import Path
from typing import Any, Callable, Mapping

import jax
import jax.numpy as jnp
import numpy as np

from searchers.base import Searcher
from searchers.evaluators import row_keys
from searchers.objectives import Objective

CHECKPOINT_FORMAT = "hwnas-search"
CHECKPOINT_VERSION = 1
META_FILE = "search.json"
DEFAULT_PATIENCE = 50


# ============================================================================ results
@dataclasses.dataclass(frozen=True, eq=False)
class SearchResult:
    """The full history of a search, in evaluation order, and how it ended.

    archs       int32 [k, d]  canonical architectures, each once
    metrics     name -> float64 [k]
    objectives  float32 [k, m] (minimized, +inf where infeasible)
    rounds      int32 [k]     the round that evaluated each (1-based)
    stop_reason "budget" | "exhausted" | "stalled"
    """

    space: Any
    searcher: str
    objective: Objective
    archs: np.ndarray
    metrics: dict[str, np.ndarray]
    objectives: np.ndarray
    rounds: np.ndarray
    budget: int
    num_rounds: int
    stop_reason: str
    message: str
    state: Any = None

    def __len__(self) -> int:
        return len(self.archs)

    @property
    def feasible(self) -> np.ndarray:
        """`bool [k]`: architectures meeting every hard constraint (finite objectives)."""
        return np.isfinite(self.objectives).all(axis=1)

    def best(self) -> int | None:
        """Index of the best feasible architecture by the first objective (None if none)."""
        if not self.feasible.any():
            return None
        return int(np.argmin(np.where(self.feasible, self.objectives[:, 0], np.inf)))

    def front(self) -> np.ndarray:
        """Indices of the feasible non-dominated architectures, sorted by the first objective.

        One architecture per distinct objective vector (the earliest evaluated); with one
        objective that is just the best.
        """
        from searchers.pareto import non_dominated_mask

        feasible = np.flatnonzero(self.feasible)
        if len(feasible) == 0:
            return feasible
        mask = np.asarray(non_dominated_mask(jnp.asarray(self.objectives[feasible])))
        # Identical objective vectors never dominate each other: keep one per vector.
        idx = feasible[mask]
        _, first = np.unique(self.objectives[idx], axis=0, return_index=True)
        idx = idx[np.sort(first)]
        return idx[np.lexsort(self.objectives[idx].T[::-1])]

    def record(self, i: int) -> dict[str, Any]:
        """History entry `i`: public encoding, vector, metrics and objectives (inf as None)."""
        return history_record(self.space, i, self.archs, self.rounds, self.metrics, self.objectives)

    def records(self) -> list[dict[str, Any]]:
        return [self.record(i) for i in range(len(self))]


def history_record(space, i: int, archs, rounds, metrics, objectives) -> dict[str, Any]:
    """One history entry as JSON-ready values (an infinite objective, i.e. infeasible, is None)."""
    return {
        "order": int(i), "round": int(rounds[i]), "arch": space.to_public(archs[i]), "vector": archs[i].tolist(),
        "metrics": {k: float(v[i]) for k, v in metrics.items()},
        "objectives": [float(x) if math.isfinite(x) else None for x in objectives[i].tolist()],
    }


# ============================================================================ history
class _History:
    """Evaluated architectures in fixed-capacity arrays plus a sorted index for lookups."""

    def __init__(self, capacity: int, d: int, m: int):
        self.count = 0
        self.archs = np.zeros((capacity, d), np.int32)
        self.objectives = np.zeros((capacity, m), np.float32)
        self.rounds = np.zeros(capacity, np.int32)
        self.metrics: dict[str, np.ndarray] | None = None  # names known after the first evaluation
        self._keys = row_keys(np.zeros((0, d), np.int32))  # sorted
        self._rows = np.zeros(0, np.int64)  # history row of each sorted key

    def find(self, archs: np.ndarray) -> np.ndarray:
        """History row of each architecture, `-1` where it was never evaluated."""
        keys = row_keys(archs)
        if len(self._keys) == 0:
            return np.full(len(keys), -1, np.int64)
        pos = np.minimum(np.searchsorted(self._keys, keys), len(self._keys) - 1)
        return np.where(self._keys[pos] == keys, self._rows[pos], -1)

    def append(self, archs: np.ndarray, metrics: Mapping[str, np.ndarray], objectives: np.ndarray, rnd: int) -> None:
        k, start = len(archs), self.count
        if self.metrics is None:
            self.metrics = {name: np.zeros(len(self.rounds), np.float64) for name in metrics}
        self.archs[start:start + k] = archs
        self.objectives[start:start + k] = objectives
        self.rounds[start:start + k] = rnd
        for name, values in metrics.items():
            self.metrics[name][start:start + k] = values
        self.count += k
        self._index(start, self.count)

    def _index(self, start: int, stop: int) -> None:
        keys = np.concatenate([self._keys, row_keys(self.archs[start:stop])])
        rows = np.concatenate([self._rows, np.arange(start, stop)])
        order = np.argsort(keys, kind="stable")  # nearly sorted already: cheap
        self._keys, self._rows = keys[order], rows[order]

    # -------------------------------------------------------------- checkpoint form
    def to_tree(self) -> dict[str, Any]:
        return {"count": np.asarray(self.count, np.int32), "archs": self.archs, "objectives": self.objectives,
                "rounds": self.rounds, "metrics": dict(self.metrics or {})}

    def load_tree(self, tree: Mapping[str, Any], metric_names) -> None:
        """Inverse of `to_tree`; `metric_names` restores the evaluator's order (orbax sorts keys)."""
        self.count = int(tree["count"])
        self.archs = np.array(tree["archs"], np.int32)
        self.objectives = np.array(tree["objectives"], np.float32)
        self.rounds = np.array(tree["rounds"], np.int32)
        self.metrics = {k: np.array(tree["metrics"][k], np.float64) for k in metric_names} or None
        self._keys = row_keys(np.zeros((0, self.archs.shape[1]), np.int32))
        self._rows = np.zeros(0, np.int64)
        self._index(0, self.count)


# ============================================================================ the driver
def run_search(searcher: Searcher, space, evaluate: Callable[[np.ndarray], Mapping[str, np.ndarray]],
               budget: int, seed: int, *, objective: Objective, progress: bool = True,
               checkpoint_dir: str | Path | None = None, resume: bool = False,
               history_path: str | Path | None = None, checkpoint_every: int = 1,
               patience: int = DEFAULT_PATIENCE) -> SearchResult:
    """Run `searcher` until `budget` distinct architectures are evaluated (see the module doc).

    `checkpoint_dir` turns on orbax checkpoints every `checkpoint_every` rounds (and at the
    end); `resume=True` continues from its latest checkpoint, or starts afresh if it holds
    none; a directory that holds one is refused without `resume`, so a finished search is
    never overwritten by accident. `history_path` receives one JSON line per evaluated
    architecture as the search goes (rewritten from the checkpoint on resume).
    """
    budget, patience, checkpoint_every = _positive_int(budget, "budget"), _positive_int(patience, "patience"), \
        _positive_int(checkpoint_every, "checkpoint_every")
    m = objective.num_objectives
    if searcher.num_objectives != m:
        raise ValueError(
            f"searcher {searcher.name!r} was built for {searcher.num_objectives} objective(s) but objective "
            f"{objective.spec!r} has {m} ({', '.join(objective.columns)})")
    if resume and checkpoint_dir is None:
        raise ValueError("resume needs a checkpoint directory")

    base_key = jax.random.key(int(seed))
    state = searcher.init(jax.random.fold_in(base_key, 0))
    history = _History(budget, space.num_decisions, m)
    rnd, stale = 0, 0
    meta = {"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, "searcher": searcher.name,
            "batch_size": int(searcher.batch_size), "space": space.name, "space_fingerprint": space.fingerprint(),
            "seed": int(seed), "budget": budget, "objective": objective.spec, "num_objectives": m}
    ckpt = _SearchCheckpoint(checkpoint_dir, meta) if checkpoint_dir is not None else None
    try:
        if ckpt is not None:
            if ckpt.exists() and not resume:
                raise ValueError(f"{ckpt.directory} already holds a search checkpoint; resume it or choose "
                                 f"another directory")
            if resume and ckpt.exists():
                state, rnd, stale = ckpt.restore(state, history)
        writer = _HistoryWriter(history_path, space, history)
        bar = _progress_bar(progress, budget, history.count, searcher.name)
        saved_round, space_size = rnd, space.size
        try:
            while not (stop := _stop_reason(history.count, budget, space_size, stale, patience)):
                rnd += 1
                state, num_new = _round(searcher, space, evaluate, objective, state, history,
                                        jax.random.fold_in(base_key, rnd), rnd, budget)
                writer.append(history.count - num_new, history.count)
                stale = 0 if num_new else stale + 1
                _postfix(bar, rnd, history)
                bar.update(num_new)
                if ckpt is not None and history.metrics is not None and rnd % checkpoint_every == 0:
                    ckpt.save(rnd, state, history, stale)
                    saved_round = rnd
            if ckpt is not None and history.metrics is not None and saved_round != rnd:
                ckpt.save(rnd, state, history, stale)
        finally:
            bar.close()
    finally:
        if ckpt is not None:
            ckpt.close()
    return _result(searcher, space, objective, history, budget, rnd, stop, state, patience)


def _round(searcher, space, evaluate, objective, state, history: _History, key, rnd: int, budget: int):
    """One ask / evaluate-the-new / tell round; returns the new state and how many were new."""
    archs, state = searcher.ask(state, key)
    archs = _check_proposals(space, searcher.name, archs)
    canonical = np.asarray(space.canonical(archs), np.int32)
    new = _new_rows(history, canonical)[: budget - history.count]
    if len(new):
        metrics = _evaluate(evaluate, space, canonical[new], history.metrics)
        history.append(canonical[new], metrics, objective(metrics), rnd)
    rows = history.find(canonical)
    # Repeats get their recorded objectives; proposals cut by the budget get +inf.
    told = np.where((rows >= 0)[:, None], history.objectives[np.maximum(rows, 0)], np.inf)
    state = searcher.tell(state, jnp.asarray(archs), jnp.asarray(told, jnp.float32))
    return state, len(new)


def _stop_reason(count: int, budget: int, space_size: int, stale: int, patience: int) -> str | None:
    if count >= budget:
        return "budget"
    if count >= space_size:
        return "exhausted"
    if stale >= patience:
        return "stalled"
    return None


def _result(searcher, space, objective, history, budget, rnd, stop, state, patience) -> SearchResult:
    k = history.count
    messages = {
        "budget": f"evaluated {k} distinct architectures in {rnd} rounds",
        "exhausted": f"evaluated all {k} architectures of {space.name} in {rnd} rounds (budget {budget})",
        "stalled": (f"stopped after {patience} rounds in a row in which {searcher.name} proposed only "
                    f"architectures already evaluated; {k} of the budget of {budget} used"),
    }
    metrics = {name: col[:k].copy() for name, col in (history.metrics or {}).items()}
    return SearchResult(space, searcher.name, objective, history.archs[:k].copy(), metrics,
                        history.objectives[:k].copy(), history.rounds[:k].copy(), budget, rnd, stop,
                        messages[stop], state)


def _new_rows(history: _History, canonical: np.ndarray) -> np.ndarray:
    """Batch positions of the distinct architectures not yet evaluated, in batch order."""
    unseen = np.flatnonzero(history.find(canonical) < 0)
    if len(unseen) == 0:
        return unseen
    _, first = np.unique(row_keys(canonical[unseen]), return_index=True)
    return unseen[np.sort(first)]


def _check_proposals(space, name: str, archs) -> np.ndarray:
    arr = np.asarray(archs)
    if arr.ndim != 2:
        raise ValueError(f"searcher {name!r}: ask must return archs [n, d], got shape {arr.shape}")
    try:
        return space.validate(arr)
    except ValueError as err:
        raise ValueError(f"searcher {name!r} proposed an invalid architecture: {err}") from None


def _evaluate(evaluate, space, archs: np.ndarray, known: Mapping[str, np.ndarray] | None) -> dict[str, np.ndarray]:
    """Call the evaluator and check its answer: the same metric names every time, `[k]`, no NaN."""
    out = evaluate(archs)
    if not isinstance(out, Mapping) or not out:
        raise ValueError(f"the evaluator must return a non-empty dict of metric arrays, got {type(out).__name__}")
    metrics = {}
    for name, values in out.items():
        values = np.asarray(values, np.float64)
        if values.shape != (len(archs),):
            raise ValueError(f"the evaluator returned metric {name!r} with shape {values.shape} for "
                             f"{len(archs)} architectures")
        if np.isnan(values).any():
            bad = space.to_public(archs[int(np.argmax(np.isnan(values)))])
            raise ValueError(f"the evaluator returned NaN for metric {name!r} of architecture {bad}")
        metrics[name] = values
    if known is not None and set(metrics) != set(known):
        raise ValueError(f"the evaluator returned metrics {sorted(metrics)}, earlier {sorted(known)}")
    return metrics


def _positive_int(value, name: str) -> int:
    if isinstance(value, bool) or int(value) != value or int(value) < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


# ============================================================================ progress
def _progress_bar(enabled: bool, total: int, initial: int, name: str):
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, desc=f"search ({name})", unit="arch", disable=not enabled,
                leave=False, dynamic_ncols=True, file=sys.stderr)


def _postfix(bar, rnd: int, history: _History) -> None:
    if bar.disable:
        return
    info = {"round": rnd}
    objs = history.objectives[: history.count]
    finite = np.isfinite(objs).all(axis=1)
    if objs.shape[1] == 1 and finite.any():
        info["best"] = f"{objs[finite, 0].min():.4g}"
    info["feasible"] = int(finite.sum())
    bar.set_postfix(info, refresh=False)


# ============================================================================ history file
class _HistoryWriter:
    """One JSON line per evaluated architecture, appended as the search goes."""

    def __init__(self, path: str | Path | None, space, history: _History):
        self.path = Path(path) if path is not None else None
        self.space, self.history = space, history
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.write_text("")  # a resumed search rewrites what its checkpoint holds
            self.append(0, history.count)

    def append(self, start: int, stop: int) -> None:
        if self.path is None or stop <= start:
            return
        h = self.history
        lines = [json.dumps(history_record(self.space, i, h.archs, h.rounds, h.metrics, h.objectives), default=str)
                 for i in range(start, stop)]
        with self.path.open("a") as f:
            f.write("\n".join(lines) + "\n")


# ============================================================================ checkpoints
class _SearchCheckpoint:
    """Orbax checkpoints of `{searcher state, driver state}` plus the settings in `search.json`."""

    def __init__(self, directory: str | Path, meta: dict[str, Any]):
        from supernet.checkpoint import Checkpointer

        self.directory = Path(directory).resolve()
        self.meta = meta
        self._meta_written = False
        self._checkpointer = Checkpointer(self.directory, keep=2)

    def exists(self) -> bool:
        return self._checkpointer.latest_step() is not None

    def save(self, rnd: int, state: Any, history: _History, stale: int) -> None:
        meta_path = self.directory / META_FILE
        if not self._meta_written:
            meta = {**self.meta, "metric_names": list(history.metrics)}
            tmp = meta_path.with_suffix(".tmp")
            tmp.write_text(json.dumps(meta, indent=1) + "\n")
            tmp.replace(meta_path)  # atomic: never a half-written settings file
            self._meta_written = True
        tree = {"searcher": state, "driver": {**history.to_tree(), "round": np.asarray(rnd, np.int32),
                                              "stale": np.asarray(stale, np.int32)}}
        self._checkpointer.save(rnd, tree)

    def restore(self, state_like: Any, history: _History) -> tuple[Any, int, int]:
        meta_path = self.directory / META_FILE
        try:
            saved = json.loads(meta_path.read_text())
        except (OSError, json.JSONDecodeError) as err:
            raise ValueError(f"{meta_path}: cannot read the search settings beside the checkpoint ({err})") from None
        diffs = [f"{k} {saved.get(k)!r} (now {v!r})" for k, v in self.meta.items() if saved.get(k) != v]
        if diffs:
            raise ValueError(f"the checkpoint in {self.directory} belongs to another search: it has "
                             f"{'; '.join(diffs)}; resume with the same settings or use another directory")
        names = saved.get("metric_names") or []
        like_history = _History(len(history.rounds), history.archs.shape[1], history.objectives.shape[1])
        like_history.metrics = {name: np.zeros(len(history.rounds), np.float64) for name in names}
        like = {"searcher": state_like, "driver": {**like_history.to_tree(), "round": np.asarray(0, np.int32),
                                                   "stale": np.asarray(0, np.int32)}}
        tree = self._checkpointer.restore(like)
        history.load_tree(tree["driver"], names)
        self._meta_written = True
        return tree["searcher"], int(tree["driver"]["round"]), int(tree["driver"]["stale"])

    def close(self) -> None:
        self._checkpointer.close()


__all__ = ["DEFAULT_PATIENCE", "SearchResult", "history_record", "run_search"]
