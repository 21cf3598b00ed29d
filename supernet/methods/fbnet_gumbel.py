"""FBNet's Gumbel-softmax relaxation (Wu et al., "FBNet", CVPR 2019).

Each layer mixes its candidates with weights drawn from the Gumbel-softmax,

    m = softmax((alpha + g) / tau),   g ~ Gumbel(0, 1),

annealed by `tau = tau0 * exp(-decay * epoch)` (FBNet: tau0 = 5, decay = 0.045). The hard
variant uses the one-hot of argmax(m) in the forward pass and m's gradient in the backward
(straight-through). FBNet's loss uses the latency of the sampled mixture,

    L = CE * a * log(LAT)^b,  LAT = sum_l sum_c m[l, c] * lut[l, c]

(`costs.hardware_loss`, form "fbnet"); other forms of the hardware term also apply.
"""

import jax
import jax.numpy as jnp

from supernet.methods.base import Method, cross_entropy


def gumbel_softmax(key, alpha, tau, hard: bool):
    """Reproducible per key; one-hot in the forward pass when `hard`."""
    soft = jax.nn.softmax((alpha + jax.random.gumbel(key, alpha.shape)) / tau, axis=-1)
    if not hard:
        return soft
    one_hot = jax.nn.one_hot(jnp.argmax(soft, axis=-1), alpha.shape[-1], dtype=soft.dtype)
    return one_hot + soft - jax.lax.stop_gradient(soft)


def fbnet(tau0: float = 5.0, decay: float = 0.045, hard: bool = False) -> Method:
    def temperature(epoch):
        return tau0 * jnp.exp(-decay * epoch)

    def weight_inputs(arch, key, epoch):
        return {"weights": jax.lax.stop_gradient(gumbel_softmax(key, arch.alpha, temperature(epoch), hard))}

    def arch_loss(alpha, arch, key, epoch, forward, labels, hardware):
        m = gumbel_softmax(key, alpha, temperature(epoch), hard)
        ce = cross_entropy(forward(weights=m), labels)
        costs = hardware.expected(m)
        return hardware(ce, costs), {"ce": ce, "costs": costs}

    return Method("fbnet", weight_inputs, arch_loss, temperature=temperature)
