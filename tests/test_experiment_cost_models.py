"""Smoke test of experiments/cost_models.py: every part on tiny settings, --json parsed."""

import json
import sys
from pathlib import Path

import pytest

from tests.conftest import SHARED_DATA, load_script

SCRIPT = Path(__file__).resolve().parents[1] / "experiments" / "cost_models.py"


def _load_script():
    return load_script(SCRIPT, "experiments_cost_models")


@pytest.mark.skipif(not (SHARED_DATA / "nasbench201" / "latency_ms.csv").exists(), reason="needs the shared data")
def test_cost_models_smoke_json(capsys, tmp_path):
    script = _load_script()
    assert script.main(["--smoke", "--data", str(SHARED_DATA), "--json", "--out", str(tmp_path)]) == 0
    result = json.loads(capsys.readouterr().out)

    devices = result["devices"]
    assert {r["space"] for r in devices} == {"nasbench201", "fbnet"}
    assert {r["model"] for r in devices} == {"lut", "analytic", "flops"}
    assert all(r["train_size"] == 20 and -1 <= r["kendall_tau"] <= 1 for r in devices)
    assert len({(r["space"], r["device"]) for r in devices}) == 10 + 6  # every device of both spaces

    assert {r["model"] for r in result["speed"]} == {"lut", "analytic", "flops"}
    assert all(r["predict_s"] > 0 for r in result["speed"])

    transfer = result["transfer"]
    assert {r["method"] for r in transfer} == {"alone", "scale", "stack"}
    # Borrowing nine fully measured devices beats 10 samples alone, on average over targets.
    nb = [r for r in transfer if r["space"] == "nasbench201"]
    mean = {m: sum(r["spearman"] for r in nb if r["method"] == m) / 10 for m in ("alone", "stack")}
    assert mean["stack"] > mean["alone"] + 0.3

    cpu = result["cpu"]
    assert cpu["subnets"] == 8 and cpu["train_size"] == 4
    assert [a["estimator"] for a in cpu["accuracy"]][:2] == ["the same 3 subnets measured again",
                                                              "lut (profiled per op)"]
    assert cpu["search"][0]["speedup_vs_measuring"] == 1.0
    assert all(s["measured_ms"] > 0 for s in cpu["search"][1:])
    text = (tmp_path / "cost_models.md").read_text()
    assert "## (b) This machine" in text and "### nasbench201" in text
