"""`hwnas search`: run a searcher against tabular data for a budget; print the front or the best.

    hwnas search --space nasbench201 --data ../shared/data --device raspi4 \\
        --searcher nsga2 --budget 300 --objective pareto --json

prints the front found (NAS-Bench-201 `arch_str` with validation and test accuracy, latency,
analytic costs) and, for a Pareto objective on NAS-Bench-201, the hypervolume ratio to the
true front (`searchers.reference`). The search optimizes validation accuracy; test accuracy
is only reported.

`--out history.jsonl` writes every evaluated architecture as it goes, and checkpoints the
search in `history.ckpt/` beside it (or in `--workdir DIR`); `--resume` continues from there,
with the same result as a run straight through.

An objective no architecture can meet (`max-acc:lat<=0.001`) is reported with the smallest
achievable value and exit status 2, before any budget is spent: a script must not mistake it
for a result. With `--json` the same report is also printed on stdout as
`{"infeasible": true, "error": ..., "smallest_achievable": {...}}`. A soft target no
architecture meets (MNAS, TuNAS) is only a note: the reward still ranks every architecture.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

from supernet.cli.common import CLIError, print_json, print_table


def register(sub) -> None:
    from searchers import SEARCHER_NAMES
    from searchers.objectives import SPEC_HELP

    p = sub.add_parser("search", help="search a space with a searcher on tabular data for a budget")
    p.add_argument("--space", required=True, help="search space (tabular data: nasbench201)")
    p.add_argument("--data", default=None, metavar="DIR", help="data folder laid out like the shared data")
    p.add_argument("--supernet", default=None, metavar="WORKDIR",
                   help="evaluate with a trained supernet's inherited weights instead of tabular data")
    p.add_argument("--lut", action="append", default=[], metavar="FILE",
                   help="latency (or energy) table for the supernet evaluator's costs (repeatable)")
    p.add_argument("--cost-model", action="append", default=[], metavar="FILE.npz",
                   help="with --supernet: a fitted cost predictor (`hwnas costs fit`) giving its metric (repeatable)")
    p.add_argument("--device", default=None, help="device whose measured latency is used (e.g. raspi4)")
    p.add_argument("--searcher", required=True, help=f"one of {', '.join(SEARCHER_NAMES)}")
    p.add_argument("--budget", type=int, required=True, metavar="N", help="distinct architectures to evaluate")
    p.add_argument("--objective", default="pareto", help=f"what to optimize: {SPEC_HELP} (default: pareto)")
    p.add_argument("--seed", type=int, default=0, help="the search is a function of this seed")
    p.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                   help="searcher option (repeatable), e.g. --option population=50; values are JSON or text")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--out", default=None, metavar="FILE", help="write the history as JSON lines (history.jsonl)")
    p.add_argument("--workdir", default=None, metavar="DIR", help="checkpoint folder (default: beside --out)")
    p.add_argument("--resume", action="store_true", help="continue the search checkpointed in the workdir")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(run=run)


def run(args) -> int:
    from searchers import get_searcher, run_search
    from searchers.evaluators import check_targets
    from searchers.objectives import parse_objective

    if args.budget < 1:
        raise CLIError(f"--budget must be >= 1, got {args.budget}")
    objective = parse_objective(args.objective)
    options = parse_options(args.option)
    if "num_objectives" in options:
        raise CLIError(f"--option num_objectives: the objective sets it ({objective.num_objectives} for "
                       f"{objective.spec!r})")
    evaluator = _evaluator(args)
    space = evaluator.space
    missing = [name for name in objective.requires if name not in evaluator.metric_names]
    if missing:
        raise CLIError(f"objective {objective.spec!r} needs metric {missing[0]!r}, which the {space.name} data "
                       f"does not give; metrics: {', '.join(evaluator.metric_names)}")
    check = check_targets(objective, evaluator)
    if check is not None and check.infeasible:
        return _infeasible(args, check.infeasible, [u for u in check.unmet if u.hard], exhaustive=True)
    notes = [u.message(f"architecture of {space.name}", exhaustive=True)
             for u in (check.unmet if check else ()) if not u.hard]
    searcher = get_searcher(args.searcher, space, num_objectives=objective.num_objectives, **options)
    workdir = _workdir(args)
    result = run_search(searcher, space, evaluator, args.budget, args.seed, objective=objective,
                        progress=not args.no_progress, checkpoint_dir=workdir, resume=args.resume,
                        history_path=args.out)
    if not result.feasible.any():  # feasible ones may exist, but the budget found none
        message = (f"{objective.infeasible_message(result.metrics, 'evaluated architecture')} "
                   f"({len(result)} evaluated; a larger budget may find one)")
        unmet = [u for u in objective.unmet_targets(result.metrics) if u.hard]
        return _infeasible(args, message, unmet, exhaustive=False)
    summary = summarize(result, evaluator, args, notes, workdir)
    if args.json:
        print_json(summary)
    else:
        _print_text(summary)
    if result.stop_reason != "budget":
        notes.append(result.message)
    for note in notes:  # stderr in both modes: stdout stays one JSON object
        print(f"note: {note}", file=sys.stderr)
    return 0


def _evaluator(args):
    """Tabular data (`--data`), or a trained supernet (`--supernet`, costs from `--lut` tables)."""
    from searchers.evaluators import tabular_search_evaluator

    if (args.data is None) == (args.supernet is None):
        raise CLIError("give exactly one of --data DIR (tabular data) and --supernet WORKDIR")
    if args.data is not None:
        if args.lut or args.cost_model:
            raise CLIError("--lut and --cost-model go with --supernet; tabular data brings its own latency")
        return tabular_search_evaluator(args.space, args.data, args.device)
    from costs.lut import LatencyTable
    from searchers.evaluators import AnalyticCostModel, LUTCostModel
    from supernet.supernet_evaluator import SupernetEvaluator
    from supernet.train import load_state

    run, state = load_state(args.supernet)
    if run.space.name != args.space:
        raise CLIError(f"--space {args.space} but the supernet in {args.supernet} is of the {run.space.name} space")
    from costs.predictors import load_predictor

    tables = tuple(LatencyTable.load(path, run.space) for path in args.lut)
    tables += tuple(load_predictor(path, run.space) for path in args.cost_model)
    costs = LUTCostModel(run.space, tables) if tables else AnalyticCostModel(run.space)
    return SupernetEvaluator(run, state, costs)


def summarize(result, evaluator, args, notes, workdir) -> dict:
    """The JSON-ready outcome: the front (or the best), budget used, hypervolume ratio."""
    from searchers.objectives import Pareto
    from searchers.reference import hypervolume_ratio, true_front

    front = result.front() if result.objectives.shape[1] > 1 else [result.best()]
    payload = {
        "space": result.space.name, "device": args.device, "searcher": args.searcher,
        "objective": result.objective.spec, "objective_columns": list(result.objective.columns),
        "seed": args.seed, "budget": result.budget, "evaluated": len(result), "rounds": result.num_rounds,
        "stop_reason": result.stop_reason, "message": result.message,
        "best": _flat(result.record(result.best())),
        "front": [_flat(result.record(i)) for i in front],
        "hypervolume_ratio": None, "notes": notes,
        "history": str(args.out) if args.out else None, "workdir": str(workdir) if workdir else None,
    }
    if isinstance(result.objective, Pareto) and evaluator.covers_space:
        reference = true_front(evaluator)
        feasible = {k: v[result.feasible] for k, v in result.metrics.items()}
        payload["hypervolume_ratio"] = hypervolume_ratio(feasible, reference)
        payload["reference"] = {"plane": ["-accuracy/100", "log latency_ms"], "point": reference.reference.tolist(),
                                "true_front_size": len(reference.archs)}
    return payload


def parse_options(items: list[str]) -> dict:
    """`KEY=VALUE` strings to searcher keywords; values are JSON (`20`, `0.1`, `true`) or text."""
    options = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not key.isidentifier():
            raise CLIError(f"--option {item!r}: expected KEY=VALUE, e.g. --option population=50")
        try:
            options[key] = json.loads(value)
        except json.JSONDecodeError:
            options[key] = value
    return options


def _workdir(args) -> Path | None:
    if args.workdir:
        return Path(args.workdir)
    if args.out:
        out = Path(args.out)
        return out.with_name(out.stem + ".ckpt")
    if args.resume:
        raise CLIError("--resume needs --out or --workdir: it continues the checkpoint kept there")
    return None


def _infeasible(args, message: str, unmet, exhaustive: bool) -> int:
    """Report that no architecture met the hard constraints: exit 2, JSON too with `--json`.

    `exhaustive`: the whole space was checked, so the best values are achievable ones
    (`smallest_achievable`); otherwise only the evaluated ones were (`smallest_found`).
    """
    if args.json:
        which = "achievable" if exhaustive else "found"
        payload = {"infeasible": exhaustive, "feasible_found": False, "error": message}
        for upper, word in ((True, "smallest"), (False, "largest")):
            best = {u.target.metric: u.best for u in unmet if u.target.upper == upper}
            if best:
                payload[f"{word}_{which}"] = best
        print_json(payload)
    raise CLIError(message)


def _flat(record: dict) -> dict:
    """A history record with its metrics at the top level (what people read first)."""
    return {"arch": record["arch"], **record["metrics"], "objectives": record["objectives"],
            "order": record["order"], "round": record["round"], "vector": record["vector"]}


def _print_text(summary: dict) -> None:
    print(f"{summary['searcher']} on {summary['space']} ({summary['device']}), objective {summary['objective']}: "
          f"{summary['message']}")
    front = summary["front"]
    title = f"front ({len(front)} architectures):" if len(summary["objective_columns"]) > 1 else "best:"
    print(title)
    metric_names = [k for k in front[0] if k not in ("arch", "objectives", "order", "round", "vector")]
    headers = ["arch"] + metric_names + list(summary["objective_columns"])
    rows = [[r["arch"]] + [r[k] for k in metric_names] + [_num(x) for x in r["objectives"]] for r in front]
    print_table(headers, rows)
    if summary["hypervolume_ratio"] is not None:
        ref = summary["reference"]
        print(f"hypervolume ratio: {summary['hypervolume_ratio']:.4f} (true front: {ref['true_front_size']} "
              f"architectures; reference: 85% accuracy, {math.exp(ref['point'][1]):.4g} ms)")


def _num(x):
    return math.inf if x is None else x
