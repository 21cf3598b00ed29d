"""Build the Fashion-MNIST subset embedded in the package (``fashion_mnist_default``).

Picks 600 training and 100 test images per class from the original Fashion-MNIST files and
writes them as gzip IDX files to ``supernet/assets/fashion_mnist_subset/``.

The choice is deterministic and independent of library versions: within each class, examples
are ranked by SHA-256 of ``"<seed>:<index>"`` and the first ones are kept, then restored to
their original order. gzip is written with mtime=0, so rebuilding gives identical files.

Usage: python scripts/build_default_dataset.py [SOURCE_FOLDER] [--out DIR] [--seed N]
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from supernet.data import load_idx_dataset, write_idx  # noqa: E402

PER_CLASS = {"train": 600, "test": 100}
FILE_PREFIX = {"train": "train", "test": "t10k"}
DEFAULT_OUT = REPO / "supernet" / "assets" / "fashion_mnist_subset"
SOURCES = [
    REPO.parent / "shared" / "data" / "fashion-mnist",
    Path("/usr/share/datasets/fashion-mnist"),
]
SEED = 0


def default_source() -> Path:
    """The shared data folder next to the repo, else the Debian package's install location."""
    for folder in SOURCES:
        if folder.is_dir():
            return folder
    return SOURCES[0]


def stratified_indices(labels: np.ndarray, per_class: int, seed: int) -> np.ndarray:
    """Sorted indices holding exactly ``per_class`` examples of every class."""
    chosen = []
    for cls in np.unique(labels):
        members = np.flatnonzero(labels == cls)
        if len(members) < per_class:
            raise ValueError(f"class {cls} has {len(members)} examples, need {per_class}")
        ranked = sorted(members, key=lambda i: hashlib.sha256(f"{seed}:{i}".encode()).digest())
        chosen.extend(ranked[:per_class])
    return np.sort(np.asarray(chosen, dtype=np.int64))


def build(source: Path, out: Path, seed: int = SEED) -> list[Path]:
    """Write the subset's four IDX files to ``out`` and return their paths."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for split, per_class in PER_CLASS.items():
        data = load_idx_dataset(source, split)
        keep = stratified_indices(data.labels, per_class, seed)
        prefix = FILE_PREFIX[split]
        pairs = [("images-idx3", data.images[keep, ..., 0]), ("labels-idx1", data.labels[keep])]
        for kind, array in pairs:
            path = out / f"{prefix}-{kind}-ubyte.gz"
            write_idx(path, array.astype(np.uint8))
            written.append(path)
    return written


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", nargs="?", type=Path, default=default_source())
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--seed", type=int, default=SEED)
    args = parser.parse_args(argv)
    for path in build(args.source, args.out, args.seed):
        digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
        print(f"{path.relative_to(args.out.parent)}  {path.stat().st_size:>9,d} B  sha256 {digest}")


if __name__ == "__main__":
    main()
