"""The one contract every searcher follows: optax-style pure functions over a state pytree.

    searcher = get_searcher("evolution", space, population=64)
    state = searcher.init(key)
    archs, state = searcher.ask(state, key)          # [n, d] int32, n = searcher.batch_size
    state = searcher.tell(state, archs, objectives)  # objectives [n, m] float32, minimized

Conventions (shared by every searcher, objective and the driver):
- An architecture is an `int32` vector of the space's decisions; batches are `[n, d]`.
- Objectives are **minimized**; a scalar objective is `m = 1`. Maximizing accuracy means
  minimizing `-accuracy` (`searchers.objectives` builds these from metrics). An
  architecture that violates a hard constraint gets `+inf` in every column; NaN is refused.
- The state is a pytree of fixed-shape arrays (buffers sized at construction), so `ask` and
  `tell` can be jitted and orbax can checkpoint the state of a search half way through.
- Randomness comes only from the keys passed in; the driver derives them with
  `fold_in(key(seed), round)`, so a search is a pure function of its seed and evaluator.
- `ask` may propose an architecture seen before; the driver answers repeats from its history
  without spending budget (the budget counts distinct architectures).
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax

State = Any  # a pytree of arrays


class Searcher(NamedTuple):
    """A search strategy: `init(key) -> state`, `ask(state, key) -> (archs, state)`, `tell`.

    `batch_size` is how many architectures one `ask` proposes; `num_objectives` is `m`
    (1 for scalar searchers; Pareto searchers accept any `m`, given at construction).
    """

    name: str
    init: Callable[[jax.Array], State]
    ask: Callable[[State, jax.Array], tuple[jax.Array, State]]
    tell: Callable[[State, jax.Array, jax.Array], State]
    batch_size: int
    num_objectives: int = 1
