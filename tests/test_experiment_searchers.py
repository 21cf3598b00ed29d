"""Smoke test of the searcher benchmark script (experiments/searchers.py): one tiny grid, --json."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import SHARED_DATA, load_script

SCRIPT = Path(__file__).resolve().parents[1] / "experiments" / "searchers.py"


def _load_script():
    return load_script(SCRIPT, "experiments_searchers")


@pytest.mark.skipif(not (SHARED_DATA / "nasbench201" / "cifar10.csv").exists(), reason="needs the shared data")
def test_benchmark_main_json(capsys):
    bench = _load_script()
    code = bench.main(["--data", str(SHARED_DATA), "--devices", "raspi4", "--budgets", "20", "--seeds", "1",
                       "--searchers", "random,local", "--peers", "none", "--no-speed", "--json"])
    assert code == 0
    payload = json.loads(capsys.readouterr().out)

    assert payload["config"]["budgets"] == [20]
    assert [m["label"] for m in payload["config"]["methods"]] == ["random", "local"]
    assert payload["config"]["methods"][1]["pareto_objective"] == "pareto (Pareto local search)"  # native, no scalarization
    device = payload["devices"]["raspi4"]
    assert device["true_front_in_box"] >= 1 and device["true_hypervolume"] > 0
    assert 0 < device["latency_bound_ms"] < device["reference"]["latency_ms"]
    assert set(device["test_oracle_ratio"]) == {"50", "300"}
    assert 0 < device["test_oracle_ratio"]["50"] <= device["test_oracle_ratio"]["300"] <= 1.0

    runs = payload["runs"]
    assert {(r["method"], r["task"]) for r in runs} == {
        (m, t) for m in ("random", "local") for t in ("pareto", "constrained")}
    for r in runs:
        assert r["seed"] == 0 and r["budgets"] == [20] and r["evaluated"] == 20
        (value,) = r["values"]
        if r["task"] == "pareto":
            assert 0.0 <= value <= 1.0
            assert r["fronts"]["20"]  # seed 0 keeps its found front for the plot
        else:
            assert value is None or value >= 0.0  # regret in accuracy points (None: nothing feasible)

    for method in ("random", "local"):
        cell = payload["summary"]["raspi4"]["pareto"][method]["20"]
        assert 0.0 <= cell["q25"] <= cell["median"] <= cell["q75"] <= 1.0 and cell["n"] == 1
        assert "20" in payload["summary"]["raspi4"]["constrained"][method]
    assert isinstance(payload["checks"], list) and payload["skipped_peers"] == {}


@pytest.mark.skipif(not (SHARED_DATA / "nasbench201" / "cifar10.csv").exists(), reason="needs the shared data")
def test_speed_only_retimes_a_finished_run_and_keeps_its_searches(tmp_path):
    bench = _load_script()
    common = ["--data", str(SHARED_DATA), "--out", str(tmp_path)]
    with pytest.raises(SystemExit, match="needs a finished run"):
        bench.main(common + ["--speed-only"])
    assert bench.main(common + ["--devices", "raspi4", "--budgets", "10", "--seeds", "1", "--searchers",
                                "random,evolution", "--peers", "none", "--tasks", "pareto", "--no-speed"]) == 0
    before = json.loads((tmp_path / "searchers.json").read_text())
    assert before["speed"] == {}

    assert bench.main(common + ["--speed-only"]) == 0
    after = json.loads((tmp_path / "searchers.json").read_text())
    assert after["runs"] == before["runs"] and after["summary"] == before["summary"]
    speed = after["speed"]["evolution_evals_per_s"]
    assert len(speed["samples"]) == bench.SPEED_RUNS and speed["value"] == sorted(speed["samples"])[2] > 0
    assert "--speed-only" in after["speed_measured"]["command"]
    md = (tmp_path / "searchers.md").read_text()
    assert "Measured again on" in md and "evolution sustains over 10,000 evaluations per second" in md

    # --render re-writes the markdown from the JSON, with the expectation checks recomputed.
    (tmp_path / "searchers.md").unlink()
    assert bench.main(["--render", str(tmp_path)]) == 0
    assert (tmp_path / "searchers.md").read_text() == md


def test_resume_reuses_finished_units_says_so_and_changes_no_result(tmp_path):
    bench = _load_script()
    args = ["--data", str(SHARED_DATA), "--out", str(tmp_path), "--devices", "raspi4", "--budgets", "10", "--seeds",
            "1", "--searchers", "random,evolution", "--peers", "none", "--tasks", "pareto", "--no-speed"]
    assert bench.main(args) == 0
    first = json.loads((tmp_path / "searchers.json").read_text())
    assert first["resumed_units"] == [0, 2] and "resumed" not in (tmp_path / "searchers.md").read_text()
    units = tmp_path / "searchers_units.jsonl"
    units.write_text(units.read_text().splitlines()[0] + "\n")  # as if stopped after the first unit
    assert bench.main(args + ["--resume"]) == 0
    resumed = json.loads((tmp_path / "searchers.json").read_text())
    assert resumed["resumed_units"] == [1, 2]

    def without_timing(runs):
        return [{k: v for k, v in run.items() if k != "seconds"} for run in runs]
    assert without_timing(resumed["runs"]) == without_timing(first["runs"])
    assert resumed["runs"][0] == first["runs"][0]  # the resumed unit, timing included
    assert "(1 of 2 units resumed from `searchers_units.jsonl` of an earlier run" in (tmp_path / "searchers.md").read_text()
    assert len(units.read_text().splitlines()) == 2  # the unit run again was appended


def test_speed_lines_cover_searches_old_single_runs_and_bo_asks():
    bench = _load_script()
    searches = {"value": 12000.0, "samples": [1.0] * 5, "evaluations": 1000, "device": "raspi4"}
    assert bench.speed_line("nsga2_evals_per_s", searches) == \
        "nsga2_evals_per_s: 1.2e+04 (median of 5 searches of 1000 evaluations, raspi4)"
    single = {"value": 1814.0, "evaluations": 1000, "seconds": 0.55, "device": "raspi4"}
    assert bench.speed_line("evolution_evals_per_s", single) == \
        "evolution_evals_per_s: 1814 (1000 evaluations in 0.55 s, raspi4)"
    ask = {"value": 0.19, "samples": [0.19] * 5, "batch_size": 4}
    assert bench.speed_line("bo_ask_s_300_observations", ask) == "bo_ask_s_300_observations: 0.19 s (batch of 4; median of 5)"
    checks = bench.speed_checks({"nsga2_evals_per_s": searches, "bo_ask_s_300_observations": ask})
    assert checks[0].startswith("**met**: nsga2 sustains over 10,000") and checks[1].startswith("**met**: one BO ask")


def test_headroom_of_a_hand_computed_front():
    # Front (accuracy %, ms): one cell below 85% (ignored), 88% at e ms, 90% at e^2 ms = the reference
    # latency. In the plane (-acc/100, log ms) the area is 0.03 x 1 over a span of 1, so 0.97 allows
    # a mean gap of 0.03 * 0.03 / 1 * 100 = 0.09 points. Peers do not count as ours.
    bench = _load_script()
    e = 2.718281828459045
    payload = {
        "config": {"methods": [{"label": "local", "kind": "ours"}, {"label": "tpe", "kind": "peer"}]},
        "devices": {"dev": {"true_front": [[80.0, 1.0], [88.0, e], [90.0, e * e]], "true_hypervolume": 0.03,
                            "reference": {"accuracy": 85.0, "latency_ms": e * e}}},
        "summary": {"dev": {"constrained": {"local": {"300": {"median": 0.2}}, "tpe": {"300": {"median": 0.1}}},
                            "pareto": {"local": {"300": {"median": 0.95}}, "tpe": {"300": {"median": 0.99}}}}},
    }
    assert bench.headroom_rows(payload) == [["dev", "0.090", "0.200", "0.950", "- / -"]]  # no oracle recorded
    payload["devices"]["dev"]["test_oracle_ratio"] = {"50": 0.98, "300": 0.999}
    assert bench.headroom_rows(payload)[0][-1] == "0.980 / 0.999"


def test_oracle_takes_pareto_layers_accurate_end_first():
    # (test accuracy %, ms): a, b, d are the first layer (a most accurate); c is dominated by a
    # (less accurate and slower), so it comes after the whole first layer.
    bench = _load_script()
    table = {"test_accuracy": np.array([90.0, 88.0, 89.0, 87.0]), "latency_ms": np.array([2.0, 1.0, 3.0, 0.5])}
    assert bench.oracle_order_by_test_accuracy(table, 4).tolist() == [0, 1, 3, 2]
    assert bench.oracle_order_by_test_accuracy(table, 2).tolist() == [0, 1]
    assert bench.oracle_order_by_test_accuracy(table, 9).tolist() == [0, 1, 3, 2]  # fewer rows than asked
