"""Features of architectures for learned cost predictors, computed in vectorized batches.

Two feature sets, named so that a saved predictor records which one it used:

    onehot           one indicator per (decision, choice): `[n, sum(cardinalities)]`. For
                     `ofa_mbv3` the kernel and expand indicators of blocks beyond a stage's
                     depth are all zero: those blocks do not run, and a model should not
                     learn from choices that have no effect.
    onehot+analytic  the above plus analytic costs: log total MACs, parameters and peak
                     memory, and each searchable layer's MACs as a share of the network's
                     (fbnet: 22 layers; ofa_mbv3: 20 blocks, 0 when inactive; nasbench201's
                     cells share one table per edge, so its one-hot already says everything
                     per edge and only the totals are added).

Tree models split on raw values, and a GP or MLP sees scaled inputs, so totals are logged
(they span orders of magnitude) and per-layer MACs are normalized by the total.

Example:
    >>> space = get_space("fbnet")
    >>> features(space, space.sample(jax.random.key(0), 4), "onehot+analytic").shape
    (4, 223)
"""

from __future__ import annotations

import numpy as np

from costs.analytic import FBNetTables, OFATables, analytic_costs, layer_cost_tables
from costs.analytic import _ofa_active_blocks as ofa_active_blocks

FEATURE_SETS = ("onehot", "onehot+analytic")


def features(space, archs, kind: str = "onehot") -> np.ndarray:
    """Float32 features `[n, f]` of `archs` (`[n, d]`, validated) for feature set `kind`."""
    if kind not in FEATURE_SETS:
        raise ValueError(f"unknown feature set {kind!r}; feature sets: {', '.join(FEATURE_SETS)}")
    batch = np.atleast_2d(space.validate(archs))
    parts = [one_hot(space, batch)]
    if kind == "onehot+analytic":
        parts.append(_analytic(space, batch))
    return np.concatenate(parts, axis=1).astype(np.float32)


def one_hot(space, archs: np.ndarray) -> np.ndarray:
    """`[n, sum(cardinalities)]` indicators; inactive OFA blocks get none (see module doc)."""
    n = len(archs)
    offsets = np.concatenate([[0], np.cumsum(space.cardinalities)])
    out = np.zeros((n, int(offsets[-1])), np.float32)
    rows = np.repeat(np.arange(n), archs.shape[1])
    cols = (archs + offsets[:-1]).reshape(-1)
    values = np.ones(cols.shape, np.float32)
    if space.name == "ofa_mbv3":
        active = ofa_active_blocks(space, archs)  # [n, blocks]
        mask = np.ones_like(archs, dtype=bool)
        mask[:, space.kernel_slice] = active
        mask[:, space.expand_slice] = active
        values = mask.reshape(-1).astype(np.float32)
    out[rows, cols] = values
    return out


def _analytic(space, archs: np.ndarray) -> np.ndarray:
    costs = analytic_costs(space, archs)
    totals = np.stack([np.log(costs.macs), np.log(costs.params), np.log(costs.peak_activation_bytes)], 1)
    if space.name == "nasbench201":
        return totals
    (per_unit,) = unit_costs(space, archs, ("macs",))
    layers = per_unit[:, 1:]  # column 0 is the fixed part
    return np.concatenate([totals, layers / costs.macs[:, None]], axis=1)


def unit_costs(space, archs, fields=("macs",)) -> list[np.ndarray]:
    """Per-unit analytic costs `[n, 1 + units]`, one array per `CostTable` field in `fields`.

    Column 0 is the fixed part of the network; then one column per searchable unit: an FBNet
    layer, an OFA block (0 when beyond its stage's depth), a NAS-Bench-201 edge (its op summed
    over every cell). Only the asked fields are gathered: costing 100,000 architectures is a
    few gathers, not the five of `analytic_costs`.
    """
    archs = np.atleast_2d(np.asarray(archs))
    tables = layer_cost_tables(space)
    n, out = len(archs), []
    # One flat index into the raveled tables, shared by every field (one `take` per field is
    # several times faster than multi-axis fancy indexing).
    if isinstance(tables, OFATables):
        r = archs[:, space.resolution_index]
        k, e = archs[:, space.kernel_slice], archs[:, space.expand_slice]
        _, num_blocks, num_k, num_e = tables.blocks.macs.shape
        flat = ((r[:, None] * num_blocks + np.arange(num_blocks)) * num_k + k) * num_e + e
        mask = ofa_active_blocks(space, archs)
    else:
        width = archs.shape[1]
        per_unit = tables.layers.macs if isinstance(tables, FBNetTables) else tables.edge_macs
        flat = np.arange(width) * per_unit.shape[1] + archs
    for field in fields:
        fixed = getattr(tables.fixed, field)
        if isinstance(tables, FBNetTables):
            per = np.take(getattr(tables.layers, field).reshape(-1), flat)
        elif isinstance(tables, OFATables):
            per = np.take(getattr(tables.blocks, field).reshape(-1), flat) * mask
            fixed = fixed[r][:, None]
        else:  # NAS-Bench-201: edge tables named edge_<field>
            per = np.take(getattr(tables, f"edge_{field}").reshape(-1), flat)
        out.append(np.concatenate([np.broadcast_to(fixed, (n, 1)), per], 1))
    return out


def shared_choice_counts(space) -> tuple[np.ndarray, np.ndarray]:
    """Map one-hot columns to counts of each choice over decisions that offer the same choices.

    Returns `M [sum(cardinalities), c]` (one-hot @ M = how many of those decisions picked
    each choice) and the family `int [c]` of each count column (one family per distinct
    choice tuple offered by two or more decisions). Empty when no two decisions share choices.
    """
    families: dict[tuple, list[int]] = {}
    for i, d in enumerate(space.decisions):
        families.setdefault(tuple(str(c) for c in d.choices), []).append(i)
    offsets = np.concatenate([[0], np.cumsum(space.cardinalities)])
    cols, fam = [], []
    shared = [members for members in families.values() if len(members) > 1]
    for k, members in enumerate(shared):
        for c in range(int(space.cardinalities[members[0]])):
            col = np.zeros(int(offsets[-1]))
            col[[offsets[i] + c for i in members]] = 1.0
            cols.append(col)
            fam.append(k)
    if not cols:
        return np.zeros((int(offsets[-1]), 0)), np.zeros(0, np.int64)
    return np.stack(cols, 1), np.asarray(fam, np.int64)
