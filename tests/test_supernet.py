"""The FBNet supernet: one compile for all subnets, extraction, per-candidate BN, gate gradients."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from costs.analytic import analytic_costs
from supernet.compilation import count_compilations
from supernet.fbnet_supernet import FBNetSupernet
from supernet.methods import binary_gates, gumbel_softmax, two_paths
from supernet.spaces import get_space
from supernet.subnet import count_params, extract_subnet


@pytest.fixture(scope="module")
def space():
    return get_space("fbnet", "micro")


@pytest.fixture(scope="module")
def images():
    return jax.random.normal(jax.random.key(1), (4, 16, 16, 1))


def _split(model):
    return nnx.split(model, nnx.Param, nnx.BatchStat)


def test_one_compilation_serves_twenty_random_subnets(space, images):
    graphdef, params, stats = _split(FBNetSupernet(space.macro, seed=0))

    @jax.jit
    def train_step(params, stats, arch):
        def loss(params, stats):
            model = nnx.merge(graphdef, params, stats)
            return jnp.mean(model(images, arch=arch, train=True) ** 2), nnx.state(model, nnx.BatchStat)

        # BN statistics are differentiated too: NNX only lets a trace update what it owns.
        (value, new_stats), (grads, _) = jax.value_and_grad(loss, argnums=(0, 1), has_aux=True)(params, stats)
        return value, grads, new_stats

    archs = np.asarray(space.sample(jax.random.key(0), 20))  # host rows: no slicing programs
    with count_compilations() as compiled:
        values = [float(train_step(params, stats, a)[0]) for a in archs]
    assert compiled.count == 1
    assert train_step._cache_size() == 1
    assert len(set(values)) > 1  # different subnets really computed different things


def test_supernet_fed_an_arch_equals_its_extracted_subnet(space, images):
    model = FBNetSupernet(space.macro, seed=3)
    graphdef, params, stats = _split(model)

    @jax.jit
    def train_pass(params, stats, arch):  # gives BN statistics non-trivial values
        model = nnx.merge(graphdef, params, stats)
        model(images, arch=arch, train=True)
        return nnx.state(model, nnx.BatchStat)

    for a in np.asarray(space.sample(jax.random.key(5), 4)):
        stats = train_pass(params, stats, a)
    model = nnx.merge(graphdef, params, stats)
    supernet_eval = jax.jit(lambda p, s, a: nnx.merge(graphdef, p, s)(images, arch=a, train=False))
    archs = [np.zeros(3, np.int32), np.full(3, 8, np.int32), np.array([7, 5, 1], np.int32)]
    for arch in archs:
        subnet = extract_subnet(model, arch)
        sub_graph, sub_state = nnx.split(subnet)
        got = jax.jit(lambda s: nnx.merge(sub_graph, s)(images, train=False))(sub_state)
        np.testing.assert_allclose(got, supernet_eval(params, stats, arch), rtol=1e-5, atol=1e-5)
        # Analytic parameter counts agree with the real Flax modules.
        assert count_params(subnet) == int(analytic_costs(space, arch).params[0])


def test_training_a_path_updates_only_its_candidates_batch_statistics(space, images):
    model = FBNetSupernet(space.macro, seed=0)
    graphdef, params, stats = _split(model)

    @jax.jit
    def train_pass(params, stats, arch):
        model = nnx.merge(graphdef, params, stats)
        model(images, arch=arch, train=True)
        return nnx.state(model, nnx.BatchStat)

    before = dict(nnx.to_flat_state(stats))
    after = dict(nnx.to_flat_state(train_pass(params, stats, jnp.array([2, 5, 3]))))
    changed = {
        (int(path[1]), int(path[3]))
        for path, old in before.items()
        if path[0] == "layers" and not np.array_equal(old[...], after[path][...])
    }
    assert changed == {(0, 2), (1, 5), (2, 3)}


def test_binary_gate_gradient_is_binaryconnect(space, images):
    """dL/dalpha_i = sum_j dL/dg_j p_j (delta_ij - p_i) over the sampled pair, with dL/dg_j
    obtained independently by differentiating the all-paths weighted sum at the one-hot gate."""
    graphdef, params, stats = _split(FBNetSupernet(space.macro, seed=1))
    alpha = jax.random.normal(jax.random.key(2), (3, 9))
    pair, active_slot = two_paths(jax.random.key(4), alpha)
    labels = jnp.array([1, 2, 3, 4])

    def ce(logits):
        return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(logits), labels[:, None], axis=-1))

    def loss_gates(alpha, stats):
        g, active, other = binary_gates(alpha, pair, active_slot)
        return ce(nnx.merge(graphdef, params, stats)(images, gates=(g, active, other), train=True))

    def loss_weights(w, stats):
        return ce(nnx.merge(graphdef, params, stats)(images, weights=w, train=True))

    grad_alpha = jax.jit(jax.grad(loss_gates, argnums=(0, 1)))(alpha, stats)[0]
    active = jnp.take_along_axis(pair, active_slot[:, None], axis=-1)[:, 0]
    dl_dg = jax.jit(jax.grad(loss_weights, argnums=(0, 1)))(jax.nn.one_hot(active, 9), stats)[0]
    for layer in range(3):
        i, j = (int(v) for v in pair[layer])
        p = jax.nn.softmax(alpha[layer, jnp.array([i, j])])
        g = dl_dg[layer, jnp.array([i, j])]
        expected = np.array([g[0] * p[0] * (1 - p[0]) + g[1] * p[1] * (0 - p[0]),
                             g[0] * p[0] * (0 - p[1]) + g[1] * p[1] * (1 - p[1])])
        np.testing.assert_allclose(grad_alpha[layer, jnp.array([i, j])], expected, rtol=1e-4, atol=1e-7)
        others = np.setdiff1d(np.arange(9), [i, j])
        assert np.all(np.asarray(grad_alpha[layer, others]) == 0)


def test_two_paths_are_distinct_and_follow_alpha():
    alpha = jnp.log(jnp.array([[0.7, 0.2, 0.1, 1e-6]] * 2000))
    pair, active_slot = two_paths(jax.random.key(0), alpha)
    pair = np.asarray(pair)
    assert np.all(pair[:, 0] != pair[:, 1])
    counts = np.bincount(pair.ravel(), minlength=4) / len(pair)
    assert counts[0] > counts[1] > counts[2] and counts[3] < 0.01


def test_gumbel_softmax_is_reproducible_and_hard_is_one_hot():
    alpha = jax.random.normal(jax.random.key(0), (5, 9))
    soft = gumbel_softmax(jax.random.key(1), alpha, 1.0, hard=False)
    np.testing.assert_array_equal(soft, gumbel_softmax(jax.random.key(1), alpha, 1.0, hard=False))
    assert not np.allclose(soft, gumbel_softmax(jax.random.key(2), alpha, 1.0, hard=False))
    np.testing.assert_allclose(soft.sum(-1), 1.0, rtol=1e-6)
    hard = gumbel_softmax(jax.random.key(1), alpha, 1.0, hard=True)
    np.testing.assert_allclose(hard, jax.nn.one_hot(jnp.argmax(soft, -1), 9), atol=1e-6)
    # Straight-through: the gradient is the soft sample's.
    g_hard = jax.grad(lambda a: jnp.sum(gumbel_softmax(jax.random.key(1), a, 1.0, True) * jnp.arange(9.0)))(alpha)
    g_soft = jax.grad(lambda a: jnp.sum(gumbel_softmax(jax.random.key(1), a, 1.0, False) * jnp.arange(9.0)))(alpha)
    np.testing.assert_allclose(g_hard, g_soft, rtol=1e-5, atol=1e-6)


def test_forward_rejects_bad_inputs(space, images):
    model = FBNetSupernet(space.macro)
    with pytest.raises(ValueError, match="exactly one of"):
        model(images)
    with pytest.raises(ValueError, match=r"arch must have shape \(3,\)"):
        model(images, arch=jnp.zeros(4, jnp.int32))
    with pytest.raises(ValueError, match="1 channel"):
        model(jnp.zeros((2, 16, 16, 3)), arch=jnp.zeros(3, jnp.int32))
