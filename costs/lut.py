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
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import math
from pathlib import Path
from typing import Any

import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int

FORMAT = "hwnas-lut"
VERSION = 1
UNITS = {"latency_ms": "ms", "energy_mj": "mJ"}


class LUTError(ValueError):
    """A table that cannot be used: malformed file, wrong space, bad entries."""


@dataclasses.dataclass(frozen=True, eq=False)
class LatencyTable:
    """Dense `[decisions, choices]` costs plus the fixed part, for one device and metric."""

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
                  spread=None, unit: str | None = None) -> "LatencyTable":
        """A table for `space` (a `SearchSpace`) from a dense `[d, max_choices]` array."""
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
        table = cls.from_json(payload, where=str(path))
        if space is not None:
            table.check_space(space)
        return table

    @classmethod
    def from_json(cls, payload: Any, where: str = "lookup table") -> "LatencyTable":
        if not isinstance(payload, dict) or payload.get("format") != FORMAT:
            raise LUTError(f"{where}: not an hwnas lookup table (expected \"format\": \"{FORMAT}\")")
        if payload.get("version") != VERSION:
            raise LUTError(f"{where}: unsupported version {payload.get('version')!r} (this hwnas reads {VERSION})")
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
