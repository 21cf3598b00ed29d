"""`hwnas demo [--workdir DIR] [--smoke]`: profile, search under several latency targets, report.

The README's first command. `supernet/demo.py` holds the steps; this module prints them.
"""

from __future__ import annotations

import sys

from supernet.cli.common import CLIError, print_json, print_table


def register(sub) -> None:
    p = sub.add_parser("demo", help="search the FBNet space on the embedded Fashion-MNIST under 3 latency "
                                    "targets of this machine, and measure what was found")
    p.add_argument("--workdir", default="hwnas-demo", help="where tables, runs and demo.json go (default hwnas-demo)")
    p.add_argument("--smoke", action="store_true", help="a seconds-long run of every step (tests, CI)")
    p.add_argument("--lut", default=None, metavar="FILE", help="use this latency table instead of profiling")
    p.add_argument("--cache-dir", default=None, metavar="DIR",
                   help="where profiled tables are kept for reuse (default $HWNAS_CACHE or ~/.cache/hwnas)")
    p.add_argument("--targets", default=None, metavar="F1,F2,...",
                   help="latency targets as fractions of the table's range, fastest=0 to slowest=1 "
                        "(default 0.15,0.45,0.8)")
    p.add_argument("--batch-size", type=int, default=None, help="batch size latency is measured at (default 64)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true", help="print the result as one JSON object")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(run=run)


def run(args) -> int:
    from supernet.demo import run_demo, to_json

    fractions = None
    if args.targets:
        try:
            fractions = tuple(float(f) for f in args.targets.split(","))
        except ValueError:
            raise CLIError(f"--targets must be comma-separated numbers in [0, 1], got {args.targets!r}") from None
    log = (lambda msg: print(msg, file=sys.stderr)) if args.json else print
    result = run_demo(args.workdir, smoke=args.smoke, lut=args.lut, cache_dir=args.cache_dir, fractions=fractions,
                      batch_size=args.batch_size, seed=args.seed, progress=not args.no_progress, log=log)
    if args.json:
        print_json(to_json(result))
        return 0
    print(f"\ndevice {result.device}, latency of a batch of {result.batch_size}, table {result.lut_path}")
    print_table(["target ms", "architecture", "LUT ms", "measured ms", "supernet acc", "fine-tuned acc"],
                [[f"{r.target_ms:.3f}", r.arch_str, f"{r.lut_ms:.3f}", f"{r.measured_ms:.3f} ± {r.measured_iqr_ms / 2:.3f}",
                  f"{r.supernet_accuracy:.3f}", f"{r.accuracy:.3f}"] for r in result.rows])
    verdict = "increases with the target" if result.ordered else "is NOT ordered as the targets ask"
    print(f"measured latency {verdict}; took " + ", ".join(f"{k} {v:.0f} s" for k, v in result.seconds.items()))
    return 0
