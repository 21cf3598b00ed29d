"""DARTS (Liu et al., "DARTS: Differentiable Architecture Search", ICLR 2019), first order.

Every layer outputs the softmax(alpha)-weighted sum of all candidates, for weights and
architecture alike; the architecture step minimizes the held-out loss plus the hardware
term of the expected cost `E[c] = sum p * lut`:

    L(alpha) = CE(w, alpha; val) + hardware(E_softmax(alpha)[c])

First order: the weights are not unrolled through a virtual step (DARTS' 1st-order variant).
"""

import jax

from supernet.methods.base import Method, cross_entropy


def darts() -> Method:
    def weight_inputs(arch, key, epoch):
        return {"weights": jax.nn.softmax(arch.alpha, axis=-1)}

    def arch_loss(alpha, arch, key, epoch, forward, labels, hardware):
        probs = jax.nn.softmax(alpha, axis=-1)
        ce = cross_entropy(forward(weights=probs), labels)
        costs = hardware.expected(probs)
        return hardware(ce, costs), {"ce": ce, "costs": costs}

    return Method("darts", weight_inputs, arch_loss)
