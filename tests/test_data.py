"""Tests for supernet.data: readers, the embedded subset, deterministic batching, augmentation."""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import os
import pickle
import struct
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from supernet import data as D

SHARED_FASHION = Path(__file__).resolve().parents[2] / "shared" / "data" / "fashion-mnist"
BUILD_SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "build_default_dataset.py"
needs_shared = pytest.mark.skipif(
    not SHARED_FASHION.is_dir(), reason="original Fashion-MNIST not available"
)


def idx_bytes(code: int, dims: tuple[int, ...], payload: bytes) -> bytes:
    return bytes([0, 0, code, len(dims)]) + struct.pack(f">{len(dims)}I", *dims) + payload


def toy_dataset(n: int = 200, num_classes: int = 4) -> D.Dataset:
    """Images whose first two pixels encode the example's index, so subsets can be traced."""
    ids = np.arange(n)
    images = np.zeros((n, 4, 4, 1), np.uint8)
    images[:, 0, 0, 0] = ids % 256
    images[:, 0, 1, 0] = ids // 256
    labels = (ids * 7 % num_classes).astype(np.int32)
    return D.Dataset(images, labels, num_classes, "toy", (0.25,), (0.5,))


def ids_of(images: np.ndarray) -> np.ndarray:
    return images[:, 0, 0, 0].astype(np.int64) + 256 * images[:, 0, 1, 0].astype(np.int64)


# ---------------------------------------------------------------------------------------------
# IDX


@pytest.mark.parametrize("suffix", ["", ".gz"])
@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64])
def test_idx_round_trip(tmp_path, suffix, dtype):
    array = (np.arange(2 * 3 * 5) - 7).reshape(2, 3, 5).astype(dtype)
    if dtype == np.uint8:
        array = np.arange(30, dtype=np.uint8).reshape(2, 3, 5) * 8
    path = tmp_path / f"a-idx3-ubyte{suffix}"
    D.write_idx(path, array)
    back = D.read_idx(path)
    assert back.dtype == np.dtype(dtype) and back.dtype.isnative
    np.testing.assert_array_equal(back, array)
    assert (path.read_bytes()[:2] == b"\x1f\x8b") == (suffix == ".gz")


def test_idx_float_values_are_big_endian_on_disk(tmp_path):
    path = tmp_path / "f"
    D.write_idx(path, np.array([1.5, -2.0], np.float32))
    assert path.read_bytes() == idx_bytes(0x0D, (2,), struct.pack(">2f", 1.5, -2.0))


def test_gzip_is_detected_by_magic_not_name(tmp_path):
    raw = idx_bytes(0x08, (3,), b"\x01\x02\x03")
    (tmp_path / "zipped-but-plain-name").write_bytes(gzip.compress(raw))
    (tmp_path / "plain-but.gz").write_bytes(raw)
    for name in ("zipped-but-plain-name", "plain-but.gz"):
        np.testing.assert_array_equal(D.read_idx(tmp_path / name), [1, 2, 3])


def test_write_idx_gzip_is_byte_reproducible(tmp_path):
    array = np.arange(100, dtype=np.uint8).reshape(10, 10)
    D.write_idx(tmp_path / "a.gz", array)
    D.write_idx(tmp_path / "b.gz", array)
    first = (tmp_path / "a.gz").read_bytes()
    assert first == (tmp_path / "b.gz").read_bytes()
    assert first[4:8] == b"\x00\x00\x00\x00"  # gzip mtime field


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"\x01\x00\x08\x01" + struct.pack(">I", 2) + b"ab", "bad IDX magic"),
        (b"\x00\x00\x0a\x01" + struct.pack(">I", 2) + b"ab", "unknown IDX dtype code 0x0A"),
        (idx_bytes(0x08, (2, 3), b"\x00" * 5), "truncated IDX data"),
        (idx_bytes(0x0C, (2,), b"\x00" * 7), "needs 8 bytes, found 7"),
        (idx_bytes(0x08, (2, 3), b"\x00" * 7), "trailing bytes"),
        (b"\x00\x00\x08\x03" + b"\x00" * 4, "truncated IDX header"),
        (b"\x00\x00", "4-byte IDX magic"),
        (b"\x1f\x8b\x08\x00garbage", "corrupt gzip"),
    ],
)
@pytest.mark.parametrize("zipped", [False, True])
def test_malformed_idx_raises_naming_the_file(tmp_path, raw, expected, zipped):
    path = tmp_path / "broken-idx1-ubyte"
    path.write_bytes(gzip.compress(raw) if zipped and not raw.startswith(b"\x1f\x8b") else raw)
    with pytest.raises(D.DatasetError, match=expected) as info:
        D.read_idx(path)
    assert str(path) in str(info.value)
    assert isinstance(info.value, ValueError)


def write_idx_folder(folder: Path, n_train: int = 12, n_test: int = 5, gz: bool = True) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    suffix = ".gz" if gz else ""
    rng = np.random.default_rng(0)
    for prefix, n, top in (("train", n_train, 3), ("t10k", n_test, 4)):
        images = rng.integers(0, 256, (n, 7, 6), np.uint8)
        labels = np.arange(n, dtype=np.uint8) % (top + 1)
        D.write_idx(folder / f"{prefix}-images-idx3-ubyte{suffix}", images)
        D.write_idx(folder / f"{prefix}-labels-idx1-ubyte{suffix}", labels)


@pytest.mark.parametrize("gz", [True, False])
def test_load_idx_folder(tmp_path, gz):
    write_idx_folder(tmp_path / "mini", gz=gz)
    train = D.load_idx_dataset(tmp_path / "mini", "train")
    test = D.load_dataset(tmp_path / "mini", "test")
    assert train.images.shape == (12, 7, 6, 1) and train.images.dtype == np.uint8
    assert test.images.shape == (5, 7, 6, 1)
    assert train.labels.dtype == np.int32 and train.labels.tolist() == [i % 4 for i in range(12)]
    # train labels stop at 3, test labels reach 4: both splits must agree on 5 classes.
    assert train.num_classes == test.num_classes == 5
    assert train.name == "mini"
    expected_mean = train.images.astype(np.float64).mean() / 255
    assert train.mean == pytest.approx((expected_mean,))
    assert train.std == pytest.approx((train.images.astype(np.float64).std() / 255,))


def test_missing_idx_folder_lists_what_it_looked_for(tmp_path):
    folder = tmp_path / "does-not-exist"
    with pytest.raises(D.DatasetError) as info:
        D.load_idx_dataset(folder, "test")
    message = str(info.value)
    assert str(folder) in message
    assert "t10k-images-idx3-ubyte" in message and "t10k-images-idx3-ubyte.gz" in message


def test_idx_count_mismatch(tmp_path):
    write_idx_folder(tmp_path)
    D.write_idx(tmp_path / "train-labels-idx1-ubyte.gz", np.zeros(11, np.uint8))
    with pytest.raises(D.DatasetError, match="one label per image"):
        D.load_idx_dataset(tmp_path, "train")


def test_load_dataset_rejects_unknown_names_and_splits(tmp_path):
    with pytest.raises(D.DatasetError, match="fashion_mnist_default") as info:
        D.load_dataset("imagenet_please", "train")
    assert "imagenet_please" in str(info.value)
    with pytest.raises(D.DatasetError, match="neither IDX"):
        D.load_dataset(tmp_path, "train")
    with pytest.raises(D.DatasetError, match="unknown split"):
        D.load_dataset(D.DEFAULT_NAME, "validation")


# ---------------------------------------------------------------------------------------------
# CIFAR-10


def write_cifar_folder(folder: Path, per_batch: int = 3) -> dict[str, np.ndarray]:
    """Write a tiny CIFAR-10 folder the way the original is laid out (protocol 2, bytes keys)."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(1)
    rows = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = rng.integers(0, 256, (per_batch, 3072), np.uint8)
        labels = list(rng.integers(0, 10, per_batch))  # numpy scalars: exercises their rebuild
        batch = {b"data": data, b"labels": labels, b"batch_label": b"x"}
        (folder / name).write_bytes(pickle.dumps(batch, protocol=2))
        rows[name] = data
    return rows


def test_cifar_reader_transposes_chw_to_hwc(tmp_path):
    rows = write_cifar_folder(tmp_path / "cifar-10-batches-py")
    # Mark one pixel: channel 2 (blue), row 5, column 9 of the first test image.
    rows["test_batch"][0, 2 * 1024 + 5 * 32 + 9] = 77
    rows["test_batch"][0, 0 * 1024 + 5 * 32 + 9] = 11
    batch = {b"data": rows["test_batch"], b"labels": [3, 1, 4]}
    (tmp_path / "cifar-10-batches-py" / "test_batch").write_bytes(pickle.dumps(batch, protocol=2))

    test = D.load_cifar10(tmp_path, "test")  # the parent folder is accepted too
    assert test.images.shape == (3, 32, 32, 3) and test.images.dtype == np.uint8
    assert test.images[0, 5, 9, 2] == 77 and test.images[0, 5, 9, 0] == 11
    assert test.labels.tolist() == [3, 1, 4] and test.num_classes == 10
    expected = rows["test_batch"].reshape(3, 3, 32, 32).transpose(0, 2, 3, 1)
    np.testing.assert_array_equal(test.images, expected)

    train = D.load_dataset(tmp_path / "cifar-10-batches-py", "train")
    assert train.images.shape == (15, 32, 32, 3)
    np.testing.assert_array_equal(
        train.images[3:6], rows["data_batch_2"].reshape(3, 3, 32, 32).transpose(0, 2, 3, 1)
    )


def test_cifar_missing_and_corrupt_files(tmp_path):
    write_cifar_folder(tmp_path / "c")
    os.remove(tmp_path / "c" / "data_batch_4")
    with pytest.raises(D.DatasetError, match="data_batch_4") as info:
        D.load_cifar10(tmp_path / "c", "train")
    assert str(tmp_path / "c") in str(info.value)

    (tmp_path / "c" / "test_batch").write_bytes(b"\x80\x02}q\x00(")  # cut short
    with pytest.raises(D.DatasetError, match="test_batch"):
        D.load_cifar10(tmp_path / "c", "test")

    no_labels = {b"data": np.zeros((2, 10), np.uint8)}
    (tmp_path / "c" / "test_batch").write_bytes(pickle.dumps(no_labels))
    with pytest.raises(D.DatasetError, match="'data' and 'labels'"):
        D.load_cifar10(tmp_path / "c", "test")


class _Sneaky:
    def __reduce__(self):
        return (os.getcwd, ())


def test_cifar_pickle_cannot_run_code(tmp_path):
    write_cifar_folder(tmp_path / "c")
    (tmp_path / "c" / "test_batch").write_bytes(pickle.dumps({b"data": _Sneaky(), b"labels": []}))
    with pytest.raises(D.DatasetError, match="refusing to load"):
        D.load_cifar10(tmp_path / "c", "test")


# ---------------------------------------------------------------------------------------------
# The embedded default


@pytest.fixture(scope="module")
def default_train() -> D.Dataset:
    return D.load_dataset(D.DEFAULT_NAME, "train")


def test_embedded_default_is_balanced(default_train):
    test = D.load_dataset(D.DEFAULT_NAME, "test")
    for split, per_class in ((default_train, 600), (test, 100)):
        assert split.images.shape == (10 * per_class, 28, 28, 1)
        assert split.images.dtype == np.uint8 and split.labels.dtype == np.int32
        assert np.bincount(split.labels, minlength=10).tolist() == [per_class] * 10
        assert split.num_classes == 10 and split.name == D.DEFAULT_NAME
    # Fashion-MNIST pixel statistics are about 0.29 +- 0.35.
    assert 0.25 < default_train.mean[0] < 0.33 and 0.3 < default_train.std[0] < 0.4


def test_embedded_default_ships_license():
    from importlib.resources import files

    folder = files("supernet").joinpath("assets", "fashion_mnist_subset")
    notice = folder.joinpath("LICENSE").read_text()
    assert "Zalando SE" in notice and "Permission is hereby granted" in notice
    assert "600" in folder.joinpath("README.md").read_text()


@pytest.fixture(scope="module")
def original_train() -> D.Dataset:
    return D.load_idx_dataset(SHARED_FASHION, "train")


def image_hashes(dataset: D.Dataset) -> list[bytes]:
    pairs = zip(dataset.images, dataset.labels)
    return [hashlib.sha1(img.tobytes() + bytes([lab])).digest() for img, lab in pairs]


@needs_shared
def test_embedded_images_come_from_the_original(default_train, original_train):
    known = set(image_hashes(original_train))
    embedded = image_hashes(default_train)
    assert len(set(embedded)) == len(embedded) == 6000
    assert all(h in known for h in embedded)


@needs_shared
def test_build_script_selection_reproduces_the_asset(default_train, original_train):
    spec = importlib.util.spec_from_file_location("build_default_dataset", BUILD_SCRIPT)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    keep = script.stratified_indices(original_train.labels, 600, script.SEED)
    np.testing.assert_array_equal(original_train.images[keep], default_train.images)
    np.testing.assert_array_equal(original_train.labels[keep], default_train.labels)


# ---------------------------------------------------------------------------------------------
# Splitting and batching


def test_split_train_val_is_stratified_disjoint_and_deterministic():
    full = toy_dataset(n=203, num_classes=4)
    train, val = D.split_train_val(full, 0.2, seed=3)
    train_ids, val_ids = ids_of(train.images), ids_of(val.images)
    assert set(train_ids).isdisjoint(val_ids)
    assert sorted(np.concatenate([train_ids, val_ids]).tolist()) == list(range(203))
    np.testing.assert_array_equal(train.labels, full.labels[train_ids])
    for cls in range(4):
        count = int((full.labels == cls).sum())
        assert int((val.labels == cls).sum()) == round(count * 0.2)
    again_train, again_val = D.split_train_val(full, 0.2, seed=3)
    np.testing.assert_array_equal(ids_of(again_val.images), val_ids)
    np.testing.assert_array_equal(ids_of(again_train.images), train_ids)
    _, other_val = D.split_train_val(full, 0.2, seed=4)
    assert set(ids_of(other_val.images)) != set(val_ids)
    assert train.mean == val.mean == full.mean and train.std == val.std == full.std
    assert train.num_classes == val.num_classes == 4


def test_split_keeps_every_class_on_both_sides():
    tiny = toy_dataset(n=8, num_classes=4)  # two examples per class
    train, val = D.split_train_val(tiny, 0.1, seed=0)
    assert sorted(train.labels.tolist()) == sorted(val.labels.tolist()) == [0, 1, 2, 3]
    with pytest.raises(ValueError, match="val_fraction"):
        D.split_train_val(tiny, 1.0, seed=0)


def test_epoch_permutation_is_deterministic_and_varies_by_epoch():
    first = D.epoch_permutation(1000, seed=7, epoch=2)
    assert sorted(first.tolist()) == list(range(1000))
    np.testing.assert_array_equal(first, D.epoch_permutation(1000, seed=7, epoch=2))
    assert not np.array_equal(first, D.epoch_permutation(1000, seed=7, epoch=3))
    assert not np.array_equal(first, D.epoch_permutation(1000, seed=8, epoch=2))
    with pytest.raises(ValueError):
        D.epoch_permutation(10, seed=-1, epoch=0)


def test_num_batches():
    assert D.num_batches(10, 3) == 3
    assert D.num_batches(10, 3, drop_remainder=False) == 4
    assert D.num_batches(9, 3, drop_remainder=False) == 3
    with pytest.raises(ValueError):
        D.num_batches(10, 0)


def test_batches_resume_from_start_equals_tail_of_full_epoch():
    data = toy_dataset(n=50)
    full = list(D.batches(data, 8, seed=1, epoch=4))
    tail = list(D.batches(data, 8, seed=1, epoch=4, start=4))
    assert len(full) == 6 and len(tail) == 2
    for a, b in zip(full[4:], tail):
        np.testing.assert_array_equal(a["image"], b["image"])
        np.testing.assert_array_equal(a["label"], b["label"])
    assert list(D.batches(data, 8, seed=1, epoch=4, start=6)) == []
    with pytest.raises(ValueError, match="start"):
        next(D.batches(data, 8, seed=1, epoch=4, start=7))


def test_batches_cover_the_epoch_once_and_normalize():
    data = toy_dataset(n=50)
    out = list(D.batches(data, 8, seed=0, epoch=0, drop_remainder=False))
    assert [len(b["label"]) for b in out] == [8] * 6 + [2]
    images = np.concatenate([b["image"] for b in out])
    labels = np.concatenate([b["label"] for b in out])
    assert images.dtype == np.float32 and images.shape == (50, 4, 4, 1)
    assert labels.dtype == np.int32
    # Undo the standardization to recover each example's id and check it appears exactly once.
    raw = np.rint((images * 0.5 + 0.25) * 255).astype(np.uint8)
    ids = ids_of(raw)
    assert sorted(ids.tolist()) == list(range(50))
    np.testing.assert_array_equal(labels, data.labels[ids])
    next_epoch = D.batches(data, 8, seed=0, epoch=1, drop_remainder=False)
    other_epoch = np.concatenate([b["label"] for b in next_epoch])
    assert not np.array_equal(labels, other_epoch)


def test_default_batches_are_standardized(default_train):
    batch = next(D.batches(default_train, 2000, seed=0, epoch=0))
    assert batch["image"].shape == (2000, 28, 28, 1)
    assert abs(float(batch["image"].mean())) < 0.05
    assert abs(float(batch["image"].std()) - 1.0) < 0.05


# ---------------------------------------------------------------------------------------------
# Augmentation


@pytest.fixture(scope="module")
def images() -> jax.Array:
    return jax.random.normal(jax.random.key(0), (16, 10, 8, 3))


def test_augment_is_deterministic_per_key_and_keeps_shape(images):
    key = jax.random.key(42)
    out = D.augment(key, images)
    assert out.shape == images.shape and out.dtype == images.dtype
    np.testing.assert_array_equal(out, D.augment(key, images))
    assert not np.array_equal(out, D.augment(jax.random.key(43), images))
    no_flip = D.augment(key, images, padding=3, flip=False)
    assert no_flip.shape == images.shape


def test_crop_with_zero_padding_is_identity(images):
    np.testing.assert_array_equal(D.random_crop(jax.random.key(1), images, 0), images)


def test_crop_takes_per_example_windows_of_the_padded_image(images):
    padding = 2
    out = np.asarray(D.random_crop(jax.random.key(5), images, padding))
    padded = np.pad(np.asarray(images), ((0, 0), (2, 2), (2, 2), (0, 0)), mode="edge")
    offsets = []
    for i in range(len(images)):
        matches = [
            (dy, dx)
            for dy in range(2 * padding + 1)
            for dx in range(2 * padding + 1)
            if np.array_equal(out[i], padded[i, dy : dy + 10, dx : dx + 8])
        ]
        assert len(matches) == 1
        offsets.append(matches[0])
    assert len(set(offsets)) > 3  # offsets are drawn per example


def test_flip_twice_is_identity_and_flips_some_examples(images):
    key = jax.random.key(9)
    once = np.asarray(D.random_flip(key, images))
    np.testing.assert_array_equal(D.random_flip(key, once), images)
    flipped = [np.array_equal(once[i], np.asarray(images)[i, :, ::-1]) for i in range(16)]
    kept = [np.array_equal(once[i], np.asarray(images)[i]) for i in range(16)]
    assert all(f or k for f, k in zip(flipped, kept))
    assert any(flipped) and any(kept)


def test_augment_works_inside_an_outer_jit(images):
    @jax.jit
    def step(key, x):
        return jnp.sum(D.augment(key, x, padding=1))

    assert np.isfinite(float(step(jax.random.key(0), images)))
