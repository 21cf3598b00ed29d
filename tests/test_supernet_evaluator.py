"""The supernet as a search evaluator: BN recalibration per subnet, one compile, the CLI."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from costs.lut import LatencyTable
from searchers.evaluators import LUTCostModel
from costs.predictors import get_predictor
from supernet.cli import main
from supernet.config import apply_overrides, load_experiment
from supernet.spaces import get_space
from supernet.supernet_evaluator import SupernetEvaluator
from supernet.train import load_state, train


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A uniform (SPOS) supernet after 4 smoke steps, and a latency table of its space."""
    root = tmp_path_factory.mktemp("supernet")
    config = apply_overrides(load_experiment("experiments/fbnet_search.py:smoke"), ["method.name=uniform"])
    train(config, root / "run", progress=False)
    space = get_space("fbnet", "micro")
    table = np.random.default_rng(0).uniform(0.1, 1.0, (space.num_decisions, 9))
    LatencyTable.for_space(space, table, fixed=0.2, device={"name": "toy"}).save(root / "lut.json")
    return root


def test_one_compile_serves_every_subnet_and_matches_recalibrating_by_hand(trained):
    run, state = load_state(trained / "run")
    lut = LatencyTable.load(trained / "lut.json", run.space)
    evaluator = SupernetEvaluator(run, state, LUTCostModel(run.space, (lut,)), calibration_batches=3, batch_size=16)
    archs = np.asarray(run.space.sample(jax.random.key(0), 5))
    metrics = evaluator(archs)
    assert evaluator._correct._cache_size() == 1  # one program for every subnet
    assert set(metrics) == {"accuracy", "latency_ms"} and metrics["accuracy"].shape == (5,)
    np.testing.assert_allclose(metrics["latency_ms"], np.asarray(lut.cost(archs)), rtol=1e-6)
    np.testing.assert_array_equal(evaluator(archs)["accuracy"], metrics["accuracy"])  # no state carried over

    # By hand, for one architecture: 3 train-mode passes update the path's statistics, then eval.
    arch = jnp.asarray(archs[2])
    model = nnx.merge(run.graphdef, state.params, state.batch_stats)
    for x in evaluator.calibration:
        model(x, arch=arch, train=True)
    correct = sum(int(jnp.sum(jnp.argmax(model(x, arch=arch, train=False), -1) == y))
                  for x, y in zip(evaluator.val_images, evaluator.val_labels))
    assert metrics["accuracy"][2] == pytest.approx(100.0 * correct / evaluator.num_val_images)


def test_search_cli_runs_on_a_supernet(trained, capsys):
    argv = ["search", "--space", "fbnet", "--supernet", str(trained / "run"), "--lut", str(trained / "lut.json"),
            "--searcher", "random", "--budget", "4", "--objective", "pareto", "--json", "--no-progress"]
    assert main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["evaluated"] == 4 and out["hypervolume_ratio"] is None
    for row in out["front"]:
        assert 0 <= row["accuracy"] <= 100 and row["latency_ms"] > 0 and len(row["arch"]) == 3
    assert main(argv + ["--data", "x"]) == 2
    assert "exactly one of --data" in capsys.readouterr().err

    # A fitted cost predictor (`hwnas costs fit`) gives a second metric beside the table.
    space = get_space("fbnet", "micro")
    archs = np.asarray(space.sample(jax.random.key(1), 200))
    energy = get_predictor("lut", space, metric="energy_mj").fit(archs, 1.0 + archs.sum(axis=1))
    energy.save(trained / "energy.npz")
    argv[argv.index("pareto")] = "pareto:lat,energy"
    assert main(argv + ["--cost-model", str(trained / "energy.npz")]) == 0
    out = json.loads(capsys.readouterr().out)
    for row in out["front"]:
        arch = space.from_public(row["arch"])
        assert row["energy_mj"] == pytest.approx(float(energy.predict(arch[None])[0]), rel=1e-6)
