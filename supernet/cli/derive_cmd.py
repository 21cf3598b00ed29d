"""`hwnas derive --workdir DIR`: the architecture a supernet run selects, with its costs.

For a Once-for-All workdir, `--arch '<public OFA record>'` names the subnet to extract: it is
recalibrated, scored and written as a standalone model (`supernet.ofa.derive`).
"""

from __future__ import annotations

from supernet.cli.common import CLIError, print_json


def register(sub) -> None:
    p = sub.add_parser("derive", help="print the derived architecture of a supernet run with its costs")
    p.add_argument("--workdir", required=True, help="a supernet training workdir")
    p.add_argument("--samples", type=int, default=0,
                   help="pick the likeliest of N sampled architectures instead of the argmax")
    p.add_argument("--lut", action="append", default=[], metavar="FILE",
                   help="also cost the architecture with this lookup table (repeatable)")
    p.add_argument("--arch", help="OFA runs: the subnet to extract, as a JSON record {\"ks\", \"e\", \"d\", \"r\"}")
    p.add_argument("--out", help="OFA runs: where to write the subnet (default WORKDIR/subnets/<name>)")
    p.add_argument("--recalibration-images", type=int, metavar="N",
                   help="OFA runs: training images for the BN recalibration (default: the run's "
                        "eval.recalibration_images, as its phase results used; OFA: 2000)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(run=run)


def run(args) -> int:
    import json
    from pathlib import Path

    saved = Path(args.workdir) / "config.json"
    if saved.exists() and json.loads(saved.read_text()).get("kind") == "ofa":
        return _run_ofa(args)
    if args.arch or args.out or args.recalibration_images is not None:
        raise CLIError("--arch, --out and --recalibration-images apply to Once-for-All workdirs; this one holds a supernet search")
    from costs.analytic import analytic_costs
    from costs.lut import LatencyTable
    from supernet.derive import derived_arch, load_supernet

    run_, state, _ = load_supernet(args.workdir)
    space = run_.space
    arch = derived_arch(run_, state, samples=args.samples)
    analytic = analytic_costs(space, arch)
    tables = list(run_.hardware.tables) + [LatencyTable.load(path, space) for path in args.lut]
    payload = {
        "arch": space.to_public(arch), "arch_str": space.describe(arch),
        "analytic": {field: float(getattr(analytic, field)[0]) for field in analytic._fields},
        "lut": [{"device": t.device.get("name"), "metric": t.metric, "unit": t.unit, "cost": float(t.cost(arch))}
                for t in tables],
    }
    if args.json:
        print_json(payload)
        return 0
    print(f"arch: {payload['arch']}")
    print(f"      {payload['arch_str']}")
    a = payload["analytic"]
    print(f"MACs {a['macs'] / 1e6:.3f} M, params {a['params'] / 1e6:.4f} M, "
          f"peak activation {a['peak_activation_bytes'] / 1024:.1f} KiB")
    for entry in payload["lut"]:
        print(f"{entry['metric']} on {entry['device']}: {entry['cost']:.4f} {entry['unit']}")
    return 0


def _run_ofa(args) -> int:
    import json

    from supernet.ofa.derive import derive_subnet

    if not args.arch:
        raise CLIError("an OFA workdir serves any subnet: name one with --arch "
                       "'{\"ks\": [...], \"e\": [...], \"d\": [...], \"r\": PX}'")
    try:
        record = json.loads(args.arch)
    except json.JSONDecodeError as e:
        raise CLIError(f"--arch is not valid JSON ({e.msg} at column {e.colno})") from None
    summary = derive_subnet(args.workdir, record, args.out, args.recalibration_images)
    if args.json:
        print_json(summary)
        return 0
    a = summary["analytic"]
    print(f"arch: {summary['arch']} (phase {summary['phase']})")
    print(f"test accuracy {summary['test_accuracy']:.4f} after BN recalibration; MACs {a['macs'] / 1e6:.3f} M, "
          f"params {a['params'] / 1e6:.4f} M")
    print(f"written to {summary['path']}")
    return 0
