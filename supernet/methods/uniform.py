"""Uniform single-path sampling (SPOS; Guo et al., "Single Path One-Shot NAS", ECCV 2020).

Each weight step trains one path drawn uniformly per layer, so every candidate is trained
about equally and the supernet ranks subnets fairly for a later searcher. No architecture
step: the search happens afterwards (`hwnas search`).
"""

import jax
import jax.numpy as jnp

from supernet.methods.base import Method


def uniform() -> Method:
    def weight_inputs(arch, key, epoch):
        layers, candidates = arch.alpha.shape
        return {"arch": jax.random.randint(key, (layers,), 0, candidates, dtype=jnp.int32)}

    return Method("uniform", weight_inputs)
