"""Once-for-All MobileNetV3 space: elastic kernel, expand ratio, depth and resolution.

Cai et al., "Once-for-All: Train One Network and Specialize it for Efficient Deployment",
ICLR 2020. After a fixed stem and first block come 5 stages of up to 4 MBConv blocks; each
block picks a kernel {3,5,7} and an expand ratio {3,4,6}, each stage a depth {2,3,4}, and the
network an input resolution.

The vector has 46 entries: `kernel0..19, expand0..19, depth0..4, resolution`, each an index
into its choices. It keeps an entry for every block, as OFA's public records do
(`{"ks": [20], "e": [20], "d": [5], "r": px}`), so `from_public`/`to_public` round-trip those
records unchanged. Blocks beyond a stage's depth do not exist in the network: their entries
are don't-cares, and `canonical` sets them to choice 0 so that equal networks compare equal.
`size` counts distinct networks, ((3*3)^2 + (3*3)^3 + (3*3)^4)^5 * |resolutions|.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Int

from supernet.spaces.base import Decision, SearchSpace


@dataclasses.dataclass(frozen=True)
class OFAConfig:
    """Macro-architecture of the OFA MobileNetV3 supernet (defaults: OFA's ImageNet w1.0)."""

    stem_channels: int = 16
    stem_stride: int = 2
    first_block_channels: int = 16
    widths: tuple[int, ...] = (24, 40, 80, 112, 160)
    strides: tuple[int, ...] = (2, 2, 2, 1, 2)
    use_se: tuple[bool, ...] = (False, True, False, True, True)
    activations: tuple[str, ...] = ("relu", "relu", "h_swish", "h_swish", "h_swish")
    kernels: tuple[int, ...] = (3, 5, 7)
    expands: tuple[int, ...] = (3, 4, 6)
    depths: tuple[int, ...] = (2, 3, 4)
    final_expand_channels: int = 960
    feature_mix_channels: int = 1280
    resolutions: tuple[int, ...] = tuple(range(128, 225, 4))
    in_channels: int = 3
    num_classes: int = 1000

    def __post_init__(self):
        n = len(self.widths)
        if not (len(self.strides) == len(self.use_se) == len(self.activations) == n):
            raise ValueError("OFAConfig: widths, strides, use_se and activations need one entry per stage")
        for name in ("kernels", "expands", "depths", "resolutions"):
            values = getattr(self, name)
            if not values or list(values) != sorted(set(values)):
                raise ValueError(f"OFAConfig: {name} must be a non-empty increasing tuple, got {values}")
        if any(k % 2 == 0 for k in self.kernels):
            raise ValueError(f"OFAConfig: kernels must be odd, got {self.kernels}")
        if min(self.depths) < 1:
            raise ValueError(f"OFAConfig: depths must be >= 1, got {self.depths}")
        bad = [a for a in self.activations if a not in ("relu", "h_swish")]
        if bad:
            raise ValueError(f"OFAConfig: unknown activation {bad[0]!r}; use 'relu' or 'h_swish'")

    @property
    def max_depth(self) -> int:
        return max(self.depths)


OFA_PRESETS = {
    "imagenet": OFAConfig(),
    "cifar": OFAConfig(stem_stride=1, resolutions=(24, 28, 32), num_classes=10),
    "fashion_mnist": OFAConfig(stem_stride=1, resolutions=(20, 24, 28), in_channels=1, num_classes=10),
    # One stage of up to two blocks, two kernels and two expands: the smallest network with
    # every elastic mechanism (strided SE block, skippable residual block, kernel transform,
    # shared BN); its training step compiles in seconds on CPU (tests, CI's end-to-end runs).
    "micro": OFAConfig(
        stem_channels=8, stem_stride=1, first_block_channels=8, widths=(16,), strides=(2,), use_se=(True,),
        activations=("h_swish",), kernels=(3, 5), expands=(3, 6), depths=(1, 2), final_expand_channels=24,
        feature_mix_channels=32, resolutions=(8, 12), in_channels=1, num_classes=10,
    ),
    # Five stages at small widths: the whole MobileNetV3 structure on 16-20 px images.
    "tiny": OFAConfig(
        stem_channels=8, stem_stride=1, first_block_channels=8, widths=(8, 16, 16, 24, 24),
        final_expand_channels=48, feature_mix_channels=64, resolutions=(16, 20),
        in_channels=1, num_classes=10,
    ),
}


def make_divisible(value: float, divisor: int = 8) -> int:
    """Round a channel count to a multiple of `divisor`, never below 90% of `value`.

    The MobileNet convention (Sandler et al. 2018), used by OFA for expanded widths.
    """
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return rounded


class BlockSpec(NamedTuple):
    """Static description of one elastic MBConv block (position `stage`, `slot`)."""

    index: int
    stage: int
    slot: int
    in_channels: int
    out_channels: int
    stride: int
    use_se: bool
    activation: str

    @property
    def has_residual(self) -> bool:
        return self.stride == 1 and self.in_channels == self.out_channels


class OFAMobileNetV3Space(SearchSpace):
    """OFA MobileNetV3 space over an `OFAConfig` (public encoding: OFA's `{ks, e, d, r}`)."""

    name = "ofa_mbv3"

    def __init__(self, config: OFAConfig | None = None):
        self.macro = config or OFAConfig()
        super().__init__()
        c = self.macro
        self.num_stages = len(c.widths)
        self.num_blocks = self.num_stages * c.max_depth
        nb, ns = self.num_blocks, self.num_stages
        self.kernel_slice = slice(0, nb)
        self.expand_slice = slice(nb, 2 * nb)
        self.depth_slice = slice(2 * nb, 2 * nb + ns)
        self.resolution_index = 2 * nb + ns

    def _build_decisions(self):
        c = self.macro
        nb = len(c.widths) * c.max_depth
        return (
            [Decision(f"kernel{i}", c.kernels) for i in range(nb)]
            + [Decision(f"expand{i}", c.expands) for i in range(nb)]
            + [Decision(f"depth{s}", c.depths) for s in range(len(c.widths))]
            + [Decision("resolution", c.resolutions)]
        )

    def config(self):
        return dataclasses.asdict(self.macro)

    @property
    def size(self) -> int:
        c = self.macro
        per_block = len(c.kernels) * len(c.expands)
        per_stage = sum(per_block**d for d in c.depths)
        return per_stage ** len(c.widths) * len(c.resolutions)

    def block_specs(self) -> tuple[BlockSpec, ...]:
        """The elastic blocks in order; block `stage * max_depth + slot`."""
        c, specs, c_in = self.macro, [], self.macro.first_block_channels
        for s, (width, stride) in enumerate(zip(c.widths, c.strides)):
            for slot in range(c.max_depth):
                specs.append(BlockSpec(len(specs), s, slot, c_in, width, stride if slot == 0 else 1,
                                       c.use_se[s], c.activations[s]))
                c_in = width
        return tuple(specs)

    def active_blocks(self, archs: Int[Array, "n d"]) -> Bool[Array, "n blocks"]:
        """Boolean `[n, num_blocks]`: which blocks exist under each architecture's depths."""
        archs = jnp.asarray(archs, jnp.int32)
        depth = jnp.asarray(self.macro.depths, jnp.int32)[archs[:, self.depth_slice]]  # [n, stages]
        slot = jnp.arange(self.macro.max_depth)
        return (slot[None, None, :] < depth[:, :, None]).reshape(archs.shape[0], self.num_blocks)

    def canonical(self, archs: Int[Array, "n d"]) -> Int[Array, "n d"]:
        archs = jnp.asarray(archs, jnp.int32)
        active = self.active_blocks(archs)
        kernel = jnp.where(active, archs[:, self.kernel_slice], 0)
        expand = jnp.where(active, archs[:, self.expand_slice], 0)
        return jnp.concatenate([kernel, expand, archs[:, self.depth_slice.start:]], axis=1)

    def to_public(self, arch) -> dict:
        arch = self.validate(arch)
        if arch.ndim != 1:
            raise ValueError(f"{self.name}: to_public takes one architecture, got shape {arch.shape}")
        c = self.macro
        return {
            "ks": [c.kernels[i] for i in arch[self.kernel_slice]],
            "e": [c.expands[i] for i in arch[self.expand_slice]],
            "d": [c.depths[i] for i in arch[self.depth_slice]],
            "r": c.resolutions[arch[self.resolution_index]],
        }

    def from_public(self, record) -> np.ndarray:
        if not isinstance(record, dict):
            raise ValueError(f"{self.name}: expected a record {{'ks', 'e', 'd', 'r'}}, got {type(record).__name__}")
        missing = [k for k in ("ks", "e", "d", "r") if k not in record]
        if missing:
            raise ValueError(f"{self.name}: record is missing key(s) {missing}")
        unknown = sorted(set(record) - {"ks", "e", "d", "r", "index"})
        if unknown:
            raise ValueError(f"{self.name}: record has unknown key(s) {unknown}")
        c = self.macro
        parts = []
        for key, choices, length in (("ks", c.kernels, self.num_blocks), ("e", c.expands, self.num_blocks),
                                     ("d", c.depths, self.num_stages)):
            values = record[key]
            if not isinstance(values, (list, tuple)) or len(values) != length:
                raise ValueError(f"{self.name}: {key!r} must be a list of {length} values, got {values!r}")
            parts.append([self._choice_index(key, i, v, choices) for i, v in enumerate(values)])
        parts.append([self._choice_index("r", None, record["r"], c.resolutions)])
        return np.asarray(sum(parts, []), np.int32)

    def _choice_index(self, key, position, value, choices) -> int:
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value not in choices:
            where = f"{key}[{position}]" if position is not None else key
            raise ValueError(f"{self.name}: {where} = {value!r} is not one of {list(choices)}")
        return choices.index(int(value))
