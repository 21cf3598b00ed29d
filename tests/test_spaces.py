"""Search spaces: encodings, validation, sampling, mutation, crossover, one-hot features."""

import csv
import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from supernet.spaces import SPACE_NAMES, get_space, presets
from tests.conftest import SHARED_DATA

ALL_SPACES = [get_space(name) for name in SPACE_NAMES] + [get_space("fbnet", "tiny"), get_space("ofa_mbv3", "tiny")]
IDS = [f"{s.name}-{s.num_decisions}" for s in ALL_SPACES]


# ------------------------------------------------------------------ public encodings
def test_nasbench201_index_and_arch_str_match_every_benchmark_row():
    space = get_space("nasbench201")
    with open(SHARED_DATA / "nasbench201" / "cifar10.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 15625
    index = np.array([int(r["index"]) for r in rows])
    archs = space.from_public_batch([r["arch_str"] for r in rows])
    # arch_str -> vector -> arch_str is the identity on all 15,625 strings.
    assert [space.to_public(a) for a in archs] == [r["arch_str"] for r in rows]
    # The derived index permutation reproduces the benchmark's own index column.
    np.testing.assert_array_equal(space.to_index(archs), index)
    np.testing.assert_array_equal(space.from_index(index), archs)


def test_nasbench201_enumerate_yields_every_cell_once():
    space = get_space("nasbench201")
    archs = space.enumerate()
    assert archs.shape == (15625, 6) and archs.dtype == np.int32
    assert len({tuple(a) for a in archs}) == 15625 == space.size
    np.testing.assert_array_equal(space.to_index(archs), np.arange(15625))


def test_fbnet_public_lists_round_trip_the_hw_nas_bench_archs():
    space = get_space("fbnet")
    with open(SHARED_DATA / "fbnet" / "archs.csv") as f:
        rows = [[int(v) for v in r[1:]] for r in list(csv.reader(f))[1:]]
    assert len(rows) == 5000
    archs = space.from_public_batch(rows)
    assert archs.shape == (5000, 22)
    assert space.to_public_batch(archs) == rows


def test_ofa_records_round_trip_unchanged():
    space = get_space("ofa_mbv3")
    with open(SHARED_DATA / "ofa" / "archs.jsonl") as f:
        records = [json.loads(line) for line in f]
    assert len(records) == 5000
    archs = space.from_public_batch(records)
    assert archs.shape == (5000, 46)
    for record, back in zip(records, space.to_public_batch(archs)):
        record = dict(record)
        record.pop("index")
        assert back == record


@pytest.mark.parametrize(
    "record, message",
    [
        ({"ks": [3] * 20, "e": [3] * 20, "d": [2] * 5}, "missing"),
        ({"ks": [3] * 19, "e": [3] * 20, "d": [2] * 5, "r": 224}, "'ks' must be a list of 20"),
        ({"ks": [4] + [3] * 19, "e": [3] * 20, "d": [2] * 5, "r": 224}, "ks[0] = 4"),
        ({"ks": [3] * 20, "e": [3] * 20, "d": [2] * 5, "r": 225}, "r = 225"),
        ({"ks": [3] * 20, "e": [3] * 20, "d": [2] * 5, "r": 224, "w": 1}, "unknown key"),
    ],
)
def test_ofa_from_public_rejects_malformed_records(record, message):
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        get_space("ofa_mbv3").from_public(record)


@pytest.mark.parametrize(
    "arch_str, message",
    [
        ("|nor_conv_3x3~0|+|none~0|none~1|", "3 nodes"),
        ("|conv_5x5~0|+|none~0|none~1|+|none~0|none~1|none~2|", "unknown op 'conv_5x5'"),
        ("|none~1|+|none~0|none~1|+|none~0|none~1|none~2|", "must be 'op~0'"),
        ("|none~0|+|none~0|+|none~0|none~1|none~2|", "needs 2 inputs"),
    ],
)
def test_nasbench201_from_public_rejects_malformed_strings(arch_str, message):
    with pytest.raises(ValueError, match=message):
        get_space("nasbench201").from_public(arch_str)


def test_ofa_canonical_form_ignores_blocks_beyond_depth():
    space = get_space("ofa_mbv3")
    rec = {"ks": [3] * 20, "e": [3] * 20, "d": [2] * 5, "r": 224}
    other = dict(rec, ks=[3, 3, 7, 5] * 5, e=[3, 3, 6, 4] * 5)  # differs only beyond depth 2
    a, b = space.from_public(rec), space.from_public(other)
    assert not np.array_equal(a, b)
    np.testing.assert_array_equal(space.canonical(a[None]), space.canonical(b[None]))
    deeper = space.from_public(dict(other, d=[3] * 5))
    assert not np.array_equal(space.canonical(deeper[None]), space.canonical(a[None]))


def test_nasbench201_functional_form_drops_idle_edges_and_orders_interchangeable_nodes():
    space = get_space("nasbench201")

    def form(arch_str):
        return space.to_public(np.asarray(space.functional_form(space.from_public(arch_str)[None]))[0])

    # Node 1 receives nothing: its outgoing edges are idle.
    assert form("|none~0|+|nor_conv_1x1~0|nor_conv_3x3~1|+|skip_connect~0|avg_pool_3x3~1|nor_conv_3x3~2|") == \
        "|none~0|+|nor_conv_1x1~0|none~1|+|skip_connect~0|none~1|nor_conv_3x3~2|"
    # Nodes 1 and 2 reach no output: their incoming edges are idle.
    assert form("|nor_conv_3x3~0|+|skip_connect~0|avg_pool_3x3~1|+|skip_connect~0|none~1|none~2|") == \
        "|none~0|+|none~0|none~1|+|skip_connect~0|none~1|none~2|"
    # Without edge 2<-1, nodes 1 and 2 trade places: (skip, conv 1x1) sorts before (conv 3x3, pool).
    mirrored = "|skip_connect~0|+|nor_conv_3x3~0|none~1|+|none~0|nor_conv_1x1~1|avg_pool_3x3~2|"
    assert form("|nor_conv_3x3~0|+|skip_connect~0|none~1|+|none~0|avg_pool_3x3~1|nor_conv_1x1~2|") == mirrored
    assert form(mirrored) == mirrored
    # A cell with every edge live is its own form, and any change to it changes the form.
    live = np.full((1, 6), 3, np.int32)
    changed = np.repeat(live, 6, axis=0)
    changed[np.arange(6), np.arange(6)] = 2
    assert np.array_equal(space.functional_form(live), live)
    assert len({tuple(a) for a in np.asarray(space.functional_form(changed))}) == 6


def test_nasbench201_cells_with_one_functional_form_compute_one_function():
    # Every cell computed at once with one fixed function per op (f(0) = 0, as `none` and the
    # ReLU-conv ops on a zero input); cells sharing a form must agree to rounding.
    space = get_space("nasbench201")
    cells = space.enumerate()
    rng = np.random.default_rng(0)
    weights = rng.normal(size=(3, 8, 8))
    ops = [lambda x: 0.0 * x, lambda x: x] + [lambda x, w=w: np.tanh(x @ w) for w in weights]

    def edge(k, source):
        return sum(np.where((cells[:, k] == o)[:, None], op(source), 0.0) for o, op in enumerate(ops))

    node0 = np.broadcast_to(rng.normal(size=8), (len(cells), 8))
    node1 = edge(0, node0)
    node2 = edge(1, node0) + edge(2, node1)
    output = edge(3, node0) + edge(4, node1) + edge(5, node2)
    forms = np.asarray(space.functional_form(cells)) @ (5 ** np.arange(6))
    order = np.argsort(forms, kind="stable")
    first = np.searchsorted(forms[order], forms)  # the first cell of each cell's form
    np.testing.assert_allclose(output, output[order][first], atol=1e-12)
    assert len(np.unique(forms)) == 8765  # the count in the docstring
    np.testing.assert_array_equal(space.functional_form(space.functional_form(cells)), space.functional_form(cells))


@pytest.mark.parametrize("name", ["fbnet", "ofa_mbv3"])
def test_functional_form_defaults_to_the_canonical_form(name):
    space = get_space(name)
    archs = space.sample(jax.random.key(0), 16)
    np.testing.assert_array_equal(space.functional_form(archs), space.canonical(archs))


# ------------------------------------------------------------------ sizes
def test_sizes_are_exact_integers():
    assert get_space("nasbench201").size == 5**6 == 15625
    assert get_space("fbnet").size == 9**22
    # OFA counts distinct networks: per stage sum over depths of (3 kernels * 3 expands)^depth.
    assert get_space("ofa_mbv3").size == (9**2 + 9**3 + 9**4) ** 5 * 25
    assert isinstance(get_space("ofa_mbv3").size, int)


# ------------------------------------------------------------------ validation
@pytest.mark.parametrize("space", ALL_SPACES, ids=IDS)
def test_validate_rejects_out_of_range_and_wrong_length(space):
    good = np.zeros(space.num_decisions, np.int32)
    np.testing.assert_array_equal(space.validate(good), good)
    bad = good.copy()
    bad[-1] = space.cardinalities[-1]
    with pytest.raises(ValueError, match=f"decision {space.decision_names[-1]!r} has value {bad[-1]}"):
        space.validate(bad)
    with pytest.raises(ValueError, match="row 1"):
        space.validate(np.stack([good, np.where(np.arange(space.num_decisions) == 0, -1, good)]))
    with pytest.raises(ValueError, match=f"{space.num_decisions} decisions"):
        space.validate(good[:-1])
    with pytest.raises(ValueError, match="not an integer"):
        space.validate(good.astype(np.float32) + 0.5)


# ------------------------------------------------------------------ sampling and operators
@pytest.mark.parametrize("space", ALL_SPACES, ids=IDS)
def test_sampling_is_deterministic_per_key_and_covers_every_choice(space):
    a = space.sample(jax.random.key(3), 2000)
    b = space.sample(jax.random.key(3), 2000)
    c = space.sample(jax.random.key(4), 2000)
    assert a.dtype == jnp.int32 and a.shape == (2000, space.num_decisions)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    space.validate(a)
    for i, card in enumerate(space.cardinalities):
        assert set(np.asarray(a[:, i]).tolist()) == set(range(card)), space.decision_names[i]


@pytest.mark.parametrize("space", ALL_SPACES, ids=IDS)
def test_point_mutation_changes_exactly_one_decision(space):
    archs = space.sample(jax.random.key(0), 500)
    mutated = space.mutate(jax.random.key(1), archs)
    space.validate(mutated)
    assert np.all(np.sum(np.asarray(mutated != archs), axis=1) == 1)


def test_rate_mutation_changes_about_rate_of_the_decisions():
    space = get_space("fbnet")
    archs = space.sample(jax.random.key(0), 4000)
    mutated = space.mutate(jax.random.key(1), archs, rate=0.25)
    changed = float(np.mean(np.asarray(mutated != archs)))
    assert abs(changed - 0.25) < 0.01


@pytest.mark.parametrize("space", ALL_SPACES, ids=IDS)
def test_crossover_takes_each_decision_from_a_parent(space):
    a = space.sample(jax.random.key(0), 300)
    b = space.sample(jax.random.key(1), 300)
    child = space.crossover(jax.random.key(2), a, b)
    assert np.all((child == a) | (child == b))
    from_a = np.mean(np.asarray((child == a) & (a != b))) / np.mean(np.asarray(a != b))
    assert 0.4 < from_a < 0.6
    np.testing.assert_array_equal(child, space.crossover(jax.random.key(2), a, b))


@pytest.mark.parametrize("space", ALL_SPACES, ids=IDS)
def test_one_hot_encoding_has_one_hot_per_decision(space):
    archs = space.sample(jax.random.key(0), 16)
    x = np.asarray(jax.jit(space.encode)(archs))
    assert x.shape == (16, int(space.cardinalities.sum()))
    assert np.all(x.sum(axis=1) == space.num_decisions)
    offsets = np.concatenate([[0], np.cumsum(space.cardinalities)[:-1]])
    assert np.all(x[np.arange(16)[:, None], np.asarray(archs) + offsets] == 1.0)


def test_describe_names_every_choice():
    space = get_space("fbnet", "tiny")
    text = space.describe(np.array([0, 8, 3, 2, 7, 1], np.int32))
    assert text == "layer0=k3_e1 layer1=skip layer2=k3_e6 layer3=k3_e3 layer4=k5_e6 layer5=k3_e1_g2"


# ------------------------------------------------------------------ configs and registry
def test_fbnet_layer_shapes_follow_the_macro_architecture():
    specs = get_space("fbnet").layer_specs()
    assert len(specs) == 22
    assert [s.out_channels for s in specs[:6]] == [16, 24, 24, 24, 24, 32]
    assert [s.stride for s in specs[:6]] == [1, 2, 1, 1, 1, 2]
    assert [s.in_size for s in specs[:6]] == [32, 32, 16, 16, 16, 16]
    # Layers where skip is the identity are exactly those whose shape is kept (the public
    # Raspberry Pi LUT lists 9 candidates there and 8 elsewhere).
    with open(SHARED_DATA / "fbnet" / "raspi4_layer_lut_us.json") as f:
        lut = json.load(f)[2:24]
    assert [len(entry) == 9 for entry in lut] == [s.keeps_shape for s in specs]


def test_registry_errors_list_what_exists():
    with pytest.raises(ValueError, match="nasbench201, fbnet, ofa_mbv3"):
        get_space("nb301")
    with pytest.raises(ValueError, match="presets: cifar"):
        get_space("fbnet", "imagenet")
    assert "tiny" in presets("ofa_mbv3")


def test_fingerprint_changes_with_the_config():
    assert get_space("fbnet").fingerprint() == get_space("fbnet").fingerprint()
    assert get_space("fbnet").fingerprint() != get_space("fbnet", "cifar100").fingerprint()
    assert len({get_space(n).fingerprint() for n in SPACE_NAMES}) == len(SPACE_NAMES)


def test_size_counts_distinct_canonical_networks_on_a_small_ofa_space():
    from supernet.spaces import OFAConfig, OFAMobileNetV3Space

    space = OFAMobileNetV3Space(OFAConfig(widths=(8, 16), strides=(1, 2), use_se=(False, True),
                                          activations=("relu", "relu"), kernels=(3, 5), expands=(3,),
                                          depths=(1, 2), resolutions=(16,)))
    grids = np.stack(np.meshgrid(*[np.arange(c) for c in space.cardinalities], indexing="ij"), -1)
    every = grids.reshape(-1, space.num_decisions)
    distinct = {tuple(a) for a in np.asarray(space.canonical(every))}
    assert len(distinct) == space.size == (2 + 4) ** 2
    assert math.prod(space.cardinalities.tolist()) > space.size
