"""Basic layers whose parameters are initialized on the host, with no XLA compilation.

Initializing through `jax.random` compiles one small program per parameter shape (or one
huge program if the constructor is jitted): for a supernet with hundreds of parameters that
took 30-60 s on a 2-core CPU, longer than a smoke training run. Drawing initial values with
NumPy's generator, seeded from the model seed, is free, reproducible, and the same on every
backend. Only initialization moves to the host; every computation stays in JAX.
"""

from __future__ import annotations

import math

import jax.numpy as jnp
import numpy as np
from flax import nnx


class HostInit:
    """A seeded stream of initial values; the construction order of a model fixes its draws."""

    def __init__(self, seed: int):
        self._rng = np.random.default_rng(seed)

    def he_normal(self, shape: tuple[int, ...], fan_in: int) -> jnp.ndarray:
        """N(0, 2 / fan_in): He et al. 2015, for layers followed by ReLU."""
        std = math.sqrt(2.0 / fan_in)
        return jnp.asarray(self._rng.normal(0.0, std, shape).astype(np.float32))

    def uniform(self, shape: tuple[int, ...], bound: float) -> jnp.ndarray:
        return jnp.asarray(self._rng.uniform(-bound, bound, shape).astype(np.float32))


class BatchNorm(nnx.Module):
    """Batch normalization over all but the last axis (Ioffe & Szegedy 2015).

    Training: normalize with the batch's mean and variance and move the running averages
    `r <- m * r + (1 - m) * batch`; evaluation: normalize with the running averages.
    """

    def __init__(self, features: int, momentum: float = 0.9, epsilon: float = 1e-5):
        self.momentum = momentum
        self.epsilon = epsilon
        self.scale = nnx.Param(jnp.asarray(np.ones(features, np.float32)))
        self.bias = nnx.Param(jnp.asarray(np.zeros(features, np.float32)))
        self.mean = nnx.BatchStat(jnp.asarray(np.zeros(features, np.float32)))
        self.var = nnx.BatchStat(jnp.asarray(np.ones(features, np.float32)))

    def __call__(self, x, train: bool):
        if train:
            axes = tuple(range(x.ndim - 1))
            mean = jnp.mean(x, axis=axes)
            var = jnp.mean(jnp.square(x - mean), axis=axes)
            m = self.momentum
            self.mean[...] = m * self.mean[...] + (1 - m) * mean
            self.var[...] = m * self.var[...] + (1 - m) * var
        else:
            mean, var = self.mean[...], self.var[...]
        return (x - mean) * (self.scale[...] * jnp.reciprocal(jnp.sqrt(var + self.epsilon))) + self.bias[...]


class Dense(nnx.Module):
    """`y = x @ W + b`, W ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)) as in PyTorch's default."""

    def __init__(self, features_in: int, features_out: int, init: HostInit):
        bound = 1.0 / math.sqrt(features_in)
        self.kernel = nnx.Param(init.uniform((features_in, features_out), bound))
        self.bias = nnx.Param(init.uniform((features_out,), bound))

    def __call__(self, x):
        return x @ self.kernel[...] + self.bias[...]
