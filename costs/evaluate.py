"""Fit cost models on N measured architectures of a device and score them on all the others.

This is what `hwnas costs eval` runs and what `experiments/cost_models.py` repeats over
devices, spaces and train sizes:

    data    = load_measured(space, data_dir); y = latency(data, device)
    train   = N architectures drawn without replacement (numpy Generator, `seed`)
    test    = every other measured architecture
    per model: fit on train, predict test, `costs.metrics.prediction_metrics`, wall time of
            fit and of predict (per architecture, so sizes compare)

With `transfer_from`, the target device contributes only its N training architectures; each
base model is reported three ways: trained on those N alone, and transferred with the
`scale` and `stack` methods of `costs.predictors.transfer` from the source devices' full data.
"""

from __future__ import annotations

import time
from typing import Sequence

import numpy as np

from costs.measured import latency, load_measured
from costs.metrics import prediction_metrics
from costs.predictors import STANDALONE, PredictorError, get_predictor
from costs.predictors.transfer import METHODS as TRANSFER_METHODS
from supernet.spaces import get_space


def resolve_models(names: Sequence[str] | str) -> list[str]:
    """Model names with `all` expanded; unknown names list the known ones."""
    names = [names] if isinstance(names, str) else list(names)
    out: list[str] = []
    for name in names:
        for n in (STANDALONE if name == "all" else (name,)):
            if n not in STANDALONE:
                raise PredictorError(f"unknown cost model {n!r}; models: {', '.join(STANDALONE)}, all")
            if n not in out:
                out.append(n)
    return out


def split(n: int, train_size: int, seed: int, *, what: str) -> tuple[np.ndarray, np.ndarray]:
    """Indices of `train_size` random training rows and of every other row."""
    if isinstance(train_size, bool) or not isinstance(train_size, (int, np.integer)) or train_size < 1:
        raise ValueError(f"train size must be a positive integer, got {train_size!r}")
    if train_size >= n:
        raise ValueError(f"train size {train_size} leaves nothing to test: {what} has {n} measured architectures "
                         f"(use at most {n - 1})")
    order = np.random.default_rng(seed).permutation(n)
    return np.sort(order[:train_size]), np.sort(order[train_size:])


def evaluate(data_dir, space: str, device: str, models: Sequence[str] | str, train_size: int, seed: int = 0,
             *, transfer_from: Sequence[str] = (), data=None) -> dict:
    """Metrics of each model (see module doc) as a JSON-ready dict with one row per model."""
    names = resolve_models(models)
    data = data if data is not None else load_measured(space, data_dir)
    space_obj = get_space(data.space)
    y = latency(data, device)
    train, test = split(len(y), train_size, seed, what=f"{data.space}/{device}")
    sources = _sources(data, device, transfer_from)
    rows = []
    for name in names:
        variants = [(name, None)] + [(f"{name}+{m}", m) for m in (TRANSFER_METHODS if sources else ())]
        source_models = None
        for label, method in variants:
            if method is None:
                model = get_predictor(name, space_obj, device=device)
                prepare = 0.0
            else:
                model = get_predictor("transfer", space_obj, device=device, method=method, base=name)
                t0 = time.perf_counter()
                if source_models is None:  # both methods share the source models: fit once
                    source_models = model.fit_sources(sources)._models
                else:
                    model.use_sources(source_models, data.archs)
                prepare = time.perf_counter() - t0
            rows.append(_score(label, model, data.archs, y, train, test, prepare))
    return {
        "space": data.space, "device": device, "train_size": int(train_size), "test_size": int(len(test)),
        "seed": int(seed), "transfer_from": list(sources), "models": rows,
    }


def _sources(data, target: str, names: Sequence[str]) -> dict:
    if not names:
        return {}
    out = {}
    for name in names:
        if name == target:
            raise ValueError(f"--transfer-from lists the target device {target!r}; sources must be other devices")
        out[name] = (data.archs, latency(data, name))  # latency() names the known devices
    return out


def _score(label, model, archs, y, train, test, prepare_s: float) -> dict:
    t0 = time.perf_counter()
    model.fit(archs[train], y[train])
    fit_s = time.perf_counter() - t0 + prepare_s
    t0 = time.perf_counter()
    predicted = model.predict(archs[test])
    predict_s = time.perf_counter() - t0
    return {"model": label, **prediction_metrics(y[test], predicted).as_dict(), "fit_s": fit_s,
            "predict_s": predict_s, "predict_us_per_arch": 1e6 * predict_s / len(test)}
