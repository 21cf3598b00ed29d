"""`hwnas costs eval` and `hwnas costs fit` end to end on the shared measured data."""

from __future__ import annotations

import json

import numpy as np
import pytest

from costs.measured import latency, load_measured
from costs.predictors import load_predictor
from supernet.cli import main
from supernet.spaces import get_space
from tests.conftest import SHARED_DATA

pytestmark = pytest.mark.skipif(not (SHARED_DATA / "fbnet" / "archs.csv").exists(), reason="needs ../shared/data")

DEVICES = {"nasbench201": "pixel3", "fbnet": "raspi4", "ofa_mbv3": "2080ti_1"}


@pytest.mark.parametrize("space", list(DEVICES))
def test_costs_eval_json_one_small_run_per_space(space, capsys):
    code = main(["costs", "eval", "--data", str(SHARED_DATA), "--space", space, "--device", DEVICES[space],
                 "--model", "lut,analytic,flops", "--train-size", "50", "--seed", "1", "--json"])
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    n = len(load_measured(space, SHARED_DATA).archs)
    assert (out["space"], out["device"], out["train_size"], out["test_size"]) == (space, DEVICES[space], 50, n - 50)
    assert [m["model"] for m in out["models"]] == ["lut", "analytic", "flops"]
    for m in out["models"]:
        assert -1 <= m["kendall_tau"] <= 1 and 0 <= m["within_10"] <= 1 and m["rmse"] > 0 and m["fit_s"] >= 0


def test_costs_eval_finds_fbnet_latencies_additive(capsys):
    # HW-NAS-Bench's FBNet latencies are sums of per-layer measurements: an additive table
    # fitted on 400 networks (199 coefficients) ranks the other 4,600 almost perfectly.
    assert main(["costs", "eval", "--data", str(SHARED_DATA), "--space", "fbnet", "--device", "raspi4",
                 "--model", "lut", "--train-size", "400", "--json"]) == 0
    (lut,) = json.loads(capsys.readouterr().out)["models"]
    assert lut["kendall_tau"] > 0.99 and lut["within_5"] > 0.99


def test_costs_eval_transfer_reports_alone_and_transferred(capsys):
    code = main(["costs", "eval", "--data", str(SHARED_DATA), "--space", "nasbench201", "--device", "fpga",
                 "--model", "lut", "--train-size", "20", "--transfer-from", "eyeriss,raspi4", "--json"])
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    rows = {m["model"]: m for m in out["models"]}
    assert list(rows) == ["lut", "lut+scale", "lut+stack"] and out["transfer_from"] == ["eyeriss", "raspi4"]
    # 20 samples alone cannot fit 31 coefficients; borrowing two devices ranks far better.
    assert rows["lut+stack"]["spearman"] > rows["lut"]["spearman"] + 0.2


def test_costs_eval_table_output(capsys):
    assert main(["costs", "eval", "--data", str(SHARED_DATA), "--space", "fbnet", "--device", "eyeriss",
                 "--model", "flops", "--train-size", "30"]) == 0
    text = capsys.readouterr().out
    assert "fbnet on eyeriss: fit on 30 measured architectures" in text and "kendall_tau" in text


@pytest.mark.parametrize("argv, message", [
    (["--space", "nasbench201", "--device", "pixel9", "--model", "lut", "--train-size", "20"],
     "no latency for device 'pixel9' in the nasbench201 data; devices: 1080ti_1"),
    (["--space", "nb", "--device", "pixel3", "--model", "lut", "--train-size", "20"],
     "no measured data for space 'nb'; spaces: nasbench201, fbnet, ofa_mbv3"),
    (["--space", "fbnet", "--device", "pixel3", "--model", "lux", "--train-size", "20"],
     "unknown cost model 'lux'; models: lut"),
    (["--space", "fbnet", "--device", "pixel3", "--model", "lut", "--train-size", "5000"],
     "train size 5000 leaves nothing to test: fbnet/pixel3 has 5000 measured architectures (use at most 4999)"),
    (["--space", "fbnet", "--device", "pixel3", "--model", "lut", "--train-size", "20", "--transfer-from", "pixel3"],
     "lists the target device 'pixel3'"),
    (["--space", "fbnet", "--device", "pixel3", "--model", "lut", "--train-size", "20", "--transfer-from", "tpu"],
     "no latency for device 'tpu' in the fbnet data"),
])
def test_costs_eval_refuses_bad_arguments_in_one_line(argv, message, capsys):
    assert main(["costs", "eval", "--data", str(SHARED_DATA)] + argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_costs_fit_saves_a_loadable_predictor(tmp_path, capsys):
    out = tmp_path / "eyeriss.npz"
    assert main(["costs", "fit", "--data", str(SHARED_DATA), "--space", "fbnet", "--device", "eyeriss",
                 "--model", "lut", "--train-size", "200", "--out", str(out), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["train_size"] == 200 and summary["predictor"] == str(out)
    model = load_predictor(out, get_space("fbnet"))
    data = load_measured("fbnet", SHARED_DATA)
    predicted = model.predict(data.archs[:100])
    np.testing.assert_allclose(predicted, latency(data, "eyeriss")[:100], rtol=0.05)
    assert main(["costs", "fit", "--data", str(SHARED_DATA), "--space", "fbnet", "--device", "eyeriss",
                 "--model", "all", "--train-size", "20", "--out", str(out)]) == 2
    assert "fit saves one model" in capsys.readouterr().err


def test_costs_energy_writes_an_energy_table_that_matches_energy_mj(tmp_path, capsys):
    import jax

    from costs.energy import energy_mj
    from costs.lut import LatencyTable

    out = tmp_path / "energy.json"
    assert main(["costs", "energy", "--space", "fbnet", "--config", "tiny", "--model", "horowitz45_int8",
                 "--batch-size", "2", "--out", str(out), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["unit"] == "mJ" and summary["batch_size"] == 2
    space = get_space("fbnet", "tiny")
    table = LatencyTable.load(out, space)
    archs = np.asarray(space.sample(jax.random.key(0), 8))
    assert table.metric == "energy_mj"
    np.testing.assert_allclose(np.asarray(table.cost(archs)), energy_mj(space, archs, "horowitz45_int8", batch_size=2),
                               rtol=1e-5)
    assert main(["costs", "energy", "--space", "nasbench201", "--model", "bogus", "--out", str(out)]) == 2
    assert "unknown energy preset 'bogus'; presets:" in capsys.readouterr().err
