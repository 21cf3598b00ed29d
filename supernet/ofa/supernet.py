"""The Once-for-All MobileNetV3 supernet: every subnet of the space in one set of weights.

Cai et al., "Once-for-All", ICLR 2020. The architecture is data: `model(x, arch, train)`
takes `arch` as a traced int32 vector (`kernel0..19, expand0..19, depth0..4, resolution`),
so one XLA compilation per input resolution serves every subnet. The images must already be
at the architecture's resolution (`resize`): the resolution entry picks the input shape,
which the caller controls, and is otherwise unused here.

Compute follows the active subnet:

* depth: a block beyond its stage's depth is skipped by `lax.cond` (no compute); the first
  `min(depths)` blocks of a stage always run and have no condition at all;
* kernel and expand: each block runs `lax.switch` over its `|kernels| x |expands|` static-shape
  branches; branch (k, e) slices the leading `mid(e)` middle channels of every weight and the
  effective k x k depthwise kernel (`supernet.ofa.elastic`), merges them into the same
  `MBConvBlock` a standalone subnet uses, and runs it. The switch recomputes the taken branch
  in the backward pass (`supernet.ofa.switch`), so gradients keep one branch's activations.

Batch norm is shared across widths and kernel sizes, as in OFA: a branch normalizes its
leading channels with the leading entries of the block's BN, and in training updates the
running statistics of those channels only. The statistics therefore mix subnets, and a subnet
needs BN recalibration (`supernet.ofa.recalibrate`) before it is evaluated.

    >>> model = OFASupernet(space, HostInit(0))
    >>> graphdef, params, stats = nnx.split(model, nnx.Param, nnx.BatchStat)
    >>> @jax.jit
    ... def logits(params, stats, x, arch):
    ...     return nnx.merge(graphdef, params, stats)(x, arch, train=False)
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jaxtyping import Array, Float, Int

from supernet.layers import HostInit
from supernet.ofa.elastic import KernelTransforms, active_blocks, elastic_kernel
from supernet.ofa.layers import ShapeInit, mid_channels
from supernet.ofa.subnet import Head, MBConvBlock, Stem, check_images, make_block
from supernet.ofa.switch import switch_with_recompute
from supernet.spaces.ofa_mbv3 import BlockSpec, OFAConfig, OFAMobileNetV3Space


@functools.lru_cache(maxsize=None)
def space_of(config: OFAConfig) -> OFAMobileNetV3Space:
    return OFAMobileNetV3Space(config)


@functools.lru_cache(maxsize=None)
def _static_shapes(spec: BlockSpec, kernel: int, expand: int):
    """Parameter and statistic shapes of the static block (spec, kernel, expand), as states."""
    _, params, stats = nnx.split(make_block(spec, kernel, expand, ShapeInit()), nnx.Param, nnx.BatchStat)
    return params, stats


def _leading(shape: tuple[int, ...]) -> tuple[slice, ...]:
    return tuple(slice(0, n) for n in shape)


def sliced_block(graphdef: nnx.GraphDef, spec: BlockSpec, kernels: tuple[int, ...], kernel: int, expand: int,
                 params, matrices, stats) -> MBConvBlock:
    """The static block (kernel, expand) whose weights are slices of the largest block's.

    Every tensor keeps its leading entries along each axis (the leading `mid(e)` middle
    channels, the leading squeeze-excite units); the depthwise kernel is the effective
    `kernel x kernel` one of `elastic_kernel`, restricted to the leading channels.
    `graphdef` is the largest block's: a graph definition holds no shapes, and taking it from
    the live module keeps its static settings (BN momentum, which recalibration changes).
    """
    like_params, like_stats = _static_shapes(spec, kernel, expand)
    take = lambda full, like: full[_leading(like.shape)]  # noqa: E731
    block = nnx.merge(graphdef, jax.tree.map(take, params, like_params), jax.tree.map(take, stats, like_stats))
    depthwise = elastic_kernel(params["depthwise"]["kernel"][...], matrices, kernels, kernel)
    block.depthwise.kernel[...] = depthwise[:, :, :mid_channels(spec.in_channels, expand)]
    return block


def _run_branch(graphdef, spec, kernels, kernel, expand, train, weights, stats, x):
    """Branch (kernel, expand) of an elastic block: `(params, matrices), stats, x -> (y, stats)`."""
    params, matrices = weights
    block = sliced_block(graphdef, spec, kernels, kernel, expand, params, matrices, stats)
    y = block(x, train)
    if not train:
        return y, stats
    updated = nnx.state(block, nnx.BatchStat)
    write = lambda full, part: full.at[_leading(part.shape)].set(part)  # noqa: E731
    return y, jax.tree.map(write, stats, updated)


class ElasticBlock(nnx.Module):
    """One elastic MBConv block: the largest block's weights plus its kernel transforms."""

    def __init__(self, spec: BlockSpec, config: OFAConfig, init: HostInit):
        self.spec = spec
        self.kernels, self.expands = config.kernels, config.expands
        self.block = make_block(spec, max(config.kernels), max(config.expands), init)
        self.kernel_transforms = KernelTransforms(config.kernels)
        for k in config.kernels:  # filled here, not while tracing: otherwise the first program traced
            for e in config.expands:  # holds the templates' values as (dead) constants, and its
                _static_shapes(spec, k, e)  # compile-cache key differs from every later identical one

    def static(self, kernel: int, expand: int) -> MBConvBlock:
        """This block at one (kernel, expand), as a static module (values, not indices)."""
        graphdef, params, stats = nnx.split(self.block, nnx.Param, nnx.BatchStat)
        return sliced_block(graphdef, self.spec, self.kernels, kernel, expand, params,
                            self.kernel_transforms.values(), stats)

    def __call__(self, x, kernel_index, expand_index, active, train: bool):
        """Run branch (kernel_index, expand_index); skip the block when `active` is False (None: always runs)."""
        graphdef, params, stats = nnx.split(self.block, nnx.Param, nnx.BatchStat)
        weights = (params, self.kernel_transforms.values())
        branches = tuple(functools.partial(_run_branch, graphdef, self.spec, self.kernels, k, e, train)
                         for k in self.kernels for e in self.expands)
        index = kernel_index * len(self.expands) + expand_index

        def run(operands):
            return switch_with_recompute(branches, index, *operands)

        if active is None:
            y, stats = run((weights, stats, x))
        else:
            y, stats = jax.lax.cond(active, run, lambda operands: (operands[2], operands[1]), (weights, stats, x))
        if train:  # evaluation leaves the statistics alone (and may run where they are read-only)
            nnx.update(self.block, stats)
        return y


class OFASupernet(nnx.Module):
    """Stem, one `ElasticBlock` per block of the space, head (see the module docstring)."""

    def __init__(self, space: OFAMobileNetV3Space, init: HostInit):
        c = space.macro
        self.config = c  # frozen dataclass: hashable, part of the graph definition
        min_depth = min(c.depths)
        for spec in space.block_specs():
            if spec.slot >= min_depth and not spec.has_residual:
                raise ValueError(f"block {spec.index} can be skipped but changes the shape; depth cannot skip it")
        self.stem = Stem(c, init)
        self.blocks = nnx.List([ElasticBlock(spec, c, init) for spec in space.block_specs()])
        self.head = Head(c, init)

    @property
    def space(self) -> OFAMobileNetV3Space:
        return space_of(self.config)

    def __call__(self, x: Float[Array, "n r r c"], arch: Int[Array, " d"], train: bool = False
                 ) -> Float[Array, "n classes"]:
        space = self.space
        check_arch(space, arch)
        check_images(self.config, x, _concrete_resolution(space, arch))
        kernel, expand = arch[space.kernel_slice], arch[space.expand_slice]
        active = active_blocks(space, arch)
        min_depth = min(self.config.depths)
        y = self.stem(x, train)
        for b, block in enumerate(self.blocks):
            y = block(y, kernel[b], expand[b], None if block.spec.slot < min_depth else active[b], train)
        return self.head(y, train)


def check_arch(space: OFAMobileNetV3Space, arch) -> None:
    """A readable error for an architecture of the wrong shape or dtype (values are checked when concrete)."""
    shape, dtype = np.shape(arch), getattr(arch, "dtype", None)
    if shape != (space.num_decisions,):
        raise ValueError(f"arch must be one int vector of shape ({space.num_decisions},) "
                         f"(kernel[{space.num_blocks}], expand[{space.num_blocks}], depth[{space.num_stages}], "
                         f"resolution), got shape {shape}")
    if dtype is None or not jnp.issubdtype(dtype, jnp.integer):
        raise ValueError(f"arch must hold integer choice indices, got dtype {dtype}")
    if not isinstance(arch, jax.core.Tracer):
        space.validate(np.asarray(arch)[None])


def _concrete_resolution(space: OFAMobileNetV3Space, arch) -> int | None:
    """The arch's resolution when it is known at trace time (eager calls), else None."""
    if isinstance(arch, jax.core.Tracer):
        return None
    return space.macro.resolutions[int(np.asarray(arch)[space.resolution_index])]


def resize(images: Float[Array, "n h w c"], resolution: int) -> Float[Array, "n r r c"]:
    """Images resized (bilinear) to `resolution x resolution`, as OFA feeds each resolution."""
    n, h, w, c = images.shape
    if (h, w) == (resolution, resolution):
        return images
    return jax.image.resize(images, (n, resolution, resolution, c), method="bilinear")
