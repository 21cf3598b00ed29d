"""The Once-for-All MobileNetV3 supernet: elastic kernel, depth and expand, extraction, one compile.

The supernet compiles `|kernels| x |expands|` static branches per block, so its programs grow
with the number of blocks and choices: the `tiny` preset (20 blocks, 9 branches each) takes
minutes to trace and compile on 2 CPU cores. These tests use `MICRO`, the same network family
cut to one stage of up to 2 blocks with kernels {3, 5} and expands {3, 6}: a strided block
with squeeze-excite and a skippable residual one, a learned kernel transform and shared BN,
compiled in seconds. The 7 -> 5 -> 3 chain is checked on the transform function itself, and
the presets' layer shapes against the analytic cost model (no compilation). Every supernet
program is compiled once for the file (module fixtures).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from costs.analytic import analytic_costs
from supernet.compilation import count_compilations
from supernet.data import Dataset, normalize
from supernet.layers import HostInit
from supernet.ofa.elastic import center_crop, elastic_kernel, importance_order, sort_channels
from supernet.ofa.layers import ShapeInit
from supernet.ofa.recalibrate import accuracy_after_recalibration, evaluate, recalibrate_bn
from supernet.ofa.subnet import OFASubnet, extract
from supernet.ofa.supernet import OFASupernet
from supernet.spaces import get_space
from supernet.spaces.ofa_mbv3 import OFAConfig, OFAMobileNetV3Space

MICRO = OFAConfig(
    stem_channels=8, stem_stride=1, first_block_channels=8, widths=(16,), strides=(2,),
    use_se=(True,), activations=("h_swish",), kernels=(3, 5), expands=(3, 6),
    depths=(1, 2), final_expand_channels=24, feature_mix_channels=32, resolutions=(8, 12),
    in_channels=1, num_classes=10,
)
BATCH = 4


@pytest.fixture(scope="module")
def space():
    return OFAMobileNetV3Space(MICRO)


def _randomize(model: nnx.Module, seed: int) -> None:
    """Random BN statistics and kernel transforms, so slicing or permutation errors show."""
    rng = np.random.default_rng(seed)
    for path, variable in nnx.to_flat_state(nnx.state(model)):
        name = path[-1]
        if name in ("mean", "bias"):
            variable[...] = jnp.asarray(rng.normal(0, 0.3, variable.shape), jnp.float32)
        elif name in ("var", "scale"):
            variable[...] = jnp.asarray(rng.uniform(0.5, 1.5, variable.shape), jnp.float32)
        elif "kernel_transforms" in path:
            eye = np.eye(variable.shape[0])
            variable[...] = jnp.asarray(eye + rng.normal(0, 0.1, eye.shape), jnp.float32)


@pytest.fixture(scope="module")
def model(space):
    model = OFASupernet(space, HostInit(0))
    _randomize(model, 1)
    return model


@pytest.fixture(scope="module")
def forward(model):
    """Evaluation-mode logits, jitted once for the file (any MICRO supernet has this graphdef)."""
    graphdef = nnx.graphdef(model)

    @jax.jit
    def forward(params, stats, x, arch):
        return nnx.merge(graphdef, params, stats)(x, arch, train=False)

    return forward


@pytest.fixture(scope="module")
def train_step(model):
    """One training step's loss, logits, gradients and updated BN statistics, jitted once."""
    graphdef = nnx.graphdef(model)

    @jax.jit
    def step(params, stats, x, labels, arch):
        def loss(params, stats):
            model = nnx.merge(graphdef, params, stats)
            logits = model(x, arch, train=True)
            ce = -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(logits), labels[:, None], 1))
            return ce, (logits, nnx.state(model, nnx.BatchStat))

        # Statistics are differentiated too: NNX only lets a trace update what it owns.
        (value, (logits, new_stats)), (grads, _) = jax.value_and_grad(loss, argnums=(0, 1), has_aux=True)(
            params, stats)
        return value, logits, grads, new_stats

    return step


def _images(space, arch, seed=0):
    r = space.macro.resolutions[int(arch[space.resolution_index])]
    return np.random.default_rng(seed).normal(size=(BATCH, r, r, 1)).astype(np.float32)


def _run(forward, model, x, arch):
    _, params, stats = nnx.split(model, nnx.Param, nnx.BatchStat)
    return np.asarray(forward(params, stats, x, arch))


def _extremes(space):
    smallest = np.zeros(space.num_decisions, np.int32)
    return smallest, (space.cardinalities - 1).astype(np.int32)


def test_kernel_transform_at_identity_is_the_centre_crop():
    kernels = (3, 5, 7)
    w7 = jnp.asarray(np.random.default_rng(0).normal(size=(7, 7, 6)), jnp.float32)
    eye = (jnp.eye(25), jnp.eye(9))
    np.testing.assert_array_equal(elastic_kernel(w7, eye, kernels, 7), w7)
    np.testing.assert_array_equal(elastic_kernel(w7, eye, kernels, 5), w7[1:6, 1:6])
    np.testing.assert_array_equal(elastic_kernel(w7, eye, kernels, 3), w7[2:5, 2:5])
    # Learned matrices: 3x3 comes from the *transformed* 5x5, one matrix for all channels.
    t75, t53 = (jnp.asarray(np.random.default_rng(s).normal(size=(n, n)), jnp.float32) for s, n in ((1, 25), (2, 9)))
    w5 = (t75 @ center_crop(w7, 5).reshape(25, 6)).reshape(5, 5, 6)
    w3 = (t53 @ center_crop(w5, 3).reshape(9, 6)).reshape(3, 3, 6)
    np.testing.assert_allclose(elastic_kernel(w7, (t75, t53), kernels, 3), w3, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="not one of"):
        elastic_kernel(w7, eye, kernels, 4)


@pytest.mark.parametrize("preset", ["tiny", "imagenet"])
def test_subnet_parameters_match_the_analytic_cost_model(preset):
    space = get_space("ofa_mbv3", preset)
    archs = np.concatenate([np.stack(_extremes(space)), np.array(space.sample(jax.random.key(2), 3))])
    expected = analytic_costs(space, archs).params
    for arch, count in zip(archs, expected):
        subnet = OFASubnet(space, arch, ShapeInit())  # shapes only: nothing is drawn or compiled
        assert sum(int(np.prod(p.shape)) for p in jax.tree.leaves(nnx.state(subnet, nnx.Param))) == count


def test_one_compile_per_resolution_and_supernet_equals_extracted_subnet(space, model, forward):
    archs = np.concatenate([np.stack(_extremes(space)), np.array(space.sample(jax.random.key(3), 4))])
    images = [_images(space, a, seed=i) for i, a in enumerate(archs)]
    _, params, stats = nnx.split(model, nnx.Param, nnx.BatchStat)
    with count_compilations() as compiled:
        outputs = jax.block_until_ready([forward(params, stats, x, a) for x, a in zip(images, archs)])
    used = {int(a[space.resolution_index]) for a in archs}
    assert len(used) == len(MICRO.resolutions)
    assert compiled.count <= len(used) and forward._cache_size() == len(used)  # fewer: compiled by a test before
    for x, arch, got in zip(images, archs, outputs):
        subnet = extract(model, arch)
        assert len(subnet.blocks) == int(np.asarray(space.active_blocks(arch[None]))[0].sum())
        graphdef, sub_params, sub_stats = nnx.split(subnet, nnx.Param, nnx.BatchStat)
        expected = jax.jit(lambda p, s, x: nnx.merge(graphdef, p, s)(x, train=False))(sub_params, sub_stats, x)
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)
    assert not np.allclose(outputs[0], outputs[1], atol=1e-3)  # the extremes really are different networks


def test_skipped_blocks_compute_nothing_and_depth_gives_a_shallower_network(space, model, forward):
    arch = np.array(space.sample(jax.random.key(7), 1))[0]
    arch[space.depth_slice] = 0  # depth 1: the slot-1 block is skipped
    x = _images(space, arch)
    before = _run(forward, model, x, arch)
    skipped = [b for b in model.blocks if b.spec.slot >= 1]
    saved = [nnx.state(b) for b in skipped]
    for block in skipped:  # garbage in the skipped blocks must not reach the output
        block.block.expand.kernel[...] = jnp.full_like(block.block.expand.kernel[...], jnp.nan)
    try:
        np.testing.assert_array_equal(_run(forward, model, x, arch), before)
        deeper = arch.copy()
        deeper[space.depth_slice] = 1
        assert np.isnan(_run(forward, model, x, deeper)).all()
    finally:
        for block, state in zip(skipped, saved):
            nnx.update(block, state)
    assert len(extract(model, arch).blocks) == len(MICRO.widths)  # one block per stage


def test_channel_sorting_keeps_the_function_and_orders_by_importance(space, forward):
    model = OFASupernet(space, HostInit(4))
    _randomize(model, 5)
    arch = np.array(space.sample(jax.random.key(9), 1))[0]
    arch[space.expand_slice] = len(MICRO.expands) - 1  # the full width: sorting must not change it
    x = _images(space, arch)
    before = _run(forward, model, x, arch)
    first = np.asarray(model.blocks[0].block.project.kernel[...])
    sort_channels(model)
    np.testing.assert_allclose(_run(forward, model, x, arch), before, rtol=1e-5, atol=1e-5)
    after = np.asarray(model.blocks[0].block.project.kernel[...])
    importance = np.abs(after).sum(axis=(0, 2))
    assert np.all(np.diff(importance) <= 0) and not np.array_equal(first, after)
    # Channels of an already trained narrower width stay in front of the others.
    order = importance_order(np.array([0.0, 1.0, 5.0, 2.0]), keep_widths=(2,))
    np.testing.assert_array_equal(order, [1, 0, 2, 3])


def test_train_step_gradients_are_finite_and_follow_the_active_subnet(space, model, train_step):
    _, params, stats = nnx.split(model, nnx.Param, nnx.BatchStat)
    arch = _extremes(space)[0]  # kernel 3 everywhere (through the transform), expand 3, depth 1
    x, labels = _images(space, arch), np.arange(BATCH) % MICRO.num_classes
    value, _, grads, new_stats = train_step(params, stats, x, labels, arch)
    assert np.isfinite(float(value))
    assert all(np.isfinite(np.asarray(g)).all() for g in jax.tree.leaves(grads))
    active, skipped = grads["blocks"][0], grads["blocks"][1]  # slot 0 runs, slot 1 is skipped (depth 1)
    assert np.abs(np.asarray(active["block"]["expand"]["kernel"])).sum() > 0
    assert np.abs(np.asarray(active["kernel_transforms"]["matrices"][0])).sum() > 0
    assert all(np.all(np.asarray(g) == 0) for g in jax.tree.leaves(skipped))
    # Expand 3 of 8 inputs uses 24 of 48 middle channels: the rest get no gradient and keep their statistics.
    mid = np.asarray(active["block"]["depthwise"]["kernel"])
    assert np.abs(mid[..., :24]).sum() > 0 and np.all(mid[..., 24:] == 0)
    old, new = (np.asarray(s["blocks"][0]["block"]["bn1"]["mean"]) for s in (stats, new_stats))
    assert not np.allclose(old[:24], new[:24]) and np.array_equal(old[24:], new[24:])


def test_recalibration_on_one_batch_reproduces_train_mode_statistics(space, model, forward, train_step):
    graphdef, params, stats = nnx.split(model, nnx.Param, nnx.BatchStat)
    archs = np.array(space.sample(jax.random.key(11), 4))
    archs[:, space.resolution_index] = 0  # one resolution: one program of each kind
    x, labels = _images(space, archs[0], seed=2), np.zeros(BATCH, np.int32)
    calibrated = recalibrate_bn(graphdef, params, stats, archs[0], x[None])
    # With the batch's own statistics as running averages, evaluation computes what training computes.
    train_logits = train_step(params, stats, x, labels, archs[0])[1]
    np.testing.assert_allclose(forward(params, calibrated, x, archs[0]), train_logits, rtol=1e-4, atol=1e-4)
    accuracy = float(evaluate(graphdef, params, stats, archs[0], x[None], x[None], labels[None]))
    with count_compilations() as compiled:
        accuracies = [float(evaluate(graphdef, params, stats, a, x[None], x[None], labels[None])) for a in archs[1:]]
    assert compiled.count == 0
    assert all(0.0 <= a <= 100.0 for a in [accuracy, *accuracies])


def test_accuracy_after_recalibration_on_dataset_splits(space, model, forward):
    graphdef, params, stats = nnx.split(model, nnx.Param, nnx.BatchStat)
    arch = np.array(space.sample(jax.random.key(14), 1))[0]
    arch[space.resolution_index] = 0
    rng = np.random.default_rng(3)
    pixels = rng.integers(0, 256, size=(2 * BATCH - 1, 8, 8, 1), dtype=np.uint8)
    split = lambda images: Dataset(images, np.zeros(len(images), np.int32), MICRO.num_classes, "random")  # noqa: E731
    train, test = split(pixels[:BATCH]), split(pixels[BATCH:])  # 3 test images: one padded batch
    # A whole batch's statistics do not depend on the order of its images.
    calibrated = recalibrate_bn(graphdef, params, stats, arch, normalize(train, train.images)[None])
    padded = normalize(test, np.concatenate([test.images, train.images[:1]]))  # the forward's batch shape
    predicted = np.argmax(np.asarray(forward(params, calibrated, padded, arch)), -1)[:3]
    labels = np.array(predicted, np.int32)
    labels[0] = (labels[0] + 1) % MICRO.num_classes
    accuracy = accuracy_after_recalibration(graphdef, params, stats, arch, train, test._replace(labels=labels),
                                            recalibration_images=BATCH, batch_size=BATCH)
    assert accuracy == pytest.approx(200.0 / 3)


def test_wrong_inputs_give_readable_errors(space, model):
    arch = np.array(space.sample(jax.random.key(13), 1))[0]
    arch[space.resolution_index] = 0
    x = np.zeros((BATCH, 8, 8, 1), np.float32)
    with pytest.raises(ValueError, match="arch must be one int vector of shape"):
        model(x, arch[:-1])
    with pytest.raises(ValueError, match="integer choice indices"):
        model(x, arch.astype(np.float32))
    with pytest.raises(ValueError, match="NHWC with 1 channel"):
        model(np.zeros((BATCH, 8, 8, 3), np.float32), arch)
    with pytest.raises(ValueError, match="takes 8x8 images, got 12x12"):
        model(np.zeros((BATCH, 12, 12, 1), np.float32), arch)
    bad = arch.copy()
    bad[0] = 7
    with pytest.raises(ValueError):
        model(x, bad)
    with pytest.raises(ValueError, match="takes 8x8 images"):
        OFASubnet(space, arch, HostInit(0))(np.zeros((BATCH, 12, 12, 1), np.float32))
