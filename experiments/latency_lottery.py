"""How much of NAS-Bench-201's true front on a TFLite device is measurement noise.

HW-NAS-Bench (Li et al., ICLR 2021) measured every NAS-Bench-201 cell once on each device. On
the Pixel 3 and the Raspberry Pi 4 the network runs under TFLite, whose converter drops the
ops whose results reach no output (an edge into a node that sends nothing on) but keeps the
ops fed by zeros. Cells that differ only in dropped ops therefore run the same graph: a
*same-graph class* (`tflite_graph`: the 15,625 cells run 12,205 graphs; 12,000 cells are
alone in theirs, the rest form 100 classes of 5, 100 of 25 and 5 of 125). Within a class
every difference of latency is measurement noise, and so is every difference of accuracy (each
cell was trained separately).

The true front, built from the table, keeps the *luckiest* member of each class near it, the
fastest and most accurate draw. A searcher that knows which graphs lie on the true front still
measures only the members it picks. This script asks what that costs: for `k` in `--members`,
it draws `k` members at random from the class of every true-front cell above 85% accuracy
(all of a smaller class), scores the union by the hypervolume ratio of
`experiments/searchers.py` (`searchers.reference`), and repeats `--draws` times:

    ratio_k = HV(k random members of the class of each true-front cell) / HV(true front)

With `k = 1` this is a searcher that finds every graph of the front and measures each once;
a ratio above it has to come from measuring several members of the same graph, that is from
the noise of the table. Also reported per device: the spread of latency within the classes
(median |lat / class median - 1| over the members of classes with more than one member, and
the share more than 10% away) and how many true-front cells come from such classes.

The grouping is what TFLite runs, so it is right for `pixel3` and `raspi4` (the default); on a
device that runs every op (HW-NAS-Bench's Samsung A50 and Eyeriss add time for each idle conv)
members of a class run different graphs and the numbers would not measure noise alone.

Runbook:
    python experiments/latency_lottery.py --out experiments/results      # the committed table
    python experiments/latency_lottery.py --devices pixel3 --draws 20 --json
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from searchers.evaluators import RowIndex, TabularEvaluator  # noqa: E402
from supernet.spaces.nasbench201 import edges_reaching_output  # noqa: E402
from searchers.reference import ReferenceFront, hypervolume_ratio, true_front  # noqa: E402

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
TFLITE_DEVICES = ("pixel3", "raspi4")
NOISY = 0.10  # a member "more than 10% away" from its class median


def tflite_graph(archs: np.ndarray) -> np.ndarray:
    """Each NAS-Bench-201 cell with the ops that reach no output set to `none` (0).

    Unlike `SearchSpace.functional_form`, ops fed only by zeros are kept: TFLite runs them.
    """
    return np.where(np.asarray(edges_reaching_output(archs)), np.asarray(archs), 0)


def same_graph_classes(archs: np.ndarray) -> np.ndarray:
    """`[n]` int labels: equal exactly when two cells run the same TFLite graph."""
    _, labels = np.unique(tflite_graph(archs), axis=0, return_inverse=True)
    return labels.reshape(-1)


def front_rows(evaluator) -> tuple[ReferenceFront, np.ndarray]:
    """The true front, and the table rows of its cells above 85% accuracy (where its area is)."""
    front = true_front(evaluator)
    in_box = front.points[:, 0] < front.reference[0]
    return front, RowIndex(np.asarray(evaluator.archs)).find(front.archs[in_box])


def class_medians(values: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """`[classes]` median of `values` within each label (one sort, no loop over classes)."""
    ordered = values[np.lexsort((values, labels))]
    sizes = np.bincount(labels)
    starts = np.cumsum(sizes) - sizes
    return (ordered[starts + (sizes - 1) // 2] + ordered[starts + sizes // 2]) / 2


def lottery_ratios(evaluator, members: int, draws: int, rng: np.random.Generator) -> np.ndarray:
    """`[draws]` hypervolume ratios of `members` random cells per same-graph class of the front."""
    if members < 1 or draws < 1:
        raise ValueError(f"members and draws must be >= 1, got {members} and {draws}")
    front, rows = front_rows(evaluator)
    labels = same_graph_classes(evaluator.archs)
    classes = [np.flatnonzero(labels == labels[r]) for r in rows]
    table = {k: np.asarray(v) for k, v in evaluator.table.items()}
    ratios = np.empty(draws)
    for t in range(draws):
        picked = np.concatenate([rng.choice(c, size=min(members, c.size), replace=False) for c in classes])
        ratios[t] = hypervolume_ratio({k: v[picked] for k, v in table.items()}, front)
    return ratios


def class_spread(evaluator) -> dict:
    """Latency spread within same-graph classes, and where the true front's cells come from."""
    lat = np.asarray(evaluator.table["latency_ms"], np.float64)
    labels = same_graph_classes(evaluator.archs)
    sizes = np.bincount(labels)
    median_of = class_medians(lat, labels)[labels]  # each cell's class median
    shared = sizes[labels] > 1
    deviation = np.abs(lat / median_of - 1)[shared]
    _, rows = front_rows(evaluator)
    from_shared = shared[rows]
    return {
        "cells": int(lat.size),
        "classes": int(sizes.size),
        "median_abs_deviation": float(np.median(deviation)),
        "share_beyond_10pct": float(np.mean(deviation > NOISY)),
        "front_cells": int(rows.size),
        "front_cells_from_shared_classes": int(from_shared.sum()),
        "front_cells_below_class_median": int((from_shared & (lat[rows] < median_of[rows])).sum()),
        "front_latency_over_class_median": float(np.median((lat[rows] / median_of[rows])[from_shared]))
        if from_shared.any() else 1.0,
    }


def run(data: Path, devices: list[str], members: list[int], draws: int, seed: int) -> dict:
    results = {}
    for device in devices:
        evaluator = TabularEvaluator.nasbench201(data, device=device)
        ratios = {}
        for k in members:  # a stream per (seed, k): a device's numbers do not depend on the other flags
            r = lottery_ratios(evaluator, k, draws, np.random.default_rng([seed, k]))
            ratios[str(k)] = {"median": float(np.median(r)), "q10": float(np.quantile(r, 0.1)),
                              "q90": float(np.quantile(r, 0.9))}
        results[device] = {**class_spread(evaluator), "ratios": ratios}
        print(f"{device}: done", file=sys.stderr, flush=True)
    return results


def markdown(payload: dict) -> str:
    members = payload["config"]["members"]
    head = ["device", "graphs", "abs(latency / class median - 1) in classes > 1: median, share > 10%",
            "true-front cells (in a class > 1; faster than its median)", "their latency / class median"]
    head += [f"ratio, k = {k}: median (q10-q90)" for k in members]
    lines = [
        "# How much of the true front on a TFLite device is measurement noise",
        "",
        "Produced by:",
        "",
        "```",
        payload["command"],
        "```",
        "",
        f"{payload['date']}, {payload['machine']}. {payload['config']['draws']} draws per k, seed "
        f"{payload['config']['seed']}. Method: `experiments/latency_lottery.py`'s docstring. A class: the cells "
        "that run the same TFLite graph (the ops that reach no output dropped). Ratio: the hypervolume ratio of "
        "`experiments/searchers.py` for k random members of the class of every true-front cell above 85% "
        "accuracy, as if a searcher found every graph of the front and measured k of its cells. 'Their latency / class "
        "median': the median over the true-front cells in classes of more than one.",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    for device, r in payload["devices"].items():
        row = [device, f"{r['classes']:,} of {r['cells']:,} cells",
               f"{r['median_abs_deviation']:.3f}, {100 * r['share_beyond_10pct']:.0f}%",
               f"{r['front_cells']} ({r['front_cells_from_shared_classes']}; {r['front_cells_below_class_median']})",
               f"{r['front_latency_over_class_median']:.2f}"]
        row += [f"{v['median']:.3f} ({v['q10']:.3f}-{v['q90']:.3f})" for v in r["ratios"].values()]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default=str(DEFAULT_DATA), help="the shared data directory (nasbench201/, hw_nas_bench/)")
    p.add_argument("--devices", default=",".join(TFLITE_DEVICES), help="comma-separated devices of latency_ms.csv")
    p.add_argument("--members", default="1,2,4,8", help="comma-separated k: members drawn per class")
    p.add_argument("--draws", type=int, default=1000, help="random draws per k")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    p.add_argument("--out", help="also write latency_lottery.md and .json here")
    args = p.parse_args(argv)
    try:
        members = [int(k) for k in args.members.split(",")]
    except ValueError:
        p.error(f"--members must be comma-separated integers, got {args.members!r}")
    payload = {
        "command": "python experiments/latency_lottery.py " + " ".join(argv),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores",
        "config": {"members": members, "draws": args.draws, "seed": args.seed},
        "devices": run(Path(args.data), args.devices.split(","), members, args.draws, args.seed),
    }
    text = markdown(payload)
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "latency_lottery.md").write_text(text)
        (out / "latency_lottery.json").write_text(json.dumps(payload, indent=1) + "\n")
    print(json.dumps(payload) if args.json else text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
