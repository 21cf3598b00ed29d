"""From a trained supernet's workdir to its final architecture and a standalone subnet."""

from __future__ import annotations

from pathlib import Path

import jax
import numpy as np
from flax import nnx

from supernet.subnet import FBNetSubnet, extract_subnet


def load_supernet(workdir: str | Path):
    """(run, state, model): a supernet workdir's latest checkpoint as a live NNX model."""
    from supernet.train import load_state  # the trainer imports this module for subnet runs

    run, state = load_state(workdir)
    if run.model_kind != "supernet":
        raise ValueError(f"{workdir} holds a {run.model_kind} run, not a supernet")
    model = nnx.merge(run.graphdef, state.params, state.batch_stats)
    return run, state, model


def derived_arch(run, state, samples: int = 0, seed: int = 0) -> np.ndarray:
    """The architecture a supernet run selects: argmax of alpha, or the likeliest of `samples`."""
    from supernet.methods import derive

    if run.method.name == "uniform":
        raise ValueError("this supernet was trained with uniform sampling, which has no architecture "
                         "distribution to derive from: search it instead")
    return np.asarray(derive(state.arch.alpha, samples=samples, key=jax.random.key(seed)))


def load_subnet(workdir: str | Path, arch=None) -> tuple[FBNetSubnet, tuple[int, ...]]:
    """The subnet `arch` (public list of ints; default: the derived one) with inherited weights."""
    run, state, model = load_supernet(workdir)
    arch = derived_arch(run, state) if arch is None else run.space.from_public(list(arch))
    subnet = extract_subnet(model, arch)
    return subnet, subnet.arch
