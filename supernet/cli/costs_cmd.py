"""`hwnas costs`: cost models judged on measured data, fitted for a device, or imported.

    hwnas costs eval --data ../shared/data --space nasbench201 --device pixel3 --model all --train-size 1000
    hwnas costs eval --data ../shared/data --space nasbench201 --device pixel3 --model xgboost \
        --train-size 20 --transfer-from 1080ti_1,raspi4,silver_4114
    hwnas costs fit --data ../shared/data --space fbnet --device raspi4 --model gp --train-size 500 --out pi.npz
    hwnas costs energy --space fbnet --config cifar --model horowitz45_int8 --out energy.json
    hwnas costs import --space fbnet --config cifar --csv pi4_us.csv --device raspi4 --scale 0.001 --out pi4.json
    hwnas costs import --space nasbench201 --csv edges.csv --device jetson --metric energy_mj --out energy.json

`eval` fits each model on N random measured architectures and reports RMSE, MAPE, the
shares within +-5 % and +-10 %, Kendall tau and Spearman rho on all the others, with fit and
predict time (`costs/evaluate.py`). `fit` saves one fitted predictor (`costs/predictors/`)
for `hwnas search --cost-model` or Python use.

`energy` writes an analytic energy table (MACs and memory traffic priced per device,
`costs/energy.py`) in the lookup-table format, so an energy budget enters training like a
latency table.

`import` reads per-(decision, choice) costs measured on another device from a CSV file
(format: `costs/lut_import.py`) and writes the `LatencyTable` JSON that `hwnas train`,
`derive` and `search` read. `--config` must be the macro-architecture the numbers were
measured on (a preset or a JSON file of FBNetConfig fields, as for `hwnas profile`): the
table is stamped with that configuration's fingerprint, and the CSV cannot tell.

Each subcommand is one small `_register_*` / `_run_*` pair on the `costs` group's own
subparsers, so more (e.g. evaluating a table) slot in beside `import`.
"""

from __future__ import annotations

import math

import numpy as np

from supernet.cli.common import CLIError, print_json, print_table
from supernet.spaces import SPACE_NAMES

IMPORTABLE = ("fbnet", "nasbench201")


def register(sub) -> None:
    p = sub.add_parser("costs", help="cost models: evaluate and fit predictors on measured data, import tables")
    costs_sub = p.add_subparsers(dest="costs_command", metavar="SUBCOMMAND")
    costs_sub.required = True
    _register_eval(costs_sub)
    _register_fit(costs_sub)
    _register_energy(costs_sub)
    _register_import(costs_sub)


# ====================================================================== hwnas costs eval / fit
def _data_arguments(p, model_help: str) -> None:
    p.add_argument("--data", required=True, metavar="DIR", help="measured data laid out like ../shared/data")
    p.add_argument("--space", required=True, help="nasbench201, fbnet or ofa_mbv3")
    p.add_argument("--device", required=True, help="device with a latency column in the data")
    p.add_argument("--model", required=True, help=model_help)
    p.add_argument("--train-size", type=int, required=True, metavar="N", help="measured architectures to fit on")
    p.add_argument("--seed", type=int, default=0, help="which N architectures (default 0)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")


def _register_eval(costs_sub) -> None:
    from costs.predictors import STANDALONE

    p = costs_sub.add_parser("eval", help="fit cost models on N measured architectures, score them on the rest")
    _data_arguments(p, f"{', '.join(STANDALONE)}, all, or a comma-separated list")
    p.add_argument("--transfer-from", default="", metavar="DEV1,DEV2,...",
                   help="source devices (full data) for few-shot transfer to --device; reports each model "
                        "alone and transferred (scale, stack)")
    p.set_defaults(run=_run_eval)


def _run_eval(args) -> int:
    from costs.evaluate import evaluate

    result = evaluate(args.data, args.space, args.device, [m for m in args.model.split(",") if m],
                      args.train_size, args.seed, transfer_from=[d for d in args.transfer_from.split(",") if d])
    if args.json:
        print_json(result)
        return 0
    source = f", transferred from {', '.join(result['transfer_from'])}" if result["transfer_from"] else ""
    print(f"{result['space']} on {result['device']}: fit on {result['train_size']} measured architectures "
          f"(seed {result['seed']}){source}, scored on the other {result['test_size']}")
    columns = ("rmse", "mape", "within_5", "within_10", "kendall_tau", "spearman", "fit_s", "predict_us_per_arch")
    print_table(("model",) + columns, [[r["model"]] + [r[c] for c in columns] for r in result["models"]])
    return 0


def _register_fit(costs_sub) -> None:
    from costs.predictors import STANDALONE

    p = costs_sub.add_parser("fit", help="fit one cost model on N measured architectures and save it")
    _data_arguments(p, ", ".join(STANDALONE))
    p.add_argument("--out", required=True, metavar="FILE.npz", help="where to save the fitted predictor")
    p.set_defaults(run=_run_fit)


def _run_fit(args) -> int:
    from costs.evaluate import resolve_models, split
    from costs.measured import latency, load_measured
    from costs.predictors import get_predictor
    from supernet.spaces import get_space

    (name,) = resolve_models(args.model) if args.model != "all" else (None,)
    if name is None:
        raise CLIError("--model all: fit saves one model; name it (use `hwnas costs eval --model all` to compare)")
    data = load_measured(args.space, args.data)
    y = latency(data, args.device)
    if args.train_size == len(y):
        train = np.arange(len(y))  # fit on everything: nothing held out
    else:
        train, _ = split(len(y), args.train_size, args.seed, what=f"{data.space}/{args.device}")
    model = get_predictor(name, get_space(data.space), device=args.device).fit(data.archs[train], y[train])
    path = model.save(args.out)
    summary = {"predictor": str(path), "model": name, "space": data.space, "device": args.device,
               "train_size": int(len(train)), "seed": args.seed}
    if args.json:
        print_json(summary)
    else:
        print(f"wrote {path}: {name} for {data.space} on {args.device}, fitted on {len(train)} measured architectures")
    return 0


# ====================================================================== hwnas costs energy
def _register_energy(costs_sub) -> None:
    from costs.energy import ENERGY_PRESETS

    p = costs_sub.add_parser("energy", help="an analytic energy lookup table (energy_mj) for a space")
    p.add_argument("--space", default="fbnet", help="fbnet, nasbench201 or ofa_mbv3 (default fbnet)")
    p.add_argument("--config", "--preset", dest="config", default=None, metavar="PRESET_OR_JSON",
                   help="macro-architecture: a preset or a JSON config file (as for `hwnas profile`)")
    p.add_argument("--model", default="horowitz45_fp32",
                   help=f"energy constants: {', '.join(sorted(ENERGY_PRESETS))} (default horowitz45_fp32)")
    p.add_argument("--batch-size", type=int, default=1, help="images per forward pass (default 1)")
    p.add_argument("--out", required=True, metavar="PATH", help="where to write the table (JSON)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    p.set_defaults(run=_run_energy)


def _run_energy(args) -> int:
    from costs.energy import energy_preset, energy_table
    from supernet.spaces import get_space

    model = energy_preset(args.model)
    if args.space == "nasbench201":
        if args.config is not None:
            raise CLIError("--config does not apply to nasbench201 (one configuration)")
        space = get_space("nasbench201")
    else:
        from supernet.cli.profile_cmd import resolve_config

        if args.space not in SPACE_NAMES:
            raise CLIError(f"unknown search space {args.space!r}; spaces: {', '.join(SPACE_NAMES)}")
        space = type(get_space(args.space))(resolve_config(args.config, args.space)) if args.config else \
            get_space(args.space)
    if args.batch_size < 1:
        raise CLIError(f"--batch-size must be >= 1, got {args.batch_size}")
    table = energy_table(space, model, batch_size=args.batch_size)
    path = table.save(args.out)
    summary = {"lut": str(path), "space": space.name, "fingerprint": space.fingerprint(), "model": model.name,
               "source": model.source, "batch_size": args.batch_size, "unit": table.unit,
               "min": table.min_cost, "max": table.max_cost}
    if args.json:
        print_json(summary)
    else:
        print(f"wrote {path}: {space.name} energy per forward pass of {args.batch_size} image(s), "
              f"{table.min_cost:.4g}..{table.max_cost:.4g} {table.unit} ({model.name}: {model.source})")
    return 0


# ====================================================================== hwnas costs import
def _register_import(costs_sub) -> None:
    p = costs_sub.add_parser("import", help="a lookup table from a CSV of per-choice costs measured elsewhere")
    p.add_argument("--space", default="fbnet", help=f"search space ({', '.join(IMPORTABLE)}; default fbnet)")
    p.add_argument("--config", "--preset", dest="config", default=None, metavar="PRESET_OR_JSON",
                   help="fbnet macro-architecture the costs were measured on: a preset (default cifar) or a JSON "
                        "file of FBNetConfig fields")
    p.add_argument("--csv", required=True, metavar="FILE",
                   help="costs: header decision,choice,value[,spread][,note], one row per (decision, choice) "
                        "plus 'fixed' rows (see costs/lut_import.py)")
    p.add_argument("--device", required=True, metavar="NAME", help="device the costs were measured on")
    p.add_argument("--metric", default="latency_ms",
                   help="what the values measure (default latency_ms; e.g. energy_mj)")
    p.add_argument("--unit", default=None, help="unit of the table (default: the metric's, ms for latency_ms)")
    p.add_argument("--scale", type=float, default=1.0, metavar="F",
                   help="multiply every value by F to get --unit (e.g. 0.001 for microseconds -> ms)")
    p.add_argument("--out", required=True, metavar="PATH", help="where to write the lookup table (JSON)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    p.set_defaults(run=_run_import)


def _import_space(args):
    """The space the CSV was measured on, from --space and --config."""
    from costs.lut_import import OFA_REFUSAL

    if args.space == "ofa_mbv3":
        raise CLIError(OFA_REFUSAL)
    if args.space not in IMPORTABLE:
        known = "unknown search space" if args.space not in SPACE_NAMES else "cannot import tables for space"
        raise CLIError(f"{known} {args.space!r}; importable spaces: {', '.join(IMPORTABLE)}")
    if args.space == "nasbench201":
        if args.config is not None:
            raise CLIError("--config applies to --space fbnet only (nasbench201 has one configuration)")
        from supernet.spaces import get_space

        return get_space("nasbench201")
    from supernet.cli.profile_cmd import resolve_config
    from supernet.spaces.fbnet import FBNetSpace

    return FBNetSpace(resolve_config(args.config or "cifar", "fbnet"))


def _run_import(args) -> int:
    from costs.lut import UNITS
    from costs.lut_import import import_csv

    if not (math.isfinite(args.scale) and args.scale > 0):
        raise CLIError(f"--scale must be a finite number > 0, got {args.scale}")
    if args.unit is None and args.metric not in UNITS:
        raise CLIError(f"--metric {args.metric!r} has no default unit; give --unit")
    space = _import_space(args)
    table = import_csv(args.csv, space, device=args.device, metric=args.metric, unit=args.unit, scale=args.scale)
    path = table.save(args.out)
    config = args.config or ("cifar" if space.name == "fbnet" else None)
    widths = sorted({len(c) for c in table.choices})
    if args.json:
        print_json({
            "lut": str(path), "csv": args.csv, "space": space.name, "config": config,
            "fingerprint": space.fingerprint(), "device": table.device, "metric": table.metric,
            "unit": table.unit, "scale": args.scale, "decisions": list(table.decisions),
            "choices": [list(c) for c in table.choices], "fixed": table.fixed,
            "min": table.min_cost, "max": table.max_cost,
        })
        return 0
    u = table.unit
    print(f"wrote {path}: {space.name}{f' ({config})' if config else ''}, {len(table.decisions)} decisions "
          f"({table.decisions[0]}..{table.decisions[-1]}) x {'/'.join(map(str, widths))} choices from {args.csv}, "
          f"device {args.device!r}, {table.metric} in {u}" + (f" (values x {args.scale:g})" if args.scale != 1 else ""))
    print(f"fixed {table.fixed:.4g} {u}; architectures cost {table.min_cost:.4g}..{table.max_cost:.4g} {u}")
    return 0
