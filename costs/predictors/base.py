"""The cost-predictor protocol: fit on measured architectures, predict any batch, save, load.

Every predictor maps architectures of one search space (`int32 [n, d]`) to one cost
(latency in ms by default; energy or any other metric by name) on one device:

    predictor = get_predictor("xgboost", space, metric="latency_ms")
    predictor.fit(archs_train, y_train)          # archs [n, d], y [n]
    predictor.predict(archs)                     # float64 [n]
    predictor.save("pixel3.npz"); load_predictor("pixel3.npz", space)

A subclass implements `_fit(archs, y)` and `_predict(archs)` on validated host arrays
(`int32 [n, d]`, `float64 [n]`), and `_state()` / `_load_state(arrays)` for its fitted
numbers; options are keyword arguments of its constructor, saved with it, so a loaded
predictor is rebuilt as `cls(space, **options)` plus its state.

File format (`.npz`, read with `allow_pickle=False`, so a file can never run code):
    meta            a JSON string: {"format": "hwnas-cost-predictor", "version": 1,
                    "model", "space", "space_fingerprint", "space_config", "metric",
                    "unit", "device", "options", "train_size", "created"}
    state/<name>    the model's arrays (an XGBoost booster is its UBJSON bytes as uint8)
Loading a predictor fitted for another configuration of the space (other fingerprint) is
refused: its one-hot columns would silently mean other layers.
"""

from __future__ import annotations

import datetime
import io
import json
import math
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

FORMAT, VERSION = "hwnas-cost-predictor", 1
UNITS = {"latency_ms": "ms", "energy_mj": "mJ"}


class PredictorError(ValueError):
    """A predictor cannot be used: unknown name, unfitted, malformed or mismatched file."""


class Predictor:
    """Base class: input checks, the file format and the registry; subclasses do the maths."""

    name: ClassVar[str] = ""
    # Predictors that rank but cannot extrapolate below this many samples say so at fit time.
    min_train_size: ClassVar[int] = 2

    def __init__(self, space, *, metric: str = "latency_ms", device: str = "", **options: Any):
        self.space = space
        self.metric = metric
        self.device = device
        self.options = dict(options)
        self.train_size = 0

    # ------------------------------------------------------------------ protocol
    def fit(self, archs, y) -> "Predictor":
        """Fit to measured costs `y [n]` of `archs [n, d]`; returns self."""
        batch = self._archs(archs)
        target = np.asarray(y, np.float64)
        if target.ndim != 1 or len(target) != len(batch):
            raise PredictorError(f"{self.name}: y must have shape ({len(batch)},), got {target.shape}")
        bad = ~np.isfinite(target)
        if bad.any():
            raise PredictorError(f"{self.name}: y[{int(np.argmax(bad))}] is {target[bad][0]}; costs must be finite")
        if len(batch) < self.min_train_size:
            raise PredictorError(f"{self.name}: needs at least {self.min_train_size} architectures to fit, got {len(batch)}")
        self._fit(batch, target)
        self.train_size = len(batch)
        return self

    def predict(self, archs) -> np.ndarray:
        """Predicted cost `float64 [n]` of each architecture."""
        if not self.train_size:
            raise PredictorError(f"{self.name}: predict before fit (call fit or load a saved predictor)")
        return np.asarray(self._predict(self._archs(archs)), np.float64)

    def _fit(self, archs: np.ndarray, y: np.ndarray) -> None:
        raise NotImplementedError

    def _predict(self, archs: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _state(self) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def _load_state(self, arrays: dict[str, np.ndarray]) -> None:
        raise NotImplementedError

    def _archs(self, archs) -> np.ndarray:
        try:
            return np.atleast_2d(self.space.validate(archs))
        except ValueError as e:
            raise PredictorError(f"{self.name}: {e}") from None

    # ------------------------------------------------------------------ files
    def save(self, path: str | Path) -> Path:
        if not self.train_size:
            raise PredictorError(f"{self.name}: nothing to save before fit")
        meta = {
            "format": FORMAT, "version": VERSION, "model": self.name,
            "space": self.space.name, "space_fingerprint": self.space.fingerprint(),
            "space_config": self.space.config(), "metric": self.metric,
            "unit": UNITS.get(self.metric, "?"), "device": self.device, "options": self.options,
            "train_size": self.train_size,
            "created": datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0).isoformat(),
        }
        arrays = {f"state/{k}": np.asarray(v) for k, v in self._state().items()}
        buffer = io.BytesIO()
        np.savez(buffer, meta=np.asarray(json.dumps(meta, default=str)), **arrays)
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_bytes(buffer.getvalue())
        tmp.replace(path)  # atomic: an interrupted save leaves the old file or none
        return path


def load_predictor(path: str | Path, space) -> Predictor:
    """Read a saved predictor for `space`; refuses another space or configuration."""
    from costs.predictors import PREDICTORS

    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as npz:
            meta = json.loads(str(npz["meta"]))
            arrays = {k[len("state/"):]: npz[k] for k in npz.files if k.startswith("state/")}
    except FileNotFoundError:
        raise PredictorError(f"{path}: no such predictor file") from None
    except (OSError, ValueError, KeyError) as e:
        raise PredictorError(f"{path}: not an hwnas predictor file ({e})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise PredictorError(f"{path}: not an hwnas predictor file (expected \"format\": \"{FORMAT}\")")
    if meta.get("version") != VERSION:
        raise PredictorError(f"{path}: unsupported version {meta.get('version')!r} (this hwnas reads {VERSION})")
    if meta.get("space") != space.name or meta.get("space_fingerprint") != space.fingerprint():
        raise PredictorError(
            f"{path}: predictor for {meta.get('space')} (fingerprint {meta.get('space_fingerprint')}) does "
            f"not match space {space.name} (fingerprint {space.fingerprint()}): it was fitted for another "
            f"configuration; fit one for this space"
        )
    model = meta.get("model")
    if model not in PREDICTORS:
        raise PredictorError(f"{path}: unknown model {model!r}; models: {', '.join(PREDICTORS)}")
    predictor = PREDICTORS[model](space, metric=meta["metric"], device=meta.get("device", ""), **meta["options"])
    try:
        predictor._load_state(arrays)
    except (KeyError, ValueError) as e:
        raise PredictorError(f"{path}: {model} state is incomplete or malformed ({e})") from None
    predictor.train_size = int(meta.get("train_size", 0)) or 1
    return predictor


def positive(y: np.ndarray, who: str) -> np.ndarray:
    """`y` checked to be > 0, for models that fit in log space (latency is multiplicative)."""
    if np.any(y <= 0):
        i = int(np.argmax(y <= 0))
        raise PredictorError(f"{who}: y[{i}] = {y[i]}; this model fits log(cost) and needs costs > 0")
    return y


def finite_float(value: Any, name: str, who: str, low: float = -math.inf) -> float:
    """An option checked to be a finite number > `low` (one message naming the option)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= low:
        raise PredictorError(f"{who}: option {name} must be a finite number > {low}, got {value!r}")
    return float(value)
