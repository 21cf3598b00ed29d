"""FBNet's layer-wise space: every searchable layer picks one of 9 candidate blocks.

Wu et al., "FBNet: Hardware-Aware Efficient ConvNet Design via Differentiable Neural
Architecture Search", CVPR 2019. Candidates follow HW-NAS-Bench's order (Li et al., ICLR
2021), whose measured latencies we load: `k{kernel}_e{expand}[_g2]` and `skip`.

A candidate MBConv block is `1x1 conv (groups g) -> BN -> ReLU -> kxk depthwise (stride s)
-> BN -> ReLU -> 1x1 conv (groups g) -> BN`, plus the input when stride is 1 and widths
match. FBNet keeps the first 1x1 conv even at expansion 1, and so do we. `skip` is the
identity where a layer keeps its shape; elsewhere it is the cheapest map to the new shape,
a strided 1x1 convolution followed by BN (HW-NAS-Bench allows skip at every layer).

The macro-architecture (stage widths, layers per stage, strides, stem, head, input) is an
`FBNetConfig`. The default reproduces the CIFAR FBNet supernet whose Raspberry Pi 4 LUT is in
the shared data (jh88/fbnet): widths [16,24,32,64,112,184,352], layers [1,4,4,4,4,4,1],
strides [1,2,2,1,1,1,1], 32x32x3 input, 10 classes.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import numpy as np

from supernet.spaces.base import Decision, SearchSpace


class Candidate(NamedTuple):
    """One candidate block; `kernel == 0` marks `skip`."""

    name: str
    kernel: int
    expand: int
    groups: int

    @property
    def is_skip(self) -> bool:
        return self.kernel == 0


CANDIDATES = (
    Candidate("k3_e1", 3, 1, 1),
    Candidate("k3_e1_g2", 3, 1, 2),
    Candidate("k3_e3", 3, 3, 1),
    Candidate("k3_e6", 3, 6, 1),
    Candidate("k5_e1", 5, 1, 1),
    Candidate("k5_e1_g2", 5, 1, 2),
    Candidate("k5_e3", 5, 3, 1),
    Candidate("k5_e6", 5, 6, 1),
    Candidate("skip", 0, 0, 1),
)
CANDIDATE_NAMES = tuple(c.name for c in CANDIDATES)
SKIP = CANDIDATE_NAMES.index("skip")


@dataclasses.dataclass(frozen=True)
class FBNetConfig:
    """Macro-architecture of an FBNet supernet (defaults: FBNet's CIFAR setting)."""

    channels: tuple[int, ...] = (16, 24, 32, 64, 112, 184, 352)
    layers: tuple[int, ...] = (1, 4, 4, 4, 4, 4, 1)
    strides: tuple[int, ...] = (1, 2, 2, 1, 1, 1, 1)
    stem_channels: int = 16
    stem_stride: int = 1
    head_channels: int = 1984
    input_size: int = 32
    in_channels: int = 3
    num_classes: int = 10

    def __post_init__(self):
        if not (len(self.channels) == len(self.layers) == len(self.strides)):
            raise ValueError(
                f"FBNetConfig: channels, layers and strides need one entry per stage, got "
                f"{len(self.channels)}, {len(self.layers)} and {len(self.strides)}"
            )
        for field in ("stem_channels", "head_channels", "input_size", "in_channels", "num_classes"):
            if getattr(self, field) <= 0:
                raise ValueError(f"FBNetConfig: {field} must be positive, got {getattr(self, field)}")
        if any(c % 2 for c in self.channels) or self.stem_channels % 2:
            raise ValueError("FBNetConfig: widths must be even (the g2 candidates use 2 groups)")


FBNET_PRESETS = {
    "cifar": FBNetConfig(),
    "cifar100": FBNetConfig(num_classes=100),
    "fashion_mnist": FBNetConfig(
        channels=(16, 24, 32, 48, 64, 96, 128), input_size=28, in_channels=1, head_channels=256
    ),
    # Three layers: the smallest supernet with a shape-keeping and a strided layer (trainer tests).
    "micro": FBNetConfig(
        channels=(8, 16), layers=(1, 2), strides=(1, 2), stem_channels=8, head_channels=16,
        input_size=16, in_channels=1, num_classes=10,
    ),
    # `hwnas demo`: four searchable layers at 16x16, small enough to compile and search in minutes on 2 cores.
    "demo": FBNetConfig(
        channels=(8, 16, 24), layers=(1, 2, 1), strides=(1, 2, 2), stem_channels=8, head_channels=64,
        input_size=16, in_channels=1, num_classes=10,
    ),
    # A few-second supernet for tests and smoke runs.
    "tiny": FBNetConfig(
        channels=(8, 8, 16, 16), layers=(1, 2, 2, 1), strides=(1, 2, 2, 1),
        stem_channels=8, head_channels=32, input_size=16, in_channels=1, num_classes=10,
    ),
}


def _out_size(size: int, stride: int) -> int:
    """Spatial size after a 'same'-padded op: ceil(size / stride)."""
    return -(-size // stride)


class LayerSpec(NamedTuple):
    """Shape of one searchable layer, fixed by the macro-architecture."""

    index: int
    stage: int
    in_channels: int
    out_channels: int
    stride: int
    in_size: int  # input height = width

    @property
    def out_size(self) -> int:
        return _out_size(self.in_size, self.stride)

    @property
    def keeps_shape(self) -> bool:
        return self.stride == 1 and self.in_channels == self.out_channels


class FBNetSpace(SearchSpace):
    """FBNet layer-wise space over an `FBNetConfig` (public encoding: list of candidate ints)."""

    name = "fbnet"

    def __init__(self, config: FBNetConfig | None = None):
        self.macro = config or FBNetConfig()
        super().__init__()

    def _build_decisions(self):
        return [Decision(f"layer{i}", CANDIDATE_NAMES) for i in range(sum(self.macro.layers))]

    def config(self):
        return dataclasses.asdict(self.macro)

    @property
    def stem_out_size(self) -> int:
        return _out_size(self.macro.input_size, self.macro.stem_stride)

    def layer_specs(self) -> tuple[LayerSpec, ...]:
        """Input/output shape of every searchable layer (the first of a stage strides)."""
        specs, c_in, size = [], self.macro.stem_channels, self.stem_out_size
        for stage, (c_out, n, stride) in enumerate(zip(self.macro.channels, self.macro.layers, self.macro.strides)):
            for j in range(n):
                s = stride if j == 0 else 1
                specs.append(LayerSpec(len(specs), stage, c_in, c_out, s, size))
                c_in, size = c_out, _out_size(size, s)
        return tuple(specs)

    @property
    def final_size(self) -> int:
        specs = self.layer_specs()
        return specs[-1].out_size if specs else self.stem_out_size

    def to_public(self, arch) -> list[int]:
        arch = self.validate(arch)
        if arch.ndim != 1:
            raise ValueError(f"{self.name}: to_public takes one architecture, got shape {arch.shape}")
        return [int(x) for x in arch]

    def from_public(self, record) -> np.ndarray:
        if isinstance(record, (str, bytes)) or not hasattr(record, "__len__"):
            raise ValueError(f"{self.name}: expected a list of {self.num_decisions} candidate indices, got {record!r}")
        if len(record) != self.num_decisions:
            raise ValueError(
                f"{self.name}: expected {self.num_decisions} candidate indices, got {len(record)}"
            )
        return self.validate(np.asarray(record))
