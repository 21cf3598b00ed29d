"""The three elastic dimensions of Once-for-All: kernel size, expand ratio (width), depth.

Cai et al., "Once-for-All: Train One Network and Specialize it for Efficient Deployment",
ICLR 2020, Sec. 3.2. Every subnet shares the weights of the largest network:

* Elastic kernel. Only the largest (7x7) depthwise kernel is stored. A smaller kernel is the
  centre crop of the next larger *effective* kernel, transformed by a learned matrix shared
  by all channels of the layer: with `crop_s(w)` the centre `s x s` window flattened to
  `[s*s, channels]`,

      w_5 = T_{7->5} crop_5(w_7)          T_{7->5}: 25 x 25
      w_3 = T_{5->3} crop_3(w_5)          T_{5->3}:  9 x  9   (from the transformed 5x5)

  The matrices start at the identity, so before training a smaller kernel is exactly the
  centre of the larger one (the paper's Fig. 3: plain centre cropping, then the transform
  lets the centre weights play a different role in the small kernel).

* Elastic expand. A block with expand ratio `e` uses the *leading* `mid(e)` channels of the
  largest middle dimension (`supernet.ofa.layers.mid_channels`), in every tensor that touches
  it: the expand conv's outputs, both BNs, the depthwise kernel, the squeeze-excite (whose
  hidden width shrinks with `mid`) and the project conv's inputs. Before widths are shrunk,
  `sort_middle_channels` reorders the middle channels by importance, the L1 norm of each
  channel's project-conv weights `sum_o |W_proj[c, o]|`, descending, so that the narrow subnets
  keep the most important channels. The permutation is applied to every tensor that touches
  the middle channels, so the network computes the same function before and after.

* Elastic depth. A stage of depth `d` runs its first `d` blocks; the blocks after them are
  skipped (they are identity-shaped: stride 1 and equal widths, so skipping is exact).
"""

from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jaxtyping import Array, Bool, Float, Int

from supernet.ofa.layers import mid_channels, se_channels
from supernet.spaces.ofa_mbv3 import OFAMobileNetV3Space


# ------------------------------------------------------------------------------- elastic kernel
def transform_pairs(kernels: Sequence[int]) -> tuple[tuple[int, int], ...]:
    """The (larger, smaller) kernel pairs that have a transform matrix, largest first: ((7, 5), (5, 3))."""
    ordered = sorted(kernels, reverse=True)
    return tuple(zip(ordered[:-1], ordered[1:]))


class KernelTransforms(nnx.Module):
    """The per-layer matrices `T_{k->s}` (`s*s x s*s`), initialized to the identity."""

    def __init__(self, kernels: Sequence[int]):
        self.matrices = nnx.List([nnx.Param(jnp.asarray(np.eye(s * s, dtype=np.float32)))
                                  for _, s in transform_pairs(kernels)])

    def values(self) -> tuple[Array, ...]:
        return tuple(m[...] for m in self.matrices)


def center_crop(kernel: Float[Array, "k k c"], size: int) -> Float[Array, "s s c"]:
    """The centre `size x size` window of a `[k, k, c]` kernel (k and size odd)."""
    start = (kernel.shape[0] - size) // 2
    return kernel[start:start + size, start:start + size]


def elastic_kernel(kernel: Float[Array, "k k c"], matrices: Sequence[Array], kernels: Sequence[int],
                   size: int) -> Float[Array, "s s c"]:
    """The effective `size x size` depthwise kernel from the largest one (see the module docstring).

    `matrices[i]` is the transform of `transform_pairs(kernels)[i]`. Each step is
    `w_s[:, c] = T @ crop_s(w_k)[:, c]` on the flattened window, at full float32 precision
    (the matrices are tiny; GPUs would otherwise round the product to TF32).
    """
    if size not in kernels:
        raise ValueError(f"kernel size {size} is not one of {tuple(kernels)}")
    if kernel.shape[0] != max(kernels):
        raise ValueError(f"expected the largest kernel ({max(kernels)}x{max(kernels)}), got shape {kernel.shape}")
    w = kernel
    for (larger, smaller), matrix in zip(transform_pairs(kernels), matrices):
        if larger == size:
            break
        flat = center_crop(w, smaller).reshape(smaller * smaller, -1)
        w = jnp.matmul(matrix, flat, precision=jax.lax.Precision.HIGHEST).reshape(smaller, smaller, -1)
    return w


# ------------------------------------------------------------------------------- elastic expand
def importance_order(importance: np.ndarray, keep_widths: Sequence[int] = ()) -> np.ndarray:
    """Channel permutation: most important first, without moving channels across `keep_widths`.

    With no `keep_widths` this is `argsort(-importance)` (stable). Once a narrower width has
    been trained (OFA's later expand phases), its leading channels form a group that later
    sorts must keep in front: channel `c` belongs to group `#{w in keep_widths : w <= c}`, and
    channels are ordered by group, then by importance descending within the group.
    """
    index = np.arange(len(importance))
    group = np.searchsorted(np.sort(np.asarray(keep_widths, int)), index, side="right")
    return np.lexsort((-np.asarray(importance), group))


def _permute(variable: nnx.Variable, order: np.ndarray, axis: int) -> None:
    variable[...] = jnp.take(variable[...], jnp.asarray(order), axis=axis)


def sort_middle_channels(block, keep_widths: Sequence[int] = ()) -> np.ndarray:
    """Reorder the middle channels of an `MBConvBlock` in place by importance; returns the order.

    Importance of middle channel `c`: `sum_o |W_project[c, o]|`. Every tensor indexed by the
    middle channels is permuted alike (expand conv outputs, BN 1 and 2 parameters and running
    statistics, depthwise kernel, squeeze-excite input and output, project conv inputs), so the
    block's function is unchanged. The squeeze-excite's hidden units are then sorted the same
    way by `sum_c |W_se_expand[h, c]|` (they shrink with the width too).
    """
    importance = np.abs(np.asarray(block.project.kernel[...])).sum(axis=(0, 2))
    order = importance_order(importance, keep_widths)
    _permute(block.expand.kernel, order, 2)
    for bn in (block.bn1, block.bn2):
        for variable in (bn.scale, bn.bias, bn.mean, bn.var):
            _permute(variable, order, 0)
    _permute(block.depthwise.kernel, order, 2)
    _permute(block.project.kernel, order, 1)
    if block.se is not None:
        se = block.se
        _permute(se.reduce.kernel, order, 0)
        _permute(se.expand.kernel, order, 1)
        _permute(se.expand.bias, order, 0)
        hidden = importance_order(np.abs(np.asarray(se.expand.kernel[...])).sum(axis=1),
                                  [se_channels(w) for w in keep_widths])
        _permute(se.reduce.kernel, hidden, 1)
        _permute(se.reduce.bias, hidden, 0)
        _permute(se.expand.kernel, hidden, 0)
    return order


def sort_channels(supernet, keep_expands: Sequence[int] = ()) -> None:
    """Sort the middle channels of every elastic block of an `OFASupernet` in place.

    OFA sorts before each expand phase. `keep_expands`: the expand ratios (values) below the
    largest that earlier phases already trained, whose channel groups must stay in front
    (e.g. `()` before the {4, 6} phase, `(4,)` before the {3, 4, 6} phase).
    """
    for elastic in supernet.blocks:
        spec = elastic.spec
        sort_middle_channels(elastic.block, [mid_channels(spec.in_channels, e) for e in keep_expands])


# -------------------------------------------------------------------------------- elastic depth
def active_blocks(space: OFAMobileNetV3Space, arch: Int[Array, " d"]) -> Bool[Array, " blocks"]:
    """Which blocks run under one architecture: slot < the depth of its stage (traceable)."""
    return space.active_blocks(jnp.asarray(arch, jnp.int32)[None])[0]
