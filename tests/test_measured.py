"""Measured-data loaders: the real public files parse into our encoding, bad files fail clearly.

The first half loads the three real datasets beside the checkout and compares the result with
the raw text (read here independently, line by line). The second half writes small files in
the same formats to a temporary folder, breaks one thing at a time, and checks that the error
names the file, the line and the column, which is what a user needs to fix their copy.
"""

import csv
import json
import pickle
from pathlib import Path

import numpy as np
import pytest

from costs.measured import (
    NB201_METRICS, MeasuredData, MeasuredDataError, devices, join_latency, latency, load_fbnet,
    load_fbnet_archs, load_latency_csv, load_measured, load_nasbench201, load_nasbench201_accuracy, load_ofa,
)
from supernet.spaces import get_space

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
needs_shared = pytest.mark.skipif(not (SHARED_DATA / "nasbench201").is_dir(), reason="no ../shared/data")

NB201 = get_space("nasbench201")
FBNET = get_space("fbnet")
OFA = get_space("ofa_mbv3")


def raw_csv(path: Path) -> tuple[list[str], list[list[str]]]:
    """Header and rows of a CSV file, as plain text, without our loader."""
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    return rows[0], rows[1:]


@pytest.fixture(scope="module")
def nb201():
    return load_measured("nasbench201", SHARED_DATA)


@pytest.fixture(scope="module")
def fbnet():
    return load_measured("fbnet", SHARED_DATA)


@pytest.fixture(scope="module")
def ofa():
    return load_measured("ofa_mbv3", SHARED_DATA)


# ============================================================================ real data
def check_shapes(data: MeasuredData, space, n: int, latency_file: Path) -> None:
    assert data.space == space.name
    assert data.archs.shape == (n, space.num_decisions) and data.archs.dtype == np.int32
    assert data.index.shape == (n,) and data.index.dtype == np.int64
    assert all(v.shape == (n,) and v.dtype == np.float64 for v in data.metrics.values())
    header, _ = raw_csv(latency_file)
    assert devices(data) == header[1:]
    space.validate(data.archs)


@needs_shared
def test_nasbench201_real_data_matches_the_raw_files(nb201):
    folder = SHARED_DATA / "nasbench201"
    check_shapes(nb201, NB201, 15625, folder / "latency_ms.csv")
    assert list(nb201.metrics)[:4] == list(NB201_METRICS)
    acc_header, acc_rows = raw_csv(folder / "cifar10.csv")
    lat_header, lat_rows = raw_csv(folder / "latency_ms.csv")
    # Round trips over every row: arch_str -> vector -> arch_str, and vector -> public index.
    assert [NB201.to_public(a) for a in nb201.archs] == [r[1] for r in acc_rows]
    np.testing.assert_array_equal(NB201.to_index(nb201.archs), nb201.index)
    np.testing.assert_array_equal(nb201.index, [int(r[0]) for r in acc_rows])
    lat_by_index = {int(r[0]): r for r in lat_rows}
    for row in (0, 1, 7777, 15624):
        raw = acc_rows[row]
        assert nb201.index[row] == int(raw[0])
        for name in NB201_METRICS:
            assert nb201.metrics[name][row] == float(raw[acc_header.index(name)])
        for j, device in enumerate(lat_header[1:], start=1):
            assert latency(nb201, device)[row] == float(lat_by_index[int(raw[0])][j])


@needs_shared
def test_fbnet_real_data_matches_the_raw_files(fbnet):
    folder = SHARED_DATA / "fbnet"
    check_shapes(fbnet, FBNET, 5000, folder / "latency_ms.csv")
    _, arch_rows = raw_csv(folder / "archs.csv")
    assert [FBNET.to_public(a) for a in fbnet.archs] == [[int(x) for x in r[1:]] for r in arch_rows]
    np.testing.assert_array_equal(fbnet.index, [int(r[0]) for r in arch_rows])
    lat_header, lat_rows = raw_csv(folder / "latency_ms.csv")
    for row in (0, 2500, 4999):
        assert latency(fbnet, "raspi4")[row] == float(lat_rows[row][lat_header.index("raspi4")])
        assert latency(fbnet, "1080ti_1")[row] == float(lat_rows[row][lat_header.index("1080ti_1")])


@needs_shared
def test_ofa_real_data_matches_the_raw_files(ofa):
    folder = SHARED_DATA / "ofa"
    check_shapes(ofa, OFA, 5000, folder / "latency_ms.csv")
    records = [json.loads(line) for line in (folder / "archs.jsonl").read_text().splitlines()]
    np.testing.assert_array_equal(ofa.index, [r.pop("index") for r in records])
    assert [OFA.to_public(a) for a in ofa.archs] == records
    lat_header, lat_rows = raw_csv(folder / "latency_ms.csv")
    for row in (0, 1234, 4999):
        for j, device in enumerate(lat_header[1:], start=1):
            assert latency(ofa, device)[row] == float(lat_rows[row][j])


@needs_shared
def test_explicit_file_paths_and_aliases_load_the_same_data(fbnet):
    folder = SHARED_DATA / "fbnet"
    again = load_fbnet(archs_path=folder / "archs.csv", latency_path=str(folder / "latency_ms.csv"))
    np.testing.assert_array_equal(again.archs, fbnet.archs)
    assert again.metrics.keys() == fbnet.metrics.keys()
    alias = load_measured("ofa", SHARED_DATA)
    assert alias.space == "ofa_mbv3" and alias.archs.shape == (5000, 46)


@needs_shared
def test_loaded_arrays_are_read_only(fbnet):
    with pytest.raises(ValueError):
        fbnet.archs[0, 0] = 1
    with pytest.raises(ValueError):
        latency(fbnet, "raspi4")[0] = 0.0


@needs_shared
def test_unknown_device_lists_the_known_ones(fbnet):
    with pytest.raises(ValueError, match="tpu_v5") as info:
        latency(fbnet, "tpu_v5")
    for device in devices(fbnet):
        assert device in str(info.value)


def test_unknown_space_and_missing_paths_are_refused():
    with pytest.raises(ValueError, match="nasbench201, fbnet, ofa_mbv3"):
        load_measured("darts", ".")
    with pytest.raises(ValueError, match="data_dir"):
        load_fbnet(archs_path="archs.csv")


# ============================================================================ small valid files
def write_nb201(folder: Path, indices=(0, 1, 2, 3)) -> Path:
    """A small NAS-Bench-201 folder: cifar10.csv and latency_ms.csv for `indices`."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = ["index,arch_str,train_accuracy,valid_accuracy,test_accuracy,train_time_s"]
    for i in indices:
        lines.append(f"{i},{NB201.to_public(NB201.from_index(i))},9{i}.5,8{i}.25,8{i}.0,1{i}00.5")
    (folder / "cifar10.csv").write_text("\r\n".join(lines) + "\r\n")
    lat = ["index,pixel3,raspi4"] + [f"{i},{i + 1}.5,{10 * i + 2}.25" for i in indices]
    (folder / "latency_ms.csv").write_text("\n".join(lat) + "\n")
    return folder


def write_fbnet(folder: Path, n: int = 3) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rows = ["index," + ",".join(f"layer{j}" for j in range(22))]
    rows += [f"{i}," + ",".join(str((i + j) % 9) for j in range(22)) for i in range(n)]
    (folder / "archs.csv").write_text("\n".join(rows) + "\n")
    lat = ["index,1080ti_1,raspi4"] + [f"{i},{10 + i}.0,{30 + i}.5" for i in range(n)]
    (folder / "latency_ms.csv").write_text("\n".join(lat) + "\n")
    return folder


def ofa_record(i: int) -> dict:
    arch = (np.arange(OFA.num_decisions) + i) % OFA.cardinalities
    return {"index": i, **OFA.to_public(arch)}


def write_ofa(folder: Path, n: int = 3) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "archs.jsonl").write_text("".join(json.dumps(ofa_record(i)) + "\n" for i in range(n)))
    lat = ["index,2080ti_1"] + [f"{i},{7 + i}.5" for i in range(n)]
    (folder / "latency_ms.csv").write_text("\n".join(lat) + "\n")
    return folder


def test_small_files_load_and_join_on_index_not_position(tmp_path):
    folder = write_nb201(tmp_path / "nasbench201", indices=(5, 3, 9))
    lat = (folder / "latency_ms.csv").read_text().splitlines()
    # Latency rows in another order, with a blank line and a byte-order mark: still aligned.
    (folder / "latency_ms.csv").write_text("\ufeff" + "\n".join([lat[0], lat[3], "", lat[1], lat[2]]) + "\n")
    data = load_nasbench201(tmp_path)
    np.testing.assert_array_equal(data.index, [5, 3, 9])
    np.testing.assert_array_equal(latency(data, "pixel3"), [6.5, 4.5, 10.5])
    np.testing.assert_array_equal(data.metrics["valid_accuracy"], [85.25, 83.25, 89.25])
    assert devices(data) == ["pixel3", "raspi4"]
    fb = load_measured("fbnet", write_fbnet(tmp_path / "fbnet").parent)
    assert fb.archs[1].tolist() == [(1 + j) % 9 for j in range(22)]
    ofa = load_ofa(write_ofa(tmp_path / "ofa").parent)
    assert OFA.to_public(ofa.archs[2]) == {k: v for k, v in ofa_record(2).items() if k != "index"}


def test_building_blocks_compose(tmp_path):
    folder = write_fbnet(tmp_path / "fbnet")
    archs = load_fbnet_archs(folder / "archs.csv")
    assert archs.metrics == {}
    cols = load_latency_csv(folder / "latency_ms.csv", archs.index[::-1])
    np.testing.assert_array_equal(cols["raspi4"], [32.5, 31.5, 30.5])
    with pytest.raises(MeasuredDataError, match="already has latency"):
        join_latency(join_latency(archs, folder / "latency_ms.csv"), folder / "latency_ms.csv")
    acc = load_nasbench201_accuracy(write_nb201(tmp_path / "nb") / "cifar10.csv")
    assert devices(acc) == [] and acc.archs.shape == (4, 6)


def test_error_survives_pickling():
    err = MeasuredDataError("a.csv", "bad", 3, "x")
    again = pickle.loads(pickle.dumps(err))
    assert str(again) == str(err) and (again.line, again.column) == (3, "x")


# ============================================================================ malformed files
def edit_line(path: Path, line: int, old: str, new: str) -> None:
    """Replace `old` by `new` in 1-based `line` of `path` (the edit must change something)."""
    lines = path.read_text().splitlines(keepends=True)
    assert old in lines[line - 1], (old, lines[line - 1])
    lines[line - 1] = lines[line - 1].replace(old, new, 1)
    path.write_text("".join(lines))


def drop_column(path: Path, name: str) -> None:
    rows = [r.split(",") for r in path.read_text().splitlines()]
    j = rows[0].index(name)
    path.write_text("".join(",".join(r[:j] + r[j + 1:]) + "\n" for r in rows))


def nb201_acc(d):
    return d / "nasbench201" / "cifar10.csv"


def nb201_lat(d):
    return d / "nasbench201" / "latency_ms.csv"


def fb_archs(d):
    return d / "fbnet" / "archs.csv"


def ofa_archs(d):
    return d / "ofa" / "archs.jsonl"


A_STR = NB201.to_public(NB201.from_index(2))  # the arch_str on line 4 of the small cifar10.csv
OFA_KS = json.dumps(ofa_record(1)["ks"])  # the ks list on line 2 of the small archs.jsonl
OFA_R = ofa_record(0)["r"]  # the resolution on line 1

# (id, space, file, edit, expected line, expected column, words the message must contain)
MALFORMED = [
    ("nb201-missing-column", "nasbench201", nb201_acc, lambda p: drop_column(p, "valid_accuracy"),
     1, "valid_accuracy", ["expected header", "found"]),
    ("nb201-too-few-fields", "nasbench201", nb201_acc, lambda p: edit_line(p, 3, ",1100.5", ""),
     3, "train_time_s", ["5 fields", "6"]),
    ("nb201-too-many-fields", "nasbench201", nb201_acc, lambda p: edit_line(p, 5, "\n", ",7\n"),
     5, "train_time_s", ["7 fields"]),
    ("nb201-unknown-op", "nasbench201", nb201_acc,
     lambda p: edit_line(p, 4, A_STR, A_STR.replace("~0|", "_5x5~0|", 1)), 4, "arch_str", ["unknown op"]),
    ("nb201-bad-arch-str", "nasbench201", nb201_acc,
     lambda p: edit_line(p, 4, A_STR, A_STR.replace("|+|", "|", 1)), 4, "arch_str", ["3 nodes"]),
    ("nb201-duplicate-index", "nasbench201", nb201_acc, lambda p: edit_line(p, 4, "2,|", "3,|"),
     5, "index", ["index 3 appears twice", "line 4"]),
    ("nb201-non-numeric", "nasbench201", nb201_acc, lambda p: edit_line(p, 3, "81.25", "eighty"),
     3, "valid_accuracy", ["'eighty'", "not a number"]),
    ("nb201-nan-accuracy", "nasbench201", nb201_acc, lambda p: edit_line(p, 2, "80.0", "nan"),
     2, "test_accuracy", ["finite"]),
    ("nb201-accuracy-over-100", "nasbench201", nb201_acc, lambda p: edit_line(p, 2, "90.5", "190.5"),
     2, "train_accuracy", ["100"]),
    ("nb201-index-out-of-range", "nasbench201", nb201_acc, lambda p: edit_line(p, 5, "3,|", "15625,|"),
     5, "index", ["0..15624"]),
    ("nb201-non-integer-index", "nasbench201", nb201_acc, lambda p: edit_line(p, 5, "3,|", "3.0,|"),
     5, "index", ["'3.0'", "integer"]),
    ("nb201-negative-latency", "nasbench201", nb201_lat, lambda p: edit_line(p, 3, "2.5,", "-2.5,"),
     3, "pixel3", ["-2.5"]),
    ("nb201-inf-latency", "nasbench201", nb201_lat, lambda p: edit_line(p, 4, "22.25", "inf"),
     4, "raspi4", ["finite"]),
    ("nb201-nan-latency", "nasbench201", nb201_lat, lambda p: edit_line(p, 2, "1.5", "NaN"),
     2, "pixel3", ["finite"]),
    ("nb201-latency-without-arch", "nasbench201", nb201_lat, lambda p: edit_line(p, 5, "3,", "4,"),
     5, "index", ["index 4", "no architecture"]),
    ("nb201-duplicate-latency-index", "nasbench201", nb201_lat, lambda p: edit_line(p, 5, "3,", "1,"),
     5, "index", ["index 1 appears twice", "line 3"]),
    ("nb201-latency-missing-index-column", "nasbench201", nb201_lat, lambda p: drop_column(p, "index"),
     1, "index", ["expected header"]),
    ("fbnet-layer-out-of-range", "fbnet", fb_archs, lambda p: edit_line(p, 3, "1,1,2,3", "1,9,2,3"),
     3, "layer0", ["9", "0..8"]),
    ("fbnet-negative-layer", "fbnet", fb_archs, lambda p: edit_line(p, 4, ",8,0,", ",-1,0,"),
     4, "layer6", ["-1"]),
    ("fbnet-non-integer-layer", "fbnet", fb_archs, lambda p: edit_line(p, 2, "0,0,1,", "0,0.5,1,"),
     2, "layer0", ["'0.5'"]),
    ("fbnet-21-layers", "fbnet", fb_archs, lambda p: drop_column(p, "layer21"), 1, "layer21", ["missing column"]),
    ("fbnet-23-layers", "fbnet", fb_archs, lambda p: edit_line(p, 1, "layer21", "layer21,layer22"),
     1, "layer22", ["unexpected column"]),
    ("fbnet-short-row", "fbnet", fb_archs, lambda p: edit_line(p, 2, ",2,3\n", ",2\n"),
     2, "layer21", ["22 fields", "23"]),
    ("fbnet-latency-non-numeric", "fbnet", lambda d: d / "fbnet" / "latency_ms.csv",
     lambda p: edit_line(p, 2, "30.5", "n/a"), 2, "raspi4", ["'n/a'"]),
    ("ofa-kernel-4", "ofa_mbv3", ofa_archs, lambda p: edit_line(p, 2, OFA_KS, OFA_KS.replace("5", "4", 1)),
     2, "ks", ["4", "[3, 5, 7]"]),
    ("ofa-short-list", "ofa_mbv3", ofa_archs, lambda p: edit_line(p, 2, OFA_KS, OFA_KS.replace("[5, ", "[", 1)),
     2, "ks", ["20 values"]),
    ("ofa-bad-depth-type", "ofa_mbv3", ofa_archs, lambda p: edit_line(p, 3, '"d": [', '"d": ["4", '),
     3, "d", ["list of 5"]),
    ("ofa-missing-key", "ofa_mbv3", ofa_archs, lambda p: edit_line(p, 1, '"r": ', '"res": '), 1, "r", ["missing"]),
    ("ofa-resolution", "ofa_mbv3", ofa_archs, lambda p: edit_line(p, 1, f'"r": {OFA_R}', f'"r": {OFA_R - 1}'),
     1, "r", [f"{OFA_R - 1} is not one of"]),
    ("ofa-invalid-json", "ofa_mbv3", ofa_archs, lambda p: edit_line(p, 3, "}", ""),
     3, f"character {len(json.dumps(ofa_record(2)))}", ["invalid JSON"]),
    ("ofa-index-not-integer", "ofa_mbv3", ofa_archs, lambda p: edit_line(p, 2, '"index": 1', '"index": "1"'),
     2, "index", ["'1'", "non-negative integer"]),
    ("ofa-missing-index", "ofa_mbv3", ofa_archs, lambda p: edit_line(p, 2, '"index": 1, ', ""),
     2, "index", ["no 'index'"]),
    ("ofa-duplicate-index", "ofa_mbv3", ofa_archs, lambda p: edit_line(p, 3, '"index": 2', '"index": 0'),
     3, "index", ["line 1"]),
    ("ofa-not-an-object", "ofa_mbv3", ofa_archs, lambda p: edit_line(p, 2, p.read_text().splitlines()[1], "[1]"),
     2, "record", ["JSON object"]),
]


def write_all(root: Path) -> Path:
    write_nb201(root / "nasbench201")
    write_fbnet(root / "fbnet")
    write_ofa(root / "ofa")
    return root


@pytest.mark.parametrize("case", MALFORMED, ids=[c[0] for c in MALFORMED])
def test_malformed_file_names_file_line_and_column(tmp_path, case):
    _, space, file_of, edit, line, column, words = case
    root = write_all(tmp_path)
    path = file_of(root)
    edit(path)
    with pytest.raises(MeasuredDataError) as info:
        load_measured(space, root)
    err, message = info.value, str(info.value)
    assert str(path) in message and f"line {line}" in message and column in message, message
    assert err.path == str(path) and err.line == line and column in err.column
    for word in words:
        assert word in message, (word, message)


def test_index_that_disagrees_with_arch_str_names_both_cells(tmp_path):
    path = nb201_acc(write_all(tmp_path))
    edit_line(path, 3, "1,|", "7,|")  # index 7 is another cell than the arch_str on that line
    with pytest.raises(MeasuredDataError) as info:
        load_nasbench201(tmp_path)
    message = str(info.value)
    assert "line 3" in message and "'arch_str'" in message
    assert NB201.to_public(NB201.from_index(1)) in message and NB201.to_public(NB201.from_index(7)) in message


def test_architecture_without_latency_row_is_an_error(tmp_path):
    path = nb201_lat(write_all(tmp_path))
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[:3] + lines[4:]) + "\n")  # drop index 2
    with pytest.raises(MeasuredDataError, match=r"latency_ms\.csv, column 'index': no row for 1 .*\[2\]"):
        load_nasbench201(tmp_path)


@pytest.mark.parametrize("space, name", [("nasbench201", "cifar10.csv"), ("fbnet", "archs.csv"),
                                         ("ofa_mbv3", "archs.jsonl")])
def test_missing_file_says_what_it_should_hold(tmp_path, space, name):
    with pytest.raises(MeasuredDataError, match="file not found; it should hold") as info:
        load_measured(space, tmp_path)
    assert name in str(info.value) and str(tmp_path) in str(info.value)


def test_missing_latency_file_and_empty_files(tmp_path):
    root = write_all(tmp_path)
    (root / "fbnet" / "latency_ms.csv").unlink()
    with pytest.raises(MeasuredDataError, match="latency_ms.csv: file not found; it should hold per-device latency"):
        load_fbnet(root)
    (root / "ofa" / "archs.jsonl").write_text("\n")
    with pytest.raises(MeasuredDataError, match="archs.jsonl, line 1: empty file"):
        load_ofa(root)
    (root / "nasbench201" / "cifar10.csv").write_text("")
    with pytest.raises(MeasuredDataError, match="cifar10.csv, line 1: empty file"):
        load_nasbench201(root)


def test_line_numbers_count_blank_lines(tmp_path):
    path = fb_archs(write_all(tmp_path))
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[:2] + ["", ""] + lines[2:]) + "\n")
    edit_line(path, 6, ",8,0,", ",9,0,")  # the third data row, now on line 6
    with pytest.raises(MeasuredDataError, match=r"line 6, column 'layer6'"):
        load_fbnet(tmp_path)


def test_latency_file_without_device_columns_is_refused(tmp_path):
    root = write_all(tmp_path)
    (root / "fbnet" / "latency_ms.csv").write_text("index\n0\n1\n2\n")
    with pytest.raises(MeasuredDataError, match=r"latency_ms\.csv, line 1, column 'index': no device columns"):
        load_fbnet(root)
