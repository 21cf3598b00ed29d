"""Import the Raspberry Pi 4 layer LUT of FBNet's CIFAR supernet, and see how well its sums rank networks.

Runbook:
    python experiments/import_raspi4_lut.py                    # ../shared/data -> runs/raspi4_fbnet_lut.{csv,json}
    python experiments/import_raspi4_lut.py --data DIR --out runs/pi4.json --json
    # the same table again, from the CSV this script wrote, with the CLI:
    hwnas costs import --space fbnet --config cifar --csv runs/raspi4_fbnet_lut.csv \
        --device raspi4 --scale 0.001 --out runs/raspi4_fbnet_lut.json

Expected output (shared data as of 2026-11, a few seconds): 22 layers x 9 choices, 6 skip
entries estimated, any network costs 32.6..399.0 ms by the table (the 5,000 below: 176..344 ms);
Kendall tau of the table's sums against HW-NAS-Bench's measured raspi4 latency of the 5,000
networks in `fbnet/archs.csv`: 0.369 (analytic MACs: 0.543; with the estimated skips at 0
instead: 0.365).

Source. `fbnet/raspi4_layer_lut_us.json` (jh88/fbnet) is a list of 28 layers of the FBNet
CIFAR supernet (32x32x3 input, 10 classes), measured on a Raspberry Pi 4 in microseconds:
entries 0, 1 and 24-27 are the fixed layers (stem, head, classifier) and are null, entries
2..23 are our `layer0..layer21`, each a list of candidate latencies in HW-NAS-Bench's order
`k3_e1, k3_e1_g2, k3_e3, k3_e6, k5_e1, k5_e1_g2, k5_e3, k5_e6, skip`, skip only where the
layer keeps its shape. That macro-architecture is `get_space("fbnet")`'s default (preset
`cifar`), and the script checks that skip is present exactly where that space's layers keep
their shape.

Conversion. The list becomes our CSV format (`costs/lut_import.py`) in microseconds, named
rows instead of positions, and `costs.lut_import.import_csv(..., scale=0.001)` turns it into
a `LatencyTable` in ms: the example runs the same import path as `hwnas costs import`.
Two gaps, both written explicitly into the CSV with a note (kept in the table's
`device.entry_notes`):

* Fixed layers: not measured, so `fixed,-,0`. The table costs the 22 searchable layers only;
  it ranks networks the same way but understates a whole network by the stem and head.
* `skip` where the layer changes shape (layer1, 5, 9, 13, 17, 21). There our skip is a 1x1
  convolution (strided where the layer strides) followed by BN, and the Pi LUT has no number
  for it. We estimate it as the latency of the layer's cheapest measured candidate times the
  ratio of their analytic MACs (`costs.analytic.layer_cost_tables`): the same layer, shapes
  and runtime, scaled by the work. On this device per-layer time hardly follows MACs (an
  identity skip still costs ~0.23 ms, and k3_e1 costs 8.7-11.9 ms across layers whose MACs
  differ 43x), so the estimate is rough; it is labelled an estimate, and it barely moves the
  ranking (tau 0.369 vs 0.365 with those skips at 0).

Check. The table's sum for each of the 5,000 HW-NAS-Bench FBNet networks against their
measured `raspi4` column (`costs.load_measured("fbnet", data)`), by Kendall tau. The two
sources are different measurements: jh88 timed layers one at a time in its own framework
(the sums are ~8x HW-NAS-Bench's whole-network times, 17-53 ms), and HW-NAS-Bench measured
CIFAR-100 networks (100 classes, a larger classifier, which only shifts every network by the
same amount). The tau says how much of the measured ranking the imported table reproduces;
plain MACs rank these networks better, so this LUT is a weak proxy for HW-NAS-Bench's Pi
numbers. The main disagreement is the group convolutions: here `k*_e1_g2` costs 1.4-1.7x its
dense `k*_e1`, while HW-NAS-Bench's raspi4 column (itself exactly additive: a least-squares
per-(layer, choice) fit ranks its 5,000 networks with tau 1.0) prices them within 0.3 ms of
dense. With the g2 entries set to their dense ones (a diagnostic, not applied) tau is 0.570.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
from pathlib import Path

_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(_ROOT))

import numpy as np  # noqa: E402

import costs  # noqa: E402
from costs.analytic import analytic_costs, layer_cost_tables  # noqa: E402
from costs.metrics import kendall_tau  # noqa: E402
from costs.lut import LatencyTable, device_info  # noqa: E402
from costs.lut_import import FIXED, import_csv  # noqa: E402
from supernet.spaces import get_space  # noqa: E402
from supernet.spaces.fbnet import CANDIDATE_NAMES, SKIP  # noqa: E402

LUT_FILE = Path("fbnet") / "raspi4_layer_lut_us.json"
DEVICE = "raspi4"  # the column of fbnet/latency_ms.csv it is checked against
SCALE = 0.001  # microseconds -> ms
FIRST_SEARCHABLE = 2  # entries 0, 1: stem; 24-27: head (null in the file)


def read_pi_lut(path: Path, space) -> list[list[float]]:
    """The 22 searchable layers' microsecond lists, checked against `space`'s layer shapes."""
    try:
        entries = json.loads(path.read_text())
    except FileNotFoundError:
        raise ValueError(f"{path}: not found (the shared data's {LUT_FILE}; pass --data)") from None
    specs = space.layer_specs()
    n = len(specs)
    if not isinstance(entries, list) or len(entries) != n + 6:
        raise ValueError(f"{path}: expected a list of {n + 6} layers ({FIRST_SEARCHABLE} fixed, {n} searchable, 4 "
                         f"fixed), got {len(entries) if isinstance(entries, list) else type(entries).__name__}")
    searchable = range(FIRST_SEARCHABLE, FIRST_SEARCHABLE + n)
    for k, entry in enumerate(entries):
        if k not in searchable and entry is not None:
            raise ValueError(f"{path}: entry {k} is a fixed layer and should be null, got {entry!r}")
    layers = []
    for spec, k in zip(specs, searchable):
        row = entries[k]
        want = len(CANDIDATE_NAMES) if spec.keeps_shape else SKIP  # skip only where the shape is kept
        if not isinstance(row, list) or len(row) != want:
            raise ValueError(f"{path}: entry {k} (layer{spec.index}, {'keeps' if spec.keeps_shape else 'changes'} "
                             f"its shape) should list {want} latencies, got {row!r}")
        if not all(isinstance(v, (int, float)) and math.isfinite(v) and v > 0 for v in row):
            raise ValueError(f"{path}: entry {k} (layer{spec.index}) has a latency that is not a positive number")
        layers.append([float(v) for v in row])
    return layers


def csv_rows(layers: list[list[float]], space) -> list[list[str]]:
    """Rows of our CSV format (microseconds), with a note on every entry that was not measured."""
    macs = np.asarray(layer_cost_tables(space).layers.macs)
    rows = [[FIXED, "-", "0", "stem and head were not measured (null in the Pi LUT): the table costs the "
                              "searchable layers only"]]
    for spec, row in zip(space.layer_specs(), layers):
        name = f"layer{spec.index}"
        rows += [[name, CANDIDATE_NAMES[j], repr(v), ""] for j, v in enumerate(row)]
        if not spec.keeps_shape:
            cheap = int(np.argmin(row))
            ratio = macs[spec.index, SKIP] / macs[spec.index, cheap]
            rows.append([name, "skip", repr(float(row[cheap] * ratio)),
                         f"estimated (not in the Pi LUT): 1x1 conv + BN, stride {spec.stride}; "
                         f"{CANDIDATE_NAMES[cheap]} latency x MACs ratio {ratio:.3f}"])
    return rows


def write_csv(rows, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(["decision", "choice", "value", "note"])
        writer.writerows(rows)
    return path


def run(data_dir: Path, out: Path) -> dict:
    """Convert, import, save, and rank the measured networks; returns the summary."""
    space = get_space("fbnet")
    layers = read_pi_lut(data_dir / LUT_FILE, space)
    csv_path = write_csv(csv_rows(layers, space), out.with_suffix(".csv"))
    device = device_info(DEVICE, source=f"jh88/fbnet per-layer LUT ({LUT_FILE})", imported_from=str(csv_path),
                         scale=SCALE, batch_size=1, input_size=space.macro.input_size)
    table = import_csv(csv_path, space, device=device, metric="latency_ms", scale=SCALE)
    table.save(out)
    LatencyTable.load(out, space)  # what consumers will do: must read back for this space

    data = costs.load_measured("fbnet", data_dir)
    measured = costs.latency(data, DEVICE)
    predicted = np.asarray(table.cost(data.archs), np.float64)
    # Sensitivity to the one judgement call: the same sums with the estimated skips at 0.
    zeroed = table.table.copy()
    estimated = [i for i, spec in enumerate(space.layer_specs()) if not spec.keeps_shape]
    zeroed[estimated, SKIP] = 0.0
    predicted_zero = table.fixed + zeroed[np.arange(space.num_decisions), data.archs].sum(axis=1)
    macs = analytic_costs(space, data.archs).macs
    return {
        "lut": str(out), "csv": str(csv_path), "space": space.name, "fingerprint": space.fingerprint(),
        "decisions": len(table.decisions), "choices": len(table.choices[0]),
        "estimated": [f"layer{i}/skip" for i in estimated], "fixed_ms": table.fixed,
        "min_ms": table.min_cost, "max_ms": table.max_cost,
        "check": {
            "networks": int(len(measured)), "device": DEVICE,
            "kendall_tau": float(kendall_tau(predicted, measured)),
            "kendall_tau_skip_zero": float(kendall_tau(predicted_zero, measured)),
            "kendall_tau_macs": float(kendall_tau(macs, measured)),
            "measured_ms": [float(measured.min()), float(measured.max())],
            "table_ms": [float(predicted.min()), float(predicted.max())],
            "median_table_over_measured": float(np.median(predicted / measured)),
        },
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(_ROOT.parent / "shared" / "data"), metavar="DIR",
                        help="the shared data folder (default ../shared/data beside the repo)")
    parser.add_argument("--out", default=str(_ROOT / "runs" / "raspi4_fbnet_lut.json"), metavar="PATH",
                        help="the lookup table (JSON); the CSV goes beside it with suffix .csv")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    args = parser.parse_args(argv)
    result = run(Path(args.data), Path(args.out))
    if args.json:
        print(json.dumps(result, indent=1))
        return 0
    c = result["check"]
    print(f"wrote {result['csv']} and {result['lut']}: {result['space']}, {result['decisions']} layers x "
          f"{result['choices']} choices on {DEVICE}; estimated: {', '.join(result['estimated'])}; fixed layers "
          f"unmeasured (0)")
    print(f"networks cost {result['min_ms']:.1f}..{result['max_ms']:.1f} ms by the table")
    print(f"{c['networks']} HW-NAS-Bench networks: Kendall tau vs measured {DEVICE} {c['kendall_tau']:.3f} "
          f"(MACs {c['kendall_tau_macs']:.3f}; estimated skips at 0: {c['kendall_tau_skip_zero']:.3f}); "
          f"table sums {c['table_ms'][0]:.0f}..{c['table_ms'][1]:.0f} ms vs measured "
          f"{c['measured_ms'][0]:.0f}..{c['measured_ms'][1]:.0f} ms "
          f"(median ratio {c['median_table_over_measured']:.1f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
