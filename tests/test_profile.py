"""Profiling latency tables on the JAX backend: the table, its correction, validation and `hwnas profile`.

One profiling run of the tiny FBNet preset (a few repeats) is shared by the module; the CLI
tests profile the same preset again, which reuses the compiled blocks. Timings on a shared
CI machine are noise, so nothing here asserts how fast anything is: only structure,
bookkeeping and arithmetic that hold whatever the numbers are.
"""

import json
import math

import jax
import numpy as np
import pytest

from costs.lut import LatencyTable, LUTError
from supernet.cli import main
from supernet.profile import (
    DEFAULT_ROUNDS,
    RawProfile,
    Timing,
    kendall_tau,
    measure_latency,
    measure_subnet,
    profile_fbnet,
    time_steps_interleaved,
    summarize,
    table_from_raw,
    validate_table,
)
from supernet.spaces import get_space
from supernet.spaces.fbnet import CANDIDATES, FBNET_PRESETS, SKIP

FAST = dict(warmup=1, repeats=3)


@pytest.fixture(scope="module")
def space():
    return get_space("fbnet", "tiny")


@pytest.fixture(scope="module")
def profiled(space):
    calls = []
    table = profile_fbnet(space, progress=lambda done, total, label: calls.append((done, total, label)), **FAST)
    return table, calls


@pytest.fixture(scope="module")
def validation(profiled, space):
    table, _ = profiled
    return validate_table(table, space, 2, key=jax.random.key(0), **FAST)


def test_table_covers_every_layer_and_candidate(profiled, space):
    table, _ = profiled
    assert table.table.shape == (6, 9) and table.spread.shape == (6, 9)
    assert table.metric == "latency_ms" and table.unit == "ms"
    # Overhead-corrected entries are >= 0 (a block no slower than a call boundary is 0), not > 0.
    assert np.all(np.isfinite(table.table)) and np.all(table.table >= 0)
    assert np.all(np.isfinite(table.spread)) and np.all(table.spread >= 0)
    assert table.table.sum() > 0 and table.fixed > 0
    table.check_space(space)
    assert table.decisions == space.decision_names


def test_layers_with_the_same_shape_share_one_measurement(profiled, space):
    table, calls = profiled
    specs = space.layer_specs()
    same = [(a.index, b.index) for a in specs for b in specs if a.index < b.index
            and (a.in_channels, a.out_channels, a.stride, a.in_size) == (b.in_channels, b.out_channels, b.stride, b.in_size)]
    assert same == [(4, 5)]  # the tiny preset repeats one shape, in its last stage
    np.testing.assert_array_equal(table.table[4], table.table[5])
    np.testing.assert_array_equal(table.spread[4], table.spread[5])
    # Each distinct (shape, candidate) is one program, timed once per round (3 rounds of 1 repeat
    # here): 5 shapes x 9 candidates, plus stem and head; layer 5 reuses layer 4's.
    rounds = min(DEFAULT_ROUNDS, FAST["repeats"])
    timed = [label for _, _, label in calls if label.startswith("layer")]
    assert sum(label == "dispatch overhead" for _, _, label in calls) == rounds
    assert sum(label.startswith("probe") for _, _, label in calls) == 3 * rounds
    assert len(set(timed)) == 5 * len(CANDIDATES) and len(timed) == rounds * 5 * len(CANDIDATES)
    assert not any(label.startswith("layer5 ") for label in timed)
    assert sum(label in ("stem", "head") for _, _, label in calls) == 2 * rounds
    assert table.device["distinct_measurements"] == 5 * len(CANDIDATES) + 2
    # Progress counts up to its total.
    assert [done for done, _, _ in calls] == list(range(1, len(calls) + 1))
    assert calls[-1][0] == calls[-1][1]


def test_device_metadata_is_filled(profiled):
    device = profiled[0].device
    assert device["name"] and device["date"].endswith("Z")
    assert device["backend"] == jax.default_backend() == "cpu"
    assert device["device_kind"] == jax.devices()[0].device_kind
    assert device["jax_version"] == jax.__version__
    assert (device["dtype"], device["batch_size"], device["input_size"]) == ("float32", 1, 16)
    assert (device["repeats"], device["warmup"], device["rounds"]) == (3, 1, 3)  # 3 repeats: 3 rounds
    assert device["overhead_correction"] == "chain" and "chained" in device["overhead_method"]
    assert device["dispatch_overhead_ms"] >= 0 and device["trivial_call_ms"] > 0
    assert len(device["boundary_overheads_ms"]) == 3  # one probe per shape-keeping layer shape
    assert device["stem_ms"] > 0 and device["head_ms"] > 0


def test_saved_table_loads_for_its_preset_only(profiled, space, tmp_path):
    table, _ = profiled
    path = table.save(tmp_path / "lut.json")
    loaded = LatencyTable.load(path, space)
    np.testing.assert_array_equal(loaded.table, table.table)
    assert loaded.fixed == table.fixed and loaded.device == table.device
    with pytest.raises(LUTError, match="another configuration"):
        LatencyTable.load(path, get_space("fbnet", "cifar"))


def _raw(stem=0.5, head=0.4, block=0.3, skip=0.05, trivial=0.02, in_program=0.2):
    """A hand-made raw profile of the tiny space with known answers.

    Every block takes `block` (+0.01 per candidate index) per call, skips `skip`; a chain of 4
    copies of candidate 0 costs `block + 3 * in_program`, so the call boundary is
    `block - in_program`.
    """
    space = get_space("fbnet", "tiny")
    blocks, chains = {}, {}
    for spec in space.layer_specs():
        key = (spec.in_channels, spec.out_channels, spec.stride, spec.in_size)
        for c in range(len(CANDIDATES)):
            blocks[key + (c,)] = Timing(skip if c == SKIP else block + 0.01 * c, 0.002)
        if spec.keeps_shape:
            chains[key + (0,)] = Timing(block + 3 * in_program, 0.003)
    raw = RawProfile(blocks, Timing(stem, 0.01), Timing(head, 0.01), Timing(trivial, 0.001), chains, 4,
                     (1, 16, 16, 1), (1, 4, 4, 16), 1.0)
    return space, raw


def test_overhead_correction_moves_the_call_boundary_into_fixed_once():
    space, raw = _raw()
    assert raw.boundary_overheads() == pytest.approx([0.1] * 3)
    plain = table_from_raw(space, raw, overhead="none")
    chain = table_from_raw(space, raw, overhead="chain")
    trivial = table_from_raw(space, raw, overhead="trivial")
    np.testing.assert_allclose(plain.table[:, 0], 0.3)
    np.testing.assert_allclose(chain.table, np.maximum(plain.table - 0.1, 0.0))
    np.testing.assert_allclose(trivial.table, plain.table - 0.02)
    assert np.all(chain.table[:, SKIP] == 0.0)  # a skip cheaper than a call boundary costs nothing
    assert plain.fixed == pytest.approx(0.9)
    assert chain.fixed == pytest.approx((0.5 - 0.1) + (0.4 - 0.1) + 0.1)  # stem + head + one boundary
    assert trivial.fixed == pytest.approx(0.9 - 0.02)
    # A whole subnet of MBConv blocks pays one boundary instead of 6 + 2 (blocks, stem, head).
    arch = np.zeros(6, np.int32)
    assert float(plain.cost(arch) - chain.cost(arch)) == pytest.approx(7 * 0.1, rel=1e-5)
    np.testing.assert_array_equal(chain.spread, plain.spread)
    assert chain.device["dispatch_overhead_ms"] == pytest.approx(0.1)
    assert trivial.device["dispatch_overhead_ms"] == pytest.approx(0.02)
    assert (plain.device["dispatch_overhead_ms"], plain.device["overhead_correction"]) == (0.0, "none")
    # Without a shape-keeping layer to chain, the trivial call is the estimate.
    assert raw._replace(chains={}).per_call_overhead("chain") == pytest.approx(0.02)
    with pytest.raises(ValueError, match="overhead must be one of"):
        table_from_raw(space, raw, overhead="halve")


def test_validation_rows_and_summary(profiled, validation, space):
    table, _ = profiled
    archs = np.asarray(space.sample(jax.random.key(0), 2))
    rows, summary = validation
    assert len(rows) == 2 and summary.n == 2
    for row, arch in zip(rows, archs):
        assert row.arch == space.to_public(arch)
        assert row.predicted_ms == pytest.approx(float(table.cost(arch)), rel=1e-5)
        assert math.isfinite(row.measured_ms) and row.measured_ms > 0
        assert row.error_pct == pytest.approx(100 * (row.predicted_ms - row.measured_ms) / row.measured_ms)
    errors = np.array([r.error_pct for r in rows])
    assert summary.mape_pct == pytest.approx(np.abs(errors).mean())
    assert summary.max_error_pct == pytest.approx(np.abs(errors).max())
    assert summary.bias_pct == pytest.approx(errors.mean())
    assert summary.kendall_tau in (-1.0, 1.0)  # two distinct subnets: they agree or they do not


def test_validation_refuses_a_table_of_another_configuration(profiled):
    with pytest.raises(LUTError, match="another configuration"):
        validate_table(profiled[0], get_space("fbnet", "cifar"), 1, key=jax.random.key(0), **FAST)


def test_measure_subnet_times_one_whole_network(validation, space):
    arch = validation.rows[0].arch  # compiled already by the validation
    timing = measure_subnet(space.macro, arch, **FAST)
    assert math.isfinite(timing.median_ms) and timing.median_ms > 0 and timing.iqr_ms >= 0
    with pytest.raises(ValueError, match="expected 0..8"):
        measure_subnet(space.macro, [9] * 6, **FAST)


def test_measure_latency_compiles_warms_up_then_times():
    calls = []

    def fn(x):
        calls.append(x)
        return x

    timing = measure_latency(fn, np.ones(3), warmup=2, repeats=5)
    assert len(calls) == 1 + 2 + 5
    assert timing.median_ms >= 0 and timing.iqr_ms >= 0
    with pytest.raises(ValueError, match="repeats >= 1"):
        measure_latency(fn, np.ones(3), warmup=0, repeats=0)


def test_interleaved_steps_run_in_rounds_and_thread_each_state():
    order = []

    def program(name):
        def step(state, scale):
            order.append(name)
            return state + scale, {"loss": np.float32(state)}
        return step

    programs = [[program("a"), 0, (1,)], [program("b"), 100, (10,)]]
    ms = time_steps_interleaved(programs, steps=3, warmup=1, calls=2)
    assert order == ["a", "a", "b", "b"] * 4  # round robin, two calls in a row per row and round
    assert [p[1] for p in programs] == [8, 180]  # each returned state fed to the next call
    assert len(ms) == 2 and all(t >= 0 for t in ms)
    with pytest.raises(ValueError, match="calls must be >= 1"):
        time_steps_interleaved(programs, steps=1, calls=0)


def test_kendall_tau_matches_the_definition():
    assert kendall_tau([1, 2, 3, 4], [10, 20, 30, 40]) == 1.0
    assert kendall_tau([1, 2, 3, 4], [4, 3, 2, 1]) == -1.0
    # 4 items, one swap: 5 concordant, 1 discordant pair.
    assert kendall_tau([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(4 / 6)
    # tau-b with ties: x has one tied pair -> 5 untied pairs; C=5, D=0.
    assert kendall_tau([1, 1, 2, 3], [1, 2, 3, 4]) == pytest.approx(5 / math.sqrt(5 * 6))
    assert math.isnan(kendall_tau([1, 1], [2, 3])) and math.isnan(kendall_tau([1], [1]))
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=15), rng.normal(size=15)
    scipy_stats = pytest.importorskip("scipy.stats")
    assert kendall_tau(a, b) == pytest.approx(scipy_stats.kendalltau(a, b).statistic)


def test_summarize():
    s = summarize([1.1, 1.8, 3.0], [1.0, 2.0, 3.0])
    assert s.n == 3
    assert s.mape_pct == pytest.approx((10 + 10 + 0) / 3)
    assert s.max_error_pct == pytest.approx(10)
    assert s.bias_pct == pytest.approx(0)
    assert s.kendall_tau == 1.0


# ------------------------------------------------------------------------------- CLI
def test_cli_profiles_validates_and_prints_json(profiled, tmp_path, capsys):
    out = tmp_path / "lut.json"
    argv = ["profile", "--space", "fbnet", "--config", "tiny", "--out", str(out),
            "--repeats", "3", "--warmup", "1", "--validate", "2", "--json"]
    assert main(argv) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["lut"] == str(out) and payload["space"] == "fbnet"
    table = LatencyTable.load(out, get_space("fbnet", "tiny"))
    assert payload["device"] == table.device and payload["fixed_ms"] == table.fixed
    assert len(payload["rows"]) == 2
    for row in payload["rows"]:
        assert len(row["arch"]) == 6 and row["measured_ms"] > 0 and math.isfinite(row["error_pct"])
    assert set(payload["summary"]) == {"n", "mape_pct", "max_error_pct", "bias_pct", "kendall_tau"}
    assert payload["summary"]["n"] == 2


def test_cli_reads_a_json_config(profiled, tmp_path, capsys):
    import dataclasses

    fields = {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(FBNET_PRESETS["tiny"]).items()}
    config = tmp_path / "tiny.json"
    config.write_text(json.dumps(fields))
    out = tmp_path / "lut.json"
    assert main(["profile", "--config", str(config), "--out", str(out), "--repeats", "3", "--warmup", "1"]) == 0
    text = capsys.readouterr().out
    assert f"wrote {out}" in text and "6 layers x 9 candidates" in text
    LatencyTable.load(out, get_space("fbnet", "tiny"))  # lists became tuples: same fingerprint as the preset


@pytest.mark.parametrize(
    "argv, config, message",
    [
        (["--space", "nasbench201"], None, "cannot be profiled yet; profilable spaces: fbnet"),
        (["--space", "nb101"], None, "unknown search space 'nb101'"),
        (["--config", "huge"], None, "neither a preset"),
        ([], {"channels": [8, 8], "width": 3, "depth": 1}, "unknown FBNetConfig field(s) depth, width"),
        ([], {"channels": 8}, "'channels' must be a list of integers"),
        ([], {"channels": [8, 8], "layers": [1], "strides": [1, 2]}, "one entry per stage"),
        ([], [1, 2], "expected a JSON object"),
        (["--repeats", "0"], None, "--repeats must be >= 1"),
        (["--batch-size", "x"], None, "invalid int value"),
    ],
)
def test_cli_errors_are_one_line_and_exit_2(argv, config, message, tmp_path, capsys):
    args = ["profile", "--out", str(tmp_path / "lut.json"), *argv]
    if config is not None:
        path = tmp_path / "config.json"
        path.write_text(json.dumps(config))
        args += ["--config", str(path)]
    assert main(args) == 2
    captured = capsys.readouterr()
    assert message in captured.err and captured.err.count("\n") == 1 and captured.out == ""
    assert not (tmp_path / "lut.json").exists()
