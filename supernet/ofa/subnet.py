"""A standalone Once-for-All MobileNetV3 subnet: static shapes, only the layers it uses.

This is the network that gets profiled, fine-tuned and deployed. Its layers are those of
Once-for-All's MobileNetV3 (Cai et al., ICLR 2020; Howard et al., "Searching for
MobileNetV3", ICCV 2019) and exactly what `costs.analytic` counts:

    Stem       3x3 conv (stride `stem_stride`) -> BN -> h_swish
               first block: 3x3 depthwise -> BN -> ReLU -> 1x1 conv -> BN (+ x when widths match)
    blocks     per active block (`MBConvBlock`), mid = make_divisible(round(c_in * e), 8):
               1x1 conv c_in->mid -> BN -> act;  kxk depthwise (stride s) -> BN -> act;
               [squeeze-excite, hidden make_divisible(mid // 4, 8)];  1x1 conv mid->c_out -> BN
               (+ x when stride 1 and c_in == c_out)
    Head       1x1 conv -> BN -> h_swish -> global average pool -> feature mix (linear, no bias,
               no BN) -> h_swish -> classifier (linear with bias)

Convolutions are 'SAME'-padded (XLA's convention; for stride 2 on an even side PyTorch's
symmetric `k // 2` padding shifts the sampling grid by one pixel, the sizes are equal).
Every module takes `train` explicitly: batch statistics in training, running averages in
evaluation.

The supernet (`supernet.ofa.supernet`) runs these same modules on sliced weights, so
`extract` is a copy of slices and a subnet in evaluation mode computes what the supernet
computes for its architecture.

    >>> space = get_space("ofa_mbv3", "tiny")
    >>> net = OFASubnet(space, space.sample(key, 1)[0], HostInit(0))
    >>> logits = net(images, train=False)        # images: [n, r, r, 1] at the arch's resolution
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from supernet.blocks import DepthwiseConv, PointwiseConv, batch_norm
from supernet.layers import Dense, HostInit
from supernet.ofa.layers import ACTIVATIONS, Linear, SqueezeExcite, hard_swish, mid_channels
from supernet.spaces.ofa_mbv3 import BlockSpec, OFAConfig, OFAMobileNetV3Space


class MBConvBlock(nnx.Module):
    """One inverted-residual block with a fixed kernel and expand ratio (see the module docstring)."""

    def __init__(self, spec: BlockSpec, kernel: int, expand: int, init: HostInit):
        mid = mid_channels(spec.in_channels, expand)
        self.activation = spec.activation
        self.residual = spec.has_residual
        self.expand = PointwiseConv(spec.in_channels, mid, init)
        self.bn1 = batch_norm(mid)
        self.depthwise = DepthwiseConv(mid, kernel, init, stride=spec.stride)
        self.bn2 = batch_norm(mid)
        self.se = SqueezeExcite(mid, init) if spec.use_se else None
        self.project = PointwiseConv(mid, spec.out_channels, init)
        self.bn3 = batch_norm(spec.out_channels)

    def __call__(self, x, train: bool):
        act = ACTIVATIONS[self.activation]
        y = act(self.bn1(self.expand(x), train))
        y = act(self.bn2(self.depthwise(y), train))
        if self.se is not None:
            y = self.se(y)
        y = self.bn3(self.project(y), train)
        return x + y if self.residual else y


def make_block(spec: BlockSpec, kernel: int, expand: int, init: HostInit) -> MBConvBlock:
    """The block `spec` with kernel size `kernel` and expand ratio `expand` (values, not indices)."""
    if kernel % 2 == 0 or kernel < 1:
        raise ValueError(f"block {spec.index}: kernel must be a positive odd size, got {kernel}")
    if expand < 1:
        raise ValueError(f"block {spec.index}: expand ratio must be >= 1, got {expand}")
    return MBConvBlock(spec, kernel, expand, init)


class Stem(nnx.Module):
    """3x3 conv -> BN -> h_swish, then the fixed first block (expand ratio 1, no SE, ReLU)."""

    def __init__(self, config: OFAConfig, init: HostInit):
        c_in, c_stem, c_first = config.in_channels, config.stem_channels, config.first_block_channels
        self.stride = config.stem_stride
        self.kernel = nnx.Param(init.he_normal((3, 3, c_in, c_stem), fan_in=9 * c_in))
        self.bn = batch_norm(c_stem)
        self.depthwise = DepthwiseConv(c_stem, 3, init)
        self.bn_depthwise = batch_norm(c_stem)
        self.project = PointwiseConv(c_stem, c_first, init)
        self.bn_project = batch_norm(c_first)
        self.residual = c_stem == c_first

    def __call__(self, x, train: bool):
        y = jax.lax.conv_general_dilated(x, self.kernel[...], (self.stride, self.stride), "SAME",
                                         dimension_numbers=("NHWC", "HWIO", "NHWC"))
        y = hard_swish(self.bn(y, train))
        z = jax.nn.relu(self.bn_depthwise(self.depthwise(y), train))
        z = self.bn_project(self.project(z), train)
        return y + z if self.residual else z


class Head(nnx.Module):
    """Final expand 1x1 conv -> BN -> h_swish -> pool -> feature mix -> h_swish -> classifier."""

    def __init__(self, config: OFAConfig, init: HostInit):
        last = config.widths[-1] if config.widths else config.first_block_channels
        self.final_expand = PointwiseConv(last, config.final_expand_channels, init)
        self.bn = batch_norm(config.final_expand_channels)
        self.feature_mix = Linear(config.final_expand_channels, config.feature_mix_channels, init, use_bias=False)
        self.classifier = Dense(config.feature_mix_channels, config.num_classes, init)

    def __call__(self, x, train: bool):
        y = hard_swish(self.bn(self.final_expand(x), train))
        y = hard_swish(self.feature_mix(jnp.mean(y, axis=(1, 2))))
        return self.classifier(y)


def check_images(config: OFAConfig, x, resolution: int | None = None) -> None:
    """A readable error for images that are not NHWC with the space's channels (and size)."""
    if x.ndim != 4 or x.shape[-1] != config.in_channels:
        raise ValueError(f"images must be NHWC with {config.in_channels} channel(s), got shape {x.shape}")
    if resolution is not None and x.shape[1:3] != (resolution, resolution):
        raise ValueError(f"this architecture takes {resolution}x{resolution} images, got {x.shape[1]}x{x.shape[2]} "
                         "(resize the batch to the architecture's resolution first)")


class OFASubnet(nnx.Module):
    """The static network of one architecture of an OFA MobileNetV3 space."""

    def __init__(self, space: OFAMobileNetV3Space, arch, init: HostInit):
        arch = space.validate(np.asarray(arch))
        if arch.ndim != 1:
            raise ValueError(f"a subnet takes one architecture, got shape {arch.shape}")
        c = space.macro
        self.config = c  # frozen dataclass: hashable, part of the graph definition
        self.arch = tuple(int(a) for a in arch)  # static: this module *is* one architecture
        self.resolution = c.resolutions[self.arch[space.resolution_index]]
        active = _active_block_indices(space, arch)
        self.block_indices = active  # which supernet blocks these are (extraction)
        specs = space.block_specs()
        self.stem = Stem(c, init)
        self.blocks = nnx.List([
            make_block(specs[b], c.kernels[arch[space.kernel_slice][b]], c.expands[arch[space.expand_slice][b]], init)
            for b in active
        ])
        self.head = Head(c, init)

    def __call__(self, x, train: bool = False):
        check_images(self.config, x, self.resolution)
        y = self.stem(x, train)
        for block in self.blocks:
            y = block(y, train)
        return self.head(y, train)


def _active_block_indices(space: OFAMobileNetV3Space, arch: np.ndarray) -> tuple[int, ...]:
    """Indices of the blocks that exist under the arch's depths (slot < depth of its stage)."""
    depths = np.asarray(space.macro.depths)[arch[space.depth_slice]]
    return tuple(spec.index for spec in space.block_specs() if spec.slot < depths[spec.stage])


def extract(supernet, arch) -> OFASubnet:
    """The subnet `arch` of an `OFASupernet`, with its (sliced, transformed) weights and BN statistics.

    Stem and head are copied; each active block gets the leading channels of its elastic
    block's weights and the effective depthwise kernel (`OFASupernet`'s branch computes the
    same slices), so in evaluation mode `extract(s, a)(x)` equals `s(x, a)`.
    """
    from supernet.ofa.layers import ShapeInit  # every parameter is overwritten below

    space = OFAMobileNetV3Space(supernet.config)
    subnet = OFASubnet(space, arch, ShapeInit())
    arch = np.asarray(subnet.arch)
    c = space.macro
    nnx.update(subnet.stem, nnx.state(supernet.stem))
    nnx.update(subnet.head, nnx.state(supernet.head))
    for block, b in zip(subnet.blocks, subnet.block_indices):
        kernel = c.kernels[arch[space.kernel_slice][b]]
        expand = c.expands[arch[space.expand_slice][b]]
        nnx.update(block, nnx.state(supernet.blocks[b].static(kernel, expand)))
    return subnet
