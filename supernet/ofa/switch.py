"""`lax.switch` whose backward pass recomputes only the branch that ran.

Differentiating `jax.lax.switch` directly makes every branch emit the residuals of *all*
branches (zero-filled for those not taken): an elastic block with 9 (kernel, expand) branches
would hold 9 branches' activations and compile a far larger graph. Here the forward pass saves
only its inputs, and the backward pass runs `lax.switch` again over per-branch VJPs, which
recompute the chosen branch's forward: memory about one path, one extra forward of that path
(the same trick as `supernet.mixed._switch`, for branches that share one set of weights).

Branches are `(params, stats, x) -> (y, new_stats)`; `stats` (BN running averages) carry no
gradient.
"""

from __future__ import annotations

import functools
from typing import Callable, Sequence

import jax
import jax.numpy as jnp


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def switch_with_recompute(branches: Sequence[Callable], index, params, stats, x):
    """`lax.switch(index, branches, params, stats, x)`, recomputing the taken branch for gradients."""
    return jax.lax.switch(index, list(branches), params, stats, x)


def _forward(branches, index, params, stats, x):
    return switch_with_recompute(branches, index, params, stats, x), (index, params, stats, x)


def _backward(branches, residuals, cotangents):
    index, params, stats, x = residuals
    dy = cotangents[0]

    def branch_vjp(branch):
        def run(params, stats, x, dy):
            # Statistics enter as a primal: NNX lets a trace update only variables it created.
            _, vjp = jax.vjp(lambda p, s, inp: branch(p, s, inp)[0], params, stats, x)
            d_params, _, dx = vjp(dy)
            return d_params, dx
        return run

    d_params, dx = jax.lax.switch(index, [branch_vjp(b) for b in branches], params, stats, x, dy)
    return None, d_params, jax.tree.map(jnp.zeros_like, stats), dx


switch_with_recompute.defvjp(_forward, _backward)
