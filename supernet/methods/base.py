"""The contract every architecture-search method meets, and the state they share.

A method is a bundle of pure functions, in the style of optax's `GradientTransformation`.
It decides two things and nothing else:

* `weight_inputs(arch, key, epoch) -> dict`: what the supernet consumes in a *weight* step
  (`{"arch": int32 [L]}` for one path, `{"weights": [L, C]}` for a weighted sum);
* `arch_loss(alpha, arch, key, epoch, forward, labels, hardware) -> (loss, aux)`: the loss
  of an *architecture* step on a held-out batch, differentiated w.r.t. `alpha` only;
  `forward(**inputs)` runs the supernet in training mode on that batch. `aux` holds metrics
  and whatever `post_update` needs.

The supernet module knows nothing of methods; the trainer knows nothing of a method's
internals. Adding a method is one file that returns a `Method`.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int


class ArchState(NamedTuple):
    """Architecture parameters and method bookkeeping (part of the train state)."""

    alpha: Float[Array, "layers candidates"]  # logits of the per-layer candidate distribution
    baseline: Float[Array, ""]  # REINFORCE's moving-average reward (other methods leave it at 0)
    baseline_ready: Float[Array, ""]  # 1 once the baseline holds a reward (first reward initializes it)


class Method(NamedTuple):
    name: str
    weight_inputs: Callable[[ArchState, jax.Array, Array], dict[str, Array]]
    arch_loss: Callable[..., tuple[Array, dict[str, Any]]] | None = None
    post_update: Callable[[ArchState, ArchState, dict[str, Any]], ArchState] | None = None
    temperature: Callable[[Array], Array] | None = None


def init_arch_state(num_layers: int, num_candidates: int) -> ArchState:
    """Uniform distribution over candidates: alpha = 0 (ProxylessNAS, DARTS, FBNet)."""
    return ArchState(jnp.zeros((num_layers, num_candidates), jnp.float32), jnp.zeros((), jnp.float32),
                     jnp.zeros((), jnp.float32))


def cross_entropy(logits: Float[Array, "b k"], labels: Int[Array, " b"]) -> Float[Array, ""]:
    logp = jax.nn.log_softmax(logits)
    return -jnp.mean(jnp.take_along_axis(logp, labels[:, None], axis=-1))


def accuracy(logits: Float[Array, "b k"], labels: Int[Array, " b"]) -> Float[Array, ""]:
    return jnp.mean((jnp.argmax(logits, -1) == labels).astype(jnp.float32))


def entropy(alpha: Float[Array, "layers candidates"]) -> Float[Array, ""]:
    """Mean per-layer entropy (nats) of softmax(alpha): log(C) when uniform, 0 when decided."""
    logp = jax.nn.log_softmax(alpha, axis=-1)
    return -jnp.mean(jnp.sum(jnp.exp(logp) * logp, axis=-1))


def sample_paths(key: jax.Array, alpha: Float[Array, "layers candidates"]) -> Int[Array, " layers"]:
    """One candidate per layer drawn from softmax(alpha)."""
    return jax.random.categorical(key, alpha, axis=-1).astype(jnp.int32)


def derive(alpha: Float[Array, "layers candidates"], *, samples: int = 0, key: jax.Array | None = None):
    """The final architecture: argmax per layer, or the most likely of `samples` draws.

    Sampling (ProxylessNAS/FBNet) can return a jointly likely path when several layers are
    still undecided; with a peaked distribution both agree.
    """
    if samples <= 0:
        return jnp.argmax(alpha, axis=-1).astype(jnp.int32)
    if key is None:
        raise ValueError("derive(samples>0) needs a key")
    draws = jax.random.categorical(key, alpha[None], axis=-1, shape=(samples, alpha.shape[0]))
    logp = jax.nn.log_softmax(alpha, axis=-1)
    scores = jnp.sum(jnp.take_along_axis(logp[None], draws[..., None], axis=-1)[..., 0], axis=-1)
    return draws[jnp.argmax(scores)].astype(jnp.int32)
