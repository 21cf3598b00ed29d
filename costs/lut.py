"""Lookup tables (LUTs): the cost of every choice of every decision, measured on one device.

A `LatencyTable` is additive over decisions (ProxylessNAS, FBNet):

    cost(a)        = fixed + sum_i table[i, a_i]                    (one architecture)
    E_p[cost]      = fixed + sum_i sum_c p[i, c] * table[i, c]      (gate probabilities p)

so costing a batch `[n, d]` is one gather and one sum, and the expected cost under
architecture probabilities is linear in `p`: its gradient w.r.t. `p[i, c]` is `table[i, c]`,
which is what makes latency a differentiable term of the search loss. `fixed` holds the
layers no decision touches (stem, head, classifier).

A table belongs to one space *configuration* (its fingerprint), one device and one metric.
Entries are finite and non-negative; a choice that does not exist (spaces whose decisions
have fewer choices than others) is NaN and may never be selected.

File format (JSON, `format: "hwnas-lut"`, `version: 1`)::

    {
      "format": "hwnas-lut", "version": 1,
      "space": "fbnet", "space_fingerprint": "044efdc5727b72b0", "space_config": {...},
      "metric": "latency_ms", "unit": "ms",
      "device": {"name": "...", "backend": "cpu", "dtype": "float32", "batch_size": 1,
                 "input_size": 32, "date": "2026-11-28T00:00:00Z", ...free-form extras},
      "decisions": ["layer0", ...], "choices": [["k3_e1", ...], ...],
      "fixed": 0.12,
      "table": [[0.05, ...], ...],          # [decisions][choices], null for absent choices
      "spread": [[0.001, ...], ...]         # optional: same shape, e.g. interquartile range
    }

Several metrics of one device (latency in ms, energy in mJ) are several files, or one
`CostTables` set in the trainer's config; each table carries its own unit.

Once-for-All MobileNetV3 (`OFALatencyTable`, `"layout": "ofa_mbv3"`)
------------------------------------------------------------------------
In the OFA space a block's cost depends on more than its own decisions: the input
resolution sets every feature-map size, and a stage's depth decides which blocks exist at
all. Once-for-All (Cai et al., ICLR 2020) predicts a subnet's latency in its evolutionary
search from lookup tables measured per input size (`MBv3LatencyTable` in the authors'
`ofa/tutorial/latency_table.py`: one table per image size, keyed by each block's input
shape, kernel, expand ratio, stride, SE and activation, plus the first conv, final expand,
feature mix and classifier), summed over the blocks the subnet has. We index the same
measurements by resolution, block position, kernel and expand::

    cost(a) = fixed[r] + sum over active blocks b of blocks[r, b, k_b, e_b]

with `r` the resolution choice, `k_b`/`e_b` block b's kernel/expand choices, and block b
(stage s, slot j) active iff `j < depth_s`. `fixed[r]` is the stem, the first block and the
head (final expand conv, pool, feature mix, classifier) at resolution r. Kernel and expand
entries of inactive blocks are don't-cares and never read. `blocks` (the `table` attribute,
also `.blocks`, and the JSON field "table") is `[R, B, K, E]`
(resolution choices, 20 blocks, 3 kernels, 3 expands for the paper's space), `fixed` is `[R]`.
A table may cover only some resolutions (profiling all 25 ImageNet resolutions takes long):
an absent resolution has NaN in `fixed[r]` and all of `blocks[r]`; `cost` refuses an
architecture at that resolution with a `LUTError` naming it (under `jit`, where values
cannot be checked, its cost is NaN). Within a present resolution every entry must be
finite and >= 0. The same file format, with `"layout": "ofa_mbv3"` and these fields::

      "layout": "ofa_mbv3",
      "axes": ["resolution", "block", "kernel", "expand"],
      "resolutions": [16, 20],              # pixels, = the resolution decision's choices
      "fixed": [0.31, null],                # [R]; null: resolution not profiled
      "table": [[[[0.02, ...], ...], ...], null],   # [R][B][K][E]; null: not profiled
      "spread": ..., "fixed_spread": ...    # optional, same shapes

(decisions, choices, device, fingerprint as above). Files without `layout` are the additive
`[decisions, choices]` tables; `LatencyTable.load`/`from_json`/`for_space` return an
`OFALatencyTable` for OFA files and spaces, so every consumer of tables (cost models,
hardware loss) takes either. `expected_cost` under independent per-decision probabilities
(`[46, max choices]`, rows padded with zeros) is
`sum_r p_r (fixed[r] + sum_b P(b active) sum_{k,e} p_{b,k} p_{b,e} blocks[r, b, k, e])`.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import math
from pathlib import Path
from typing import Any, ClassVar, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int

FORMAT = "hwnas-lut"
VERSION = 1
UNITS = {"latency_ms": "ms", "energy_mj": "mJ"}
ADDITIVE_LAYOUT = "additive"  # `[decisions, choices]`; files without a "layout" field
OFA_LAYOUT = "ofa_mbv3"  # `[resolution, block, kernel, expand]` + `fixed[resolution]`
OFA_AXES = ("resolution", "block", "kernel", "expand")


class LUTError(ValueError):
    """A table that cannot be used: malformed file, wrong space, bad entries."""


@dataclasses.dataclass(frozen=True, eq=False)
class LatencyTable:
    """Dense `[decisions, choices]` costs plus the fixed part, for one device and metric."""

    layout: ClassVar[str] = ADDITIVE_LAYOUT

    space: str
    space_fingerprint: str
    metric: str
    unit: str
    device: dict[str, Any]
    decisions: tuple[str, ...]
    choices: tuple[tuple[str, ...], ...]
    fixed: float
    table: np.ndarray  # float64 [d, max_choices], NaN where a choice does not exist
    spread: np.ndarray | None = None
    space_config: dict[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        table = np.asarray(self.table, np.float64)
        object.__setattr__(self, "table", table)
        if self.spread is not None:
            object.__setattr__(self, "spread", np.asarray(self.spread, np.float64))
        _check_entries(self, where=f"table for {self.space}/{self.device.get('name', '?')}")

    # ---------------------------------------------------------------- construction
    @classmethod
    def for_space(cls, space, table, *, fixed: float, device: dict[str, Any], metric: str = "latency_ms",
                  spread=None, unit: str | None = None, fixed_spread=None) -> "LatencyTable":
        """A table for `space` (a `SearchSpace`) from a dense `[d, max_choices]` array.

        For an `ofa_mbv3` space this is `OFALatencyTable.for_space` (`table` `[R, B, K, E]`,
        `fixed` `[R]`, optional `fixed_spread` `[R]`).
        """
        if space.name == OFA_LAYOUT and not issubclass(cls, OFALatencyTable):
            return OFALatencyTable.for_space(space, table, fixed=fixed, device=device, metric=metric,
                                             spread=spread, unit=unit, fixed_spread=fixed_spread)
        if fixed_spread is not None:
            raise LUTError(f"fixed_spread is for {OFA_LAYOUT} tables; {space.name} has one fixed cost")
        return cls(
            space=space.name, space_fingerprint=space.fingerprint(), metric=metric,
            unit=unit or UNITS.get(metric, "?"), device=dict(device),
            decisions=space.decision_names,
            choices=tuple(tuple(str(c) for c in d.choices) for d in space.decisions),
            fixed=float(fixed), table=table, spread=spread, space_config=space.config(),
        )

    # ---------------------------------------------------------------- costs
    def check_space(self, space) -> None:
        """Refuse a table built for another space or configuration."""
        if space.name != self.space or space.fingerprint() != self.space_fingerprint:
            raise LUTError(
                f"table for {self.space} (fingerprint {self.space_fingerprint}, device "
                f"{self.device.get('name', '?')!r}) does not match space {space.name} "
                f"(fingerprint {space.fingerprint()}): it was built for another configuration; "
                f"profile this one with `hwnas profile`"
            )

    def cost(self, archs: Int[Array, "n d"]) -> Float[Array, " n"]:
        """Cost of each architecture: `fixed + sum_i table[i, archs[:, i]]` (jittable)."""
        archs = jnp.asarray(archs, jnp.int32)
        squeeze = archs.ndim == 1
        archs = jnp.atleast_2d(archs)
        if archs.shape[-1] != len(self.decisions):
            raise LUTError(f"table has {len(self.decisions)} decisions, archs have {archs.shape[-1]}")
        table = jnp.asarray(self.table, jnp.float32)
        per_decision = table[jnp.arange(table.shape[0]), archs]  # [n, d]
        total = self.fixed + per_decision.sum(axis=-1)
        return total[0] if squeeze else total

    def expected_cost(self, probs: Float[Array, "d c"]) -> Float[Array, ""]:
        """`fixed + sum(p * table)`: differentiable in `p`, d/dp[i,c] = table[i,c].

        Absent choices (NaN) contribute nothing; their probability should be zero.
        """
        probs = jnp.asarray(probs)
        if probs.shape != self.table.shape:
            raise LUTError(f"probabilities have shape {probs.shape}, table has {self.table.shape}")
        table = jnp.asarray(np.nan_to_num(self.table, nan=0.0), probs.dtype)
        return self.fixed + jnp.sum(probs * table)

    @property
    def min_cost(self) -> float:
        """The smallest cost any architecture can have (cheapest choice everywhere)."""
        return float(self.fixed + np.nanmin(self.table, axis=1).sum())

    @property
    def max_cost(self) -> float:
        return float(self.fixed + np.nanmax(self.table, axis=1).sum())

    # ---------------------------------------------------------------- files
    def to_json(self) -> dict[str, Any]:
        def rows(a):
            return [[None if math.isnan(v) else float(v) for v in row] for row in a]

        payload = {
            "format": FORMAT, "version": VERSION, "space": self.space,
            "space_fingerprint": self.space_fingerprint, "space_config": self.space_config,
            "metric": self.metric, "unit": self.unit, "device": self.device,
            "decisions": list(self.decisions), "choices": [list(c) for c in self.choices],
            "fixed": self.fixed, "table": rows(self.table),
        }
        if self.spread is not None:
            payload["spread"] = rows(self.spread)
        return payload

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(json.dumps(self.to_json(), indent=1))
        tmp.replace(path)  # atomic: an interrupted save never leaves half a table
        return path

    @classmethod
    def load(cls, path: str | Path, space=None) -> "LatencyTable":
        """Read a table; with `space`, also refuse one built for another configuration."""
        path = Path(path)
        try:
            payload = json.loads(path.read_text())
        except FileNotFoundError:
            raise LUTError(f"{path}: no such lookup table (build one with `hwnas profile`)") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise LUTError(f"{path}: not a JSON lookup table ({e})") from None
        table = LatencyTable.from_json(payload, where=str(path))
        if not isinstance(table, cls):
            raise LUTError(f"{path}: a {type(table).__name__} ({table.layout} layout), not a {cls.__name__}")
        if space is not None:
            table.check_space(space)
        return table

    @classmethod
    def from_json(cls, payload: Any, where: str = "lookup table") -> "LatencyTable":
        if not isinstance(payload, dict) or payload.get("format") != FORMAT:
            raise LUTError(f"{where}: not an hwnas lookup table (expected \"format\": \"{FORMAT}\")")
        if payload.get("version") != VERSION:
            raise LUTError(f"{where}: unsupported version {payload.get('version')!r} (this hwnas reads {VERSION})")
        layout = payload.get("layout", ADDITIVE_LAYOUT)
        if layout == OFA_LAYOUT:
            return OFALatencyTable._from_ofa_json(payload, where)
        if layout != ADDITIVE_LAYOUT:
            raise LUTError(f"{where}: unknown table layout {layout!r} (known: {ADDITIVE_LAYOUT}, {OFA_LAYOUT})")
        if cls is not LatencyTable:
            raise LUTError(f"{where}: a table of the {ADDITIVE_LAYOUT} layout, not a {cls.__name__}")
        required = ("space", "space_fingerprint", "metric", "unit", "device", "decisions", "choices", "fixed", "table")
        missing = [k for k in required if k not in payload]
        if missing:
            raise LUTError(f"{where}: missing field(s) {missing}")
        decisions, table = payload["decisions"], payload["table"]
        if not isinstance(table, list) or len(table) != len(decisions):
            got = len(table) if isinstance(table, list) else type(table).__name__
            raise LUTError(f"{where}: 'table' must have one row per decision ({len(decisions)}), got {got}")
        width = max(len(c) for c in payload["choices"]) if payload["choices"] else 0
        dense = np.full((len(decisions), width), np.nan)
        for i, (name, row, choices) in enumerate(zip(decisions, table, payload["choices"])):
            if not isinstance(row, list) or len(row) != len(choices):
                raise LUTError(f"{where}: row for decision {name!r} needs {len(choices)} entries, got {row!r}")
            for j, v in enumerate(row):
                if v is not None and not isinstance(v, (int, float)):
                    raise LUTError(f"{where}: entry [{name!r}][{choices[j]!r}] is not a number: {v!r}")
                dense[i, j] = np.nan if v is None else float(v)
        spread = None
        if payload.get("spread") is not None:
            spread = np.array([[np.nan if v is None else v for v in row] + [np.nan] * (width - len(row))
                               for row in payload["spread"]], np.float64)
        try:
            return cls(
                space=payload["space"], space_fingerprint=payload["space_fingerprint"],
                metric=payload["metric"], unit=payload["unit"], device=dict(payload["device"]),
                decisions=tuple(decisions), choices=tuple(tuple(c) for c in payload["choices"]),
                fixed=float(payload["fixed"]), table=dense, spread=spread,
                space_config=payload.get("space_config", {}),
            )
        except LUTError as e:
            raise LUTError(f"{where}: {e}") from None


def _check_entries(t: LatencyTable, where: str) -> None:
    d = len(t.decisions)
    if t.table.ndim != 2 or t.table.shape[0] != d:
        raise LUTError(f"{where}: table must be [decisions={d}, choices], got shape {t.table.shape}")
    if len(t.choices) != d:
        raise LUTError(f"{where}: {len(t.choices)} choice lists for {d} decisions")
    if not math.isfinite(t.fixed) or t.fixed < 0:
        raise LUTError(f"{where}: fixed cost must be finite and >= 0, got {t.fixed}")
    for i, (name, choices) in enumerate(zip(t.decisions, t.choices)):
        for j in range(t.table.shape[1]):
            v = t.table[i, j]
            exists = j < len(choices)
            if exists and not (math.isfinite(v) and v >= 0):
                what = "missing (NaN)" if math.isnan(v) else f"{v}"
                raise LUTError(
                    f"{where}: entry [{name!r}][{choices[j]!r}] is {what}; every choice needs a finite cost >= 0"
                )
            if not exists and not math.isnan(v):
                raise LUTError(f"{where}: decision {name!r} has {len(choices)} choices but a cost at column {j}")


def device_info(name: str, **extra: Any) -> dict[str, Any]:
    """Device metadata with the current UTC date (profilers add backend, dtype, shapes)."""
    now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    return {"name": name, "date": now.isoformat().replace("+00:00", "Z"), **extra}


# ====================================================================== Once-for-All MobileNetV3
@dataclasses.dataclass(frozen=True, eq=False)
class OFALatencyTable(LatencyTable):
    """Per-resolution block costs of the `ofa_mbv3` space (see the module docstring).

    `table` is `[R, B, K, E]`: the cost of elastic block b with kernel choice k and expand
    choice e at resolution choice r; `fixed` is `[R]`: stem, first block and head at r. A
    resolution that was not profiled is NaN in `fixed[r]` and all of `table[r]`.

        cost(a) = fixed[r] + sum_b [slot(b) < depth(stage(b))] * table[r, b, k_b, e_b]

    Built with `LatencyTable.for_space(ofa_space, ...)` (or this class's `for_space`),
    read with `LatencyTable.load`. The decisions must be the space's
    `kernel0..B-1, expand0..B-1, depth0..S-1, resolution`; everything the cost needs (depth
    values, resolutions in pixels) is read from the stored choices.
    """

    layout: ClassVar[str] = OFA_LAYOUT
    fixed_spread: np.ndarray | None = None

    def __post_init__(self):
        arrays = {"fixed": self.fixed, "table": self.table, "spread": self.spread, "fixed_spread": self.fixed_spread}
        for name, value in arrays.items():
            if value is not None:
                object.__setattr__(self, name, np.array(value, np.float64))
        where = f"table for {self.space}/{self.device.get('name', '?')}"
        shape = _ofa_layout(self.decisions, self.choices, where)
        object.__setattr__(self, "_shape", shape)  # an _OFAShape; not a dataclass field
        _check_ofa_entries(self, where)

    # ---------------------------------------------------------------- construction
    @classmethod
    def for_space(cls, space, table, *, fixed, device: dict[str, Any], metric: str = "latency_ms",
                  spread=None, unit: str | None = None, fixed_spread=None) -> "OFALatencyTable":
        """A table for an `ofa_mbv3` space: `table` `[R, B, K, E]`, `fixed` `[R]` (NaN: not profiled)."""
        if space.name != OFA_LAYOUT:
            raise LUTError(f"OFALatencyTable is for space {OFA_LAYOUT}, got {space.name}")
        return cls(
            space=space.name, space_fingerprint=space.fingerprint(), metric=metric,
            unit=unit or UNITS.get(metric, "?"), device=dict(device),
            decisions=space.decision_names,
            choices=tuple(tuple(str(c) for c in d.choices) for d in space.decisions),
            fixed=fixed, table=table, spread=spread, space_config=space.config(), fixed_spread=fixed_spread,
        )

    # ---------------------------------------------------------------- what it covers
    @property
    def blocks(self) -> np.ndarray:
        """`[R, B, K, E]` block costs (the same array as `table`)."""
        return self.table

    @property
    def resolutions(self) -> tuple[int, ...]:
        """Every resolution of the space, in pixels (choice order)."""
        return self._shape.resolutions

    @property
    def profiled_resolutions(self) -> tuple[int, ...]:
        """The resolutions this table has costs for, in pixels."""
        return tuple(px for px, ok in zip(self._shape.resolutions, self._present) if ok)

    @property
    def _present(self) -> np.ndarray:
        return ~np.isnan(self.fixed)

    def check_resolutions(self, archs) -> None:
        """Raise a `LUTError` naming the first resolution of `archs` ([n, d]) the table lacks."""
        archs = np.atleast_2d(np.asarray(archs))
        s = self._shape
        if archs.shape[-1] != len(self.decisions):
            raise LUTError(f"table has {len(self.decisions)} decisions, archs have {archs.shape[-1]}")
        used = np.unique(archs[:, s.resolution_index]) if archs.size else np.zeros(0, np.int64)
        bad = [int(r) for r in used if not 0 <= r < len(s.resolutions)]
        if bad:
            raise LUTError(f"resolution choice {bad[0]} is out of range: the space has "
                           f"{len(s.resolutions)} resolutions {list(s.resolutions)}")
        missing = [s.resolutions[r] for r in used if not self._present[r]]
        if missing:
            raise LUTError(
                f"resolution {missing[0]} px is not in this table (device "
                f"{self.device.get('name', '?')!r}; it has {list(self.profiled_resolutions)} px); profile it with "
                f"`hwnas profile --space ofa_mbv3 --resolutions {' '.join(map(str, missing))}`"
            )

    def merge(self, older: "OFALatencyTable") -> "OFALatencyTable":
        """This table plus the resolutions only `older` has (profiling a preset bit by bit).

        Both must be of the same space configuration, metric and device (name, backend,
        dtype, batch size); where both have a resolution, this table's entries win. The
        device metadata is this table's, with `merged_resolutions` listing what came from
        `older` and when it was measured.
        """
        if not isinstance(older, OFALatencyTable):
            raise LUTError(f"cannot merge a {type(older).__name__} into an OFA table")
        if (older.space, older.space_fingerprint) != (self.space, self.space_fingerprint):
            raise LUTError(f"cannot merge a table of {older.space} (fingerprint {older.space_fingerprint}) into "
                           f"one of {self.space} (fingerprint {self.space_fingerprint}): another configuration")
        if (older.metric, older.unit) != (self.metric, self.unit):
            raise LUTError(f"cannot merge {older.metric} ({older.unit}) into {self.metric} ({self.unit})")
        for field in ("name", "backend", "dtype", "batch_size"):
            if older.device.get(field) != self.device.get(field):
                raise LUTError(f"cannot merge tables of different devices: {field} {older.device.get(field)!r} "
                               f"vs {self.device.get(field)!r}")
        take = self._present | ~older._present  # rows kept from self (absent in both stays NaN)
        rows = take[:, None, None, None]

        def pick(mine, theirs, keep, like):  # optional arrays: a missing one counts as all NaN
            if mine is None and theirs is None:
                return None
            mine = np.full_like(like, np.nan) if mine is None else mine
            theirs = np.full_like(like, np.nan) if theirs is None else theirs
            return np.where(keep, mine, theirs)

        added = [px for px, mine, theirs in zip(self.resolutions, self._present, older._present) if theirs and not mine]
        device = dict(self.device)
        if added:
            device["merged_resolutions"] = list(device.get("merged_resolutions", [])) + [
                {"resolutions": added, "date": older.device.get("date")}]
        return dataclasses.replace(
            self, device=device, table=np.where(rows, self.table, older.table),
            fixed=np.where(take, self.fixed, older.fixed), spread=pick(self.spread, older.spread, rows, self.table),
            fixed_spread=pick(self.fixed_spread, older.fixed_spread, take, self.fixed),
        )

    # ---------------------------------------------------------------- costs
    def cost(self, archs: Int[Array, "n d"]) -> Float[Array, " n"]:
        """`fixed[r] + sum over active blocks of table[r, b, k_b, e_b]` per architecture (jittable).

        On concrete inputs a resolution the table lacks raises `LUTError`; traced under
        `jit` it cannot be checked and costs NaN.
        """
        try:
            host = np.asarray(archs)
        except jax.errors.TracerArrayConversionError:
            host = None
        if host is not None:
            self.check_resolutions(host)
        s = self._shape
        archs = jnp.asarray(archs, jnp.int32)
        squeeze = archs.ndim == 1
        archs = jnp.atleast_2d(archs)
        if archs.shape[-1] != len(self.decisions):
            raise LUTError(f"table has {len(self.decisions)} decisions, archs have {archs.shape[-1]}")
        n, nb = archs.shape[0], s.num_blocks
        r = archs[:, s.resolution_index]
        kernel, expand = archs[:, :nb], archs[:, nb:2 * nb]
        depth = jnp.asarray(s.depths, jnp.int32)[archs[:, 2 * nb:2 * nb + s.num_stages]]  # [n, S]
        active = (jnp.arange(s.max_depth)[None, None, :] < depth[:, :, None]).reshape(n, nb)
        table = jnp.asarray(self.table, jnp.float32)
        blocks = table[r[:, None], jnp.arange(nb)[None, :], kernel, expand]  # [n, B]
        total = jnp.asarray(self.fixed, jnp.float32)[r] + jnp.where(active, blocks, 0.0).sum(axis=-1)
        return total[0] if squeeze else total

    def expected_cost(self, probs: Float[Array, "d c"]) -> Float[Array, ""]:
        """Expected cost under independent per-decision probabilities `[d, max choices]`.

        `sum_r p_r (fixed[r] + sum_b P(b active) sum_{k,e} p_{b,k} p_{b,e} table[r, b, k, e])`
        with `P(b active) = sum over depths d > slot(b) of p_{stage(b), d}`. Multilinear in
        `p`, so differentiable; unprofiled resolutions count 0 (give them probability 0).
        """
        s = self._shape
        probs = jnp.asarray(probs)
        width = max(len(c) for c in self.choices)
        if probs.shape != (len(self.decisions), width):
            raise LUTError(f"probabilities have shape {probs.shape}, table needs {(len(self.decisions), width)}")
        nb, ns = s.num_blocks, s.num_stages
        R, _, K, E = self.table.shape
        pk, pe = probs[:nb, :K], probs[nb:2 * nb, :E]
        pd, pr = probs[2 * nb:2 * nb + ns, :len(s.depths)], probs[s.resolution_index, :R]
        alive = jnp.asarray(np.arange(s.max_depth)[:, None] < np.asarray(s.depths)[None, :], probs.dtype)
        p_active = (pd @ alive.T).reshape(nb)  # [S, max_depth] -> [B]
        table = jnp.asarray(np.nan_to_num(self.table, nan=0.0), probs.dtype)
        fixed = jnp.asarray(np.nan_to_num(self.fixed, nan=0.0), probs.dtype)
        per_block = jnp.einsum("rbke,bk,be->rb", table, pk, pe)
        return jnp.sum(pr * (fixed + per_block @ p_active))

    def _extreme(self, pick) -> float:
        s = self._shape
        best = None
        for r in np.flatnonzero(self._present):
            per_block = pick(self.table[r].reshape(s.num_blocks, -1), axis=1).reshape(s.num_stages, s.max_depth)
            upto = np.cumsum(per_block, axis=1)[:, np.asarray(s.depths) - 1]  # [S, depth choices]
            value = float(self.fixed[r] + pick(upto, axis=1).sum())
            best = value if best is None else float(pick([best, value]))
        return best

    @property
    def min_cost(self) -> float:
        """The smallest cost any architecture at a profiled resolution can have."""
        return self._extreme(np.min)

    @property
    def max_cost(self) -> float:
        return self._extreme(np.max)

    # ---------------------------------------------------------------- files
    def to_json(self) -> dict[str, Any]:
        def per_resolution(a):
            return [None if np.isnan(f) else np.asarray(a[r]).tolist() for r, f in enumerate(self.fixed)]

        def scalars(a):
            return [None if math.isnan(v) else float(v) for v in a]

        payload = {
            "format": FORMAT, "version": VERSION, "layout": OFA_LAYOUT, "space": self.space,
            "space_fingerprint": self.space_fingerprint, "space_config": self.space_config,
            "metric": self.metric, "unit": self.unit, "device": self.device,
            "decisions": list(self.decisions), "choices": [list(c) for c in self.choices],
            "axes": list(OFA_AXES), "resolutions": list(self.resolutions),
            "fixed": scalars(self.fixed), "table": per_resolution(self.table),
        }
        if self.spread is not None:
            payload["spread"] = per_resolution(np.nan_to_num(self.spread, nan=0.0))
        if self.fixed_spread is not None:
            payload["fixed_spread"] = scalars(self.fixed_spread)
        return payload

    @classmethod
    def _from_ofa_json(cls, payload: dict, where: str) -> "OFALatencyTable":
        required = ("space", "space_fingerprint", "metric", "unit", "device", "decisions", "choices",
                    "resolutions", "fixed", "table")
        missing = [k for k in required if k not in payload]
        if missing:
            raise LUTError(f"{where}: missing field(s) {missing}")
        if payload.get("axes", list(OFA_AXES)) != list(OFA_AXES):
            raise LUTError(f"{where}: 'axes' must be {list(OFA_AXES)}, got {payload['axes']!r}")
        decisions, choices = tuple(payload["decisions"]), tuple(tuple(c) for c in payload["choices"])
        s = _ofa_layout(decisions, choices, where)
        if payload["resolutions"] != list(s.resolutions):
            raise LUTError(f"{where}: 'resolutions' {payload['resolutions']!r} differ from the resolution "
                           f"choices {list(s.resolutions)}")
        R, shape = len(s.resolutions), (s.num_blocks, len(s.kernels), len(s.expands))
        fixed = _ofa_vector(payload["fixed"], R, where, "fixed")
        table = _ofa_blocks(payload["table"], R, shape, s.resolutions, where, "table")
        spread = fixed_spread = None
        if payload.get("spread") is not None:
            spread = _ofa_blocks(payload["spread"], R, shape, s.resolutions, where, "spread")
        if payload.get("fixed_spread") is not None:
            fixed_spread = _ofa_vector(payload["fixed_spread"], R, where, "fixed_spread")
        try:
            return cls(
                space=payload["space"], space_fingerprint=payload["space_fingerprint"],
                metric=payload["metric"], unit=payload["unit"], device=dict(payload["device"]),
                decisions=decisions, choices=choices, fixed=fixed, table=table, spread=spread,
                space_config=payload.get("space_config", {}), fixed_spread=fixed_spread,
            )
        except LUTError as e:
            raise LUTError(f"{where}: {e}") from None


class _OFAShape(NamedTuple):
    num_blocks: int
    num_stages: int
    max_depth: int
    resolution_index: int
    kernels: tuple[int, ...]
    expands: tuple[int, ...]
    depths: tuple[int, ...]
    resolutions: tuple[int, ...]


def _ofa_layout(decisions, choices, where: str) -> _OFAShape:
    """Read the OFA structure from decision names and choices; refuse anything else."""
    names = list(decisions)
    nb = sum(1 for n in names if n.startswith("kernel"))
    ns = len(names) - 2 * nb - 1
    expected = ([f"kernel{i}" for i in range(nb)] + [f"expand{i}" for i in range(nb)]
                + [f"depth{i}" for i in range(max(ns, 0))] + ["resolution"])
    if nb == 0 or ns < 1 or names != expected or nb % ns:
        raise LUTError(f"{where}: decisions are not the ofa_mbv3 layout kernel0..B-1, expand0..B-1, "
                       f"depth0..S-1, resolution (got {names[:3]}...{names[-2:]}, {len(names)} in all)")
    if len(choices) != len(names):
        raise LUTError(f"{where}: {len(choices)} choice lists for {len(names)} decisions")

    def ints(group):
        first = tuple(choices[i] for i in group)
        if any(c != first[0] for c in first):
            raise LUTError(f"{where}: decisions {names[group[0]]}..{names[group[-1]]} must share one choice list")
        try:
            return tuple(int(c) for c in first[0])
        except (TypeError, ValueError):
            raise LUTError(f"{where}: choices of {names[group[0]]} must be integers, got {list(first[0])}") from None

    depths = ints(range(2 * nb, 2 * nb + ns))
    shape = _OFAShape(nb, ns, nb // ns, 2 * nb + ns, ints(range(nb)), ints(range(nb, 2 * nb)), depths,
                      ints([2 * nb + ns]))
    if max(depths) != shape.max_depth or min(depths) < 1:
        raise LUTError(f"{where}: depth choices {list(depths)} do not fit {nb} blocks in {ns} stages")
    return shape


def _check_ofa_entries(t: OFALatencyTable, where: str) -> None:
    s = t._shape
    R = len(s.resolutions)
    want = (R, s.num_blocks, len(s.kernels), len(s.expands))
    if t.table.shape != want:
        raise LUTError(f"{where}: table must be [resolution, block, kernel, expand] = {list(want)}, "
                       f"got shape {list(t.table.shape)}")
    if t.fixed.shape != (R,):
        raise LUTError(f"{where}: fixed must have one entry per resolution ({R}), got shape {list(t.fixed.shape)}")
    if t.spread is not None and t.spread.shape != want:
        raise LUTError(f"{where}: spread must have the table's shape {list(want)}, got {list(t.spread.shape)}")
    if t.fixed_spread is not None and t.fixed_spread.shape != (R,):
        raise LUTError(f"{where}: fixed_spread must have shape [{R}], got {list(t.fixed_spread.shape)}")
    for r, px in enumerate(s.resolutions):
        f, blocks = t.fixed[r], t.table[r]
        if math.isnan(f):
            if not np.isnan(blocks).all():
                raise LUTError(f"{where}: resolution {px} has block costs but its fixed cost is missing (NaN)")
            continue
        if not (math.isfinite(f) and f >= 0):
            raise LUTError(f"{where}: fixed cost at resolution {px} is {f}; it must be finite and >= 0")
        bad = ~(np.isfinite(blocks) & (blocks >= 0))
        if bad.any():
            b, k, e = (int(i) for i in np.argwhere(bad)[0])
            v = blocks[b, k, e]
            what = "missing (NaN)" if math.isnan(v) else f"{v}"
            raise LUTError(f"{where}: entry [resolution {px}][block {b}][kernel {s.kernels[k]}][expand "
                           f"{s.expands[e]}] is {what}; a profiled resolution needs a finite cost >= 0 everywhere")
    if np.isnan(t.fixed).all():
        raise LUTError(f"{where}: no resolution has costs (every entry of 'fixed' is missing)")


def _number(v, where: str, name: str) -> float:
    if v is None:
        return math.nan
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise LUTError(f"{where}: entry of {name!r} is not a number: {v!r}")
    return float(v)


def _ofa_vector(values, R: int, where: str, name: str) -> np.ndarray:
    if not isinstance(values, list) or len(values) != R:
        raise LUTError(f"{where}: {name!r} must be a list of one cost per resolution ({R}), got {values!r}")
    return np.array([_number(v, where, name) for v in values], np.float64)


def _ofa_blocks(values, R: int, shape: tuple[int, int, int], resolutions, where: str, name: str) -> np.ndarray:
    """`[R][B][K][E]` nested lists (null for a whole unprofiled resolution) -> float64 array."""
    if not isinstance(values, list) or len(values) != R:
        got = len(values) if isinstance(values, list) else type(values).__name__
        raise LUTError(f"{where}: {name!r} must have one entry per resolution ({R}), got {got}")
    out = np.full((R, *shape), np.nan)
    for r, value in enumerate(values):
        if value is None:
            continue
        try:
            arr = np.array(value, dtype=object)
        except ValueError:
            arr = None
        if arr is None or arr.shape != shape:
            raise LUTError(f"{where}: {name!r} at resolution {resolutions[r]} must be [block][kernel][expand] = "
                           f"{list(shape)} numbers")
        out[r] = np.vectorize(lambda v: _number(v, where, name), otypes=[np.float64])(arr)
    return out
