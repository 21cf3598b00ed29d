"""ProxylessNAS binary gates (Cai et al., "ProxylessNAS", ICLR 2019), gradient-based variant.

Weight step: one path per layer drawn from p = softmax(alpha); only it runs.

Architecture step: per layer, draw two distinct candidates from p (Gumbel top-2) and keep
the rest out of the step. With p' = softmax(alpha[pair]) over the pair, one of the two is
active (drawn from p'); the forward pass runs it alone. The gate gradient comes from
`MixedLayer.binary_gate` (a custom VJP that recomputes both sampled paths in the backward
pass), and BinaryConnect maps it to the logits,

    dL/dalpha_i = sum_j dL/dg_j * p'_j * (delta_ij - p'_i),    i, j in the pair,

which is the softmax Jacobian: writing g = p' + stop_gradient(onehot - p') lets autodiff
produce exactly this. After the update, the pair's logits are shifted by a common offset so
that the pair keeps its total probability, leaving unsampled candidates' probabilities
unchanged (as the paper does).

Loss: `CE + hardware(E_p[c])` with the expected cost under the full distribution p
(`costs.hardware_loss`: "linear" is the paper's CE + lambda E[LAT], "mul" its
multiplicative form). Weight decay on w is the weight optimizer's.
"""

import jax
import jax.numpy as jnp

from supernet.methods.base import ArchState, Method, cross_entropy, sample_paths


def two_paths(key, alpha):
    """Two distinct candidates per layer drawn from softmax(alpha), and which one is active.

    Gumbel top-2 samples without replacement; the active one is drawn from the pair's
    renormalized probabilities. Returns (pair [L, 2], active_slot [L] in {0, 1}).
    """
    k_pair, k_active = jax.random.split(key)
    perturbed = alpha + jax.random.gumbel(k_pair, alpha.shape)
    pair = jax.lax.top_k(perturbed, 2)[1].astype(jnp.int32)
    pair_logits = jnp.take_along_axis(alpha, pair, axis=-1)
    active_slot = jax.random.categorical(k_active, pair_logits, axis=-1).astype(jnp.int32)
    return pair, active_slot


def binary_gates(alpha, pair, active_slot):
    """Gate vector g [L, C] (one-hot forward value, BinaryConnect gradient), active, other."""
    pair_logits = jnp.take_along_axis(alpha, pair, axis=-1)
    p = jax.nn.softmax(pair_logits, axis=-1)
    one_hot = jax.nn.one_hot(active_slot, 2, dtype=p.dtype)
    g_pair = p + jax.lax.stop_gradient(one_hot - p)
    rows = jnp.arange(alpha.shape[0])[:, None]
    gates = jnp.zeros_like(alpha).at[rows, pair].set(g_pair)
    active = jnp.take_along_axis(pair, active_slot[:, None], axis=-1)[:, 0]
    other = jnp.take_along_axis(pair, 1 - active_slot[:, None], axis=-1)[:, 0]
    return gates, active, other


def keep_pair_mass(old: ArchState, new: ArchState, aux) -> ArchState:
    """Shift the updated pair's logits so sum(exp) over the pair is unchanged."""
    pair = aux["pair"]
    before = jax.nn.logsumexp(jnp.take_along_axis(old.alpha, pair, axis=-1), axis=-1)
    after = jax.nn.logsumexp(jnp.take_along_axis(new.alpha, pair, axis=-1), axis=-1)
    rows = jnp.arange(new.alpha.shape[0])[:, None]
    alpha = new.alpha.at[rows, pair].add(-(after - before)[:, None])
    return new._replace(alpha=alpha)


def proxyless() -> Method:
    def weight_inputs(arch, key, epoch):
        return {"arch": sample_paths(key, arch.alpha)}

    def arch_loss(alpha, arch, key, epoch, forward, labels, hardware):
        pair, active_slot = two_paths(key, jax.lax.stop_gradient(alpha))
        gates, active, other = binary_gates(alpha, pair, active_slot)
        ce = cross_entropy(forward(gates=(gates, active, other)), labels)
        costs = hardware.expected(jax.nn.softmax(alpha, axis=-1))
        return hardware(ce, costs), {"ce": ce, "costs": costs, "pair": pair}

    return Method("proxyless", weight_inputs, arch_loss, post_update=keep_pair_mass)
