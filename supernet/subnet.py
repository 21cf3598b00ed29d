"""A standalone FBNet subnet: only the chosen candidate per layer, weights copied from a supernet.

This is the network that gets deployed, fine-tuned and timed. Its modules are the same
classes the supernet uses, so extraction is a state copy, and in evaluation mode the subnet
computes exactly what the supernet computes when fed the same architecture.
"""

from __future__ import annotations

import jax
import numpy as np
from flax import nnx

from supernet.blocks import make_candidate, stem_and_head
from supernet.layers import HostInit
from supernet.fbnet_supernet import FBNetSupernet
from supernet.spaces.fbnet import CANDIDATES, FBNetConfig, FBNetSpace


class FBNetSubnet(nnx.Module):
    """A static network for one FBNet architecture (no switch, no unused candidates)."""

    def __init__(self, config: FBNetConfig, arch, seed: int = 0):
        space = FBNetSpace(config)
        arch = space.validate(np.asarray(arch))
        if arch.ndim != 1:
            raise ValueError(f"a subnet takes one architecture, got shape {arch.shape}")
        self.config = config
        self.arch = tuple(int(a) for a in arch)  # static: this model *is* one architecture
        init = HostInit(seed)
        self.stem, self.head = stem_and_head(config, init)
        self.layers = nnx.List([make_candidate(spec, CANDIDATES[a], init)
                                for spec, a in zip(space.layer_specs(), self.arch)])

    def __call__(self, x, train: bool = False):
        y = self.stem(x, train)
        for layer in self.layers:
            y = layer(y, train)
        return self.head(y, train)


def extract_subnet(supernet: FBNetSupernet, arch) -> FBNetSubnet:
    """The subnet `arch` of `supernet`, with its weights and BN statistics copied in."""
    subnet = FBNetSubnet(supernet.config, arch)
    nnx.update(subnet.stem, nnx.state(supernet.stem))
    nnx.update(subnet.head, nnx.state(supernet.head))
    for layer, mixed, a in zip(subnet.layers, supernet.layers, subnet.arch):
        nnx.update(layer, nnx.state(mixed.candidates[a]))
    return subnet


def count_params(module: nnx.Module) -> int:
    """Number of trainable parameters (BN running statistics are not parameters)."""
    return int(sum(np.size(p) for p in jax.tree.leaves(nnx.state(module, nnx.Param))))
