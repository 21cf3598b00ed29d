"""MobileNetV3's activations, widths and the layers its blocks share (Howard et al. 2019).

Howard et al., "Searching for MobileNetV3", ICCV 2019: the hard versions of swish and the
sigmoid replace `sigmoid(x)` by the piecewise-linear `relu6(x + 3) / 6`, cheap on every
device and exact at 0 and outside [-3, 3]:

    h_sigmoid(x) = relu6(x + 3) / 6,        h_swish(x) = x * h_sigmoid(x).

Widths follow Once-for-All (Cai et al., ICLR 2020) and `costs.analytic._ofa_block`: a block
with `c_in` inputs and expand ratio `e` has `mid = make_divisible(round(c_in * e), 8)` middle
channels, and its squeeze-excite `make_divisible(mid // 4, 8)` hidden units.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from flax import nnx

from supernet.layers import HostInit
from supernet.spaces.ofa_mbv3 import make_divisible

SE_REDUCTION = 4


def hard_sigmoid(x):
    """`relu6(x + 3) / 6`."""
    return jax.nn.relu6(x + 3.0) / 6.0


def hard_swish(x):
    """`x * relu6(x + 3) / 6`."""
    return x * hard_sigmoid(x)


ACTIVATIONS = {"relu": jax.nn.relu, "h_swish": hard_swish}


def mid_channels(in_channels: int, expand: int) -> int:
    """Middle (expanded) width of an MBConv block: `make_divisible(round(c_in * e), 8)`."""
    return make_divisible(round(in_channels * expand), 8)


def se_channels(mid: int) -> int:
    """Hidden width of a squeeze-excite on `mid` channels: `make_divisible(mid // 4, 8)`."""
    return make_divisible(mid // SE_REDUCTION, 8)


class Linear(nnx.Module):
    """`y = x @ W (+ b)`, W ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)) as in PyTorch's default.

    MobileNetV3's feature-mix layer has no bias (and no BN), so the bias is optional here,
    unlike `supernet.layers.Dense`.
    """

    def __init__(self, features_in: int, features_out: int, init: HostInit, *, use_bias: bool = True):
        bound = 1.0 / math.sqrt(features_in)
        self.kernel = nnx.Param(init.uniform((features_in, features_out), bound))
        self.bias = nnx.Param(init.uniform((features_out,), bound)) if use_bias else None

    def __call__(self, x):
        y = x @ self.kernel[...]
        return y if self.bias is None else y + self.bias[...]


class SqueezeExcite(nnx.Module):
    """Channel gating (Hu et al. 2018) as in MobileNetV3: `x * h_sigmoid(W2 relu(W1 pool(x) + b1) + b2)`."""

    def __init__(self, channels: int, init: HostInit):
        hidden = se_channels(channels)
        self.reduce = Linear(channels, hidden, init)
        self.expand = Linear(hidden, channels, init)

    def __call__(self, x):
        pooled = jnp.mean(x, axis=(1, 2))  # [n, c]
        gate = hard_sigmoid(self.expand(jax.nn.relu(self.reduce(pooled))))
        return x * gate[:, None, None, :]


class ShapeInit:
    """A stand-in for `HostInit` that draws nothing: parameters are `jax.ShapeDtypeStruct`s.

    For modules built only for their structure (a graph definition, parameter shapes) or
    whose every parameter is overwritten right away (an extracted subnet).
    """

    def he_normal(self, shape: tuple[int, ...], fan_in: int) -> jax.ShapeDtypeStruct:
        return jax.ShapeDtypeStruct(shape, jnp.float32)

    def uniform(self, shape: tuple[int, ...], bound: float) -> jax.ShapeDtypeStruct:
        return jax.ShapeDtypeStruct(shape, jnp.float32)
