"""Convolution ops: the fast formulations equal XLA's grouped convolutions, values and gradients."""

import functools
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax
from jax.test_util import check_grads

from supernet import ops

CASES = list(itertools.product((3, 5, 7), (1, 2), ((7, 7), (8, 8))))
CASE_IDS = [f"k{k}-s{s}-{h}x{w}" for k, s, (h, w) in CASES]


def _inputs(k, hw, c=3, n=2, seed=0):
    rng = np.random.default_rng(seed)
    return _normal(rng, (n, *hw, c)), _normal(rng, (k, k, c))


def _normal(rng, shape):
    # numpy draws: no per-shape compile of JAX's PRNG, which would dominate these tiny tests
    return jnp.asarray(rng.standard_normal(shape, dtype=np.float32))


def _reference(x, w, s):
    """The semantics the ops promise, written out independently of supernet.ops."""
    return lax.conv_general_dilated(
        x, w[:, :, None, :], (s, s), "SAME",
        dimension_numbers=("NHWC", "HWIO", "NHWC"), feature_group_count=x.shape[-1],
    )


def assert_close(actual, desired, rel):
    """Agreement relative to the largest entry (sums of many terms cancel entrywise)."""
    desired = np.asarray(desired)
    scale = float(np.max(np.abs(desired))) or 1.0
    np.testing.assert_allclose(np.asarray(actual), desired, rtol=rel, atol=rel * scale)


# ------------------------------------------------------------------------------------ geometry
@pytest.mark.parametrize("size", [1, 2, 7, 8, 9])
@pytest.mark.parametrize("k", [1, 2, 3, 5, 7])
@pytest.mark.parametrize("s", [1, 2, 3])
def test_same_padding_matches_xla_padtype(size, k, s):
    out, lo, hi = ops.same_padding(size, k, s)
    assert out == -(-size // s)
    assert [(lo, hi)] == lax.padtype_to_pads((size,), (k,), (s,), "SAME")


# ---------------------------------------------------------------------------- values and gradients
@pytest.mark.parametrize("k,s,hw", CASES, ids=CASE_IDS)
def test_shift_equals_xla_grouped_conv_values_and_gradients(k, s, hw):
    x, w = _inputs(k, hw)
    out_shape = (2, -(-hw[0] // s), -(-hw[1] // s), 3)
    g = _normal(np.random.default_rng(1), out_shape)

    @jax.jit  # one compiled program per case keeps the file fast
    def both(x, w, g):
        out = []
        for f in (_reference, lambda x, w, s: ops.depthwise_conv2d(x, w, s, impl="shift")):
            y, vjp = jax.vjp(lambda x, w: f(x, w, s), x, w)
            out.append((y, *vjp(g)))
        return out

    (want_y, want_dx, want_dw), (got_y, got_dx, got_dw) = both(x, w, g)
    assert got_y.shape == out_shape == want_y.shape
    np.testing.assert_allclose(got_y, want_y, rtol=1e-5, atol=1e-5)
    assert_close(got_dx, want_dx, 1e-4)
    assert_close(got_dw, want_dw, 1e-4)


def test_xla_impl_is_the_reference():
    x, w = _inputs(3, (8, 8))
    got = ops.depthwise_conv2d(x, w, 2, impl="xla")
    np.testing.assert_allclose(got, _reference(x, w, 2), rtol=1e-6, atol=1e-6)


def test_default_impl_follows_backend():
    x, w = _inputs(3, (8, 8))
    prims = str(jax.make_jaxpr(lambda x, w: ops.depthwise_conv2d(x, w, 2))(x, w))
    assert jax.default_backend() == "cpu"
    assert "custom_vjp" in prims and "conv_general_dilated" not in prims
    prims = str(jax.make_jaxpr(lambda x, w: ops.depthwise_conv2d(x, w, 2, impl="xla"))(x, w))
    assert "conv_general_dilated" in prims


@pytest.mark.parametrize(
    "k,s,hw,methods",
    [
        (5, 1, (7, 7), ("fft", "chunked")),
        (4, 2, (7, 9), ("fft", "chunked")),  # even kernel, odd/even sizes
        (2, 3, (7, 8), ("fft", "chunked", "taps")),  # stride 3: a phase no tap reaches
    ],
)
def test_every_kernel_gradient_formulation_equals_xla(k, s, hw, methods, monkeypatch):
    # A tiny cache budget makes the chunked formulation scan over several 4-6 image steps.
    monkeypatch.setattr(ops, "_CHUNK_BYTES", 5000)
    x, w = _inputs(k, hw, n=12)

    @jax.jit
    def grads(x, w, g):
        out = {"xla": jax.vjp(lambda x, w: _reference(x, w, s), x, w)[1](g)}
        for m in methods:
            conv = functools.partial(ops.depthwise_conv2d_shift, stride=s, backward=m)
            out[m] = jax.vjp(conv, x, w)[1](g)
        return out

    g = _normal(np.random.default_rng(1), (12, -(-hw[0] // s), -(-hw[1] // s), 3))
    out = grads(x, w, g)
    for m in methods:
        for a, b in zip(out[m], out["xla"]):
            assert_close(a, b, 1e-4)


def test_chunking_splits_the_batch_into_cache_sized_steps():
    assert ops._chunk_size(12, ops._CHUNK_BYTES // 5) == 4
    assert ops._chunk_size(7, ops._CHUNK_BYTES) == 1
    assert ops._chunk_size(7, 2 * ops._CHUNK_BYTES) == 1


def test_check_grads_numerically():
    x, w = _inputs(3, (5, 6), c=2, n=1)
    check_grads(jax.jit(lambda x, w: ops.depthwise_conv2d(x, w, 2, impl="shift")), (x, w),
                order=1, modes=("rev",), atol=2e-2, rtol=2e-2)


def test_second_order_reverse_mode():
    # The backward pass is itself differentiable (grad of a gradient norm, as in penalties).
    x, w = _inputs(3, (6, 6), n=1)

    def penalty(f):
        def loss(w):
            dx = jax.grad(lambda x: jnp.sum(jnp.tanh(f(x, w, 2))))(x)
            return jnp.sum(dx**2)

        return jax.jit(jax.grad(loss))(w)

    fast = penalty(lambda x, w, s: ops.depthwise_conv2d(x, w, s, impl="shift"))
    assert_close(fast, penalty(_reference), 1e-4)


# ------------------------------------------------------------------------------------ transforms
def test_inside_switch_with_traced_index_under_jit_and_grad():
    x, w5 = _inputs(5, (8, 8))
    w3 = w5[1:4, 1:4]

    def net(impl):
        def up(y):  # stride-2 output back to 8x8 so that all branches agree in shape
            return y.repeat(2, axis=1).repeat(2, axis=2)

        branches = [
            lambda x, w3, w5: ops.depthwise_conv2d(x, w3, 1, impl=impl),
            lambda x, w3, w5: ops.depthwise_conv2d(x, w5, 1, impl=impl),
            lambda x, w3, w5: up(ops.depthwise_conv2d(x, w3, 2, impl=impl)),
        ]

        def loss(idx, x, w3, w5):
            y = lax.switch(idx, branches, x, w3, w5)
            return jnp.sum(jnp.sin(y)), y

        return jax.jit(jax.value_and_grad(loss, argnums=(1, 2, 3), has_aux=True))

    fast, ref = net(None), net("xla")
    for idx in range(3):  # one compile each: the index is a traced argument
        (_, y1), g1 = fast(jnp.int32(idx), x, w3, w5)
        (_, y2), g2 = ref(jnp.int32(idx), x, w3, w5)
        np.testing.assert_allclose(y1, y2, rtol=1e-5, atol=1e-5)
        for a, b in zip(g1, g2):
            assert_close(a, b, 1e-4)


def test_vmap_over_a_stack_of_batches_and_kernels():
    x, w = _inputs(3, (7, 7), n=4)
    xs, ws = x.reshape(2, 2, 7, 7, 3), jnp.stack([w, -2 * w])

    def loss(xs, ws):
        ys = jax.vmap(lambda x, w: ops.depthwise_conv2d(x, w, 2))(xs, ws)
        return jnp.sum(ys**2), ys

    (_, ys), grads = jax.jit(jax.value_and_grad(loss, argnums=(0, 1), has_aux=True))(xs, ws)
    for b in range(2):
        assert_close(ys[b], _reference(xs[b], ws[b], 2), 1e-5)
    def ref_loss(xs, ws):
        return sum(jnp.sum(_reference(xs[b], ws[b], 2) ** 2) for b in range(2))

    ref_grads = jax.jit(jax.grad(ref_loss, argnums=(0, 1)))(xs, ws)
    for a, b in zip(grads, ref_grads):
        assert_close(a, b, 1e-4)


def test_under_checkpoint_and_inside_a_recomputing_custom_vjp():
    x, w = _inputs(3, (8, 8))

    def block(x, w):
        return jnp.tanh(ops.depthwise_conv2d(x, w, 1)) * 2.0

    # A custom_vjp that keeps only its inputs and re-runs the block under jax.vjp in its backward
    # pass, as the supernet does for the chosen branch.
    @jax.custom_vjp
    def recomputed(x, w):
        return block(x, w)

    def fwd(x, w):
        return block(x, w), (x, w)

    def bwd(res, g):
        return jax.vjp(block, *res)[1](g)

    recomputed.defvjp(fwd, bwd)

    def ref_block(x, w):
        return jnp.tanh(_reference(x, w, 1)) * 2.0

    want = jax.jit(jax.grad(lambda x, w: jnp.sum(ref_block(x, w) ** 2), argnums=(0, 1)))(x, w)
    remat = jax.checkpoint(recomputed)
    # `remat` twice: tracing the same function again must not depend on the first trace.
    for f in (jax.checkpoint(block), remat, remat):
        got = jax.jit(jax.grad(lambda x, w: jnp.sum(f(x, w) ** 2), argnums=(0, 1)))(x, w)
        for a, b in zip(got, want):
            assert_close(a, b, 1e-4)


def test_rejects_bad_arguments():
    x, w = _inputs(3, (8, 8))
    with pytest.raises(ValueError, match="impl"):
        ops.depthwise_conv2d(x, w, impl="cudnn")
    with pytest.raises(ValueError, match="backward"):
        ops.depthwise_conv2d_shift(x, w, backward="magic")
    with pytest.raises(ValueError, match="kernel"):
        ops.depthwise_conv2d(x, w[:, :, :2])
    with pytest.raises(ValueError, match="stride"):
        ops.depthwise_conv2d(x, w, 0)
    with pytest.raises(ValueError, match="stride"):
        ops.depthwise_conv2d(x, w, 1.0)
    # NumPy integers are fine (static config often comes from arrays).
    got = ops.depthwise_conv2d(x, w, np.int64(2))
    np.testing.assert_allclose(got, _reference(x, w, 2), rtol=1e-5, atol=1e-5)


# ------------------------------------------------------------------------- grouped pointwise
@pytest.mark.parametrize("groups,cin,cout", [(1, 6, 4), (2, 6, 4), (3, 6, 9)])
def test_grouped_pointwise_equals_xla_grouped_conv(groups, cin, cout):
    rng = np.random.default_rng(3)
    x = _normal(rng, (2, 5, 4, cin))
    kernel = _normal(rng, (groups, cin // groups, cout // groups))
    hwio = ops.pointwise_kernel_to_hwio(kernel)
    assert hwio.shape == (1, 1, cin // groups, cout)
    g = _normal(rng, (2, 5, 4, cout))
    conv = functools.partial(lax.conv_general_dilated, window_strides=(1, 1), padding="SAME",
                             dimension_numbers=("NHWC", "HWIO", "NHWC"), feature_group_count=groups)

    @jax.jit
    def both(x, kernel, hwio, g):
        # Values and gradients (the kernel gradient lands in the right group and channel).
        got, got_vjp = jax.vjp(ops.grouped_pointwise_conv, x, kernel)
        want, want_vjp = jax.vjp(conv, x, hwio)
        return got, want, got_vjp(g), want_vjp(g)

    got, want, (got_dx, got_dk), (want_dx, want_dhwio) = both(x, kernel, hwio, g)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    assert_close(got_dx, want_dx, 1e-5)
    assert_close(ops.pointwise_kernel_to_hwio(got_dk), want_dhwio, 1e-5)


def test_grouped_pointwise_channel_order_is_group_major():
    # Group g's output channels are g*O .. g*O+O-1 and see only group g's inputs.
    groups, cin_g, cout_g = 3, 2, 2
    kernel = np.zeros((groups, cin_g, cout_g), np.float32)
    kernel[:, 0, 1] = [1, 2, 3]
    x = np.arange(1, groups * cin_g + 1, dtype=np.float32).reshape(1, 1, 1, -1)
    y = jax.jit(ops.grouped_pointwise_conv)(x, kernel)[0, 0, 0]
    # out channel g*2+1 = kernel[g,0,1] * x[g*2+0]
    np.testing.assert_allclose(y, [0, 1 * 1, 0, 2 * 3, 0, 3 * 5])
