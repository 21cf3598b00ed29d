"""`hwnas spaces`: list the search spaces; `hwnas spaces show NAME`: decisions and samples."""

from __future__ import annotations

import jax
import numpy as np

from supernet.cli.common import CLIError, print_json, print_table
from supernet.spaces import SPACE_NAMES, get_space, presets


def register(sub) -> None:
    p = sub.add_parser("spaces", help="list search spaces, or show one with sampled architectures")
    p.set_defaults(run=run_list)
    inner = p.add_subparsers(dest="spaces_command", metavar="{show}")
    show = inner.add_parser("show", help="decisions of one space and sampled archs with analytic costs")
    show.add_argument("name", help=f"space name: {', '.join(SPACE_NAMES)}")
    show.add_argument("--preset", default=None, help="macro-architecture preset (default: the paper's)")
    show.add_argument("--sample", type=int, default=0, metavar="N", help="sample N architectures")
    show.add_argument("--seed", type=int, default=0, help="sampling seed")
    show.add_argument("--json", action="store_true", help="print JSON instead of tables")
    show.set_defaults(run=run_show)


def run_list(args) -> int:
    rows = []
    for name in SPACE_NAMES:
        space = get_space(name)
        choices = sorted({d.size for d in space.decisions})
        rows.append([name, space.num_decisions, "/".join(map(str, choices)), space.size,
                     ", ".join(presets(name)) or "-"])
    print_table(["space", "decisions", "choices", "size", "presets"], rows)
    return 0


def run_show(args) -> int:
    if args.sample < 0:
        raise CLIError(f"--sample must be >= 0, got {args.sample}")
    space = get_space(args.name, args.preset)
    archs = np.asarray(space.sample(jax.random.key(args.seed), args.sample))
    samples = _samples_with_costs(space, archs)
    if args.json:
        print_json({
            "space": space.name,
            "preset": args.preset,
            "fingerprint": space.fingerprint(),
            "size": space.size,
            "decisions": [{"name": d.name, "choices": list(d.choices)} for d in space.decisions],
            "samples": samples,
        })
        return 0
    print(f"{space.name}: {space.num_decisions} decisions, {space.size} distinct networks "
          f"(fingerprint {space.fingerprint()})")
    print_table(["decision", "choices"], _grouped_decisions(space))
    if samples:
        print()
        print_table(["#", "architecture", "MMACs", "params (M)", "peak act. (KiB)"], [
            [i, s["arch"], s["macs"] / 1e6, s["params"] / 1e6, s["peak_activation_bytes"] / 1024]
            for i, s in enumerate(samples)
        ])
    return 0


def _samples_with_costs(space, archs) -> list[dict]:
    if len(archs) == 0:
        return []
    from costs.analytic import analytic_costs  # imported late: listing spaces needs no cost model

    costs = analytic_costs(space, archs)
    return [
        {"arch": space.to_public(a), "vector": a.tolist(),
         **{field: float(getattr(costs, field)[i]) for field in costs._fields}}
        for i, a in enumerate(archs)
    ]


def _grouped_decisions(space) -> list[list[str]]:
    """Collapse runs of decisions with the same choices (`kernel0..19`) into one row."""
    rows, start = [], 0
    decisions = space.decisions
    for i in range(1, len(decisions) + 1):
        if i == len(decisions) or decisions[i].choices != decisions[start].choices:
            names = decisions[start].name if i - start == 1 else f"{decisions[start].name}..{decisions[i - 1].name}"
            rows.append([names, ", ".join(map(str, decisions[start].choices))])
            start = i
    return rows
