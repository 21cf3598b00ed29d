"""Progressive shrinking: the phases of Once-for-All training, and sampling within a phase.

Cai et al., "Once-for-All", ICLR 2020, Sec. 3.2: train the largest network first, then let
the smaller subnets in one dimension at a time, so that the large subnets (already good)
teach the small ones instead of being disturbed by them:

    largest  ->  elastic kernel  ->  elastic depth {3,4} -> {2,3,4}
             ->  elastic expand {4,6} -> {3,4,6}                    (resolution elastic throughout)

A phase is data: the values each dimension may take, how many subnets are sampled per step
(their gradients are summed: OFA's "dynamic batch size" 1 / 2 / 4), the knowledge-distillation
weight and the optimizer schedule. Inside a step the allowed values enter as a traced boolean
mask `[decisions, choices]`, so every phase with the same number of subnets per step runs
the same compiled program.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Int, PRNGKeyArray

from supernet.config import ConfigError


@dataclasses.dataclass(frozen=True)
class Phase:
    """One phase of progressive shrinking (values, not indices; `None`: every value of the space)."""

    name: str
    epochs: float
    lr: float
    kernels: tuple[int, ...] | None = None
    expands: tuple[int, ...] | None = None
    depths: tuple[int, ...] | None = None
    subnets_per_step: int = 1
    kd_ratio: float = 0.0
    warmup_epochs: float = 0.0

    @classmethod
    def from_config(cls, cfg: dict[str, Any], where: str) -> "Phase":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(cfg) - known)
        if unknown:
            raise ConfigError(f"{where}: unknown key(s) {unknown}; known: {sorted(known)}")
        if "name" not in cfg or "epochs" not in cfg or "lr" not in cfg:
            raise ConfigError(f"{where}: a phase needs 'name', 'epochs' and 'lr'")
        values = {k: (tuple(int(x) for x in v) if k in ("kernels", "expands", "depths") and v is not None else v)
                  for k, v in cfg.items()}
        phase = cls(**values)
        if phase.subnets_per_step < 1:
            raise ConfigError(f"{where}: subnets_per_step must be >= 1, got {phase.subnets_per_step}")
        if phase.epochs <= 0 or phase.lr <= 0 or phase.kd_ratio < 0:
            raise ConfigError(f"{where}: epochs and lr must be positive and kd_ratio >= 0")
        return phase


def ofa_schedule(space, epochs: Sequence[float], lrs: Sequence[float], kd_ratio: float = 1.0
                 ) -> list[dict[str, Any]]:
    """OFA's six phases over `space`'s choices, with the given epochs and learning rates.

    largest (max kernel, expand, depth) -> kernel (all kernels) -> depth (the two largest, then
    all) -> expand (the two largest, then all); 1, 1, 2, 2, 4, 4 subnets per step and
    distillation from the largest network in every phase after the first, as in OFA's
    training script. For OFA's MobileNetV3 values: kernel {7} -> {3,5,7}, depth {3,4} ->
    {2,3,4}, expand {4,6} -> {3,4,6}. A dimension with fewer than three values gets the same
    phase twice (both still run, so every schedule has six phases).
    """
    if len(epochs) != 6 or len(lrs) != 6:
        raise ConfigError("ofa_schedule takes six epochs and six learning rates")
    c = space.macro
    kernels, expands, depths = list(c.kernels), list(c.expands), list(c.depths)
    rows = [("largest", kernels[-1:], expands[-1:], depths[-1:], 1, 0.0),
            ("kernel", kernels, expands[-1:], depths[-1:], 1, kd_ratio),
            (f"depth_{''.join(map(str, depths[-2:]))}", kernels, expands[-1:], depths[-2:], 2, kd_ratio),
            (f"depth_{''.join(map(str, depths))}", kernels, expands[-1:], depths, 2, kd_ratio),
            (f"expand_{''.join(map(str, expands[-2:]))}", kernels, expands[-2:], depths, 4, kd_ratio),
            (f"expand_{''.join(map(str, expands))}", kernels, expands, depths, 4, kd_ratio)]
    names = [r[0] for r in rows]
    for i, name in enumerate(names):  # a repeated phase (a dimension with two values) gets a suffix
        if names.count(name) > 1 and names.index(name) != i:
            names[i] = f"{name}_again"
    return [{"name": n, "epochs": e, "lr": lr, "kernels": k, "expands": x, "depths": d, "subnets_per_step": s,
             "kd_ratio": kd} for n, (_, k, x, d, s, kd), e, lr in zip(names, rows, epochs, lrs)]


def allowed_mask(space, phase: Phase) -> np.ndarray:
    """Boolean `[decisions, max choices]`: which choice of each decision the phase may sample.

    The resolution entry allows every resolution here; the trainer fixes it per step (one
    batch has one resolution).
    """
    c = space.macro
    mask = np.zeros((space.num_decisions, int(space.cardinalities.max())), bool)
    for name, values, choices, part in (("kernels", phase.kernels, c.kernels, space.kernel_slice),
                                        ("expands", phase.expands, c.expands, space.expand_slice),
                                        ("depths", phase.depths, c.depths, space.depth_slice)):
        values = choices if values is None else values
        bad = [v for v in values if v not in choices]
        if bad or not values:
            raise ConfigError(f"phase {phase.name!r}: {name} {list(values)} must be a non-empty subset of {list(choices)}")
        mask[part, [choices.index(v) for v in values]] = True
    mask[space.resolution_index, : len(c.resolutions)] = True
    return mask


def largest_arch(space) -> np.ndarray:
    """Every block at its largest kernel, expand and depth, at the largest resolution."""
    return (space.cardinalities - 1).astype(np.int32)


def extreme_arch(space, mask: np.ndarray, largest: bool) -> np.ndarray:
    """The largest or smallest architecture the mask allows (resolution: largest or smallest)."""
    index = np.arange(mask.shape[1])
    allowed = np.where(mask, index[None, :], -1 if largest else mask.shape[1])
    return (allowed.max(1) if largest else allowed.min(1)).astype(np.int32)


def sample_archs(key: PRNGKeyArray, mask: Bool[Array, "d c"], resolution: Int[Array, ""], n: int
                 ) -> Int[Array, "n d"]:
    """`n` architectures, each decision uniform over the choices the mask allows; resolution fixed."""
    logits = jnp.where(mask, 0.0, -jnp.inf)
    archs = jax.random.categorical(key, logits, axis=-1, shape=(n, mask.shape[0])).astype(jnp.int32)
    return archs.at[:, -1].set(resolution)


def resolution_at(resolutions: Sequence[int], seed: int, step: int) -> int:
    """The index of the resolution of step `step`: uniform, a function of (seed, step) only."""
    return int(np.random.default_rng([seed, step, 7]).integers(len(resolutions)))
