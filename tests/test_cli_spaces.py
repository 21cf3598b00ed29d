"""`hwnas spaces`: one-step end-to-end runs of the command, in-process and as a console script."""

import json
import subprocess
import sys

import pytest

from supernet.cli import main


def test_spaces_lists_every_space_with_its_exact_size(capsys):
    assert main(["spaces"]) == 0
    out = capsys.readouterr().out
    assert "nasbench201" in out and " 15625 " in out
    assert str(9**22) in out
    assert str((9**2 + 9**3 + 9**4) ** 5 * 25) in out


def test_spaces_show_ofa_prints_ofa_records_with_costs(capsys):
    assert main(["spaces", "show", "ofa_mbv3", "--sample", "3", "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["space"] == "ofa_mbv3" and payload["size"] == (9**2 + 9**3 + 9**4) ** 5 * 25
    assert len(payload["samples"]) == 3
    for sample in payload["samples"]:
        assert sorted(sample["arch"]) == ["d", "e", "ks", "r"]
        assert len(sample["arch"]["ks"]) == 20 and len(sample["arch"]["d"]) == 5
        assert sample["macs"] > 0 and sample["flops"] == 2 * sample["macs"] and sample["params"] > 0


def test_spaces_show_text_and_presets(capsys):
    assert main(["spaces", "show", "fbnet", "--preset", "tiny", "--sample", "2", "--seed", "1"]) == 0
    out = capsys.readouterr().out
    assert "layer0..layer5" in out and "k3_e1" in out and "MMACs" in out


@pytest.mark.parametrize(
    "argv, message",
    [
        (["spaces", "show", "nb101"], "unknown search space 'nb101'"),
        (["spaces", "show", "fbnet", "--preset", "huge"], "no preset 'huge'"),
        (["spaces", "show", "fbnet", "--sample", "-1"], "--sample must be >= 0"),
        (["spaces", "show", "fbnet", "--sample", "x"], "invalid int value"),
        (["frobnicate"], "invalid choice"),
    ],
)
def test_argument_errors_exit_2_with_one_line(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_console_script_help_and_error_exit_codes():
    ok = subprocess.run([sys.executable, "-m", "supernet", "--help"], capture_output=True, text=True)
    assert ok.returncode == 0 and "spaces" in ok.stdout
    bad = subprocess.run([sys.executable, "-m", "supernet", "spaces", "show", "nope"], capture_output=True, text=True)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1
