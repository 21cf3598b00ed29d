"""`hwnas train` and `hwnas derive`: one-step end-to-end runs of the commands."""

import json

from supernet.cli import main

SMOKE = "experiments/fbnet_search.py:smoke"


def test_train_one_step_then_derive(tmp_path, capsys):
    workdir = tmp_path / "run"
    argv = ["train", SMOKE, "--workdir", str(workdir), "--set", "schedule.epochs=0.5",
            "--set", "schedule.warmup_epochs=0", "--json", "--no-progress"]
    assert main(argv) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["steps"] == 1 and result["method"] == "proxyless" and len(result["arch"]) == 3
    assert 0.0 <= result["test_accuracy"] <= 1.0
    assert main(["derive", "--workdir", str(workdir), "--json"]) == 0
    derived = json.loads(capsys.readouterr().out)
    assert derived["arch"] == result["arch"]
    assert derived["analytic"]["macs"] > 0 and derived["lut"] == []


def test_train_and_derive_errors_are_one_line(tmp_path, capsys):
    assert main(["train", "experiments/missing.py", "--workdir", str(tmp_path)]) == 2
    assert "not found" in capsys.readouterr().err
    assert main(["train", SMOKE, "--workdir", str(tmp_path), "--set", "schedule.epoch=1"]) == 2
    err = capsys.readouterr().err
    assert "unknown key 'schedule.epoch'" in err and len(err.strip().splitlines()) == 1
    assert main(["derive", "--workdir", str(tmp_path / "nothing")]) == 2
    assert "not a training workdir" in capsys.readouterr().err
