"""Importing per-choice costs from CSV (costs/lut_import.py), `hwnas costs import`, and the raspi4 example."""

import json
import pickle
import sys
from pathlib import Path

import numpy as np
import pytest

from costs.lut import LatencyTable, LUTError
from costs.lut_import import LUTImportError, export_csv, import_csv
from supernet.cli import main
from supernet.spaces import get_space
from tests.conftest import SHARED_DATA, load_script

EXAMPLE = Path(__file__).resolve().parents[1] / "experiments" / "import_raspi4_lut.py"
PI_LUT = SHARED_DATA / "fbnet" / "raspi4_layer_lut_us.json"


@pytest.fixture
def space():
    return get_space("fbnet", "tiny")  # 6 layers x 9 candidates


@pytest.fixture
def table(space):
    rng = np.random.default_rng(0)
    return LatencyTable.for_space(space, rng.uniform(0.1, 2.0, (6, 9)), fixed=0.5, device={"name": "toy"},
                                  spread=rng.uniform(0.0, 0.05, (6, 9)))


@pytest.fixture
def lines(table, tmp_path):
    """The exported CSV as a list of lines: header = line 1, fixed = line 2, layer0 = lines 3..11."""
    return export_csv(table, tmp_path / "export.csv").read_text().splitlines()


def _write(tmp_path, lines, name="costs.csv"):
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n")
    return path


# ====================================================================== round trips
def test_export_import_round_trip_is_exact(space, table, tmp_path):
    path = export_csv(table, tmp_path / "lut.csv")
    back = import_csv(path, space, device="toy")
    np.testing.assert_array_equal(back.table, table.table)
    np.testing.assert_array_equal(back.spread, table.spread)
    assert back.fixed == table.fixed and back.unit == "ms" and back.metric == "latency_ms"
    assert back.space_fingerprint == space.fingerprint() and back.decisions == table.decisions
    assert back.device["name"] == "toy" and back.device["imported_from"] == str(path) and "date" in back.device
    back.check_space(space)
    # A saved imported table reads back for the same configuration only.
    saved = LatencyTable.load(back.save(tmp_path / "lut.json"), space)
    np.testing.assert_array_equal(saved.table, table.table)
    with pytest.raises(LUTError, match="does not match space fbnet"):
        LatencyTable.load(tmp_path / "lut.json", get_space("fbnet", "micro"))


def test_rows_are_matched_by_name_in_any_order_nasbench201(tmp_path):
    space = get_space("nasbench201")
    rng = np.random.default_rng(1)
    table = LatencyTable.for_space(space, rng.uniform(1, 5, (6, 5)), fixed=2.0, device={"name": "x"},
                                   metric="energy_mj")
    header, *rows = export_csv(table, tmp_path / "nb.csv").read_text().splitlines()
    shuffled = [rows[i] for i in rng.permutation(len(rows))]
    back = import_csv(_write(tmp_path, [header, *shuffled]), space, device="x", metric="energy_mj", scale=1000.0)
    np.testing.assert_allclose(back.table, 1000.0 * table.table, rtol=1e-15)
    assert back.fixed == pytest.approx(2000.0) and back.unit == "mJ" and back.decisions[1] == "edge2<-0"


def test_fixed_rows_are_summed_spread_scaled_and_notes_kept(space, tmp_path):
    rows = ["note,value,choice,decision,spread",  # columns in any order
            "3x3 conv,300,stem,fixed,", "1x1 conv + classifier,200,head,fixed,", ",5,-,fixed,", ",5,,fixed,"]
    for i in range(6):
        for c in ("k3_e1", "k3_e1_g2", "k3_e3", "k3_e6", "k5_e1", "k5_e1_g2", "k5_e3", "k5_e6", "skip"):
            note = "estimated" if (i, c) == (1, "skip") else ""
            rows.append(f"{note},{1000 * (i + 1)},{c},layer{i},10")
    rows.insert(3, "")  # blank lines are skipped
    back = import_csv(_write(tmp_path, rows), space, device="pi", scale=0.001)
    assert back.fixed == pytest.approx(0.51)
    np.testing.assert_allclose(back.table[:, 0], [1, 2, 3, 4, 5, 6])
    np.testing.assert_allclose(back.spread, 0.01)
    assert back.device["scale"] == 0.001
    assert back.device["entry_notes"] == {"fixed/stem": "3x3 conv", "fixed/head": "1x1 conv + classifier",
                                          "layer1/skip": "estimated"}


# ====================================================================== malformed files
def _edit(lines, line, text):
    """Replace 1-based `line` with `text` (None deletes it)."""
    out = list(lines)
    if text is None:
        del out[line - 1]
    else:
        out[line - 1] = text
    return out


MALFORMED = {
    # name: (edit of the exported lines, line, column, part of the message)
    "unknown column": (lambda ls: _edit(ls, 1, "decision,choice,cost,spread"), 1, "cost", "unknown column 'cost'"),
    "missing column": (lambda ls: _edit(ls, 1, "decision,value,spread,note"), 1, "choice", "missing column 'choice'"),
    "column twice": (lambda ls: _edit(ls, 1, "decision,choice,value,value"), 1, "value", "appears twice"),
    "unknown decision": (lambda ls: _edit(ls, 3, ls[2].replace("layer0", "layer9")), 3, "decision",
                         "unknown decision 'layer9'; fbnet has decisions layer0, layer1"),  # no 'did you mean layer5'
    "decision near miss": (lambda ls: _edit(ls, 3, ls[2].replace("layer0", "layer_0")), 3, "decision",
                         "did you mean 'layer0'?"),
    "decision typo": (lambda ls: _edit(ls, 3, ls[2].replace("layer0", "Layer0")), 3, "decision",
                      "did you mean 'layer0'?"),
    "unknown choice": (lambda ls: _edit(ls, 3, ls[2].replace("k3_e1", "k3e1")), 3, "choice",
                       "decision 'layer0' has no choice 'k3e1' (did you mean 'k3_e1'?)"),
    "duplicate": (lambda ls: ls + [ls[4]], 57, "choice", "layer0/k3_e3 appears twice (also on line 5)"),
    "missing pair": (lambda ls: _edit(ls, 4, None), 10, "choice",
                     "decision 'layer0' has no row for choice 'k3_e1_g2'"),
    "not a number": (lambda ls: _edit(ls, 3, "layer0,k3_e1,fast,0.1"), 3, "value", "'fast' is not a number"),
    "negative": (lambda ls: _edit(ls, 3, "layer0,k3_e1,-0.5,0.1"), 3, "value", "must be a finite number >= 0"),
    "nan": (lambda ls: _edit(ls, 3, "layer0,k3_e1,nan,0.1"), 3, "value", "must be a finite number >= 0"),
    "empty value": (lambda ls: _edit(ls, 3, "layer0,k3_e1,,0.1"), 3, "value", "no value"),
    "bad spread": (lambda ls: _edit(ls, 3, "layer0,k3_e1,1.0,-1"), 3, "spread", "must be a finite number >= 0"),
    "too many fields": (lambda ls: _edit(ls, 3, "layer0,k3_e1,1.0,0.1,x"), 3, "spread", "extra value(s) ['x']"),
    "too few fields": (lambda ls: _edit(ls, 3, "layer0,k3_e1,1.0"), 3, "spread", "no value for column 'spread'"),
    "fixed with spread": (lambda ls: _edit(ls, 2, "fixed,-,0.5,0.1"), 2, "spread", "takes no spread"),
    "fixed part twice": (lambda ls: ls + ["fixed,stem,1,", "fixed,stem,2,"], 58, "choice",
                         "fixed part 'stem' appears twice (also on line 57)"),
    "no fixed row": (lambda ls: _edit(ls, 2, None), None, "decision", "no 'fixed' row"),
    "decision missing": (lambda ls: [ln for ln in ls if not ln.startswith("layer5,")], None, "decision",
                         "no row for decision 'layer5' (was the file measured on another configuration"),
}


@pytest.mark.parametrize("case", list(MALFORMED))
def test_malformed_csv_is_refused_naming_file_line_and_column(case, space, lines, tmp_path):
    edit, line, column, message = MALFORMED[case]
    path = _write(tmp_path, edit(lines))
    with pytest.raises(LUTImportError) as info:
        import_csv(path, space, device="toy")
    e = info.value
    assert isinstance(e, LUTError) and (e.path, e.line, e.column) == (str(path), line, column)
    where = f"{path}, line {line}, column {column!r}: " if line else f"{path}, column {column!r}: "
    assert str(e).startswith(where) and message in str(e), str(e)
    assert "\n" not in str(e)


def test_file_level_errors(space, tmp_path):
    with pytest.raises(LUTImportError, match="file not found"):
        import_csv(tmp_path / "nope.csv", space, device="x")
    with pytest.raises(LUTImportError, match=r"line 1: empty file"):
        import_csv(_write(tmp_path, ["", ""]), space, device="x")
    (tmp_path / "latin1.csv").write_bytes("decision,choice,value\nfixed,caf\xe9,1\n".encode("latin-1"))
    with pytest.raises(LUTImportError, match="not UTF-8"):
        import_csv(tmp_path / "latin1.csv", space, device="x")
    bom = _write(tmp_path, ["\ufeffdecision,choice,value", "fixed,-,0"]
                 + [f"layer{i},{c},1" for i in range(6) for c in space.decisions[0].choices])
    assert import_csv(bom, space, device="x").min_cost == 6.0  # a spreadsheet's byte-order mark is fine


def test_arguments_and_spaces_that_cannot_be_imported(space, lines, tmp_path):
    path = _write(tmp_path, lines)
    for scale in (0, -1, float("nan"), "x"):
        with pytest.raises(LUTError, match="scale must be"):
            import_csv(path, space, device="x", scale=scale)
    with pytest.raises(LUTError, match="metric 'power_w' has no default unit"):
        import_csv(path, space, device="x", metric="power_w")
    assert import_csv(path, space, device="x", metric="power_w", unit="W").unit == "W"
    with pytest.raises(LUTError, match="needs a 'name'"):
        import_csv(path, space, device={"backend": "tflite"})
    with pytest.raises(LUTError, match=r"ofa_mbv3 tables cannot be imported.*hwnas profile --space ofa_mbv3"):
        import_csv(path, get_space("ofa_mbv3"), device="x")


def test_error_survives_pickling(space, lines, tmp_path):
    path = _write(tmp_path, _edit(lines, 3, "layer0,k3_e1,fast,0.1"))
    with pytest.raises(LUTImportError) as info:
        import_csv(path, space, device="x")
    back = pickle.loads(pickle.dumps(info.value))
    assert (back.path, back.line, back.column, str(back)) == (str(path), 3, "value", str(info.value))


# ====================================================================== hwnas costs import
def test_cli_import_one_step_end_to_end(space, table, tmp_path, capsys):
    csv_path = export_csv(table, tmp_path / "pi_us.csv")
    out = tmp_path / "lut.json"
    argv = ["costs", "import", "--space", "fbnet", "--config", "tiny", "--csv", str(csv_path), "--device", "pi4",
            "--scale", "0.001", "--out", str(out), "--json"]
    assert main(argv) == 0
    payload = json.loads(capsys.readouterr().out)
    loaded = LatencyTable.load(out, space)
    np.testing.assert_allclose(loaded.table, table.table * 0.001, rtol=1e-15)
    assert loaded.device["name"] == "pi4" and loaded.unit == "ms"
    assert payload["fingerprint"] == space.fingerprint() and payload["config"] == "tiny"
    assert payload["min"] == pytest.approx(loaded.min_cost) and payload["max"] == pytest.approx(loaded.max_cost)
    assert len(payload["decisions"]) == 6

    # Text output, and a JSON config file naming the same macro-architecture gives the same table.
    config = tmp_path / "tiny.json"
    config.write_text(json.dumps({"channels": [8, 8, 16, 16], "layers": [1, 2, 2, 1], "strides": [1, 2, 2, 1],
                                  "stem_channels": 8, "head_channels": 32, "input_size": 16, "in_channels": 1}))
    argv = ["costs", "import", "--config", str(config), "--csv", str(csv_path), "--device", "pi4", "--metric",
            "energy_mj", "--out", str(tmp_path / "energy.json")]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "6 decisions (layer0..layer5) x 9 choices" in text and "energy_mj in mJ" in text
    assert LatencyTable.load(tmp_path / "energy.json", space).metric == "energy_mj"


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--csv", "{bad}"], "line 3, column 'choice': decision 'layer0' has no choice 'k3e1'"),
        (["--csv", "{good}", "--space", "ofa_mbv3"], "ofa_mbv3 tables cannot be imported"),
        (["--csv", "{good}", "--space", "nb101"], "unknown search space 'nb101'"),
        (["--csv", "{good}", "--space", "nasbench201", "--config", "tiny"], "--config applies to --space fbnet"),
        (["--csv", "{good}", "--config", "huge"], "neither a preset"),
        (["--csv", "{good}", "--scale", "0"], "--scale must be a finite number > 0"),
        (["--csv", "{good}", "--metric", "power_w"], "--metric 'power_w' has no default unit"),
        (["--csv", "{good}", "--config", "cifar"], "no row for decision 'layer6'"),  # another configuration
        (["--csv", "{missing}"], "file not found"),
        (["--csv", "{good}", "--scale", "x"], "invalid float value"),
        ([], "the following arguments are required: --csv"),
    ],
)
def test_cli_errors_are_one_line_and_exit_2(extra, message, lines, tmp_path, capsys):
    files = {"good": _write(tmp_path, lines, "good.csv"), "missing": tmp_path / "missing.csv",
             "bad": _write(tmp_path, _edit(lines, 3, lines[2].replace("k3_e1", "k3e1")), "bad.csv")}
    out = tmp_path / "lut.json"
    argv = ["costs", "import", "--config", "tiny", "--device", "pi", "--out", str(out)]
    argv += [a.format(**files) for a in extra]
    if "--config" in extra:  # the case's own --config replaces the default one
        del argv[2:4]
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert message in captured.err, captured.err
    assert captured.err.count("\n") == 1 and captured.out == "" and not out.exists()


def test_cli_costs_needs_a_subcommand(capsys):
    assert main(["costs"]) == 2
    assert "required: SUBCOMMAND" in capsys.readouterr().err


# ====================================================================== experiments/import_raspi4_lut.py
def _load_example():
    return load_script(EXAMPLE, "experiments_import_raspi4_lut")


@pytest.mark.skipif(not PI_LUT.exists(), reason="needs the shared data (../shared/data)")
def test_raspi4_example_imports_the_pi_lut_and_ranks_measured_networks(tmp_path, capsys):
    example = _load_example()
    out = tmp_path / "pi" / "raspi4.json"
    assert example.main(["--data", str(SHARED_DATA), "--out", str(out), "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)

    space = get_space("fbnet")
    table = LatencyTable.load(out, space)
    raw = json.loads(PI_LUT.read_text())
    assert table.table[0, 0] == pytest.approx(raw[2][0] * 1e-3, rel=1e-12)  # layer0/k3_e1, us -> ms
    assert table.table[21, 7] == pytest.approx(raw[23][7] * 1e-3, rel=1e-12)
    assert table.fixed == 0.0 and payload["fixed_ms"] == 0.0
    estimated = ["layer1/skip", "layer5/skip", "layer9/skip", "layer13/skip", "layer17/skip", "layer21/skip"]
    assert payload["estimated"] == estimated
    notes = table.device["entry_notes"]
    assert sorted(notes) == sorted(estimated + ["fixed/-"]) and all("estimated" in notes[k] for k in estimated)
    # An estimated skip (a 1x1 conv) is cheaper than every measured candidate of its layer.
    assert table.table[1, 8] < table.table[1, :8].min()

    # Kendall tau vs HW-NAS-Bench's measured raspi4 latencies: 0.369 on the shared data (MACs
    # give 0.543). A sanity floor only: an unrelated table would give about 0.
    check = payload["check"]
    assert check["networks"] == 5000 and check["kendall_tau"] > 0.2
    assert -1 <= check["kendall_tau_macs"] <= 1 and -1 <= check["kendall_tau_skip_zero"] <= 1

    # The runbook's CLI line rebuilds the same table from the CSV the example wrote.
    again = tmp_path / "again.json"
    assert main(["costs", "import", "--space", "fbnet", "--config", "cifar", "--csv", payload["csv"],
                 "--device", "raspi4", "--scale", "0.001", "--out", str(again)]) == 0
    np.testing.assert_array_equal(LatencyTable.load(again, space).table, table.table)
