"""`hwnas search`: every searcher end to end on NAS-Bench-201 with --json parsed, resume, and errors."""

import json
import math

import pytest

from searchers import SEARCHER_NAMES
from supernet.cli import main
from tests.conftest import SHARED_DATA

BASE = ["search", "--space", "nasbench201", "--data", str(SHARED_DATA), "--device", "raspi4", "--no-progress"]
# Small settings keep each searcher's compile and fit quick; passed as --option KEY=VALUE.
SMALL = {"nsga2": ["population=8"], "evolution": ["population=8", "sample_size=3"],
         "bo": ["capacity=64", "pool_size=64", "fit_size=32", "fit_steps=5"]}


def search(capsys, *extra, searcher="random", budget=12, objective="mnas:20"):
    options = [arg for opt in SMALL.get(searcher, []) for arg in ("--option", opt)]
    code = main(BASE + ["--searcher", searcher, "--budget", str(budget), "--objective", objective,
                        *options, *extra])
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.mark.parametrize("name", SEARCHER_NAMES)
def test_every_searcher_runs_a_small_budget_and_prints_json(name, capsys):
    code, out, err = search(capsys, "--json", "--option", "batch_size=4", searcher=name)
    assert code == 0, err
    payload = json.loads(out)
    assert payload["searcher"] == name and payload["objective"] == "mnas:20"
    assert payload["evaluated"] == 12 and payload["stop_reason"] == "budget"
    best = payload["best"]
    assert best["arch"].startswith("|") and best["arch"].count("~") == 6
    assert 0 < best["accuracy"] <= 100 and 0 < best["test_accuracy"] <= 100 and best["latency_ms"] > 0
    assert payload["front"] == [best] and payload["hypervolume_ratio"] is None
    assert best["objectives"][0] == pytest.approx(
        -(best["accuracy"] / 100) * (best["latency_ms"] / 20) ** -0.07, rel=1e-5)


def test_nsga2_pareto_prints_front_and_hypervolume_ratio(capsys):
    code, out, err = search(capsys, "--json", searcher="nsga2", budget=24, objective="pareto")
    assert code == 0, err
    payload = json.loads(out)
    front = payload["front"]
    assert 0 < payload["hypervolume_ratio"] <= 1 and payload["reference"]["point"][0] == -0.85
    assert payload["best"] == front[0]  # the most accurate front member
    accs = [r["accuracy"] for r in front]
    lats = [r["latency_ms"] for r in front]
    assert accs == sorted(accs, reverse=True) and lats == sorted(lats, reverse=True)  # a staircase
    for r in front:
        assert r["objectives"] == pytest.approx([-r["accuracy"] / 100, math.log(r["latency_ms"])], rel=1e-5)


def test_text_output_shows_the_front_table_and_ratio(capsys):
    code, _, err = search(capsys, "--option", "num_objectives=2", budget=20, objective="pareto")
    assert code == 2 and "the objective sets it" in err
    code, out, _ = search(capsys, budget=20, objective="pareto")
    assert code == 0
    assert out.startswith("random on nasbench201 (raspi4), objective pareto: evaluated 20 distinct")
    assert "front (" in out and "latency_ms" in out and "hypervolume ratio: " in out


def test_out_writes_history_and_resume_continues_it(tmp_path, capsys):
    history = tmp_path / "history.jsonl"
    code, out, err = search(capsys, "--json", "--out", str(history), budget=10)
    assert code == 0, err
    first = json.loads(out)
    lines = [json.loads(line) for line in history.read_text().splitlines()]
    assert len(lines) == 10 and lines[0]["arch"].startswith("|") and "accuracy" in lines[0]["metrics"]
    assert (tmp_path / "history.ckpt" / "search.json").exists()
    code, _, err = search(capsys, "--json", "--out", str(history), budget=10)
    assert code == 2 and "already holds a search checkpoint" in err
    code, out, err = search(capsys, "--json", "--out", str(history), "--resume", budget=10)
    assert code == 0, err
    assert json.loads(out)["front"] == first["front"]
    assert [json.loads(line) for line in history.read_text().splitlines()] == lines


def test_infeasible_constraint_reports_the_fastest_latency(capsys):
    code, out, err = search(capsys, "--json", objective="max-acc:lat<=0.001")
    assert code == 2
    payload = json.loads(out)
    assert payload["infeasible"] is True and payload["smallest_achievable"]["latency_ms"] == pytest.approx(0.0112835)
    assert err.startswith("hwnas: error: no architecture of nasbench201 meets the constraint latency_ms <= 0.001")
    assert "smallest latency_ms achievable is 0.0112835 ms" in err and len(err.strip().splitlines()) == 1
    # a soft target below the fastest network is only a note: the search still answers
    code, out, err = search(capsys, "--json", objective="mnas:0.001")
    assert code == 0 and json.loads(out)["notes"] and "soft target" in err


@pytest.mark.parametrize("extra, message", [
    (["--searcher", "annealing"], "unknown searcher 'annealing'"),
    (["--objective", "fastest"], "unknown objective 'fastest'"),
    (["--device", "tpu9"], "no latency for device 'tpu9'"),
    (["--objective", "max-acc:energy<=1"], "needs metric 'energy_mj'"),
    (["--space", "fbnet"], "cannot drive a tabular search"),
    (["--resume"], "--resume needs --out or --workdir"),
    (["--budget", "0"], "--budget must be >= 1"),
    (["--option", "population"], "expected KEY=VALUE"),
    (["--option", "colour=red"], "searcher 'random'"),
])
def test_errors_are_one_line_and_exit_2(extra, message, capsys):
    argv = BASE + ["--searcher", "random", "--budget", "5", "--objective", "mnas:20"] + extra
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
