"""Random search: every architecture drawn uniformly and independently, per decision.

The baseline every NAS method must beat (Li & Talwalkar, "Random Search and Reproducibility
for Neural Architecture Search", UAI 2019); on NAS-Bench-201 it is a strong one. `tell` has
nothing to learn: the state only counts proposals, so a checkpoint still records progress.

    searcher = make(space, batch_size=16)
    state = searcher.init(key)
    archs, state = searcher.ask(state, key)      # int32 [16, d]
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from searchers.base import Searcher


class RandomState(NamedTuple):
    proposed: jax.Array  # int32 []: architectures proposed so far


def make(space, *, num_objectives: int = 1, batch_size: int = 16, **options) -> Searcher:
    """Uniform random sampling over `space`; accepts any number of objectives."""
    if options:
        raise ValueError(f"searcher 'random' takes only batch_size and num_objectives; got {', '.join(sorted(options))}")
    if int(batch_size) < 1:
        raise ValueError(f"random search: batch_size must be >= 1, got {batch_size}")
    if int(num_objectives) < 1:
        raise ValueError(f"random search: num_objectives must be >= 1, got {num_objectives}")
    n = int(batch_size)

    def init(key: jax.Array) -> RandomState:
        del key  # nothing random to set up
        return RandomState(proposed=jnp.zeros((), jnp.int32))

    @jax.jit
    def ask(state: RandomState, key: jax.Array) -> tuple[jax.Array, RandomState]:
        return space.sample(key, n), RandomState(state.proposed + n)

    def tell(state: RandomState, archs: jax.Array, objectives: jax.Array) -> RandomState:
        del archs, objectives  # random search does not learn
        return state

    return Searcher("random", init, ask, tell, n, int(num_objectives))
