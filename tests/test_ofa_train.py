"""Progressive shrinking: phases, sampling within a phase, distillation, exact resume, the CLI."""

import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from supernet.cli import main as cli_main
from supernet.config import ConfigError, load_experiment
from supernet.data import normalize
from supernet.ofa.derive import load_subnet
from supernet.ofa.distill import soft_cross_entropy
from supernet.ofa.phases import Phase, allowed_mask, extreme_arch, ofa_schedule, sample_archs
from supernet.ofa import recalibrate
from supernet.ofa.trainer import _start_state, build, load_phase_state, subnet_accuracy, train_ofa
from supernet.spaces import get_space
from supernet.train import load_data

EXPERIMENT = "experiments/ofa_ps.py:test"


@pytest.fixture(scope="module")
def datasets():
    config = load_experiment(EXPERIMENT)
    space = get_space("ofa_mbv3", "micro")
    return load_data(config["data"], 0, max(space.macro.resolutions))


def test_phase_masks_follow_ofa_schedule():
    space = get_space("ofa_mbv3", "tiny")
    phases = [Phase.from_config(p, "test") for p in ofa_schedule(space, [1] * 6, [0.1] * 6)]
    assert [p.name for p in phases] == ["largest", "kernel", "depth_34", "depth_234", "expand_46", "expand_346"]
    assert [p.subnets_per_step for p in phases] == [1, 1, 2, 2, 4, 4]
    largest = allowed_mask(space, phases[0])
    assert largest[space.kernel_slice].sum(1).tolist() == [1] * space.num_blocks  # only 7x7
    assert largest[space.kernel_slice, 2].all() and largest[space.expand_slice, 2].all()
    depth = allowed_mask(space, phases[2])
    assert depth[space.depth_slice].tolist() == [[False, True, True]] * space.num_stages
    final = allowed_mask(space, phases[-1])
    assert final[: space.resolution_index].all()
    np.testing.assert_array_equal(extreme_arch(space, final, True), space.cardinalities - 1)
    np.testing.assert_array_equal(extreme_arch(space, final, False), np.zeros(space.num_decisions))
    with pytest.raises(ConfigError, match="kernels .* subset"):
        allowed_mask(space, Phase("bad", 1, 0.1, kernels=(9,)))
    with pytest.raises(ConfigError, match="unknown key"):
        Phase.from_config({"name": "x", "epochs": 1, "lr": 0.1, "kernel": [3]}, "ofa.phases[0]")


def test_sampling_stays_inside_the_phase():
    space = get_space("ofa_mbv3", "tiny")
    phase = Phase("depth", 1, 0.1, kernels=(3, 7), expands=(6,), depths=(3, 4))
    mask = jnp.asarray(allowed_mask(space, phase))
    archs = np.asarray(sample_archs(jax.random.key(0), mask, jnp.int32(1), 200))
    assert set(archs[:, space.kernel_slice].ravel()) == {0, 2}
    assert set(archs[:, space.expand_slice].ravel()) == {2}
    assert set(archs[:, space.depth_slice].ravel()) == {1, 2}
    assert (archs[:, space.resolution_index] == 1).all()
    again = np.asarray(sample_archs(jax.random.key(0), mask, jnp.int32(1), 200))
    np.testing.assert_array_equal(archs, again)  # a function of the key


def test_distillation_loss_by_hand():
    student = jnp.array([[1.0, 2.0, 0.0]])
    teacher = jnp.array([[0.0, 1.0, 3.0]])
    q = np.exp([0.0, 1.0, 3.0]) / np.exp([0.0, 1.0, 3.0]).sum()
    logp = np.array([1.0, 2.0, 0.0]) - math.log(np.exp([1.0, 2.0, 0.0]).sum())
    assert float(soft_cross_entropy(student, teacher)) == pytest.approx(-(q * logp).sum(), rel=1e-6)
    # Temperature T divides both logits; the teacher gets no gradient.
    t2 = np.exp(np.array([0.0, 1.0, 3.0]) / 2)
    logp2 = np.array([0.5, 1.0, 0.0]) - math.log(np.exp([0.5, 1.0, 0.0]).sum())
    assert float(soft_cross_entropy(student, teacher, 2.0)) == pytest.approx(-(t2 / t2.sum() * logp2).sum(), rel=1e-6)
    grad = jax.grad(lambda t: soft_cross_entropy(student, t))(teacher)
    assert float(jnp.abs(grad).max()) == 0.0


PHASES = ["largest", "kernel", "depth_12", "depth_12_again", "expand_36", "expand_36_again"]  # micro: 2 values each


@pytest.fixture(scope="session")  # session: other modules' tests may run between the two users
def cli_run(tmp_path_factory):
    """`hwnas train experiments/ofa_ps.py:test --json`, every phase, once per test process."""
    workdir = tmp_path_factory.mktemp("ofa") / "run"
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = cli_main(["train", EXPERIMENT, "--workdir", str(workdir), "--json", "--no-progress"])
    return code, json.loads(out.getvalue()), workdir


@pytest.mark.xdist_group("ofa_cli_run")  # one worker trains the shared run
def test_an_interrupted_run_resumes_exactly(tmp_path, datasets, cli_run):
    config = load_experiment(EXPERIMENT)
    _, _, straight = cli_run
    # Stopped one step into the second phase (distillation on), then resumed to the end.
    first = train_ofa(config, tmp_path / "split", datasets=datasets, stop_after=2, progress=False)
    assert [r.phase for r in first] == ["largest"]
    resumed = train_ofa(config, tmp_path / "split", datasets=datasets, progress=False)
    assert [r.phase for r in resumed] == PHASES

    run, like = build(config, datasets)
    for phase in run.phases:
        a = load_phase_state(run, like, straight, phase)
        b = load_phase_state(run, like, tmp_path / "split", phase)
        assert int(a.step) == int(b.step) == run.phase_steps(phase)
        for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
            np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    # The teacher of every later phase is the first phase's final network.
    end_of_first = load_phase_state(run, like, straight, run.phases[0])
    for x, y in zip(jax.tree.leaves(a.teacher_params), jax.tree.leaves(end_of_first.params)):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_phase_order_and_config_errors(tmp_path, datasets):
    config = load_experiment(EXPERIMENT)
    config["ofa"]["run"] = "kernel"
    with pytest.raises(ConfigError, match="starts from the end of phase 'largest'"):
        train_ofa(config, tmp_path / "a", datasets=datasets, progress=False)
    config["ofa"]["run"] = "nope"
    with pytest.raises(ConfigError, match="one of the phases"):
        train_ofa(config, tmp_path / "b", datasets=datasets, progress=False)


@pytest.mark.xdist_group("ofa_cli_run")
def test_cli_runs_every_phase(tmp_path, capsys, cli_run):
    code, out, workdir = cli_run
    assert code == 0
    names = [p["phase"] for p in out["phases"]]
    assert names == PHASES
    for p in out["phases"]:
        assert set(p["accuracy"]) >= {"largest", "smallest", "random0", "random1"}
        assert all(0.0 <= a <= 1.0 for a in p["accuracy"].values())
    assert (workdir / "expand_36_again" / "result.json").exists()
    # A second call finds every phase finished and trains nothing.
    assert cli_main(["train", EXPERIMENT, "--workdir", str(workdir), "--json", "--no-progress"]) == 0
    assert json.loads(capsys.readouterr().out)["phases"] == out["phases"]

    # Derive: any subnet of the trained supernet, written as a standalone model.
    record = {"ks": [3, 5], "e": [6, 3], "d": [2], "r": 12}
    assert cli_main(["derive", "--workdir", str(workdir), "--arch", json.dumps(record),
                     "--out", str(tmp_path / "sub"), "--json"]) == 0
    derived = json.loads(capsys.readouterr().out)
    assert derived["arch"] == record and derived["phase"] == "expand_36_again"
    subnet = load_subnet(tmp_path / "sub")
    test = load_data(load_experiment(EXPERIMENT)["data"], 0, 12)[2]
    logits = subnet(jnp.asarray(normalize(test, test.images)), train=False)
    accuracy = float(np.mean(np.argmax(np.asarray(logits), -1) == test.labels))
    assert accuracy == pytest.approx(derived["test_accuracy"], abs=1e-6)
    assert cli_main(["derive", "--workdir", str(workdir)]) == 2  # an OFA run needs --arch
    assert "--arch" in capsys.readouterr().err
    # A subnet of the last phase's result derives with the accuracy reported there (same images).
    last = out["phases"][-1]
    assert cli_main(["derive", "--workdir", str(workdir), "--arch", json.dumps(last["archs"]["random1"]),
                     "--out", str(tmp_path / "r1"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["test_accuracy"] == pytest.approx(last["accuracy"]["random1"])
    assert cli_main(["derive", "--workdir", str(workdir), "--arch", json.dumps(record),
                     "--recalibration-images", "0"]) == 2
    assert "recalibration_images must be >= 1" in capsys.readouterr().err


def test_expand_phases_sort_channels_without_changing_the_function(datasets):
    from supernet.ofa.trainer import _forward, _sorted_for

    config = load_experiment(EXPERIMENT)
    run, state = build(config, datasets)
    # Train-like weights: random project kernels give the channels distinct importances.
    rng = np.random.default_rng(0)
    params = jax.tree.map(lambda p: jnp.asarray(rng.normal(size=p.shape).astype(np.float32)), state.params)
    depth_phase, expand_phase = run.phases[3], run.phases[4]
    same = _sorted_for(run, depth_phase, run.phases[2], params, state.batch_stats)
    assert same[0] is params  # no sort where the expand set does not grow
    sorted_params, sorted_stats = _sorted_for(run, expand_phase, depth_phase, params, state.batch_stats)
    changed = [not np.array_equal(a, b) for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(sorted_params))]
    assert any(changed)
    x = jnp.asarray(datasets[2].images[:4, :12, :12], jnp.float32) / 255.0
    arch = jnp.asarray(run.space.cardinalities - 1)
    before = _forward(run.graphdef, params, state.batch_stats, x, arch, False)[0]
    after = _forward(run.graphdef, sorted_params, sorted_stats, x, arch, False)[0]
    np.testing.assert_allclose(np.asarray(after), np.asarray(before), rtol=1e-4, atol=1e-4)


def test_one_program_serves_every_number_of_subnets_per_step(datasets):
    config = load_experiment(EXPERIMENT)
    run, state = build(config, datasets)
    assert {p.subnets_per_step for p in run.phases} == {1, 2, 4}
    step_fn = run.step_fn(run.phases[0])
    assert all(run.step_fn(p) is step_fn for p in run.phases)
    r = len(run.space.macro.resolutions) - 1
    train = run.datasets[run.space.macro.resolutions[r]][0]
    images, labels = jnp.asarray(train.images[:16] / 255.0, jnp.float32), jnp.asarray(train.labels[:16])
    mask = jnp.asarray(allowed_mask(run.space, run.phases[-1]))
    params = {}
    for k in (1, 2, 4):
        _, fresh = build(config, datasets)
        after, metrics = step_fn(fresh, images, labels, jnp.int32(r), jnp.int32(0), mask, jnp.float32(0.0),
                                 jnp.float32(0.05), jnp.int32(k))
        assert math.isfinite(float(metrics["loss"]))
        params[k] = np.concatenate([np.ravel(x) for x in jax.tree.leaves(after.params)])
    assert step_fn._cache_size() == 1  # one resolution, three subnet counts: one compilation
    # Subnet i is drawn from fold_in(key, i): more subnets add gradients, they do not redraw.
    assert not np.allclose(params[1], params[2]) and not np.allclose(params[2], params[4])


def test_later_phases_reuse_the_programs_compiled_for_the_first(tmp_path, datasets):
    # A later phase starts from a restored checkpoint; its state must hit the same compiled
    # step and evaluation programs as the freshly built first phase (jit keys on committedness).
    config = load_experiment(EXPERIMENT)
    config["ofa"]["run"] = "largest"
    train_ofa(config, tmp_path, datasets=datasets, progress=False)
    run, initial = build(config, datasets)
    restored = _start_state(run, initial, tmp_path, 1)
    arch = extreme_arch(run.space, allowed_mask(run.space, run.phases[1]), True)
    r = int(arch[-1])
    train = run.datasets[run.space.macro.resolutions[r]][0]
    images, labels = jnp.asarray(train.images[:16] / 255.0, jnp.float32), jnp.asarray(train.labels[:16])
    mask = jnp.asarray(allowed_mask(run.space, run.phases[1]))
    step_fn = run.step_fn(run.phases[0])
    sizes = []
    for state in (initial, restored):
        subnet_accuracy(run, state, arch, 32)
        sizes.append((recalibrate.recalibrate_bn._cache_size(), recalibrate.count_correct._cache_size()))
        step_fn(state, images, labels, jnp.int32(r), jnp.int32(0), mask, jnp.float32(0.5), jnp.float32(0.05),
                jnp.int32(1))
    assert step_fn._cache_size() == 1
    assert sizes[0] == sizes[1]
