"""Loaders for public measured data (accuracy, latency), returned in our architecture encoding.

Public benchmarks publish architectures in their own encodings (NAS-Bench-201 `arch_str`,
FBNet candidate lists, OFA `{ks, e, d, r}` records) with one number per architecture and
device. Cost models and searchers speak `int32 [n, d]` choice vectors, so each loader parses
the public encoding with the space's own `from_public` and returns a `MeasuredData`: the
vectors, the public `index` column and one float64 column per metric. Latency columns are
keyed `"latency_ms/<device>"`, with the device named exactly as in the file's header.

Files are joined on their `index` column, never on row position, because a user's copy may be
sorted or filtered differently from ours. Every defect of a file raises one
`MeasuredDataError` naming the file, the line (1-based, header = line 1) and the column, so a
bad download is fixed in one look instead of surfacing later as a wrong latency.

The package ships no data: every loader takes paths. `data_dir` means a folder laid out like
the project's shared data (`nasbench201/`, `fbnet/`, `ofa/`); each file path can also be
given on its own to point at a private copy.

Example::

    data = load_measured("fbnet", "../shared/data")
    data.archs.shape          # (5000, 22)
    devices(data)             # ['1080ti_1', 'eyeriss', 'fpga', 'gold_6226', 'pixel3', 'raspi4']
    latency(data, "raspi4")   # float64 [5000], ms
"""

from __future__ import annotations

import csv
import dataclasses
import json
import operator
import os
from pathlib import Path
from typing import NamedTuple, Sequence

import numpy as np

from costs.errors import LocatedError
from supernet.spaces import SearchSpace, get_space
from supernet.spaces.nasbench201 import arch_str_table

LATENCY_PREFIX = "latency_ms/"
NB201_METRICS = ("train_accuracy", "valid_accuracy", "test_accuracy", "train_time_s")
_ACCURACY_METRICS = NB201_METRICS[:3]

# Space name -> (folder in data_dir, architecture file, latency file).
_LAYOUT = {
    "nasbench201": ("nasbench201", "cifar10.csv", "latency_ms.csv"),
    "fbnet": ("fbnet", "archs.csv", "latency_ms.csv"),
    "ofa_mbv3": ("ofa", "archs.jsonl", "latency_ms.csv"),
}
# Folder names are accepted as space names too: people type what they see on disk.
_ALIASES = {"ofa": "ofa_mbv3"}

PathLike = str | os.PathLike


class MeasuredData(NamedTuple):
    """Architectures of one space with their measured metrics, row-aligned."""

    space: str  # space name, as `supernet.spaces.get_space` knows it
    archs: np.ndarray  # int32 [n, d], our encoding
    index: np.ndarray  # int64 [n], the public index column
    metrics: dict[str, np.ndarray]  # name -> float64 [n]


class MeasuredDataError(LocatedError):
    """A data file is missing or does not hold what its format promises.

    `path`, `line` (1-based line in the file; the header is line 1) and `column` are kept as
    attributes so that tools can point at the spot; either may be None when the defect has no
    single place (a missing file, an index absent from a whole file).
    """


# ============================================================================ public loaders
def load_measured(space_name: str, data_dir: PathLike) -> MeasuredData:
    """All measured data of `space_name` under `data_dir` (the shared data's layout)."""
    name = _ALIASES.get(space_name, space_name)
    loaders = {"nasbench201": load_nasbench201, "fbnet": load_fbnet, "ofa_mbv3": load_ofa}
    if name not in loaders:
        raise ValueError(f"no measured data for space {space_name!r}; spaces: {', '.join(loaders)}")
    return loaders[name](data_dir)


def load_nasbench201(data_dir: PathLike | None = None, *, accuracy_path: PathLike | None = None,
                     latency_path: PathLike | None = None) -> MeasuredData:
    """NAS-Bench-201 CIFAR-10 accuracies joined with per-device latencies on `index`."""
    acc_path, lat_path = _resolve("nasbench201", data_dir, accuracy_path, latency_path)
    return join_latency(load_nasbench201_accuracy(acc_path), lat_path)


def load_fbnet(data_dir: PathLike | None = None, *, archs_path: PathLike | None = None,
               latency_path: PathLike | None = None, space: SearchSpace | None = None) -> MeasuredData:
    """HW-NAS-Bench's FBNet architectures joined with their per-device latencies."""
    a_path, l_path = _resolve("fbnet", data_dir, archs_path, latency_path)
    return join_latency(load_fbnet_archs(a_path, space), l_path)


def load_ofa(data_dir: PathLike | None = None, *, archs_path: PathLike | None = None,
             latency_path: PathLike | None = None, space: SearchSpace | None = None) -> MeasuredData:
    """OFA MobileNetV3 subnets joined with their per-GPU latencies."""
    a_path, l_path = _resolve("ofa_mbv3", data_dir, archs_path, latency_path)
    return join_latency(load_ofa_archs(a_path, space), l_path)


def devices(data: MeasuredData) -> list[str]:
    """Devices with a latency column, in file order."""
    return [k[len(LATENCY_PREFIX):] for k in data.metrics if k.startswith(LATENCY_PREFIX)]


def latency(data: MeasuredData, device: str) -> np.ndarray:
    """Latency (ms) of every architecture on `device`; unknown devices list the known ones."""
    key = LATENCY_PREFIX + device
    if key not in data.metrics:
        known = devices(data)
        raise ValueError(
            f"no latency for device {device!r} in the {data.space} data; "
            f"devices: {', '.join(known) if known else '(none: no latency file was joined)'}"
        )
    return data.metrics[key]


def join_latency(data: MeasuredData, path: PathLike) -> MeasuredData:
    """`data` plus the latency columns of CSV `path`, matched on `index`."""
    columns = load_latency_csv(path, data.index)
    metrics = dict(data.metrics)
    for device, values in columns.items():
        key = LATENCY_PREFIX + device
        if key in metrics:
            raise MeasuredDataError(path, f"the data already has latency for device {device!r}", 1, device)
        metrics[key] = values
    return data._replace(metrics=metrics)


def load_latency_csv(path: PathLike, index: np.ndarray) -> dict[str, np.ndarray]:
    """Device -> latency (ms) float64 `[len(index)]`, reordered to follow `index`.

    The file is `index, <device>...`; every row's index must be one of `index` and every
    entry of `index` must have exactly one row, so a truncated or mixed-up file cannot be
    silently aligned to the wrong architectures.
    """
    table = _read_csv(path, "per-device latency in ms: a header 'index,<device>,...' and one row per architecture",
                      required=("index",))
    device_names = [name for name in table.header if name != "index"]
    if not device_names:
        raise MeasuredDataError(path, f"no device columns; header is {table.header}", 1, "index")
    lat_index = _parse_index(table)
    order = _match_rows(table, lat_index, np.asarray(index))
    return {d: _frozen(_parse_floats(table, d, low=0.0)[order]) for d in device_names}


def load_nasbench201_accuracy(path: PathLike, space: SearchSpace | None = None) -> MeasuredData:
    """NAS-Bench-201 `cifar10.csv`: arch_str parsed, checked against the public index.

    Columns other than the expected ones are ignored. The arch_str of each row must be the
    cell that `space.from_index(index)` gives, which catches files whose index column was
    renumbered (e.g. by a sort) and would otherwise pair accuracies with the wrong cells.
    """
    space = space or get_space("nasbench201")
    table = _read_csv(path, "NAS-Bench-201 CIFAR-10 results: index, arch_str, " + ", ".join(NB201_METRICS),
                      required=("index", "arch_str", *NB201_METRICS))
    index = _parse_index(table)
    archs = _parse_arch_strs(space, table)
    _check_nb201_index(space, table, index, archs)
    metrics = {
        name: _frozen(_parse_floats(table, name, low=0.0, high=100.0 if name in _ACCURACY_METRICS else None))
        for name in NB201_METRICS
    }
    return MeasuredData(space.name, _frozen(archs), _frozen(index), metrics)


def load_fbnet_archs(path: PathLike, space: SearchSpace | None = None) -> MeasuredData:
    """FBNet `archs.csv` (`index, layer0..layer<d-1>`, candidate indices); no metrics."""
    space = space or get_space("fbnet")
    names = space.decision_names
    table = _read_csv(
        path, f"FBNet architectures: index, {names[0]}..{names[-1]} ({len(names)} layers, candidate indices)",
        required=("index", *names), exact=True,
    )
    index = _parse_index(table)
    archs = np.stack([_parse_ints(table, name) for name in names], axis=1) if len(table) else \
        np.zeros((0, len(names)), np.int64)
    _check_choices(space, table, archs)
    return MeasuredData(space.name, _frozen(archs.astype(np.int32)), _frozen(index), {})


def load_ofa_archs(path: PathLike, space: SearchSpace | None = None) -> MeasuredData:
    """OFA `archs.jsonl`: one `{"index", "ks", "e", "d", "r"}` object per line; no metrics."""
    space = space or get_space("ofa_mbv3")
    index, lines, archs = [], [], []
    for line_no, record in _read_jsonl(path, "OFA subnets, one JSON object per line: index, ks, e, d, r"):
        index.append(_record_index(path, line_no, record))
        lines.append(line_no)
        archs.append(_record_arch(space, path, line_no, {k: v for k, v in record.items() if k != "index"}))
    if not index:
        raise MeasuredDataError(path, "empty file; it should hold one OFA subnet record per line", 1)
    index_arr = np.asarray(index, np.int64)
    _check_unique(path, index_arr, lines)
    return MeasuredData(space.name, _frozen(np.stack(archs).astype(np.int32)), _frozen(index_arr), {})


# ============================================================================ CSV reading
@dataclasses.dataclass(frozen=True)
class _Table:
    """A parsed CSV file: stripped header, and each data row with its line number."""

    path: str
    header: list[str]
    lines: list[int]
    rows: list[list[str]]

    def __len__(self) -> int:
        return len(self.rows)

    def column(self, name: str) -> list[str]:
        # itemgetter keeps the per-field loop in C: ~3x faster than a comprehension.
        return list(map(operator.itemgetter(self.header.index(name)), self.rows))


def _read_csv(path: PathLike, what: str, required: Sequence[str], exact: bool = False) -> _Table:
    """Read a CSV file, checking its header and that every row has one field per column.

    Blank lines are skipped (editors add them at the end); line numbers stay those of the
    file so that errors point at the right line.
    """
    path = str(path)
    with _open_text(path, what) as f:
        reader = csv.reader(f)
        try:
            header = next((row for row in reader if not _blank(row)), None)
            if header is None:
                raise MeasuredDataError(path, f"empty file; it should hold {what}", 1)
            header = _check_header(path, [name.strip() for name in header], required, exact)
            width, lines, rows = len(header), [], []
            for row in reader:
                if len(row) != width:  # the only test on the fast path
                    if _blank(row):
                        continue
                    _arity_error(path, reader.line_num, header, row)
                lines.append(reader.line_num)
                rows.append(row)
        except csv.Error as err:
            raise MeasuredDataError(path, f"not valid CSV: {err}", reader.line_num) from None
        except UnicodeDecodeError as err:
            raise MeasuredDataError(path, f"not UTF-8 text near this line: {err}", reader.line_num + 1) from None
    return _Table(path, header, lines, rows)


def _blank(row: list[str]) -> bool:
    return not row or (len(row) == 1 and not row[0].strip())


def _open_text(path: str, what: str):
    """Open a text file, turning a missing path into an error that says what belongs there.

    `utf-8-sig` drops the byte-order mark that spreadsheet programs write, which would
    otherwise glue itself to the first column name.
    """
    try:
        return open(path, newline="", encoding="utf-8-sig")
    except FileNotFoundError:
        raise MeasuredDataError(path, f"file not found; it should hold {what}") from None
    except OSError as err:
        raise MeasuredDataError(path, f"cannot read the file ({err.strerror}); it should hold {what}") from None


def _check_header(path: str, header: list[str], required: Sequence[str], exact: bool) -> list[str]:
    """The header, if it names every required column once (and nothing else when `exact`)."""
    found = ", ".join(header)
    expected = ", ".join(required)
    for j, name in enumerate(header):
        if not name:
            raise MeasuredDataError(path, f"column {j + 1} has no name; header is: {found}", 1, name)
        if header.index(name) != j:
            raise MeasuredDataError(path, f"column {name!r} appears twice; header is: {found}", 1, name)
    for name in required:
        if name not in header:
            raise MeasuredDataError(
                path, f"missing column {name!r}; expected header: {expected}; found: {found}", 1, name)
    if exact:
        for name in header:
            if name not in required:
                raise MeasuredDataError(
                    path, f"unexpected column {name!r}; expected header: {expected}; found: {found}", 1, name)
    return header


def _arity_error(path: str, line: int, header: list[str], row: list[str]) -> None:
    """A row without exactly one field per header column: name the first missing/extra one."""
    if len(row) < len(header):
        first, more = header[len(row)], len(header) - len(row) - 1
        after = f" or the {more} column(s) after it" if more else ""
        raise MeasuredDataError(
            path, f"row has {len(row)} fields, the header has {len(header)}; "
                  f"no value for column {first!r}{after}", line, first)
    if len(row) > len(header):
        raise MeasuredDataError(
            path, f"row has {len(row)} fields, the header has {len(header)}; "
                  f"extra value(s) after the last column {header[-1]!r}: {row[len(header):]}", line, header[-1])


# ============================================================================ field parsing
def _parse_ints(table: _Table, name: str) -> np.ndarray:
    """Column `name` as int64; the first non-integer (or too large) field raises with its line."""
    values = table.column(name)
    try:
        return np.fromiter(map(int, values), np.int64, len(values))
    except (ValueError, OverflowError):
        for line, v in zip(table.lines, values):
            try:
                np.int64(int(v))
            except (ValueError, OverflowError):
                raise MeasuredDataError(table.path, f"{v!r} is not a 64-bit integer", line, name) from None
        raise


def _parse_floats(table: _Table, name: str, low: float | None = None, high: float | None = None) -> np.ndarray:
    """Column `name` as float64, finite and within [low, high] (bounds optional)."""
    values = table.column(name)
    try:
        out = np.fromiter(map(float, values), np.float64, len(values))
    except ValueError:
        for line, v in zip(table.lines, values):
            try:
                float(v)
            except ValueError:
                raise MeasuredDataError(table.path, f"{v!r} is not a number", line, name) from None
        raise
    bad = ~np.isfinite(out)
    if low is not None:
        bad |= out < low
    if high is not None:
        bad |= out > high
    if bad.any():
        r = int(np.argmax(bad))
        bounds = f"[{low if low is not None else '-inf'}, {high if high is not None else 'inf'}]"
        raise MeasuredDataError(table.path, f"value {values[r].strip()!r} must be a finite number in {bounds}",
                                table.lines[r], name)
    return out


def _parse_index(table: _Table) -> np.ndarray:
    """The `index` column: non-negative integers, each once."""
    index = _parse_ints(table, "index")
    if (index < 0).any():
        r = int(np.argmax(index < 0))
        raise MeasuredDataError(table.path, f"index {index[r]} is negative", table.lines[r], "index")
    _check_unique(table.path, index, table.lines)
    return index


def _check_unique(path: str, index: np.ndarray, lines: list[int]) -> None:
    """Duplicate indices make a join ambiguous: name both lines of the first duplicate."""
    if len(np.unique(index)) == len(index):
        return
    first_line: dict[int, int] = {}
    for line, i in zip(lines, index.tolist()):
        if i in first_line:
            raise MeasuredDataError(path, f"index {i} appears twice (also on line {first_line[i]})", line, "index")
        first_line[i] = line


def _match_rows(table: _Table, lat_index: np.ndarray, arch_index: np.ndarray) -> np.ndarray:
    """Row of `table` for each entry of `arch_index` (both sides' indices are unique)."""
    position = {i: r for r, i in enumerate(arch_index.tolist())}
    order = np.full(len(arch_index), -1, np.int64)
    for r, i in enumerate(lat_index.tolist()):
        if i not in position:
            raise MeasuredDataError(
                table.path, f"index {i} matches no architecture (the architecture file has no such index)",
                table.lines[r], "index")
        order[position[i]] = r
    if (order < 0).any():
        missing = arch_index[order < 0]
        raise MeasuredDataError(
            table.path, f"no row for {len(missing)} architecture index(es), e.g. "
                        f"{missing[:5].tolist()}; every architecture needs a latency row", None, "index")
    return order


# ============================================================================ encodings
def _parse_arch_strs(space: SearchSpace, table: _Table) -> np.ndarray:
    """NAS-Bench-201 `arch_str` column as `int32 [n, 6]`.

    Canonical strings are looked up in a table of all 15,625 cells (one dict hit per row,
    about 10x faster than `from_public`); anything else goes through `from_public`, which
    either accepts it or explains what is wrong.
    """
    known = arch_str_table()
    out = np.empty((len(table), space.num_decisions), np.int32)
    for r, text in enumerate(table.column("arch_str")):
        text = text.strip()
        vec = known.get(text)
        if vec is None:
            try:
                vec = space.from_public(text)
            except ValueError as err:
                raise MeasuredDataError(table.path, str(err), table.lines[r], "arch_str") from None
        out[r] = vec
    return out


def _check_nb201_index(space: SearchSpace, table: _Table, index: np.ndarray, archs: np.ndarray) -> None:
    """Each row's cell must be the one the public index denotes."""
    n_cells = space.size
    if (index >= n_cells).any():
        r = int(np.argmax(index >= n_cells))
        raise MeasuredDataError(table.path, f"index {index[r]} is out of range 0..{n_cells - 1}",
                                table.lines[r], "index")
    expected = space.from_index(index) if len(index) else archs
    wrong = np.any(expected != archs, axis=1)
    if wrong.any():
        r = int(np.argmax(wrong))
        raise MeasuredDataError(
            table.path, f"arch_str {space.to_public(archs[r])!r} does not match index {index[r]}, "
                        f"which is {space.to_public(expected[r])!r} in NAS-Bench-201", table.lines[r], "arch_str")


def _check_choices(space: SearchSpace, table: _Table, archs: np.ndarray) -> None:
    """Every CSV cell must be a valid choice index; the space words the complaint."""
    bad = (archs < 0) | (archs >= space.cardinalities)
    if not bad.any():
        return
    r, c = (int(x) for x in np.argwhere(bad)[0])
    try:
        space.from_public(archs[r].tolist())
        problem = f"value {archs[r, c]} is not a valid choice"
    except ValueError as err:
        problem = str(err)
    raise MeasuredDataError(table.path, problem, table.lines[r], space.decision_names[c])


# ============================================================================ JSON lines
def _read_jsonl(path: PathLike, what: str):
    """Yield (line number, decoded object) for each non-blank line."""
    path = str(path)
    with _open_text(path, what) as f:
        line_no = 0
        try:
            for line_no, line in enumerate(f, start=1):
                text = line.rstrip("\r\n")  # so that error positions are within this line
                if not text.strip():
                    continue
                try:
                    yield line_no, json.loads(text)
                except json.JSONDecodeError as err:
                    raise MeasuredDataError(path, f"invalid JSON: {err.msg}", line_no,
                                            f"character {err.pos + 1}") from None
        except UnicodeDecodeError as err:
            raise MeasuredDataError(path, f"not UTF-8 text near this line: {err}", line_no + 1) from None


def _record_index(path: str, line: int, record) -> int:
    """The record's `index`: it must be an object with a non-negative integer index."""
    if not isinstance(record, dict):
        raise MeasuredDataError(path, f"expected a JSON object, got {type(record).__name__}", line, "record")
    value = record.get("index")
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        problem = ("the record has no 'index' key" if "index" not in record
                   else f"index {value!r} is not a non-negative integer")
        raise MeasuredDataError(path, problem, line, "index")
    return value


def _record_arch(space: SearchSpace, path: str, line: int, record: dict) -> np.ndarray:
    """A public record -> our vector, with the space's error placed at its key."""
    try:
        return space.from_public(record)
    except ValueError as err:
        raise MeasuredDataError(path, str(err), line, _failing_key(space, record)) from None


def _failing_key(space: SearchSpace, record: dict) -> str:
    """Which key of `record` the space rejects.

    Each key is grafted alone onto a known-good record and parsed again, so the space stays
    the only judge of validity and this module repeats none of its rules.
    """
    good = space.to_public(np.zeros(space.num_decisions, np.int32))
    for key in good:
        if key not in record:
            return key
    for key, value in record.items():
        try:
            space.from_public({**good, key: value})
        except ValueError:
            return key
    return "record"


# ============================================================================ small helpers
def _resolve(space_name: str, data_dir, arch_path, latency_path) -> tuple[Path, Path]:
    """Explicit file paths win; the rest come from `data_dir`'s standard layout."""
    folder, arch_file, latency_file = _LAYOUT[space_name]
    if data_dir is None and (arch_path is None or latency_path is None):
        raise ValueError(f"{space_name}: give data_dir, or both file paths ({arch_file} and {latency_file})")
    base = Path(data_dir) / folder if data_dir is not None else None
    return (Path(arch_path) if arch_path is not None else base / arch_file,
            Path(latency_path) if latency_path is not None else base / latency_file)


def _frozen(array: np.ndarray) -> np.ndarray:
    """Read-only view: loaded data is shared by callers and must not be edited in place."""
    array.setflags(write=False)
    return array


__all__ = [
    "LATENCY_PREFIX", "MeasuredData", "MeasuredDataError", "NB201_METRICS", "devices", "join_latency", "latency",
    "load_fbnet", "load_fbnet_archs", "load_latency_csv", "load_measured", "load_nasbench201",
    "load_nasbench201_accuracy", "load_ofa", "load_ofa_archs",
]
