"""A mixed layer: one layer's candidate blocks, and the three ways to run them.

* `choose(x, choice)`: run only candidate `choice` (a traced int) via `jax.lax.switch`.
  One compiled program serves every choice and only the chosen branch executes, so compute
  follows the sampled path (uniform/SPOS, ProxylessNAS weight steps, evaluation).
* `weighted(x, w)`: `sum_c w[c] * o_c(x)` over all candidates (DARTS, FBNet's Gumbel
  softmax). Pays for every candidate, by nature.
* `binary_gate(x, g, active, other)`: ProxylessNAS's binary gates. The forward pass runs one
  path, `y = g[active] * o_active(x)`. The backward pass gives BinaryConnect's gate gradient
  for the two sampled paths,

      dL/dg_j = <dL/dy, o_j(x)>        for j in {active, other}, zero elsewhere,

  recomputing `o_active` (for dL/dx) and `o_other` inside a `jax.custom_vjp`. Only the
  layer's input is saved between the passes, so activation memory stays about one path
  (Cai et al., "ProxylessNAS", ICLR 2019, Sec. 3.2).

Batch-norm statistics: `choose` and `weighted` update the statistics of the candidates they
run; `binary_gate` is for architecture steps on held-out data and leaves them unchanged.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from flax import nnx

from supernet.blocks import make_candidate
from supernet.layers import HostInit
from supernet.spaces.fbnet import CANDIDATES, LayerSpec


def _run_candidate(graphdefs, index: int, train: bool, params, stats, x):
    """Pure function: candidate `index` on `x` -> (y, BN statistics with that candidate's updated).

    Each candidate is split on its own, so a branch merges one module, not the whole layer.
    """
    candidate = nnx.merge(graphdefs[index], params[index], stats[index])
    y = candidate(x, train)
    return y, stats[:index] + (nnx.state(candidate, nnx.BatchStat),) + stats[index + 1:]


def _switch_plain(graphdefs, train: bool, choice, params, stats, x):
    branches = [functools.partial(_run_candidate, graphdefs, i, train) for i in range(len(graphdefs))]
    return jax.lax.switch(choice, branches, params, stats, x)


@functools.partial(jax.custom_vjp, nondiff_argnums=(0, 1))
def _switch(graphdefs, train: bool, choice, params, stats, x):
    """`lax.switch` over the candidates whose backward pass recomputes the chosen branch.

    Differentiating `lax.switch` directly makes every branch emit the residuals of *all*
    branches (zero-filled for the ones not taken), so a 9-way layer holds the activations
    of 9 candidates and XLA compiles a graph several times larger. Saving only the layer
    input and recomputing the chosen candidate in the backward pass keeps memory at about
    one path and costs one extra forward of that path. Running statistics (the second
    output) carry no gradient.
    """
    return _switch_plain(graphdefs, train, choice, params, stats, x)


def _switch_fwd(graphdefs, train, choice, params, stats, x):
    return _switch_plain(graphdefs, train, choice, params, stats, x), (choice, params, stats, x)


def _switch_bwd(graphdefs, train, residuals, cotangents):
    choice, params, stats, x = residuals
    dy = cotangents[0]

    def branch_vjp(i):
        def run(params, stats, x, dy):
            # Statistics are a primal too: NNX lets a trace update only variables it created.
            _, vjp = jax.vjp(lambda p, s, inp: _run_candidate(graphdefs, i, train, p, s, inp)[0], params, stats, x)
            d_params, _, dx = vjp(dy)
            return d_params, dx
        return run

    d_params, dx = jax.lax.switch(choice, [branch_vjp(i) for i in range(len(graphdefs))], params, stats, x, dy)
    return None, d_params, jax.tree.map(jnp.zeros_like, stats), dx


_switch.defvjp(_switch_fwd, _switch_bwd)


def _gated_forward(graphdefs, train, params, stats, x, gates, active, other):
    return gates[active] * _switch_plain(graphdefs, train, active, params, stats, x)[0]


@functools.partial(jax.custom_vjp, nondiff_argnums=(0, 1))
def _binary_gate(graphdefs, train, params, stats, x, gates, active, other):
    return _gated_forward(graphdefs, train, params, stats, x, gates, active, other)


def _binary_gate_fwd(graphdefs, train, params, stats, x, gates, active, other):
    y = _gated_forward(graphdefs, train, params, stats, x, gates, active, other)
    return y, (params, stats, x, gates, active, other)  # the layer input only: no path activations


def _binary_gate_bwd(graphdefs, train, residuals, dy):
    params, stats, x, gates, active, other = residuals
    run = lambda choice: (lambda p, s, inp: _switch_plain(graphdefs, train, choice, p, s, inp)[0])  # noqa: E731
    y_active, vjp_active = jax.vjp(run(active), params, stats, x)
    d_params, _, dx = vjp_active(dy * gates[active])
    y_other = jax.lax.stop_gradient(run(other)(params, stats, x))
    d_gates = (
        jnp.zeros_like(gates)
        .at[active].add(jnp.vdot(dy, y_active))
        .at[other].add(jnp.where(other == active, 0.0, jnp.vdot(dy, y_other)))
    )
    return d_params, jax.tree.map(jnp.zeros_like, stats), dx, d_gates, None, None


_binary_gate.defvjp(_binary_gate_fwd, _binary_gate_bwd)


class MixedLayer(nnx.Module):
    """The candidates of one searchable layer (each with its own weights and BN statistics)."""

    def __init__(self, spec: LayerSpec, init: HostInit):
        self.spec = spec
        self.candidates = nnx.List([make_candidate(spec, c, init) for c in CANDIDATES])

    def _split(self):
        parts = [nnx.split(c, nnx.Param, nnx.BatchStat) for c in self.candidates]
        return tuple(tuple(p[i] for p in parts) for i in range(3))

    def choose(self, x, choice, train: bool):
        graphdefs, params, stats = self._split()
        y, new_stats = _switch(graphdefs, train, jnp.asarray(choice, jnp.int32), params, stats, x)
        for candidate, state in zip(self.candidates, new_stats):
            nnx.update(candidate, state)  # statistics only: parameters are never written here
        return y

    def weighted(self, x, weights, train: bool):
        return sum(weights[i] * cand(x, train) for i, cand in enumerate(self.candidates))

    def binary_gate(self, x, gates, active, other, train: bool):
        graphdefs, params, stats = self._split()
        return _binary_gate(graphdefs, train, params, stats, x, gates,
                            jnp.asarray(active, jnp.int32), jnp.asarray(other, jnp.int32))
