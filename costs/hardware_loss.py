"""Hardware terms of the search loss: expected costs from lookup tables, combined with the task loss.

With `c_k` the (expected) cost under table `k`, `T_k` its target and `w_k` its weight:

    absolute  L = CE + sum_k w_k * |c_k / T_k - 1|       (TuNAS's absolute reward, Bender et al. 2020)
    hinge     L = CE + sum_k w_k * max(0, c_k / T_k - 1) (penalize only what exceeds the target)
    linear    L = CE + sum_k w_k * c_k / T_k             (ProxylessNAS: CE + lambda * E[LAT], Cai et al. 2019)
    mul       L = CE * prod_k (c_k / T_k) ** w_k         (the multiplicative form of ProxylessNAS / MnasNet)
    fbnet     L = CE * prod_k a * log(s * c_k) ** w_k    (FBNet, Wu et al. 2019: a = 0.2, w = 0.6)

FBNet's form needs costs well above 1 for the log; FBNet's tables are in microseconds, so
`s = 1000` turns our milliseconds (and millijoules) into micro-units. It ignores targets.

Several tables (latency *and* energy, or two devices) enter together, each with its own
weight and target: the card's "differentiable latency and energy".
"""

from __future__ import annotations

from typing import NamedTuple, Sequence

import jax.numpy as jnp
from jaxtyping import Array, Float, Int

from costs.lut import LatencyTable

FORMS = ("absolute", "hinge", "linear", "mul", "fbnet")


class HardwareLoss(NamedTuple):
    tables: tuple[LatencyTable, ...]
    weights: tuple[float, ...]
    targets: tuple[float, ...]
    form: str = "absolute"
    fbnet_a: float = 0.2
    fbnet_scale: float = 1000.0

    @classmethod
    def build(cls, tables: Sequence[LatencyTable], weights: Sequence[float], targets: Sequence[float],
              form: str = "absolute", **kw) -> "HardwareLoss":
        if form not in FORMS:
            raise ValueError(f"unknown hardware loss form {form!r}; forms: {', '.join(FORMS)}")
        if not (len(tables) == len(weights) == len(targets)):
            raise ValueError(f"need one weight and one target per table: {len(tables)} tables, "
                             f"{len(weights)} weights, {len(targets)} targets")
        for table, target in zip(tables, targets):
            if form != "fbnet" and not target > 0:
                raise ValueError(f"target for {table.metric} on {table.device.get('name')} must be > 0, got {target}")
        return cls(tuple(tables), tuple(float(w) for w in weights), tuple(float(t) for t in targets), form, **kw)

    def expected(self, probs: Float[Array, "d c"]) -> Float[Array, " k"]:
        """Expected cost under per-decision probabilities, one entry per table."""
        if not self.tables:
            return jnp.zeros((0,), probs.dtype)
        return jnp.stack([t.expected_cost(probs) for t in self.tables])

    def cost(self, arch: Int[Array, " d"]) -> Float[Array, " k"]:
        """Cost of one architecture, one entry per table."""
        if not self.tables:
            return jnp.zeros((0,), jnp.float32)
        return jnp.stack([t.cost(arch) for t in self.tables])

    def __call__(self, ce: Float[Array, ""], costs: Float[Array, " k"]) -> Float[Array, ""]:
        if not self.tables:
            return ce
        w = jnp.asarray(self.weights, ce.dtype)
        ratio = costs / jnp.asarray(self.targets, ce.dtype) if self.form != "fbnet" else costs
        if self.form == "absolute":
            return ce + jnp.sum(w * jnp.abs(ratio - 1.0))
        if self.form == "hinge":
            return ce + jnp.sum(w * jnp.maximum(ratio - 1.0, 0.0))
        if self.form == "linear":
            return ce + jnp.sum(w * ratio)
        if self.form == "mul":
            return ce * jnp.prod(ratio**w)
        return ce * jnp.prod(self.fbnet_a * jnp.log(self.fbnet_scale * costs) ** w)
