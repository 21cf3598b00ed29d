"""The search-space protocol: an architecture is an `int32` vector of categorical decisions.

A search space is an ordered list of named decisions, each with a finite tuple of choices.
An architecture is a vector `a` of length `d` with `0 <= a[i] < len(choices[i])`; a batch of
architectures is an `[n, d]` array. Everything in hwnas (supernet forward, cost models,
predictors, searchers, export) speaks this one vocabulary, so a searcher never needs to know
which network it is searching and a cost model never needs a Flax module.

Sampling, mutation and crossover are pure functions of a JAX key, so they are reproducible,
jittable and vectorized over the batch. Validation and the public encodings run on the host
(they produce Python values and readable errors).

Example:
    >>> import jax
    >>> from supernet.spaces import get_space
    >>> space = get_space("nasbench201")
    >>> archs = space.sample(jax.random.key(0), 4)      # int32 [4, 6]
    >>> space.to_public(archs[0])                          # '|nor_conv_3x3~0|+|...'
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int, PRNGKeyArray


@dataclasses.dataclass(frozen=True)
class Decision:
    """One categorical decision: a name (e.g. `"layer3"`) and its choices (labels)."""

    name: str
    choices: tuple[Any, ...]

    @property
    def size(self) -> int:
        return len(self.choices)


class SearchSpace:
    """Base class of every search space; subclasses define `decisions` and the encodings.

    Subclasses set `name` and implement `_build_decisions`, `to_public`, `from_public`, and,
    where some entries can be irrelevant to the network (OFA's blocks beyond a stage's depth),
    `canonical` and `size`.
    """

    name: str = "space"

    def __init__(self) -> None:
        self.decisions: tuple[Decision, ...] = tuple(self._build_decisions())
        self.cardinalities = np.array([d.size for d in self.decisions], dtype=np.int32)
        self._offsets = np.concatenate([[0], np.cumsum(self.cardinalities)]).astype(np.int32)

    # ----------------------------------------------------------------- to override
    def _build_decisions(self) -> Sequence[Decision]:
        raise NotImplementedError

    def config(self) -> dict[str, Any]:
        """The macro-architecture settings that define this space (JSON-serializable)."""
        return {}

    def to_public(self, arch) -> Any:
        """One architecture in the space's public encoding."""
        raise NotImplementedError

    def from_public(self, record) -> np.ndarray:
        """Inverse of `to_public`: a validated `int32 [d]` vector."""
        raise NotImplementedError

    def canonical(self, archs: Int[Array, "n d"]) -> Int[Array, "n d"]:
        """Representative of each architecture's equivalence class (identity by default).

        Two vectors describe the same network iff their canonical forms are equal.
        """
        return archs

    def functional_form(self, archs: Int[Array, "n d"]) -> Int[Array, "n d"]:
        """Representative of the architectures that compute the same function (`canonical` by default).

        Coarser than `canonical`: two vectors with equal functional forms are the same network up
        to choices that carry no signal to the output, so a model of *accuracy* may pool them,
        while a device may still run the idle operations and so measure different *costs*
        (HW-NAS-Bench times each NAS-Bench-201 cell as built, and on most of its devices idle
        convs add time). Spaces with such choices override it.
        """
        return self.canonical(archs)

    @property
    def size(self) -> int:
        """Exact number of distinct networks (a Python int; may exceed 2**64)."""
        return math.prod(int(c) for c in self.cardinalities)

    # ----------------------------------------------------------------- shared machinery
    @property
    def num_decisions(self) -> int:
        return len(self.decisions)

    @property
    def decision_names(self) -> tuple[str, ...]:
        return tuple(d.name for d in self.decisions)

    @property
    def encoding_size(self) -> int:
        """Width of the one-hot `encode` features: the sum of cardinalities."""
        return int(self._offsets[-1])

    def fingerprint(self) -> str:
        """A short stable hash of the space name, decisions and config.

        Cost tables and predictors store it, so that loading one built for another
        configuration is refused instead of silently mis-indexed.
        """
        payload = {
            "name": self.name,
            "config": self.config(),
            "decisions": [[d.name, [str(c) for c in d.choices]] for d in self.decisions],
        }
        blob = json.dumps(payload, sort_keys=True, default=str).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    def sample(self, key: PRNGKeyArray, n: int) -> Int[Array, "n d"]:
        """`n` architectures drawn uniformly and independently per decision."""
        cards = jnp.asarray(self.cardinalities)
        return jax.random.randint(key, (n, self.num_decisions), 0, cards, dtype=jnp.int32)

    def mutate(self, key: PRNGKeyArray, archs: Int[Array, "n d"], rate: float | None = None) -> Int[Array, "n d"]:
        """Resample decisions to a *different* choice.

        With `rate=None` exactly one decision per architecture changes (the point mutation
        of regularized evolution, Real et al. 2019); otherwise each decision changes
        independently with probability `rate`. Decisions with a single choice never change.
        """
        archs = jnp.asarray(archs, jnp.int32)
        n, d = archs.shape
        cards = jnp.asarray(self.cardinalities)
        k_which, k_shift = jax.random.split(key)
        mutable = cards > 1
        if rate is None:
            # Choose one mutable decision per row, uniformly among the mutable ones.
            logits = jnp.where(mutable, 0.0, -jnp.inf)
            which = jax.random.categorical(k_which, logits, shape=(n,))
            mask = jax.nn.one_hot(which, d, dtype=bool)
        else:
            mask = (jax.random.uniform(k_which, (n, d)) < rate) & mutable
        # Adding a shift in [1, card) modulo card always lands on another choice.
        u = jax.random.uniform(k_shift, (n, d))
        shift = 1 + jnp.floor(u * (cards - 1)).astype(jnp.int32)
        mutated = (archs + shift) % cards
        return jnp.where(mask, mutated, archs)

    def crossover(self, key: PRNGKeyArray, a: Int[Array, "n d"], b: Int[Array, "n d"]) -> Int[Array, "n d"]:
        """Uniform crossover: each decision is taken from `a` or `b` with probability 1/2."""
        a = jnp.asarray(a, jnp.int32)
        b = jnp.asarray(b, jnp.int32)
        take_a = jax.random.bernoulli(key, 0.5, a.shape)
        return jnp.where(take_a, a, b)

    def encode(self, archs: Int[Array, "n d"]) -> Float[Array, "n f"]:
        """One-hot features `[n, sum(cardinalities)]` for predictors (jittable)."""
        archs = jnp.asarray(archs, jnp.int32)
        flat = archs + jnp.asarray(self._offsets[:-1])
        return jnp.zeros((archs.shape[0], self.encoding_size), jnp.float32).at[
            jnp.arange(archs.shape[0])[:, None], flat
        ].set(1.0)

    def validate(self, archs) -> np.ndarray:
        """Check shape, integrality and range; return the archs as a host `int32` array.

        Accepts one architecture `[d]` or a batch `[n, d]` and returns the same rank.
        Raises `ValueError` naming the first bad row, decision and value: never clips.
        """
        arr = np.asarray(archs)
        if arr.ndim not in (1, 2) or arr.shape[-1] != self.num_decisions:
            raise ValueError(
                f"{self.name}: an architecture has {self.num_decisions} decisions "
                f"({', '.join(self.decision_names[:4])}, ...); got an array of shape {arr.shape}"
            )
        if arr.dtype.kind == "f":
            not_int = ~np.isfinite(arr) | (arr != np.round(arr))
            if not_int.any():
                pos = np.argwhere(not_int.reshape(-1, self.num_decisions))[0]
                raise ValueError(
                    f"{self.name}: row {pos[0]}, decision {self.decision_names[pos[1]]!r} is "
                    f"{arr.reshape(-1, self.num_decisions)[tuple(pos)]}, not an integer choice index"
                )
        elif arr.dtype.kind not in "iu":
            raise ValueError(f"{self.name}: architectures must be integer arrays, got dtype {arr.dtype}")
        batch = arr.reshape(-1, self.num_decisions).astype(np.int64)
        bad = (batch < 0) | (batch >= self.cardinalities)
        if bad.any():
            row, col = (int(x) for x in np.argwhere(bad)[0])
            dec = self.decisions[col]
            where = f"row {row}, " if arr.ndim == 2 else ""
            raise ValueError(
                f"{self.name}: {where}decision {dec.name!r} has value {batch[row, col]}, "
                f"expected 0..{dec.size - 1} (choices {list(dec.choices)})"
            )
        return batch.astype(np.int32).reshape(arr.shape)

    def describe(self, arch) -> str:
        """A human-readable one-line description: `name=choice` per decision."""
        arch = self.validate(arch)
        return " ".join(f"{d.name}={d.choices[int(i)]}" for d, i in zip(self.decisions, arch))

    def to_public_batch(self, archs) -> list[Any]:
        return [self.to_public(a) for a in self.validate(np.atleast_2d(np.asarray(archs)))]

    def from_public_batch(self, records: Sequence[Any]) -> np.ndarray:
        if len(records) == 0:
            return np.zeros((0, self.num_decisions), np.int32)
        return np.stack([self.from_public(r) for r in records]).astype(np.int32)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(decisions={self.num_decisions}, size={self.size})"
