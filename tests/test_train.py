"""The trainer: every method runs, resume equals an uninterrupted run, NaN stops cleanly."""

import json
import shutil

import jax
import numpy as np
import pytest

from costs.lut import LatencyTable
from supernet.checkpoint import Checkpointer
from supernet.config import ConfigError, apply_overrides, load_experiment
from supernet.spaces import get_space
from supernet.train import TrainingDiverged, build, fork, train

SMOKE = "experiments/fbnet_search.py:smoke"


@pytest.fixture(scope="module")
def smoke():
    return load_experiment(SMOKE)


@pytest.fixture(scope="module")
def lut_path(tmp_path_factory):
    space = get_space("fbnet", "micro")
    table = np.tile(np.array([1.0, 0.9, 2.0, 3.0, 1.5, 1.4, 2.5, 4.0, 0.1]), (3, 1))
    path = tmp_path_factory.mktemp("lut") / "lut.json"
    LatencyTable.for_space(space, table, fixed=0.5, device={"name": "toy"}).save(path)
    return str(path)


def _leaves(state):
    return [np.asarray(x) for x in jax.tree.leaves((state.params, state.batch_stats, state.arch,
                                                    state.opt_weights, state.opt_arch))]


def test_resumed_run_ends_with_the_same_parameters(smoke, lut_path, tmp_path):
    config = apply_overrides(smoke, [f"hardware.terms=[{{'lut': '{lut_path}', 'weight': 1.0, 'target': 5.0}}]"])
    straight = train(config, tmp_path / "straight", progress=False)
    first = train(config, tmp_path / "resumed", stop_after=3, progress=False)  # stopped after step 3
    assert int(first.state.step) == 3
    assert Checkpointer(tmp_path / "resumed").latest_step() == 3  # a stopped call saves where it stopped
    # A crash loses what came after the last periodic checkpoint (every 2 steps): drop step 3.
    shutil.rmtree(tmp_path / "resumed" / "checkpoints" / "3")
    assert Checkpointer(tmp_path / "resumed").latest_step() == 2
    resumed = train(config, tmp_path / "resumed", progress=False)
    assert int(resumed.state.step) == int(straight.state.step) == 4
    for a, b in zip(_leaves(straight.state), _leaves(resumed.state)):
        np.testing.assert_array_equal(a, b)
    result = json.loads((tmp_path / "straight" / "result.json").read_text())
    assert result["method"] == "proxyless" and len(result["arch"]) == 3 and result["lut_cost"][0] > 0
    lines = [json.loads(x) for x in (tmp_path / "straight" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in lines] == [1, 2, 3, 4]
    assert {"loss", "accuracy", "entropy", "expected_cost"} <= set(lines[-1])
    assert "arch_loss" in lines[-1] and "arch_loss" not in lines[0]  # warm-up first, then search


def test_nan_loss_stops_with_a_message_and_keeps_the_last_checkpoint(smoke, tmp_path):
    # A NaN learning rate poisons the weights in step 0, so the loss of step 1 is NaN.
    config = apply_overrides(smoke, ["optim.weights.lr=nan", "optim.weights.cosine=False"])
    with pytest.raises(TrainingDiverged, match=r"loss became nan at step 1 .* last good checkpoint is step 0"):
        train(config, tmp_path, progress=False)
    ckpt = Checkpointer(tmp_path)
    assert ckpt.latest_step() == 0
    restored = ckpt.restore(build(config)[1])
    ckpt.close()
    assert all(np.all(np.isfinite(x)) for x in _leaves(restored))


@pytest.mark.parametrize("method", ["darts", "fbnet", "proxyless_rl", "uniform"])
def test_every_method_trains_and_moves_its_architecture_parameters(smoke, lut_path, tmp_path, method):
    config = apply_overrides(smoke, [f"method.name={method}",
                                     f"hardware.terms=[{{'lut': '{lut_path}', 'weight': -0.1, 'target': 5.0}}]",
                                     "hardware.form=" + ("fbnet" if method == "fbnet" else "linear")])
    if method == "fbnet":
        config = apply_overrides(config, ["hardware.terms=[{'lut': '" + lut_path + "', 'weight': 0.6}]"])
    result = train(config, tmp_path, progress=False)
    alpha = np.asarray(result.state.arch.alpha)
    assert np.all(np.isfinite(alpha))
    if method == "uniform":
        assert np.all(alpha == 0)  # SPOS has no architecture step
    else:
        assert np.abs(alpha).max() > 0
    assert 0.0 <= result.test_accuracy <= 1.0


def test_config_errors_name_the_problem(smoke, tmp_path):
    with pytest.raises(ConfigError, match="unknown key 'schedule.epoch'"):
        apply_overrides(smoke, ["schedule.epoch=3"])
    with pytest.raises(ConfigError, match="must look like"):
        apply_overrides(smoke, ["seed"])
    train(smoke, tmp_path, stop_after=1, progress=False)
    with pytest.raises(ConfigError, match="differs in seed"):
        train(apply_overrides(smoke, ["seed=1"]), tmp_path, progress=False)
    with pytest.raises(ValueError, match="unknown method 'enas'"):
        build(apply_overrides(smoke, ["method.name=enas"]))


def test_subnet_fine_tuning_starts_from_inherited_weights(smoke, tmp_path):
    supernet = train(smoke, tmp_path / "super", progress=False)
    config = apply_overrides(smoke, ["kind=subnet"])
    config["subnet"] = {"from": str(tmp_path / "super"), "arch": None}
    run, state = build(config)
    assert run.subnet_arch == tuple(int(a) for a in supernet.arch)
    # Before fine-tuning, the subnet is the supernet's path: same test accuracy.
    from supernet.train import evaluate
    assert evaluate(run, state, run.test, supernet.arch) == pytest.approx(supernet.test_accuracy)
    tuned = train(config, tmp_path / "sub", progress=False)
    assert int(tuned.state.step) == 4 and tuned.arch.tolist() == supernet.arch.tolist()


def _with_target(config, lut_path, target):
    return apply_overrides(config, [f"hardware.terms=[{{'lut': '{lut_path}', 'weight': 1.0, 'target': {target}}}]"])


def test_runs_differing_only_in_target_share_compiled_steps_and_warmup(smoke, lut_path, tmp_path):
    slow, fast = _with_target(smoke, lut_path, 5.0), _with_target(smoke, lut_path, 3.0)
    assert build(slow)[0].steps is build(fast)[0].steps
    assert build(apply_overrides(fast, ["optim.weights.lr=0.5"]))[0].steps is not build(fast)[0].steps

    independent = train(fast, tmp_path / "independent", progress=False)
    train(slow, tmp_path / "first", stop_after=2, progress=False)  # the 2 warm-up steps
    assert fork(tmp_path / "first", tmp_path / "forked", fast) == 2
    forked = train(fast, tmp_path / "forked", progress=False)
    for a, b in zip(_leaves(independent.state), _leaves(forked.state)):
        np.testing.assert_array_equal(a, b)

    with pytest.raises(ConfigError, match=r"differs in optim\.weights\.lr, not only in hardware"):
        fork(tmp_path / "first", tmp_path / "other", apply_overrides(fast, ["optim.weights.lr=0.5"]))
    with pytest.raises(ConfigError, match=r"latest checkpoint \(step 4\) is not within the 2 warm-up steps"):
        fork(tmp_path / "independent", tmp_path / "late", slow)
    with pytest.raises(ConfigError, match="already holds a run"):
        fork(tmp_path / "first", tmp_path / "forked", fast)
