"""Knowledge distillation from the largest network to the sampled subnets.

Hinton et al., "Distilling the Knowledge in a Neural Network", 2015; as OFA uses it
(Cai et al., ICLR 2020, Sec. 3.2), the teacher is the largest network trained in the first
phase, and a subnet's loss is

    L = CE(y, s) + kd_ratio * KD,     KD = mean_b sum_k -softmax(t_b / T)_k * log softmax(s_b / T)_k

with s and t the student's and teacher's logits and temperature T (OFA: T = 1).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float


def soft_cross_entropy(student: Float[Array, "b k"], teacher: Float[Array, "b k"],
                       temperature: float = 1.0) -> Float[Array, ""]:
    """Cross-entropy of the student's distribution against the teacher's soft targets."""
    target = jax.nn.softmax(jax.lax.stop_gradient(teacher) / temperature, axis=-1)
    return -jnp.mean(jnp.sum(target * jax.nn.log_softmax(student / temperature, axis=-1), axis=-1))
