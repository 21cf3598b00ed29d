"""`hwnas costs`: hardware cost tables made outside `hwnas profile`.

    hwnas costs import --space fbnet --config cifar --csv pi4_us.csv --device raspi4 --scale 0.001 --out pi4.json
    hwnas costs import --space nasbench201 --csv edges.csv --device jetson --metric energy_mj --out energy.json

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

from supernet.cli.common import CLIError, print_json
from supernet.spaces import SPACE_NAMES

IMPORTABLE = ("fbnet", "nasbench201")


def register(sub) -> None:
    p = sub.add_parser("costs", help="hardware cost tables: import costs measured elsewhere")
    costs_sub = p.add_subparsers(dest="costs_command", metavar="SUBCOMMAND")
    costs_sub.required = True
    _register_import(costs_sub)


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
