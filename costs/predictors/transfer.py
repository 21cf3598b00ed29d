"""Latency on a new device from a few measurements, borrowing models of devices measured fully.

HELP (Lee et al., "Hardware-Adaptive Efficient Latency Prediction for NAS via
Meta-Learning", NeurIPS 2021) showed that 10-20 measured architectures suffice on a new
device when the predictor has seen other devices. Devices differ mostly in how much each kind
of op costs, so the log-latency of one device is close to an affine map of another's, or of
a mix of others'. We fit, once, one `base` model per source device k on its full data,
`f_k(a) ~ log y_k(a)`, and for the target fit a few numbers on its N samples:

    scale   log y(a) = s * g(a) + c, with g the mean over sources of the standardized
            f_k, (f_k - mu_k) / sd_k: a per-device scale and offset over one shared model
            (2 numbers: robust with 10 samples, but it cannot re-weight sources).
    stack   log y(a) = sum_k w_k f_k(a) + c, ridge regression on the N samples, the ridge
            penalty chosen by exact leave-one-out error (Allen's PRESS: for ridge,
            e_loo,i = e_i / (1 - H_ii)), pulling w towards the equal-weight mix of `scale`
            when N is too small to tell the sources apart.

`experiments/cost_models.py` measures both against the same base model trained on the N
target samples alone (`hwnas costs eval --transfer-from ...` prints all three). The source
models and the coefficients are the predictor's state, so a transferred predictor saves and
loads like any other.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from costs.predictors.base import Predictor, PredictorError, positive

METHODS = ("scale", "stack")
_RIDGE_GRID = np.logspace(-4, 3, 29)
_FLOOR = 1e-6  # predictions of log-latency need a positive latency; a model may predict 0


class TransferPredictor(Predictor):
    """`fit_sources({device: (archs, y)})` once, then `fit(target_archs, target_y)`.

    Options: `method` ("scale" or "stack"), `base` (a registered predictor name),
    `base_options` (its keyword arguments), `sources` (the source device names, filled in by
    `fit_sources`).
    """

    name = "transfer"

    def __init__(self, space, *, method: str = "stack", base: str = "xgboost",
                 base_options: Mapping[str, Any] | None = None, sources=(), **kw):
        from costs.predictors import PREDICTORS

        if method not in METHODS:
            raise PredictorError(f"transfer: unknown method {method!r}; methods: {', '.join(METHODS)}")
        if base not in PREDICTORS or base == self.name:
            known = ", ".join(n for n in PREDICTORS if n != self.name)
            raise PredictorError(f"transfer: unknown base model {base!r}; models: {known}")
        super().__init__(space, method=method, base=base, base_options=dict(base_options or {}),
                         sources=list(sources), **kw)
        self._models: dict[str, Predictor] = {}

    # ---------------------------------------------------------------- sources
    def fit_sources(self, sources: Mapping[str, tuple]) -> "TransferPredictor":
        """Fit one base model per source device on `(archs [n, d], y [n])`."""
        from costs.predictors import get_predictor

        if not sources:
            raise PredictorError("transfer: needs at least one source device")
        models = {}
        for device, (archs, y) in sources.items():
            model = get_predictor(self.options["base"], self.space, metric=self.metric, device=device,
                                  **self.options["base_options"])
            models[device] = model.fit(archs, positive(np.asarray(y, np.float64), f"transfer source {device}"))
        return self.use_sources(models, np.concatenate([np.atleast_2d(a) for a, _ in sources.values()]))

    def use_sources(self, models: Mapping[str, Predictor], archs) -> "TransferPredictor":
        """Use already fitted source models (e.g. shared by several targets); `archs` (the
        source architectures) fix the standardization of `scale`."""
        for device, model in models.items():
            if model.name != self.options["base"] or not model.train_size:
                raise PredictorError(f"transfer: source {device!r} needs a fitted {self.options['base']} model")
        self._models = dict(models)
        self.options["sources"] = list(self._models)
        log_fit = self._source_matrix(archs)
        self.source_stats = np.stack([log_fit.mean(0), np.maximum(log_fit.std(0), 1e-12)], 1)  # [k, 2]
        return self

    @staticmethod
    def _log(model: Predictor, archs) -> np.ndarray:
        return np.log(np.maximum(model.predict(archs), _FLOOR))

    def _source_matrix(self, archs) -> np.ndarray:
        """`[n, k]` log-latency predicted by each source model."""
        return np.stack([self._log(m, archs) for m in self._models.values()], axis=1)

    # ---------------------------------------------------------------- target
    def _fit(self, archs, y):
        if not self._models:
            raise PredictorError("transfer: call fit_sources before fit (no source device models)")
        log_y = np.log(positive(y, "transfer"))
        F = self._source_matrix(archs)
        shared = self._shared(F)
        scale_weights = self._scale_fit(shared, log_y)
        if self.options["method"] == "scale":
            # log y = s * shared + c with shared = sum_k (f_k - mu_k) / (k sd_k): per-source weights.
            self.weights = scale_weights
            self.intercept = float(np.mean(log_y - F @ scale_weights))
        else:
            self.weights, self.intercept = _ridge_towards(F, log_y, scale_weights)

    def _equal_weights(self) -> np.ndarray:
        k = len(self.source_stats)
        return 1.0 / (k * self.source_stats[:, 1])

    def _shared(self, F: np.ndarray) -> np.ndarray:
        return np.mean((F - self.source_stats[:, 0]) / self.source_stats[:, 1], axis=1)

    def _scale_fit(self, shared, log_y) -> np.ndarray:
        """The `scale` solution as per-source weights (also the prior `stack` shrinks towards)."""
        A = np.stack([shared, np.ones_like(shared)], 1)
        s = np.linalg.lstsq(A, log_y, rcond=None)[0][0]
        return s * self._equal_weights()

    def _predict(self, archs):
        return np.exp(self._source_matrix(archs) @ self.weights + self.intercept)

    # ---------------------------------------------------------------- files
    def _state(self):
        state = {"weights": self.weights, "intercept": np.asarray(self.intercept),
                 "source_stats": self.source_stats}
        for i, model in enumerate(self._models.values()):
            state.update({f"source{i}/{k}": v for k, v in model._state().items()})
        return state

    def _load_state(self, arrays):
        from costs.predictors import get_predictor

        self.weights = np.asarray(arrays["weights"], np.float64)
        self.intercept = float(arrays["intercept"])
        self.source_stats = np.asarray(arrays["source_stats"], np.float64)
        self._models = {}
        for i, device in enumerate(self.options["sources"]):
            model = get_predictor(self.options["base"], self.space, metric=self.metric, device=device,
                                  **self.options["base_options"])
            prefix = f"source{i}/"
            model._load_state({k[len(prefix):]: v for k, v in arrays.items() if k.startswith(prefix)})
            model.train_size = 1
            self._models[device] = model
        if self.weights.shape != (len(self._models),):
            raise ValueError(f"weights for {self.weights.shape} sources, {len(self._models)} source models")


def _ridge_towards(F: np.ndarray, y: np.ndarray, prior: np.ndarray) -> tuple[np.ndarray, float]:
    """Ridge `y ~ F w + c` shrinking `w` towards `prior`, penalty by leave-one-out error.

    Substituting w = prior + v turns it into plain ridge on v with residual target
    y - F prior; the intercept is unpenalized (columns and target centered).
    """
    r = y - F @ prior
    Fc, rc = F - F.mean(0), r - r.mean()
    U, sv, Vt = np.linalg.svd(Fc, full_matrices=False)
    Uty = U.T @ rc
    best = (np.inf, np.zeros(F.shape[1]))
    n = len(y)
    for lam in _RIDGE_GRID:
        shrink = sv ** 2 / (sv ** 2 + lam)
        fitted = U @ (shrink * Uty)
        # Hat matrix of the centered problem plus the intercept's 1/n on the diagonal.
        h = np.sum(U ** 2 * shrink, axis=1) + 1.0 / n
        loo = np.mean(((rc - fitted) / np.maximum(1.0 - h, 1e-9)) ** 2)
        if loo < best[0]:
            best = (loo, Vt.T @ (sv / (sv ** 2 + lam) * Uty))
    w = prior + best[1]
    return w, float(np.mean(y - F @ w))
