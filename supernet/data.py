"""Image datasets for supernet training: offline readers, deterministic batching, augmentation.

Everything here is built so that a NAS run is reproducible and resumable:

* Readers parse the on-disk formats of MNIST-style (IDX) and CIFAR-10 (pickle) folders and never
  touch the network, so a machine without internet access can train.
* A small stratified Fashion-MNIST subset ships inside the package (``fashion_mnist_default``)
  so tests and demos run with no data folder at all.
* Batch order is a pure function of ``(seed, epoch)``; a resumed run that starts at batch ``k``
  sees exactly the batches an uninterrupted run would have seen.
* Augmentation is a pure, jittable function of ``(key, images)`` so it runs on the accelerator
  and is replayable from the key.
"""

from __future__ import annotations

import codecs
import functools
import gzip
import importlib.resources
import math
import pickle
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

DEFAULT_NAME = "fashion_mnist_default"
SPLITS = ("train", "test")

_ASSET_DIR = ("assets", "fashion_mnist_subset")
_GZIP_MAGIC = b"\x1f\x8b"
_IDX_PREFIX = {"train": "train", "test": "t10k"}
_CIFAR_FILES = {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]}
_CIFAR_SUBDIR = "cifar-10-batches-py"

# IDX type codes -> numpy dtypes. Multi-byte types are big-endian on disk.
_IDX_DTYPES = {
    0x08: np.dtype("u1"),
    0x09: np.dtype("i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


class DatasetError(ValueError):
    """A dataset file or folder is missing or does not hold what its format promises."""


class Dataset(NamedTuple):
    """An in-memory image classification split.

    ``mean`` and ``std`` are per-channel statistics of the pixels scaled to [0, 1]; ``batches``
    standardizes with them. Loaders fill them from the loaded split's own pixels; the defaults
    (0, 1) mean "only scale by 1/255". To normalize a test split exactly like its training split,
    use ``test._replace(mean=train.mean, std=train.std)``.
    """

    images: np.ndarray  # uint8 [n, h, w, c]
    labels: np.ndarray  # int32 [n]
    num_classes: int
    name: str
    mean: tuple[float, ...] = (0.0,)
    std: tuple[float, ...] = (1.0,)


# ----------------------------------------------------------------------------------------------
# IDX format


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file (gzip or plain, detected from the magic bytes, not the file name)."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise DatasetError(f"{path}: cannot read IDX file ({err})") from err
    return parse_idx(raw, str(path))


def parse_idx(raw: bytes, source: str) -> np.ndarray:
    """Decode IDX bytes; ``source`` names the origin in error messages."""
    raw = _maybe_gunzip(raw, source)
    dtype, dims, offset = _idx_header(raw, source)
    expected = math.prod(dims) * dtype.itemsize
    found = len(raw) - offset
    if found < expected:
        raise DatasetError(
            f"{source}: truncated IDX data: header {dims} of {dtype.name} needs {expected} bytes, "
            f"found {found}"
        )
    if found > expected:
        raise DatasetError(
            f"{source}: trailing bytes after IDX data: expected {expected} bytes for {dims}, "
            f"found {found}"
        )
    array = np.frombuffer(raw, dtype=dtype, count=math.prod(dims), offset=offset)
    return array.reshape(dims).astype(dtype.newbyteorder("="))


def _maybe_gunzip(raw: bytes, source: str) -> bytes:
    if not raw.startswith(_GZIP_MAGIC):
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as err:
        raise DatasetError(f"{source}: corrupt gzip stream ({err})") from err


def _idx_header(raw: bytes, source: str) -> tuple[np.dtype, tuple[int, ...], int]:
    """Return (dtype, dims, data offset) after checking the 4-byte magic and the dims."""
    if len(raw) < 4:
        raise DatasetError(f"{source}: expected a 4-byte IDX magic number, found {len(raw)} bytes")
    if raw[0:2] != b"\x00\x00":
        raise DatasetError(
            f"{source}: bad IDX magic: expected first two bytes 00 00, found {raw[0:2].hex(' ')}"
        )
    code, ndim = raw[2], raw[3]
    if code not in _IDX_DTYPES:
        known = ", ".join(f"0x{c:02X}" for c in _IDX_DTYPES)
        raise DatasetError(
            f"{source}: unknown IDX dtype code 0x{code:02X}, expected one of {known}"
        )
    offset = 4 + 4 * ndim
    if len(raw) < offset:
        raise DatasetError(
            f"{source}: truncated IDX header: {ndim} dims need {offset} bytes, found {len(raw)}"
        )
    dims = struct.unpack(f">{ndim}I", raw[4:offset])
    return _IDX_DTYPES[code], dims, offset


def write_idx(path: str | Path, array: np.ndarray, compresslevel: int = 9) -> None:
    """Write ``array`` as IDX; gzip when the name ends in ``.gz``.

    gzip is written with mtime=0 and no file name so identical arrays give identical bytes
    (reproducible, diff-free assets).
    """
    array = np.asarray(array)
    code = _idx_code(array.dtype)
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    payload = header + array.astype(_IDX_DTYPES[code], copy=False).tobytes()
    if str(path).endswith(".gz"):
        payload = gzip.compress(payload, compresslevel=compresslevel, mtime=0)
    Path(path).write_bytes(payload)


def _idx_code(dtype: np.dtype) -> int:
    for code, idx_dtype in _IDX_DTYPES.items():
        if idx_dtype.newbyteorder("=") == dtype.newbyteorder("="):
            return code
    raise DatasetError(f"dtype {dtype} has no IDX type code")


# ----------------------------------------------------------------------------------------------
# Folder loaders


def load_idx_dataset(folder: str | Path, split: str) -> Dataset:
    """Load an MNIST-style IDX folder (MNIST, Fashion-MNIST, KMNIST) as NHWC uint8."""
    folder = Path(folder)
    _check_split(split)
    images = read_idx(_find_idx_file(folder, split, "images-idx3"))
    labels = read_idx(_find_idx_file(folder, split, "labels-idx1"))
    return _idx_dataset(images, labels, _idx_num_classes(folder, labels), folder.name, str(folder))


def _idx_dataset(
    images: np.ndarray, labels: np.ndarray, num_classes: int, name: str, source: str
) -> Dataset:
    if images.ndim == 3:
        images = images[..., None]
    if images.ndim != 4 or images.dtype != np.uint8:
        raise DatasetError(
            f"{source}: expected uint8 images [n, h, w] or [n, h, w, c], "
            f"found {images.dtype} {images.shape}"
        )
    if labels.ndim != 1 or len(labels) != len(images):
        raise DatasetError(
            f"{source}: expected one label per image ({len(images)}), found labels {labels.shape}"
        )
    return _make_dataset(images, _check_labels(labels, source), num_classes, name)


def _idx_file_names(split: str, kind: str) -> list[str]:
    stem = f"{_IDX_PREFIX[split]}-{kind}-ubyte"
    return [stem, stem + ".gz"]


def _find_idx_file(folder: Path, split: str, kind: str) -> Path:
    names = _idx_file_names(split, kind)
    for name in names:
        if (folder / name).is_file():
            return folder / name
    raise DatasetError(f"{folder}: no {split} {kind.split('-')[0]} file; looked for {names}")


def _idx_num_classes(folder: Path, labels: np.ndarray) -> int:
    """Count classes over both splits so a test split missing the top class still agrees."""
    tops = [_max_label(labels)]
    for split in SPLITS:
        for name in _idx_file_names(split, "labels-idx1"):
            if (folder / name).is_file():
                tops.append(_max_label(read_idx(folder / name)))
    return max(tops) + 1


def _max_label(labels: np.ndarray) -> int:
    return int(labels.max()) if labels.size else -1


def load_cifar10(folder: str | Path, split: str) -> Dataset:
    """Load the CIFAR-10 python-pickle folder (or its parent) as NHWC uint8 [n, 32, 32, 3]."""
    _check_split(split)
    folder = Path(folder)
    if (folder / _CIFAR_SUBDIR).is_dir():
        folder = folder / _CIFAR_SUBDIR
    names = _CIFAR_FILES[split]
    missing = [n for n in names if not (folder / n).is_file()]
    if missing:
        raise DatasetError(
            f"{folder}: missing CIFAR-10 {split} files {missing}; looked for {names}"
        )
    parts = [_read_cifar_batch(folder / n) for n in names]
    images = np.concatenate([p[0] for p in parts])
    labels = np.concatenate([p[1] for p in parts])
    return _make_dataset(images, labels, 10, "cifar10")


def _read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Return (NHWC images, labels) of one CIFAR batch; CIFAR stores each row as CHW planes."""
    batch = _unpickle(path)
    data = batch.get(b"data", batch.get("data")) if isinstance(batch, dict) else None
    labels = batch.get(b"labels", batch.get("labels")) if isinstance(batch, dict) else None
    if data is None or labels is None:
        raise DatasetError(f"{path}: expected a dict with 'data' and 'labels', found {type(batch)}")
    data = np.asarray(data)
    labels = np.asarray(labels)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise DatasetError(
            f"{path}: expected uint8 data [n, 3072], found {data.dtype} {data.shape}"
        )
    if labels.shape != (len(data),):
        raise DatasetError(f"{path}: expected {len(data)} labels, found shape {labels.shape}")
    images = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(images), _check_labels(labels, str(path))


def _pickle_allowlist() -> dict[tuple[str, str], object]:
    """The globals a CIFAR pickle needs: numpy array/scalar rebuilders and bytes decoding.

    The rebuilders are taken from ``__reduce__`` of live objects rather than imported from
    ``numpy.core``, whose numpy-2 shim warns on access.
    """
    allowed: dict[tuple[str, str], object] = {
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("_codecs", "encode"): codecs.encode,
    }
    for module in ("numpy.core.multiarray", "numpy._core.multiarray"):
        allowed[(module, "_reconstruct")] = np.ndarray.__reduce__(np.zeros(1))[0]
        allowed[(module, "scalar")] = np.int64(0).__reduce__()[0]
    return allowed


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickler that only rebuilds numpy arrays, so a hostile pickle cannot run code."""

    _ALLOWED = _pickle_allowlist()

    def find_class(self, module: str, name: str) -> object:
        try:
            return self._ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}") from None


def _unpickle(path: Path) -> object:
    try:
        with path.open("rb") as f:
            return _NumpyOnlyUnpickler(f, encoding="bytes").load()
    except Exception as err:  # a corrupt pickle can fail in many ways; all mean "bad file"
        raise DatasetError(f"{path}: not a readable CIFAR-10 pickle ({err!r})") from err


def load_dataset(name_or_path: str | Path, split: str) -> Dataset:
    """Load the embedded default by name, or a folder holding IDX or CIFAR-10 files."""
    _check_split(split)
    if str(name_or_path) == DEFAULT_NAME:
        return load_default(split)
    folder = Path(name_or_path)
    if folder.is_dir():
        if _is_cifar_folder(folder):
            return load_cifar10(folder, split)
        if any(folder.glob("*-idx?-ubyte*")):
            return load_idx_dataset(folder, split)
        raise DatasetError(f"{folder}: found neither IDX (*-idx?-ubyte[.gz]) nor CIFAR-10 files")
    raise DatasetError(
        f"unknown dataset {str(name_or_path)!r}: expected {DEFAULT_NAME!r} or a folder with "
        "IDX files (MNIST, Fashion-MNIST, KMNIST) or CIFAR-10 python batches"
    )


def _is_cifar_folder(folder: Path) -> bool:
    markers = ["test_batch", "data_batch_1", _CIFAR_SUBDIR]
    return any((folder / m).exists() for m in markers)


def load_default(split: str) -> Dataset:
    """Load the Fashion-MNIST subset shipped in the package (works from a wheel or a zip)."""
    _check_split(split)
    root = importlib.resources.files("supernet").joinpath(*_ASSET_DIR)
    arrays = []
    for kind in ("images-idx3", "labels-idx1"):
        resource = root.joinpath(_idx_file_names(split, kind)[1])
        try:
            raw = resource.read_bytes()
        except OSError as err:
            raise DatasetError(f"{resource}: embedded dataset file is missing ({err})") from err
        arrays.append(parse_idx(raw, str(resource)))
    return _idx_dataset(arrays[0], arrays[1], 10, DEFAULT_NAME, str(root))


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise DatasetError(f"unknown split {split!r}, expected one of {SPLITS}")


def _check_labels(labels: np.ndarray, source: str) -> np.ndarray:
    if labels.size and (not np.issubdtype(labels.dtype, np.integer) or labels.min() < 0):
        raise DatasetError(f"{source}: expected non-negative integer labels, found {labels.dtype}")
    return labels.astype(np.int32)


def _make_dataset(images: np.ndarray, labels: np.ndarray, num_classes: int, name: str) -> Dataset:
    mean, std = channel_stats(images)
    return Dataset(images, labels, num_classes, name, mean, std)


def channel_stats(images: np.ndarray) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Exact per-channel mean/std of uint8 NHWC pixels on the [0, 1] scale.

    Uses a 256-bin histogram per channel, so even CIFAR-10 needs no float copy of the data.
    """
    values = np.arange(256) / 255.0
    means, stds = [], []
    for c in range(images.shape[-1]):
        counts = np.bincount(images[..., c].ravel(), minlength=256)
        total = max(int(counts.sum()), 1)
        mean = float(counts @ values) / total
        var = float(counts @ (values - mean) ** 2) / total
        means.append(mean)
        stds.append(max(math.sqrt(var), 1e-6))
    return tuple(means), tuple(stds)


# ----------------------------------------------------------------------------------------------
# Splitting and batching


def split_train_val(dataset: Dataset, val_fraction: float, seed: int) -> tuple[Dataset, Dataset]:
    """Stratified, deterministic split for bilevel NAS (weights fit ``train``, arch fits ``val``).

    Each class sends ``round(count * val_fraction)`` examples to ``val``, clipped so that a class
    with at least two examples appears in both halves. Both halves keep the original order and
    the parent's normalization statistics, so weights and architecture see identical scaling.
    """
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
    rng = np.random.default_rng(seed)
    is_val = np.zeros(len(dataset.labels), dtype=bool)
    for cls in np.unique(dataset.labels):
        members = np.flatnonzero(dataset.labels == cls)
        take = round(len(members) * val_fraction)
        if len(members) >= 2:
            take = min(max(take, 1), len(members) - 1)
        is_val[rng.permutation(members)[:take]] = True
    return _subset(dataset, ~is_val, "train"), _subset(dataset, is_val, "val")


def _subset(dataset: Dataset, mask: np.ndarray, tag: str) -> Dataset:
    return dataset._replace(
        images=dataset.images[mask], labels=dataset.labels[mask], name=f"{dataset.name}-{tag}"
    )


def epoch_permutation(n: int, seed: int, epoch: int) -> np.ndarray:
    """The example order of one epoch: a pure function of (seed, epoch), same in every process."""
    if seed < 0 or epoch < 0:
        raise ValueError(f"seed and epoch must be non-negative, got seed={seed}, epoch={epoch}")
    return np.random.default_rng([seed, epoch]).permutation(n)


def num_batches(n: int, batch_size: int, drop_remainder: bool = True) -> int:
    """Batches per epoch; with ``drop_remainder`` every batch has the same (jit-friendly) shape."""
    if batch_size <= 0:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    return n // batch_size if drop_remainder else -(-n // batch_size)


def batches(
    dataset: Dataset,
    batch_size: int,
    seed: int,
    epoch: int,
    drop_remainder: bool = True,
    start: int = 0,
) -> Iterator[dict[str, np.ndarray]]:
    """Yield the epoch's batches from index ``start`` on, so a resumed run replays the same data.

    Each batch is ``{"image": float32 [b, h, w, c], "label": int32 [b]}`` with images scaled to
    [0, 1] and standardized by the dataset's ``mean``/``std``.
    """
    n = len(dataset.labels)
    total = num_batches(n, batch_size, drop_remainder)
    if not 0 <= start <= total:
        raise ValueError(f"start must be in [0, {total}], got {start}")
    order = epoch_permutation(n, seed, epoch)
    for b in range(start, total):
        # Sorting within a batch keeps its content and makes the gather read memory in order.
        index = np.sort(order[b * batch_size : (b + 1) * batch_size])
        yield {"image": normalize(dataset, dataset.images[index]), "label": dataset.labels[index]}


def normalize(dataset: Dataset, images: np.ndarray) -> np.ndarray:
    """uint8 pixels -> float32 standardized with the dataset's per-channel statistics."""
    mean = np.asarray(dataset.mean, np.float32)
    std = np.asarray(dataset.std, np.float32)
    return (images.astype(np.float32) / np.float32(255.0) - mean) / std


# ----------------------------------------------------------------------------------------------
# On-device augmentation


@functools.partial(jax.jit, static_argnames="padding")
def random_crop(
    key: PRNGKeyArray, images: Float[Array, "b h w c"], padding: int
) -> Float[Array, "b h w c"]:
    """Pad by ``padding`` pixels, then crop back to the original size at a per-example offset.

    Padding repeats the edge pixels rather than inserting zeros: after standardization zero is
    the mean gray, which would draw a frame around dark-background images like Fashion-MNIST.
    """
    if padding == 0:
        return images
    _, h, w, c = images.shape
    pad = ((0, 0), (padding, padding), (padding, padding), (0, 0))
    padded = jnp.pad(images, pad, mode="edge")
    offsets = jax.random.randint(key, (images.shape[0], 2), 0, 2 * padding + 1)

    def crop(image: Array, offset: Array) -> Array:
        return jax.lax.dynamic_slice(image, (offset[0], offset[1], 0), (h, w, c))

    return jax.vmap(crop)(padded, offsets)


@jax.jit
def random_flip(key: PRNGKeyArray, images: Float[Array, "b h w c"]) -> Float[Array, "b h w c"]:
    """Mirror each example left-right with probability 1/2."""
    flip = jax.random.bernoulli(key, 0.5, (images.shape[0],))
    return jnp.where(flip[:, None, None, None], images[:, :, ::-1, :], images)


@functools.partial(jax.jit, static_argnames=("padding", "flip"))
def augment(
    key: PRNGKeyArray, images: Float[Array, "b h w c"], padding: int = 2, flip: bool = True
) -> Float[Array, "b h w c"]:
    """Random crop then (optionally) random flip; use ``flip=False`` for digits and text."""
    crop_key, flip_key = jax.random.split(key)
    images = random_crop(crop_key, images, padding)
    return random_flip(flip_key, images) if flip else images
