"""OFA MobileNetV3 lookup tables: per-resolution block costs, depth masking, the file format,
the public OFA records, profiling arithmetic and `hwnas profile --space ofa_mbv3`.

Everything but the last group uses synthetic tables. The CLI group profiles the tiny preset
once, at one resolution with a few repeats (about a hundred small programs to compile: the
slowest test of the module), and asserts structure only, never speed.
"""

import json
import math
from pathlib import Path

import jax
import numpy as np
import pytest

from costs.analytic import layer_cost_tables
from costs.lut import LatencyTable, LUTError, OFALatencyTable
from supernet.cli import main
from supernet.cli.profile_cmd import resolve_config
from supernet.profile import Timing
from supernet.profile_ofa import OFARawProfile, block_input_sides, block_key, sample_at, table_from_raw
from supernet.spaces import get_space

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "ofa" / "archs.jsonl"


@pytest.fixture(scope="module")
def space():
    return get_space("ofa_mbv3", "tiny")


def _random_table(space, seed=0, absent=(), **kw):
    c = space.macro
    rng = np.random.default_rng(seed)
    shape = (len(c.resolutions), space.num_blocks, len(c.kernels), len(c.expands))
    table, fixed = rng.uniform(0.1, 2.0, shape), rng.uniform(1.0, 3.0, shape[0])
    for px in absent:
        r = c.resolutions.index(px)
        table[r], fixed[r] = np.nan, np.nan
    return LatencyTable.for_space(space, table, fixed=fixed, device={"name": "toy", "backend": "cpu",
                                                                       "dtype": "float32", "batch_size": 1}, **kw)


@pytest.fixture(scope="module")
def table(space):
    return _random_table(space, spread=np.full((2, 20, 3, 3), 0.01))


def _hand_cost(space, table, arch):
    """The equation, as a loop: fixed[r] + sum over stages, slots < depth, of table[r, b, k_b, e_b]."""
    c = space.macro
    r = arch[space.resolution_index]
    total = table.fixed[r]
    for stage in range(space.num_stages):
        depth = c.depths[arch[space.depth_slice][stage]]
        for slot in range(depth):
            b = stage * c.max_depth + slot
            total += table.table[r, b, arch[space.kernel_slice][b], arch[space.expand_slice][b]]
    return total


# ------------------------------------------------------------------------------ costs
def test_cost_is_fixed_plus_active_blocks(space, table):
    assert isinstance(table, OFALatencyTable) and table.layout == "ofa_mbv3"
    archs = np.array(space.sample(jax.random.key(0), 128))
    archs[:2, space.depth_slice] = [[0] * 5, [2] * 5]  # shallowest and deepest
    expected = np.array([_hand_cost(space, table, a) for a in archs])
    np.testing.assert_allclose(table.cost(archs), expected, rtol=1e-6)
    np.testing.assert_allclose(jax.jit(table.cost)(archs), expected, rtol=1e-6)
    np.testing.assert_allclose(table.cost(archs[5]), expected[5], rtol=1e-6)
    # A table of ones (fixed 0) counts active blocks: the space's own depth rule.
    ones = LatencyTable.for_space(space, np.ones_like(table.table), fixed=np.zeros(2), device={"name": "count"})
    np.testing.assert_array_equal(ones.cost(archs), np.asarray(space.active_blocks(archs)).sum(axis=1))


def test_inactive_blocks_are_dont_cares(space, table):
    archs = np.array(space.sample(jax.random.key(1), 64))
    inactive = ~np.asarray(space.active_blocks(archs))
    scrambled = archs.copy()
    rng = np.random.default_rng(0)
    for part in (space.kernel_slice, space.expand_slice):
        block = scrambled[:, part]
        block[inactive] = rng.integers(0, 3, inactive.sum())
        scrambled[:, part] = block
    assert (scrambled != archs).any()
    np.testing.assert_array_equal(table.cost(scrambled), table.cost(archs))
    np.testing.assert_array_equal(table.cost(space.canonical(archs)), table.cost(archs))


def test_min_and_max_cost_bound_every_architecture(space, table):
    costs = np.asarray(table.cost(np.array(space.sample(jax.random.key(2), 2000))))
    assert table.min_cost <= costs.min() and costs.max() <= table.max_cost
    c = space.macro
    cheapest = table.table.min(axis=(2, 3)).reshape(2, 5, 4)[:, :, :c.depths[0]].sum(axis=(1, 2)) + table.fixed
    assert table.min_cost == pytest.approx(cheapest.min())


def test_expected_cost_matches_sampling_and_one_hot(space, table):
    logits = np.array(jax.random.normal(jax.random.key(3), (space.num_decisions, 3)))
    logits[space.resolution_index, 2] = -np.inf  # tiny has 2 resolutions: pad column gets probability 0
    probs = jax.nn.softmax(logits, axis=-1)
    samples = np.asarray(jax.random.categorical(jax.random.key(4), logits, shape=(30_000, space.num_decisions)))
    assert float(table.expected_cost(probs)) == pytest.approx(float(table.cost(samples).mean()), rel=5e-3)
    arch = np.array(space.sample(jax.random.key(5), 1))[0]
    one_hot = jax.nn.one_hot(arch, 3)
    assert float(table.expected_cost(one_hot)) == pytest.approx(float(table.cost(arch)), rel=1e-6)
    grad = jax.grad(table.expected_cost)(probs)
    assert grad.shape == probs.shape and np.isfinite(grad).all()
    with pytest.raises(LUTError, match="probabilities have shape"):
        table.expected_cost(probs[:, :2])


# ------------------------------------------------------------------------------ resolutions
def test_missing_resolution_is_refused_by_name(space):
    partial = _random_table(space, absent=(20,))
    assert partial.profiled_resolutions == (16,) and partial.resolutions == (16, 20)
    archs = np.array(space.sample(jax.random.key(6), 8))
    archs[:, space.resolution_index] = 0
    assert np.isfinite(partial.cost(archs)).all()
    archs[3, space.resolution_index] = 1
    with pytest.raises(LUTError, match=r"resolution 20 px is not in this table .*it has \[16\] px.*--resolutions 20"):
        partial.cost(archs)
    assert np.isnan(np.asarray(jax.jit(partial.cost)(archs))[3])  # traced: cannot raise, NaN instead
    r16 = partial.fixed[0] + partial.table[0].min(axis=(1, 2)).reshape(5, 4)[:, :2].sum()
    assert partial.min_cost == pytest.approx(r16)
    with pytest.raises(LUTError, match="no resolution has costs"):
        _random_table(space, absent=(16, 20))


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda t, f: t.__setitem__((0, 3, 1, 1), -1.0),
         r"entry \[resolution 16\]\[block 3\]\[kernel 5\]\[expand 4\] is -1.0"),
        (lambda t, f: t.__setitem__((1, 7, 2, 0), np.nan), r"\[resolution 20\]\[block 7\]\[kernel 7\]\[expand 3\] is missing"),
        (lambda t, f: t.__setitem__((1, 0, 0, 0), np.inf), r"is inf"),
        (lambda t, f: f.__setitem__(1, np.nan), "resolution 20 has block costs but its fixed cost is missing"),
        (lambda t, f: f.__setitem__(0, -0.5), "fixed cost at resolution 16 is -0.5"),
    ],
)
def test_bad_entries_are_refused(space, edit, message):
    good = _random_table(space)
    t, f = good.table.copy(), good.fixed.copy()
    edit(t, f)
    with pytest.raises(LUTError, match=message):
        LatencyTable.for_space(space, t, fixed=f, device={"name": "toy"})


def test_wrong_shapes_are_refused(space, table):
    with pytest.raises(LUTError, match=r"table must be \[resolution, block, kernel, expand\]"):
        LatencyTable.for_space(space, table.table[:, :19], fixed=table.fixed, device={"name": "toy"})
    with pytest.raises(LUTError, match="one entry per resolution"):
        LatencyTable.for_space(space, table.table, fixed=table.fixed[:1], device={"name": "toy"})
    with pytest.raises(LUTError, match="46 decisions, archs have 45"):
        table.cost(np.zeros((2, 45), np.int32))


# ------------------------------------------------------------------------------ files
def test_save_load_round_trip(space, table, tmp_path):
    back = LatencyTable.load(table.save(tmp_path / "lut.json"), space)
    assert isinstance(back, OFALatencyTable)
    np.testing.assert_array_equal(back.table, table.table)
    np.testing.assert_array_equal(back.fixed, table.fixed)
    np.testing.assert_array_equal(back.spread, table.spread)
    assert back.device == table.device and back.unit == "ms" and back.space_fingerprint == space.fingerprint()
    archs = np.array(space.sample(jax.random.key(7), 16))
    np.testing.assert_array_equal(back.cost(archs), table.cost(archs))
    # An unprofiled resolution is one null in 'fixed' and one in 'table', and comes back NaN.
    partial = _random_table(space, absent=(16,), fixed_spread=np.array([np.nan, 0.02]))
    payload = json.loads(partial.save(tmp_path / "partial.json").read_text())
    assert payload["layout"] == "ofa_mbv3" and payload["axes"] == ["resolution", "block", "kernel", "expand"]
    assert payload["resolutions"] == [16, 20] and payload["fixed"][0] is None and payload["table"][0] is None
    assert np.asarray(payload["table"][1]).shape == (20, 3, 3)
    back = OFALatencyTable.load(tmp_path / "partial.json", space)
    assert back.profiled_resolutions == (20,) and np.isnan(back.table[0]).all()
    np.testing.assert_array_equal(back.fixed_spread, [np.nan, 0.02])


def test_wrong_fingerprint_is_refused(table, tmp_path):
    path = table.save(tmp_path / "lut.json")
    with pytest.raises(LUTError, match="does not match space ofa_mbv3 .*another configuration"):
        LatencyTable.load(path, get_space("ofa_mbv3", "cifar"))
    with pytest.raises(LUTError, match="does not match space fbnet"):
        LatencyTable.load(path, get_space("fbnet", "tiny"))


def _edit(table, tmp_path, change):
    payload = table.to_json()
    change(payload)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(payload))
    return path


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda p: p["table"][0][3][1].__setitem__(1, -2.0), r"\[resolution 16\]\[block 3\]\[kernel 5\]\[expand 4\] is -2.0"),
        (lambda p: p["table"][1][0][0].__setitem__(0, None), r"\[resolution 20\]\[block 0\]\[kernel 3\]\[expand 3\] is missing"),
        (lambda p: p["table"][1][0][0].__setitem__(0, "fast"), "is not a number"),
        (lambda p: p["table"][1].pop(), r"'table' at resolution 20 must be \[block\]\[kernel\]\[expand\]"),
        (lambda p: p["table"].pop(), r"'table' must have one entry per resolution \(2\), got 1"),
        (lambda p: p["fixed"].__setitem__(0, None), "resolution 16 has block costs but its fixed cost is missing"),
        (lambda p: p.update(fixed=[None, None], table=[None, None]), "no resolution has costs"),
        (lambda p: p.update(resolutions=[16, 24]), "differ from the resolution choices"),
        (lambda p: p.update(layout="sparse"), "unknown table layout 'sparse'"),
        (lambda p: p.update(axes=["block", "resolution", "kernel", "expand"]), "'axes' must be"),
        (lambda p: p.pop("resolutions"), r"missing field\(s\) \['resolutions'\]"),
        (lambda p: p["decisions"].reverse(), "not the ofa_mbv3 layout"),
    ],
)
def test_malformed_files_are_refused(table, tmp_path, change, message):
    with pytest.raises(LUTError, match=message) as info:
        LatencyTable.load(_edit(table, tmp_path, change))
    assert "bad.json" in str(info.value)


def test_an_additive_file_is_not_an_ofa_table(tmp_path):
    fb = get_space("fbnet", "tiny")
    path = LatencyTable.for_space(fb, np.ones((6, 9)), fixed=1.0, device={"name": "toy"}).save(tmp_path / "fb.json")
    assert "layout" not in json.loads(path.read_text())  # the additive format is unchanged
    with pytest.raises(LUTError, match="not a OFALatencyTable"):
        OFALatencyTable.load(path)


def test_merge_adds_resolutions_of_the_same_device(space):
    a, b = _random_table(space, seed=1, absent=(20,)), _random_table(space, seed=2, absent=(16,))
    merged = a.merge(b)
    assert merged.profiled_resolutions == (16, 20)
    np.testing.assert_array_equal(merged.table[0], a.table[0])
    np.testing.assert_array_equal(merged.table[1], b.table[1])
    assert merged.device["merged_resolutions"][0]["resolutions"] == [20]
    full = _random_table(space, seed=3)
    np.testing.assert_array_equal(full.merge(b).table, full.table)  # the newer table wins
    other = dataclass_replace_device(b, batch_size=8)
    with pytest.raises(LUTError, match="different devices: batch_size 8 vs 1"):
        a.merge(other)
    with pytest.raises(LUTError, match="another configuration"):
        a.merge(_random_table(get_space("ofa_mbv3", "fashion_mnist"), absent=(20, 24)))


def dataclass_replace_device(table, **changes):
    import dataclasses

    return dataclasses.replace(table, device={**table.device, **changes})


# ------------------------------------------------------------------------------ public OFA records
@pytest.fixture(scope="module")
def ofa_records():
    if not DATA.exists():
        pytest.skip(f"{DATA} not present")
    from costs.measured import load_ofa_archs

    return load_ofa_archs(DATA)


def test_every_public_record_is_costable(ofa_records):
    imagenet = get_space("ofa_mbv3", "imagenet")
    archs = ofa_records.archs
    assert archs.shape == (5000, 46)
    from costs.analytic import analytic_costs

    analytic = analytic_costs(imagenet, archs)
    assert np.isfinite(analytic.macs).all() and (analytic.macs > 0).all()
    # A synthetic ImageNet LUT of random positive numbers costs every record.
    lut = _random_table(imagenet, seed=4)
    assert lut.table.shape == (25, 20, 3, 3)
    costs = np.asarray(lut.cost(archs))
    assert costs.shape == (5000,) and np.isfinite(costs).all() and (costs > 0).all()
    for i in (0, 1, 2, 4999):
        assert costs[i] == pytest.approx(_hand_cost(imagenet, lut, archs[i]), rel=1e-5)
    # The LUT indexes exactly as the analytic model: filled with its per-block MACs, it gives its MACs.
    tables = layer_cost_tables(imagenet)
    macs = OFALatencyTable.for_space(imagenet, np.asarray(tables.blocks.macs) / 1e6,
                                     fixed=np.asarray(tables.fixed.macs) / 1e6, device={"name": "analytic"},
                                     metric="mmacs", unit="M")
    np.testing.assert_allclose(np.asarray(macs.cost(archs)), analytic.macs / 1e6, rtol=1e-5)


# ------------------------------------------------------------------------------ profiling arithmetic
def _raw(space, block=0.3, stem=0.5, head=0.4, in_program=0.2):
    """A hand-made raw profile of the tiny space at 16 px: block (b, k, e) takes block + 0.01 k + 0.001 e."""
    blocks, chains = {}, {}
    for spec, side in zip(space.block_specs(), block_input_sides(space, 16)):
        key = block_key(spec, side)
        for k in range(3):
            for e in range(3):
                blocks[key + (k, e)] = Timing(block + 0.01 * k + 0.001 * e, 0.002)
        if spec.has_residual:
            chains[key + (0, 0)] = Timing(block + 3 * in_program, 0.003)
    return OFARawProfile(blocks, {16: Timing(stem, 0.01)}, {16: Timing(head, 0.01)}, Timing(0.02, 0.001),
                         chains, 4, (16,), 1, 1.0)


def test_table_from_raw_puts_the_boundary_into_fixed_once(space):
    raw = _raw(space)
    assert len(raw.blocks) == 10 * 9  # 10 distinct block shapes at 16 px, 9 (kernel, expand) each
    plain = table_from_raw(space, raw, overhead="none")
    chain = table_from_raw(space, raw, overhead="chain")
    assert plain.profiled_resolutions == chain.profiled_resolutions == (16,)
    np.testing.assert_allclose(plain.table[0, :, 2, 1], 0.3 + 0.02 + 0.001)
    np.testing.assert_allclose(chain.table[0], plain.table[0] - 0.1)  # boundary = block - in_program
    assert plain.fixed[0] == pytest.approx(0.9) and chain.fixed[0] == pytest.approx(0.4 + 0.3 + 0.1)
    assert np.isnan(chain.table[1]).all() and np.isnan(chain.fixed[1])
    assert chain.device["input_sizes"] == [16] and chain.device["dispatch_overhead_ms"] == pytest.approx(0.1)
    assert chain.device["distinct_measurements"] == 92
    arch = np.zeros(space.num_decisions, np.int32)  # depth 2 everywhere: 10 blocks
    assert float(plain.cost(arch) - chain.cost(arch)) == pytest.approx(11 * 0.1, rel=1e-5)


def test_sample_at_draws_only_the_given_resolutions():
    imagenet = get_space("ofa_mbv3", "imagenet")
    archs = sample_at(imagenet, jax.random.key(0), 200, [160, 224])
    px = {imagenet.macro.resolutions[r] for r in archs[:, imagenet.resolution_index]}
    assert px == {160, 224}
    imagenet.validate(archs)
    with pytest.raises(ValueError, match="resolution 150 is not in this space"):
        sample_at(imagenet, jax.random.key(0), 2, [150])


def test_resolve_config_reads_an_ofa_json(tmp_path):
    tiny = resolve_config("tiny", "ofa_mbv3")
    import dataclasses

    fields = {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(tiny).items()}
    path = tmp_path / "ofa.json"
    path.write_text(json.dumps(fields))
    assert resolve_config(str(path), "ofa_mbv3") == tiny
    path.write_text(json.dumps({**fields, "use_se": [1, 0, 0, 1, 1]}))
    from supernet.cli.common import CLIError

    with pytest.raises(CLIError, match="'use_se' must be a list of booleans"):
        resolve_config(str(path), "ofa_mbv3")


# ------------------------------------------------------------------------------ CLI
@pytest.fixture(scope="module")
def cli_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("ofa") / "lut.json"
    # The micro preset: every kind of program (blocks, fixed parts, probes, whole subnets) in seconds.
    argv = ["profile", "--space", "ofa_mbv3", "--preset", "micro", "--resolutions", "8", "--out", str(out),
            "--repeats", "2", "--warmup", "1", "--validate", "1", "--json"]
    return out, argv


def test_cli_profiles_one_resolution_and_validates(cli_run, capsys):
    space = get_space("ofa_mbv3", "micro")
    out, argv = cli_run
    assert main(argv) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["lut"] == str(out) and payload["space"] == "ofa_mbv3" and payload["resolutions"] == [8]
    table = LatencyTable.load(out, space)
    assert isinstance(table, OFALatencyTable) and table.profiled_resolutions == (8,)
    assert payload["device"] == table.device and payload["fixed_ms"] == {"8": table.fixed[0]}
    assert table.device["backend"] == jax.default_backend() and table.device["batch_size"] == 1
    # Two blocks (strided SE block, residual block) x 2 kernels x 2 expands, each measured once.
    assert table.device["distinct_measurements"] >= 8 and table.device["input_sizes"] == [8]
    # Every entry measured (finite) and >= 0. Not "> 0": at 8 px a micro block runs in microseconds,
    # about the per-call overhead the chain correction subtracts, so on a loaded machine every entry
    # may clip to 0 (seen in CI under load). The correction's arithmetic is checked with fixed
    # timings in `test_table_from_raw_puts_the_boundary_into_fixed_once`.
    assert np.isfinite(table.table[0]).all() and (table.table[0] >= 0).all() and table.fixed[0] > 0
    assert np.isnan(table.table[1]).all()
    (row,) = payload["rows"]
    arch = space.from_public(row["arch"])
    assert row["arch"]["r"] == 8 and row["measured_ms"] > 0 and math.isfinite(row["error_pct"])
    assert row["predicted_ms"] == pytest.approx(float(table.cost(arch)), rel=1e-5)
    assert payload["summary"]["n"] == 1
    arch[space.resolution_index] = 1
    with pytest.raises(LUTError, match="resolution 12 px is not in this table"):
        table.cost(arch)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--space", "ofa_mbv3", "--preset", "tiny", "--resolutions", "17"], "--resolutions: 17 is not a resolution of tiny"),
        (["--space", "fbnet", "--config", "tiny", "--resolutions", "16"], "--resolutions applies to --space ofa_mbv3 only"),
        (["--space", "ofa_mbv3", "--preset", "huge"], "neither a preset (imagenet, cifar, fashion_mnist, micro, tiny)"),
    ],
)
def test_cli_errors(argv, message, tmp_path, capsys):
    assert main(["profile", "--out", str(tmp_path / "lut.json"), *argv]) == 2
    captured = capsys.readouterr()
    assert message in captured.err and captured.out == ""
    assert not (tmp_path / "lut.json").exists()


def test_cli_merge_refuses_a_table_of_another_preset(tmp_path, capsys):
    out = _random_table(get_space("ofa_mbv3", "fashion_mnist")).save(tmp_path / "lut.json")
    before = out.read_text()
    # The micro preset: every kind of program (blocks, fixed parts, probes, whole subnets) in seconds.
    argv = ["profile", "--space", "ofa_mbv3", "--preset", "micro", "--resolutions", "8", "--out", str(out), "--merge"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "--merge:" in err and "another configuration" in err and err.count("\n") == 1
    assert out.read_text() == before
