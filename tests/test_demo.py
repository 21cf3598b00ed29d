"""`hwnas demo --smoke`: every step of the main job, end to end, and a rerun that reuses it."""

import json

import numpy as np

from costs.lut import LatencyTable
from supernet.cli import main
from supernet.spaces import get_space


def test_demo_smoke_runs_every_step_and_a_rerun_reuses_them(tmp_path, capsys):
    workdir, cache = tmp_path / "demo", tmp_path / "cache"
    argv = ["demo", "--smoke", "--workdir", str(workdir), "--cache-dir", str(cache), "--json", "--no-progress"]
    assert main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    assert not out["lut_reused"] and len(list(cache.glob("lut-fbnet-*.json"))) == 1
    space = get_space("fbnet", "micro")
    table = LatencyTable.load(workdir / "lut.json", space)
    rows = out["rows"]
    assert len(rows) == 2
    targets = [r["target_ms"] for r in rows]
    assert table.min_cost < targets[0] < targets[1] < table.max_cost
    for row in rows:
        arch = space.from_public(row["arch"])
        assert row["lut_ms"] == np.float32(table.cost(arch[None])[0]).item()
        assert row["measured_ms"] > 0 and 0 <= row["accuracy"] <= 1 and 0 <= row["supernet_accuracy"] <= 1
        assert row["arch_str"] == space.describe(arch)
    assert out["ordered"] == (rows[0]["measured_ms"] <= rows[1]["measured_ms"])
    # The second search started from the first one's warm-up instead of training its own.
    first = [json.loads(x) for x in (workdir / "search-0" / "metrics.jsonl").read_text().splitlines()]
    forked = [json.loads(x) for x in (workdir / "search-1" / "metrics.jsonl").read_text().splitlines()]
    assert forked[:2] == first[:2] and len(forked) == 4
    for name in ("search-0", "search-1", "finetune-0", "finetune-1"):
        assert json.loads((workdir / name / "result.json").read_text())["steps"] > 0
    assert json.loads((workdir / "demo.json").read_text())["rows"] == rows

    assert main(argv) == 0  # everything is found done: the same table from the cached LUT
    again = json.loads(capsys.readouterr().out)
    assert again["lut_reused"]
    assert [r["arch"] for r in again["rows"]] == [r["arch"] for r in rows]
    assert [r["accuracy"] for r in again["rows"]] == [r["accuracy"] for r in rows]


def test_demo_errors_are_one_line(tmp_path, capsys):
    assert main(["demo", "--smoke", "--workdir", str(tmp_path), "--targets", "0.5,0.2"]) == 2
    assert "increasing" in capsys.readouterr().err
    assert main(["demo", "--smoke", "--workdir", str(tmp_path), "--targets", "fast"]) == 2
    assert "comma-separated" in capsys.readouterr().err
    bad = tmp_path / "lut.json"
    bad.write_text("{}")
    assert main(["demo", "--smoke", "--workdir", str(tmp_path / "w"), "--lut", str(bad)]) == 2
    assert str(bad) in capsys.readouterr().err
