"""Costs measured elsewhere (a phone, a Pi, an accelerator) imported as a `LatencyTable`.

`hwnas profile` times candidates on the JAX backend it runs on. Most target devices cannot
run JAX, and many teams already have per-layer numbers from their own tools (TFLite
benchmark, a vendor profiler, a power meter). This module reads those numbers from a small
CSV file with one cost per (decision, choice) of an additive space and returns the same
`costs.lut.LatencyTable` that profiling builds, so every consumer (hardware loss, `derive`,
searchers) takes it unchanged.

Format
------
A UTF-8 CSV file whose first (non-blank) row is the header ``decision,choice,value``, optionally with
``spread`` and ``note`` columns (any column order, nothing else)::

    decision,choice,value,spread,note
    fixed,stem,310.5,,3x3 conv + BN + ReLU
    fixed,head,120.0,,1x1 conv + pool + classifier
    layer0,k3_e1,10430.4,15.2,
    layer0,k3_e1_g2,17413.8,21.0,
    ...
    layer1,skip,2320.6,0,estimated: no measurement

decision
    A decision name of the space, spelled exactly as `space.decision_names` (``layer0``,
    ``edge2<-1``), or ``fixed`` for the part of the network no decision touches.
choice
    One of that decision's choices as a string (``k3_e1``, ``skip``, ``nor_conv_3x3``). In
    ``fixed`` rows it is a free label naming the part (``stem``, ``head``), or empty or ``-``;
    a label other than those may appear once.
value
    The cost, a finite number >= 0. It is multiplied by `scale` to give the table's `unit`
    (measured in microseconds, wanted in ms: ``scale=0.001``).
spread (optional)
    Variability of the value in the same unit (e.g. interquartile range), scaled alike. When
    the column exists every decision row needs one; ``fixed`` rows leave it empty, because an
    additive table keeps no spread for its fixed part.
note (optional)
    Free text (provenance, "estimated: ..."). Non-empty notes are kept in the table's device
    metadata under ``entry_notes`` as ``{"decision/choice": note}``, so a reader of the JSON
    table can see which entries were not measured.

Rules, and why:

* One row per (decision, choice), none missing and none twice. Rows are matched by name,
  never by position: a reordered or filtered file cannot shift a cost onto another choice,
  which positional LUTs (a list of lists in candidate order) cannot rule out.
* An empty value is refused. A table entry is what the search loss and `derive` read; a
  choice with no cost has no safe default (0 makes it look free, so a search would pick it;
  the maximum biases it away for no reason). Write an estimate explicitly and say so in
  ``note``, as `experiments/import_raspi4_lut.py` does for its unmeasured skips.
* At least one ``fixed`` row; several are summed (stem + head). If the fixed layers were not
  measured, write ``fixed,-,0``: the table then costs only the searchable part, and says so
  instead of by accident. Such costs rank architectures as whole-network sums would (the
  fixed part is the same for every architecture) but understate absolute cost by it.
* Blank lines are skipped. Every defect raises `LUTImportError`, naming the file, the
  1-based line (header = line 1) and the column, e.g.
  ``pi4.csv, line 3, column 'choice': decision 'layer0' has no choice 'k3e1' (did you mean
  'k3_e1'?); its choices: k3_e1, k3_e1_g2, ...``.

The CSV holds names, not the macro-architecture: the table is stamped with the fingerprint
of the `space` passed in, so pass the configuration the measurements were made on (the same
preset or JSON config as for `hwnas profile`). The names catch a different number of layers,
not different widths.

Spaces: the additive ones, `fbnet` and `nasbench201`. `ofa_mbv3` is refused: its tables are
`[resolution, block, kernel, expand]` (a block's cost depends on the input resolution, and a
stage's depth decides which blocks exist), which a per-(decision, choice) file cannot express;
they come from `hwnas profile --space ofa_mbv3`.

Example::

    space = get_space("fbnet")
    table = import_csv("pi4.csv", space, device="raspi4", metric="latency_ms", scale=0.001)
    table.save("pi4_lut.json")
    export_csv(table, "again.csv")        # the same format, in the table's unit
"""

from __future__ import annotations

import csv
import difflib
import math
import os
import re
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from costs.errors import LocatedError
from costs.lut import OFA_LAYOUT, UNITS, LatencyTable, LUTError, OFALatencyTable, device_info

FIXED = "fixed"  # the `decision` of rows costing the part no decision touches
REQUIRED = ("decision", "choice", "value")
OPTIONAL = ("spread", "note")
_UNLABELLED = ("", "-")  # `choice` of a fixed row without a label; may repeat

PathLike = str | os.PathLike

OFA_REFUSAL = (f"{OFA_LAYOUT} tables cannot be imported from a (decision, choice) CSV: their layout is "
               f"[resolution, block, kernel, expand] (a block's cost depends on the resolution and a stage's "
               f"depth decides which blocks exist); build them with `hwnas profile --space {OFA_LAYOUT}`")


class LUTImportError(LUTError, LocatedError):
    """A cost CSV that does not hold what the format promises (`path`, `line`, `column`:
    see `costs.errors.LocatedError`; `line` is None when the defect is a missing row)."""


# ====================================================================== import
def import_csv(path: PathLike, space, *, device: str | Mapping[str, Any], metric: str = "latency_ms",
               unit: str | None = None, scale: float = 1.0) -> LatencyTable:
    """Read a cost CSV (format in the module docstring) into a `LatencyTable` for `space`.

    `device` is a name (metadata then records the import date, the source file and the
    scale) or a full metadata dict with at least ``name``. `unit` defaults to the metric's
    usual unit (`costs.lut.UNITS`: latency_ms -> ms, energy_mj -> mJ); another metric needs
    one. `scale` multiplies every value and spread.
    """
    check_importable(space)
    scale = _check_scale(scale)
    unit = unit or UNITS.get(metric)
    if not unit:
        raise LUTError(f"metric {metric!r} has no default unit; give one (defaults: "
                       + ", ".join(f"{m} -> {u}" for m, u in UNITS.items()) + ")")
    header, rows = _read_rows(Path(path))
    table, spread, fixed, notes = _fill(str(path), space, header, rows, scale)
    if isinstance(device, str):
        if not device.strip():
            raise LUTError("device name is empty")
        meta = device_info(device, imported_from=str(path), scale=scale)
    else:
        meta = dict(device)
        if not meta.get("name"):
            raise LUTError(f"device metadata needs a 'name', got {sorted(meta)}")
    if notes:
        meta["entry_notes"] = notes
    return LatencyTable.for_space(space, table, fixed=fixed, device=meta, metric=metric, unit=unit, spread=spread)


def check_importable(space) -> None:
    """Refuse spaces whose tables are not `[decisions, choices]` (see the module docstring)."""
    if space.name == OFA_LAYOUT:
        raise LUTError(OFA_REFUSAL)


def _check_scale(scale) -> float:
    try:
        value = float(scale)
    except (TypeError, ValueError):
        raise LUTError(f"scale must be a number > 0, got {scale!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise LUTError(f"scale must be a finite number > 0, got {scale!r}")
    return value


def _read_rows(path: Path) -> tuple[list[str], list[tuple[int, dict[str, str]]]]:
    """The checked header and each data row as (line number, column -> stripped text)."""
    what = "per-choice costs with the header decision,choice,value[,spread][,note]"
    try:
        # utf-8-sig drops the byte-order mark spreadsheets write, which would glue itself
        # to the first column name.
        f = open(path, newline="", encoding="utf-8-sig")
    except FileNotFoundError:
        raise LUTImportError(path, f"file not found; it should hold {what}") from None
    except OSError as err:
        raise LUTImportError(path, f"cannot read the file ({err.strerror}); it should hold {what}") from None
    header, rows = None, []
    with f:
        reader = csv.reader(f)
        try:
            for fields in reader:
                if not fields or all(not x.strip() for x in fields):
                    continue
                fields = [x.strip() for x in fields]
                line = reader.line_num
                if header is None:
                    header = _check_header(path, fields, line)
                    continue
                if len(fields) != len(header):
                    _arity_error(path, line, header, fields)
                rows.append((line, dict(zip(header, fields))))
        except csv.Error as err:
            raise LUTImportError(path, f"not valid CSV: {err}", reader.line_num) from None
        except UnicodeDecodeError as err:
            raise LUTImportError(path, f"not UTF-8 text near this line: {err}", reader.line_num + 1) from None
    if header is None:
        raise LUTImportError(path, f"empty file; it should hold {what}", 1)
    return header, rows


def _check_header(path: Path, header: list[str], line: int) -> list[str]:
    found = ",".join(header)
    expected = "decision,choice,value[,spread][,note]"
    for j, name in enumerate(header):
        if not name:
            raise LUTImportError(path, f"column {j + 1} has no name; expected header {expected}, found {found}",
                                 line, name)
        if header.index(name) != j:
            raise LUTImportError(path, f"column {name!r} appears twice; header is {found}", line, name)
        if name not in REQUIRED + OPTIONAL:
            raise LUTImportError(path, f"unknown column {name!r}; expected header {expected}, found {found}",
                                 line, name)
    for name in REQUIRED:
        if name not in header:
            raise LUTImportError(path, f"missing column {name!r}; expected header {expected}, found {found}",
                                 line, name)
    return header


def _arity_error(path: Path, line: int, header: list[str], fields: list[str]) -> None:
    if len(fields) < len(header):
        raise LUTImportError(path, f"row has {len(fields)} fields, the header has {len(header)}: no value for "
                                   f"column {header[len(fields)]!r}", line, header[len(fields)])
    raise LUTImportError(path, f"row has {len(fields)} fields, the header has {len(header)}: extra value(s) "
                               f"{fields[len(header):]} after the last column", line, header[-1])


def _fill(path: str, space, header: list[str], rows, scale: float):
    """Place every row in a dense `[d, max choices]` array; refuse anything off the space."""
    names = space.decision_names
    decision_index = {name: i for i, name in enumerate(names)}
    choices = [tuple(str(c) for c in d.choices) for d in space.decisions]
    choice_index = [{c: j for j, c in enumerate(cs)} for cs in choices]
    width = max(len(cs) for cs in choices)
    has_spread = "spread" in header
    values = np.full((len(names), width), np.nan)
    spread = np.full((len(names), width), np.nan) if has_spread else None
    seen: dict[tuple[int, int], int] = {}  # (decision, choice) -> line
    labels: dict[str, int] = {}  # fixed-row label -> line
    last_line = [None] * len(names)  # where each decision's rows end, to point at a missing one
    fixed, fixed_rows, notes = 0.0, 0, {}

    for line, row in rows:
        decision, choice = row["decision"], row["choice"]
        if decision == FIXED:
            if has_spread and row["spread"]:
                raise LUTImportError(path, f"a {FIXED!r} row takes no spread (the table keeps one fixed cost "
                                           f"without spread); leave it empty", line, "spread")
            if choice not in _UNLABELLED:
                if choice in labels:
                    raise LUTImportError(path, f"fixed part {choice!r} appears twice (also on line "
                                               f"{labels[choice]}); fixed rows are summed, so it would count twice",
                                         line, "choice")
                labels[choice] = line
            fixed += _number(path, line, "value", row["value"], scale)
            fixed_rows += 1
            if row.get("note"):
                key = f"{FIXED}/{choice or '-'}"
                notes[key] = f"{notes[key]}; {row['note']}" if key in notes else row["note"]
            continue
        if decision not in decision_index:
            raise LUTImportError(path, f"unknown decision {decision!r}{_suggest(decision, (*names, FIXED))}; "
                                       f"{space.name} has {_listing(names)} (and {FIXED!r} for the fixed part)",
                                 line, "decision")
        i = decision_index[decision]
        if choice not in choice_index[i]:
            raise LUTImportError(path, f"decision {decision!r} has no choice {choice!r}{_suggest(choice, choices[i])};"
                                       f" its choices: {', '.join(choices[i])}", line, "choice")
        j = choice_index[i][choice]
        if (i, j) in seen:
            raise LUTImportError(path, f"{decision}/{choice} appears twice (also on line {seen[(i, j)]})",
                                 line, "choice")
        seen[(i, j)] = line
        last_line[i] = line
        values[i, j] = _number(path, line, "value", row["value"], scale)
        if has_spread:
            spread[i, j] = _number(path, line, "spread", row["spread"], scale)
        if row.get("note"):
            notes[f"{decision}/{choice}"] = row["note"]

    missing = [(i, j) for i, cs in enumerate(choices) for j in range(len(cs)) if (i, j) not in seen]
    if missing:
        i, j = missing[0]
        pairs = ", ".join(f"{names[a]}/{choices[a][b]}" for a, b in missing[:6])
        more = f" and {len(missing) - 6} more" if len(missing) > 6 else ""
        tail = (f"every (decision, choice) pair needs a row; {len(missing)} missing: {pairs}{more} "
                f"(write an estimate explicitly, with a note, for a choice you could not measure)")
        if last_line[i] is None:
            # A whole decision missing usually means the CSV was measured on another
            # configuration (fewer layers): say so rather than list dozens of pairs only.
            raise LUTImportError(path, f"no row for decision {names[i]!r} (was the file measured on another "
                                       f"configuration of {space.name}?); {tail}", None, "decision")
        raise LUTImportError(path, f"decision {names[i]!r} has no row for choice {choices[i][j]!r} (its rows "
                                   f"end on this line); {tail}", last_line[i], "choice")
    if not fixed_rows:
        raise LUTImportError(path, f"no {FIXED!r} row: give the cost of the layers no decision touches (stem, head), "
                                   f"or write '{FIXED},-,0' if they were not measured", None, "decision")
    return values, spread, fixed, notes


def _number(path: str, line: int, column: str, text: str, scale: float) -> float:
    if not text:
        raise LUTImportError(path, "no value; every entry needs a cost (write an estimate explicitly, with a note, "
                                   "for a choice you could not measure)", line, column)
    try:
        value = float(text)
    except ValueError:
        raise LUTImportError(path, f"{text!r} is not a number", line, column) from None
    if not math.isfinite(value) or value < 0:
        raise LUTImportError(path, f"{text!r} must be a finite number >= 0", line, column)
    scaled = value * scale
    if not math.isfinite(scaled):
        raise LUTImportError(path, f"{text!r} x scale {scale} is not finite", line, column)
    return scaled + 0.0  # -0.0 -> 0.0


def _suggest(word: str, options) -> str:
    """'; did you mean X?' for a case slip or a near miss, else ''."""
    options = list(options)
    folded = [o for o in options if o.lower() == word.lower()]
    # Only names with the same digits: 'layer9' is no typo of 'layer5', but 'k3e1' is of 'k3_e1'.
    same_digits = [o for o in options if re.sub(r"\D", "", o) == re.sub(r"\D", "", word)]
    close = folded or difflib.get_close_matches(word, same_digits, n=1, cutoff=0.75)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _listing(names) -> str:
    if len(names) <= 8:
        return f"decisions {', '.join(names)}"
    return f"{len(names)} decisions {names[0]}..{names[-1]}"


# ====================================================================== export
def export_csv(table: LatencyTable, path: PathLike) -> Path:
    """Write an additive table in the import format (its own unit, so `scale=1` reads it back).

    Values are written at full precision (`repr`), so importing the file for the same space
    gives the same entries bit for bit. Device metadata is not written; give it on import.
    """
    if isinstance(table, OFALatencyTable):
        raise LUTError(OFA_REFUSAL)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(["decision", "choice", "value"] + (["spread"] if table.spread is not None else []))
        writer.writerow([FIXED, "-", repr(float(table.fixed))] + ([""] if table.spread is not None else []))
        for i, (name, cs) in enumerate(zip(table.decisions, table.choices)):
            for j, choice in enumerate(cs):
                row = [name, choice, repr(float(table.table[i, j]))]
                if table.spread is not None:
                    row.append(repr(float(table.spread[i, j])))
                writer.writerow(row)
    return path


__all__ = ["FIXED", "LUTImportError", "OFA_REFUSAL", "check_importable", "export_csv", "import_csv"]
