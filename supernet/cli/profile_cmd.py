"""`hwnas profile`: build a latency lookup table by timing every candidate on this JAX backend.

    hwnas profile --space fbnet --config cifar --out lut.json --validate 20
    hwnas profile --space ofa_mbv3 --preset imagenet --resolutions 160 224 --out ofa.json --validate 10
    hwnas profile --space ofa_mbv3 --preset imagenet --resolutions 192 --out ofa.json --merge

For `ofa_mbv3` the table holds per-resolution block costs (`costs.lut.OFALatencyTable`);
`--resolutions` restricts profiling to some resolutions (pixels; default all of the
preset's), and `--merge` adds them to the table already at `--out` (same space, device,
backend and batch size), so a large preset can be profiled a few resolutions at a time.

The table is written with `LatencyTable.save`; `--validate N` then times N random whole
subnets and shows how well the table's sums predict and rank them, because a LUT that
ranks subnets wrongly would steer a search wrongly without any visible error.
"""

from __future__ import annotations

import dataclasses
import json
import math
import sys
from pathlib import Path

from supernet.cli.common import CLIError, print_json, print_table
from supernet.spaces import SPACE_NAMES

PROFILABLE = ("fbnet", "ofa_mbv3")


def register(sub) -> None:
    p = sub.add_parser("profile", help="time every candidate block on this JAX backend and write a latency table")
    p.add_argument("--space", default="fbnet", help=f"search space to profile ({', '.join(PROFILABLE)}; default fbnet)")
    p.add_argument("--config", "--preset", dest="config", default="cifar", metavar="PRESET_OR_JSON",
                   help="macro-architecture: a preset name (default cifar) or a JSON file of the space's "
                        "config fields (FBNetConfig, OFAConfig)")
    p.add_argument("--resolutions", type=int, nargs="+", default=None, metavar="PX",
                   help="ofa_mbv3: profile only these input resolutions (default: all of the preset's)")
    p.add_argument("--merge", action="store_true",
                   help="ofa_mbv3: keep the resolutions of the table already at --out that are not profiled now")
    p.add_argument("--out", required=True, metavar="PATH", help="where to write the lookup table (JSON)")
    p.add_argument("--batch-size", type=int, default=1, help="batch size to time at (default 1)")
    p.add_argument("--repeats", type=int, default=None, help="timed runs per block (default 50)")
    p.add_argument("--warmup", type=int, default=None, help="untimed runs per block after compiling (default 10)")
    p.add_argument("--device-name", default=None, help="name stored in the table (default: backend and host)")
    p.add_argument("--validate", type=int, default=0, metavar="N",
                   help="also time N random whole subnets and compare them with the table")
    p.add_argument("--seed", type=int, default=0, help="seed of the validation subnets")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    p.set_defaults(run=run)


def resolve_config(value: str, space: str = "fbnet"):
    """The space's config (`FBNetConfig`, `OFAConfig`) from a preset name or a JSON file of its
    fields (lists become tuples)."""
    if space == "ofa_mbv3":
        from supernet.spaces.ofa_mbv3 import OFA_PRESETS as PRESETS
        from supernet.spaces.ofa_mbv3 import OFAConfig as Config
    else:
        from supernet.spaces.fbnet import FBNET_PRESETS as PRESETS
        from supernet.spaces.fbnet import FBNetConfig as Config

    if value in PRESETS:
        return PRESETS[value]
    path = Path(value)
    if not path.is_file():
        raise CLIError(f"--config {value!r} is neither a preset ({', '.join(PRESETS)}) nor a JSON file")
    try:
        fields = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CLIError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(fields, dict):
        raise CLIError(f"{path}: expected a JSON object of {Config.__name__} fields, got {type(fields).__name__}")
    known = {f.name: f for f in dataclasses.fields(Config)}
    unknown = sorted(set(fields) - set(known))
    if unknown:
        raise CLIError(f"{path}: unknown {Config.__name__} field(s) {', '.join(unknown)}; known: {', '.join(known)}")
    defaults = Config()
    values = {}
    for name, raw in fields.items():
        default = getattr(defaults, name)
        want_tuple = isinstance(default, tuple)
        element = type(default[0] if want_tuple and default else default) if default != () else int
        items = raw if want_tuple and isinstance(raw, list) else [raw]
        if (want_tuple and not isinstance(raw, list)) or not all(_is(v, element) for v in items):
            noun = {bool: "boolean", str: "string"}.get(element, "integer")
            kind = f"a list of {noun}s" if want_tuple else f"an {noun}" if noun == "integer" else f"a {noun}"
            raise CLIError(f"{path}: field {name!r} must be {kind}, got {raw!r}")
        values[name] = tuple(raw) if want_tuple else raw
    try:
        return Config(**values)
    except ValueError as e:
        raise CLIError(f"{path}: {e}") from None


def _is(value, element: type) -> bool:
    if element is bool:
        return isinstance(value, bool)
    if element is str:
        return isinstance(value, str)
    return isinstance(value, int) and not isinstance(value, bool)


def _check_args(args) -> None:
    if args.space not in PROFILABLE:
        if args.space in SPACE_NAMES:
            raise CLIError(f"space {args.space!r} cannot be profiled yet; profilable spaces: {', '.join(PROFILABLE)}")
        raise CLIError(f"unknown search space {args.space!r}; profilable spaces: {', '.join(PROFILABLE)}")
    for flag, value, low in (("--batch-size", args.batch_size, 1), ("--repeats", args.repeats, 1),
                             ("--warmup", args.warmup, 0), ("--validate", args.validate, 0)):
        if value is not None and value < low:
            raise CLIError(f"{flag} must be >= {low}, got {value}")
    if args.space != "ofa_mbv3":
        for flag, value in (("--resolutions", args.resolutions), ("--merge", args.merge)):
            if value:
                raise CLIError(f"{flag} applies to --space ofa_mbv3 only")


def _progress_bar(desc: str):
    """A tqdm bar on stderr (silent when stderr is not a terminal) and its update callback."""
    from tqdm.auto import tqdm

    bar = tqdm(desc=desc, file=sys.stderr, disable=None, leave=False, unit="prog")

    def update(done: int, total: int, label: str) -> None:
        if bar.total != total:
            bar.total = total
        bar.n = done
        bar.set_postfix_str(label, refresh=True)

    return bar, update


def _finite_or_none(value: float):
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else value


def run(args) -> int:
    _check_args(args)
    config = resolve_config(args.config, args.space)
    if args.space == "ofa_mbv3":
        return _run_ofa(args, config)

    import jax

    from supernet import profile
    from supernet.spaces.fbnet import FBNetSpace

    space = FBNetSpace(config)
    timing = dict(warmup=profile.DEFAULT_WARMUP if args.warmup is None else args.warmup,
                  repeats=profile.DEFAULT_REPEATS if args.repeats is None else args.repeats)
    bar, update = _progress_bar("profiling")
    try:
        table = profile.profile_fbnet(space, batch_size=args.batch_size, device_name=args.device_name,
                                      progress=update, **timing)
    finally:
        bar.close()
    path = table.save(args.out)

    validation = _validate(profile.validate_table, table, space, args, timing)

    if args.json:
        summary = _summary_json(validation)
        print_json({
            "lut": str(path), "space": space.name, "config": args.config,
            "fingerprint": space.fingerprint(), "device": table.device,
            "fixed_ms": table.fixed, "min_ms": table.min_cost, "max_ms": table.max_cost,
            "summary": summary,
            "rows": [] if validation is None else [r._asdict() for r in validation.rows],
        })
        return 0

    dev = table.device
    print(f"wrote {path}: {space.name} ({args.config}), {len(table.decisions)} layers x "
          f"{table.table.shape[1]} candidates on {dev['name']} ({dev['backend']}, batch {dev['batch_size']}), "
          f"profiled in {dev['profile_seconds']:.0f} s")
    print(f"fixed (stem + head + one dispatch) {table.fixed:.4g} ms; subnets range "
          f"{table.min_cost:.4g}..{table.max_cost:.4g} ms; dispatch overhead "
          f"{dev['dispatch_overhead_ms'] * 1e3:.0f} us per call ({dev['overhead_correction']})")
    if validation is not None:
        print()
        print_table(["#", "arch", "LUT ms", "measured ms", "error %"], [
            [i, ",".join(map(str, r.arch)), r.predicted_ms, r.measured_ms, f"{r.error_pct:+.1f}"]
            for i, r in enumerate(validation.rows)
        ])
        s = validation.summary
        print(f"\n{s.n} subnets: MAPE {s.mape_pct:.1f}%, max error {s.max_error_pct:.1f}%, "
              f"bias {s.bias_pct:+.1f}%, Kendall tau {s.kendall_tau:.3f}")
    return 0


def _run_ofa(args, config) -> int:
    """`hwnas profile --space ofa_mbv3`: per-resolution block tables (`OFALatencyTable`)."""
    import jax

    from costs.lut import LatencyTable, LUTError
    from supernet import profile, profile_ofa
    from supernet.spaces.ofa_mbv3 import OFAMobileNetV3Space

    space = OFAMobileNetV3Space(config)
    if args.resolutions:
        bad = [r for r in args.resolutions if r not in config.resolutions]
        if bad:
            raise CLIError(f"--resolutions: {bad[0]} is not a resolution of {args.config}; "
                           f"resolutions: {' '.join(map(str, config.resolutions))}")
    older = None
    if args.merge and Path(args.out).exists():
        try:
            older = LatencyTable.load(args.out, space)
        except LUTError as e:
            raise CLIError(f"--merge: {e}") from None
    timing = dict(warmup=profile.DEFAULT_WARMUP if args.warmup is None else args.warmup,
                  repeats=profile.DEFAULT_REPEATS if args.repeats is None else args.repeats)
    bar, update = _progress_bar("profiling")
    try:
        table = profile_ofa.profile_ofa(space, resolutions=args.resolutions, batch_size=args.batch_size,
                                        device_name=args.device_name, progress=update, **timing)
    finally:
        bar.close()
    measured = table.profiled_resolutions
    if older is not None:
        try:
            table = table.merge(older)
        except LUTError as e:
            raise CLIError(f"--merge: {e} ({args.out} left unchanged)") from None
    path = table.save(args.out)

    validation = _validate(profile_ofa.validate_ofa_table, table, space, args, timing)

    fixed = {str(px): float(table.fixed[config.resolutions.index(px)]) for px in table.profiled_resolutions}
    if args.json:
        summary = _summary_json(validation)
        print_json({
            "lut": str(path), "space": space.name, "config": args.config,
            "fingerprint": space.fingerprint(), "device": table.device,
            "resolutions": list(table.profiled_resolutions), "profiled_now": list(measured),
            "fixed_ms": fixed, "min_ms": table.min_cost, "max_ms": table.max_cost,
            "summary": summary,
            "rows": [] if validation is None else [r._asdict() for r in validation.rows],
        })
        return 0

    dev = table.device
    R, B, K, E = table.table.shape
    print(f"wrote {path}: {space.name} ({args.config}), {len(table.profiled_resolutions)} of {R} resolutions "
          f"x {B} blocks x {K} kernels x {E} expands on {dev['name']} ({dev['backend']}, batch "
          f"{dev['batch_size']}), profiled {' '.join(map(str, measured))} px in {dev['profile_seconds']:.0f} s")
    print(f"fixed (stem + first block + head + one dispatch) per resolution: "
          + ", ".join(f"{px}: {v:.4g} ms" for px, v in fixed.items()))
    print(f"subnets range {table.min_cost:.4g}..{table.max_cost:.4g} ms; dispatch overhead "
          f"{dev['dispatch_overhead_ms'] * 1e3:.0f} us per call ({dev['overhead_correction']})")
    if validation is not None:
        print()
        print_table(["#", "r", "depths", "LUT ms", "measured ms", "error %"], [
            [i, r.arch["r"], ",".join(map(str, r.arch["d"])), r.predicted_ms, r.measured_ms, f"{r.error_pct:+.1f}"]
            for i, r in enumerate(validation.rows)
        ])
        s = validation.summary
        print(f"\n{s.n} subnets: MAPE {s.mape_pct:.1f}%, max error {s.max_error_pct:.1f}%, "
              f"bias {s.bias_pct:+.1f}%, Kendall tau {s.kendall_tau:.3f}")
    return 0


def _validate(validate_fn, table, space, args, timing):
    """`--validate N`: N whole random subnets measured against the table (None without it)."""
    import jax

    if not args.validate:
        return None
    bar, update = _progress_bar("validating")
    try:
        return validate_fn(table, space, args.validate, key=jax.random.key(args.seed), batch_size=args.batch_size,
                           progress=update, **timing)
    finally:
        bar.close()


def _summary_json(validation):
    """The validation summary with JSON-safe numbers (None where not finite); None without one."""
    if validation is None:
        return None
    return {k: _finite_or_none(float(v)) if isinstance(v, float) else v
            for k, v in validation.summary._asdict().items()}
