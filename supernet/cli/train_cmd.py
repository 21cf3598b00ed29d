"""`hwnas train CONFIG --workdir DIR [--set key=value ...]`: train or resume a run.

Supernet and subnet runs go to `supernet.train`; `kind: ofa` runs (progressive shrinking)
to `supernet.ofa.trainer`.
"""

from __future__ import annotations

from supernet.cli.common import print_json


def register(sub) -> None:
    p = sub.add_parser("train", help="train (or resume) a supernet or subnet experiment")
    p.add_argument("config", help="experiment file with get_config(), optionally PATH:ARG (e.g. :smoke)")
    p.add_argument("--workdir", required=True, help="where checkpoints, metrics.jsonl and result.json go")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config entry (repeatable), e.g. --set method.name=fbnet")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(run=run)


def run(args) -> int:
    from supernet.config import apply_overrides, load_experiment
    from supernet.train import train

    config = apply_overrides(load_experiment(args.config), args.set)
    if config.get("kind") == "ofa":
        return _run_ofa(config, args)
    result = train(config, args.workdir, progress=not args.no_progress)
    space = result.run.space
    summary = {
        "workdir": str(result.workdir), "steps": int(result.state.step), "method": result.run.method.name,
        "arch": space.to_public(result.arch), "arch_str": space.describe(result.arch),
        "test_accuracy": result.test_accuracy,
    }
    if result.run.hardware.tables:
        costs = result.run.hardware.cost(result.arch)
        summary["lut_cost"] = {t.metric: float(c) for t, c in zip(result.run.hardware.tables, costs)}
    if args.json:
        print_json(summary)
    else:
        for key, value in summary.items():
            print(f"{key}: {value}")
    return 0


def _run_ofa(config: dict, args) -> int:
    """Progressive shrinking (`kind: ofa`): one line per finished phase."""
    from supernet.ofa.trainer import train_ofa

    results = train_ofa(config, args.workdir, progress=not args.no_progress)
    summary = {"workdir": args.workdir, "phases": [r.summary for r in results]}
    if args.json:
        print_json(summary)
        return 0
    for r in results:
        acc = r.summary["accuracy"]
        print(f"{r.phase:>12}: {r.steps} steps, test accuracy largest {acc['largest']:.3f}, "
              f"smallest {acc['smallest']:.3f}, random mean {r.summary['random_mean']:.3f} "
              f"(min {r.summary['random_min']:.3f})")
    return 0
