"""Candidate blocks and fixed layers, as Flax NNX modules.

Every module takes `train` explicitly (batch statistics in training, running averages in
evaluation) instead of carrying a mode flag: what varies per call is an argument. Each
candidate owns its BatchNorm statistics, so training one candidate never shifts another's
(the "no leakage between candidates" rule of weight-sharing supernets).

Convolutions go through `supernet.ops`, which picks the fastest correct formulation for the
current backend (XLA:CPU's grouped convolution is slow).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from supernet import ops
from supernet.layers import BatchNorm, Dense, HostInit
from supernet.spaces.fbnet import Candidate, FBNetConfig, LayerSpec

BN_MOMENTUM = 0.9  # running averages follow the short runs NAS uses; Flax's 0.99 lags


def batch_norm(features: int) -> BatchNorm:
    return BatchNorm(features, momentum=BN_MOMENTUM)


class PointwiseConv(nnx.Module):
    """1x1 convolution with `groups` groups, stride by subsampling (exact for a 1x1 kernel)."""

    def __init__(self, c_in: int, c_out: int, init: HostInit, *, groups: int = 1, stride: int = 1):
        if c_in % groups or c_out % groups:
            raise ValueError(f"channels {c_in}->{c_out} are not divisible by groups={groups}")
        self.stride = stride
        self.kernel = nnx.Param(init.he_normal((groups, c_in // groups, c_out // groups), fan_in=c_in // groups))

    def __call__(self, x):
        if self.stride > 1:
            x = x[:, :: self.stride, :: self.stride, :]
        return ops.grouped_pointwise_conv(x, self.kernel[...])


class DepthwiseConv(nnx.Module):
    """k x k depthwise convolution, 'SAME' padding."""

    def __init__(self, channels: int, kernel_size: int, init: HostInit, *, stride: int = 1):
        self.stride = stride
        self.kernel = nnx.Param(init.he_normal((kernel_size, kernel_size, channels), fan_in=kernel_size**2))

    def __call__(self, x):
        return ops.depthwise_conv2d(x, self.kernel[...], stride=self.stride)


class ConvBNReLU(nnx.Module):
    """Dense k x k convolution -> BN -> ReLU (the stem)."""

    def __init__(self, c_in: int, c_out: int, kernel_size: int, init: HostInit, *, stride: int = 1):
        self.stride = stride
        self.kernel = nnx.Param(init.he_normal((kernel_size, kernel_size, c_in, c_out), fan_in=kernel_size**2 * c_in))
        self.bn = batch_norm(c_out)

    def __call__(self, x, train: bool):
        y = jax.lax.conv_general_dilated(
            x, self.kernel[...], (self.stride, self.stride), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")
        )
        return jax.nn.relu(self.bn(y, train))


def channel_shuffle(x, groups: int):
    """Interleave the channels of `groups` groups (ShuffleNet), so grouped 1x1 convs mix."""
    if groups == 1:
        return x
    *lead, c = x.shape
    return x.reshape(*lead, groups, c // groups).swapaxes(-1, -2).reshape(*lead, c)


class MBConv(nnx.Module):
    """FBNet candidate: 1x1 (g) -> BN -> ReLU -> [shuffle] -> kxk dw (s) -> BN -> ReLU -> 1x1 (g) -> BN (+ x)."""

    def __init__(self, spec: LayerSpec, cand: Candidate, init: HostInit):
        mid = spec.in_channels * cand.expand
        self.groups = cand.groups
        self.residual = spec.keeps_shape
        self.expand = PointwiseConv(spec.in_channels, mid, init, groups=cand.groups)
        self.bn1 = batch_norm(mid)
        self.depthwise = DepthwiseConv(mid, cand.kernel, init, stride=spec.stride)
        self.bn2 = batch_norm(mid)
        self.project = PointwiseConv(mid, spec.out_channels, init, groups=cand.groups)
        self.bn3 = batch_norm(spec.out_channels)

    def __call__(self, x, train: bool):
        y = jax.nn.relu(self.bn1(self.expand(x), train))
        y = channel_shuffle(y, self.groups)
        y = jax.nn.relu(self.bn2(self.depthwise(y), train))
        y = self.bn3(self.project(y), train)
        return x + y if self.residual else y


class Identity(nnx.Module):
    """`skip` where the layer keeps its shape."""

    def __call__(self, x, train: bool):
        return x


class Projection(nnx.Module):
    """`skip` where the shape changes: strided 1x1 convolution -> BN (the cheapest map)."""

    def __init__(self, spec: LayerSpec, init: HostInit):
        self.conv = PointwiseConv(spec.in_channels, spec.out_channels, init, stride=spec.stride)
        self.bn = batch_norm(spec.out_channels)

    def __call__(self, x, train: bool):
        return self.bn(self.conv(x), train)


def make_candidate(spec: LayerSpec, cand: Candidate, init: HostInit) -> nnx.Module:
    if cand.is_skip:
        return Identity() if spec.keeps_shape else Projection(spec, init)
    return MBConv(spec, cand, init)


class Head(nnx.Module):
    """1x1 conv -> BN -> ReLU -> global average pool -> linear classifier."""

    def __init__(self, c_in: int, c_head: int, num_classes: int, init: HostInit):
        self.conv = PointwiseConv(c_in, c_head, init)
        self.bn = batch_norm(c_head)
        self.classifier = Dense(c_head, num_classes, init)

    def __call__(self, x, train: bool):
        y = jax.nn.relu(self.bn(self.conv(x), train))
        return self.classifier(jnp.mean(y, axis=(1, 2)))


def stem_and_head(config: FBNetConfig, init: HostInit) -> tuple[ConvBNReLU, Head]:
    """The fixed layers around the searchable ones (shared by supernet and subnet)."""
    stem = ConvBNReLU(config.in_channels, config.stem_channels, 3, init, stride=config.stem_stride)
    last = config.channels[-1] if sum(config.layers) else config.stem_channels
    return stem, Head(last, config.head_channels, config.num_classes, init)
