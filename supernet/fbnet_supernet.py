"""The FBNet weight-sharing supernet: stem, one `MixedLayer` per searchable layer, head.

The architecture enters the forward pass as data, never as module state:

    model(x, arch=a)                      # int32 [layers]: one path per layer (lax.switch)
    model(x, weights=w)                   # float [layers, candidates]: weighted sum
    model(x, gates=(g, active, other))    # ProxylessNAS binary gates (see supernet.mixed)

so one XLA compilation serves every subnet at a given input shape.
"""

from __future__ import annotations

from flax import nnx

from supernet.blocks import stem_and_head
from supernet.layers import HostInit
from supernet.mixed import MixedLayer
from supernet.spaces.fbnet import CANDIDATES, FBNetConfig, FBNetSpace


class FBNetSupernet(nnx.Module):
    """All candidates of every layer of an FBNet space, with shared stem and head."""

    def __init__(self, config: FBNetConfig, seed: int = 0):
        self.config = config  # a frozen dataclass: hashable, part of the graph definition
        space = FBNetSpace(config)
        init = HostInit(seed)
        self.stem, self.head = stem_and_head(config, init)
        self.layers = nnx.List([MixedLayer(spec, init) for spec in space.layer_specs()])

    @property
    def num_layers(self) -> int:
        return len(self.layers)

    @property
    def num_candidates(self) -> int:
        return len(CANDIDATES)

    def __call__(self, x, arch=None, *, weights=None, gates=None, train: bool = False):
        given = [v is not None for v in (arch, weights, gates)]
        if sum(given) != 1:
            raise ValueError("pass exactly one of arch= (int choices), weights= (per-candidate weights) or gates=")
        expected = (self.num_layers, self.num_candidates)
        if arch is not None and arch.shape != expected[:1]:
            raise ValueError(f"arch must have shape {expected[:1]} (one choice per layer), got {arch.shape}")
        if weights is not None and weights.shape != expected:
            raise ValueError(f"weights must have shape {expected}, got {weights.shape}")
        if x.ndim != 4 or x.shape[-1] != self.config.in_channels:
            raise ValueError(
                f"images must be NHWC with {self.config.in_channels} channel(s), got shape {x.shape}"
            )
        y = self.stem(x, train)
        for i, layer in enumerate(self.layers):
            if arch is not None:
                y = layer.choose(y, arch[i], train)
            elif weights is not None:
                y = layer.weighted(y, weights[i], train)
            else:
                g, active, other = gates
                y = layer.binary_gate(y, g[i], active[i], other[i], train)
        return self.head(y, train)
