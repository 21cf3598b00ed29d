"""experiments/latency_lottery.py: TFLite's same-graph classes and the lottery ratios of the true front."""

import itertools
import json
import types
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import SHARED_DATA, load_script

SCRIPT = Path(__file__).resolve().parents[1] / "experiments" / "latency_lottery.py"
lottery = load_script(SCRIPT, "experiments_latency_lottery")
ALL_CELLS = np.array(list(itertools.product(range(5), repeat=6)), np.int32)  # none, skip, 1x1, 3x3, pool


def test_tflite_graph_drops_only_the_ops_that_reach_no_output():
    cells = np.array([
        [3, 3, 3, 3, 0, 0],  # nodes 1 and 2 send nothing on: edges 0-2 dropped
        [3, 1, 2, 3, 0, 2],  # node 1 reaches the output through node 2: nothing dropped
        [0, 0, 3, 1, 3, 0],  # edge 4 is fed by zeros but reaches the output: kept; edge 2 dropped
        [2, 0, 4, 0, 1, 0],  # node 2 sends nothing on: edges 1, 2 dropped, node 1 kept
    ])
    expected = np.array([[0, 0, 0, 3, 0, 0], [3, 1, 2, 3, 0, 2], [0, 0, 0, 1, 3, 0], [2, 0, 0, 0, 1, 0]])
    np.testing.assert_array_equal(lottery.tflite_graph(cells), expected)


def test_same_graph_classes_of_the_whole_space():
    labels = lottery.same_graph_classes(ALL_CELLS)
    sizes, count = np.unique(np.bincount(labels), return_counts=True)
    assert dict(zip(sizes.tolist(), count.tolist())) == {1: 12000, 5: 100, 25: 100, 125: 5}
    # every member of a class runs the same graph
    graphs = lottery.tflite_graph(ALL_CELLS)
    for c in np.unique(labels)[:200]:
        assert len({tuple(g) for g in graphs[labels == c]}) == 1


def fake_evaluator(latency_noise: float, seed: int = 0):
    """A table of every cell whose accuracy and latency depend on its TFLite graph, plus noise.

    An op on edge 5 (2 -> 3) costs much time and adds no accuracy, so the front's cells leave it
    `none` (unless the most accurate ones, which need edges 1 and 2): edges 1 and 2 are then
    dropped, and the cell is in a class of 25 or 125.
    """
    graphs = lottery.tflite_graph(ALL_CELLS)
    gain = np.array([0, 0.5, 1.5, 2.0, 0.7])[graphs] * (np.arange(6) != 5)
    acc = 84.0 + gain.sum(1)
    lat = 1.0 + np.array([0, 0.1, 1.0, 3.0, 0.5])[graphs].sum(1) + 20.0 * (graphs[:, 5] != 0)
    lat = lat * np.exp(latency_noise * np.random.default_rng(seed).standard_normal(lat.shape))
    return types.SimpleNamespace(covers_space=True, archs=ALL_CELLS, table={"accuracy": acc, "latency_ms": lat})


def test_without_noise_one_member_per_class_recovers_the_whole_front():
    ratios = lottery.lottery_ratios(fake_evaluator(0.0), members=1, draws=5, rng=np.random.default_rng(0))
    np.testing.assert_allclose(ratios, 1.0)


def test_with_noise_more_members_per_class_recover_more_of_the_front():
    ev = fake_evaluator(0.3)
    spread = lottery.class_spread(ev)
    assert 2 * spread["front_cells_from_shared_classes"] >= spread["front_cells"]  # the lottery matters
    medians = [np.median(lottery.lottery_ratios(ev, k, draws=20, rng=np.random.default_rng(k))) for k in (1, 4, 125)]
    assert medians[0] + 0.02 < medians[1] < 1.0
    assert medians[2] == pytest.approx(1.0)  # every member of every class: the true front itself
    with pytest.raises(ValueError, match="members and draws must be >= 1, got 0 and 5"):
        lottery.lottery_ratios(ev, 0, draws=5, rng=np.random.default_rng(0))


@pytest.mark.skipif(not (SHARED_DATA / "nasbench201" / "cifar10.csv").exists(), reason="needs the shared data")
def test_main_json_on_the_pixel3(capsys, tmp_path):
    assert lottery.main(["--data", str(SHARED_DATA), "--devices", "pixel3", "--members", "1,8", "--draws", "5",
                         "--json", "--out", str(tmp_path)]) == 0
    payload = json.loads(capsys.readouterr().out)
    r = payload["devices"]["pixel3"]
    assert r["cells"] == 15625 and r["classes"] == 12205
    assert 0 < r["front_cells_below_class_median"] <= r["front_cells_from_shared_classes"] <= r["front_cells"]
    assert 0.0 < r["ratios"]["1"]["median"] <= r["ratios"]["8"]["median"] <= 1.0
    assert json.loads((tmp_path / "latency_lottery.json").read_text())["devices"] == payload["devices"]
    assert "| pixel3 |" in (tmp_path / "latency_lottery.md").read_text()


def test_main_refuses_members_that_are_not_integers():
    with pytest.raises(SystemExit):
        lottery.main(["--members", "one"])
