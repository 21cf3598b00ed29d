"""ProxylessNAS, REINFORCE variant (Cai et al. 2019, Sec. 3.3; Williams 1992).

Sample a path per layer from p = softmax(alpha), evaluate it on a held-out batch without
gradients through the network, and reward it MnasNet-style (Tan et al. 2019):

    R = ACC * prod_k (c_k / T_k) ** w_k         (w_k < 0: slower than target is penalized)

The policy gradient with a moving-average baseline b is

    grad_alpha = -(R - b) * grad_alpha log p(path),    b <- m * b + (1 - m) * R,

so `arch_loss` returns `-(R - b) * log p(path)`. The hardware weights here are exponents
(default -0.07, MnasNet's); an absent hardware term makes R the accuracy.
"""

import jax
import jax.numpy as jnp

from supernet.methods.base import ArchState, Method, accuracy, sample_paths


def proxyless_rl(baseline_decay: float = 0.9) -> Method:
    def weight_inputs(arch, key, epoch):
        return {"arch": sample_paths(key, arch.alpha)}

    def arch_loss(alpha, arch, key, epoch, forward, labels, hardware):
        path = sample_paths(key, jax.lax.stop_gradient(alpha))
        acc = accuracy(jax.lax.stop_gradient(forward(arch=path)), labels)
        costs = hardware.cost(path)
        ratio = costs / jnp.asarray(hardware.targets, costs.dtype) if hardware.tables else costs
        reward = acc * jnp.prod(ratio ** jnp.asarray(hardware.weights, costs.dtype))
        # The first reward initializes the baseline, so early updates are not all positive.
        baseline = jnp.where(arch.baseline_ready > 0, arch.baseline, reward)
        logp = jnp.sum(jnp.take_along_axis(jax.nn.log_softmax(alpha, axis=-1), path[:, None], axis=-1))
        loss = -(reward - baseline) * logp
        return loss, {"reward": reward, "costs": costs, "accuracy": acc,
                      "baseline": baseline_decay * baseline + (1 - baseline_decay) * reward}

    def update_baseline(old: ArchState, new: ArchState, aux) -> ArchState:
        return new._replace(baseline=aux["baseline"], baseline_ready=jnp.ones_like(new.baseline_ready))

    return Method("proxyless_rl", weight_inputs, arch_loss, post_update=update_baseline)
