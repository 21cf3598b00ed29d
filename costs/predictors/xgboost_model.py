"""`xgboost`: gradient-boosted regression trees on architecture features.

XGBoost (Chen & Guestrin, "XGBoost: A Scalable Tree Boosting System", KDD 2016) fits an
additive ensemble of K regression trees, f(x) = sum_k f_k(x), one tree per round, each tree
minimizing the second-order expansion of the regularized objective

    L^(t) = sum_n [g_n f_t(x_n) + 1/2 h_n f_t(x_n)^2] + gamma T + 1/2 lambda ||w||^2

(g, h: gradient and Hessian of the loss at the previous rounds' prediction; T leaves with
weights w). With squared error g = p - y and h = 1, so each tree fits the residuals.

The defaults are the plain baseline of the NAS latency-prediction literature: "XGBoost on
one-hot features with default settings" -- `params={}` leaves every tree parameter at
XGBoost's own default (eta 0.3, max_depth 6, lambda 1, squared error) and `num_boost_round=100`
is the default ensemble size of XGBoost's scikit-learn estimator (the native `xgb.train`
default of 10 rounds is not what papers mean by "default XGBoost"). Options:

    features         "onehot" (default) or "onehot+analytic" (`costs.features`)
    log_target       fit log(y) and predict exp(.) (latency is multiplicative); default False
    num_boost_round  number of trees (default 100)
    params           dict of XGBoost training parameters layered over the defaults
    seed             XGBoost's `seed` (matters only with row/column subsampling)
    nthread          threads for fit and predict (default 2): fixed so that a fit is
                     reproducible on any machine; with no subsampling it is exact

Example:
    >>> p = get_predictor("xgboost", space, log_target=True).fit(archs, y)
    >>> p.predict(archs[:3])

The fitted booster is saved as its UBJSON bytes (`Booster.save_raw("ubj")`) in a uint8 array,
so a saved file holds no pickled objects.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from costs.features import FEATURE_SETS, features
from costs.predictors.base import Predictor, PredictorError, positive


class XGBoostPredictor(Predictor):
    name = "xgboost"

    def __init__(self, space, *, features: str = "onehot", log_target: bool = False,
                 num_boost_round: int = 100, params: dict[str, Any] | None = None, seed: int = 0,
                 nthread: int = 2, metric: str = "latency_ms", device: str = ""):
        params = dict(params or {})
        super().__init__(space, metric=metric, device=device, features=features, log_target=log_target,
                         num_boost_round=num_boost_round, params=params, seed=seed, nthread=nthread)
        if features not in FEATURE_SETS:
            raise PredictorError(f"{self.name}: option features must be one of {FEATURE_SETS}, got {features!r}")
        for opt, value, low in (("num_boost_round", num_boost_round, 1), ("nthread", nthread, 1)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise PredictorError(f"{self.name}: option {opt} must be an integer >= {low}, got {value!r}")
        if not isinstance(seed, int) or isinstance(seed, bool):
            raise PredictorError(f"{self.name}: option seed must be an integer, got {seed!r}")
        # Options given in `params` that the constructor owns would be silently overridden.
        clash = {"seed", "nthread", "random_state", "n_jobs"} & set(params)
        if clash:
            raise PredictorError(f"{self.name}: give {', '.join(sorted(clash))} as options, not in params")
        self.booster = None  # an xgboost.Booster once fitted

    def _features(self, archs: np.ndarray):
        import xgboost as xgb  # late: importing xgboost takes a while; only fitting and predicting need it

        return xgb.DMatrix(features(self.space, archs, self.options["features"]), nthread=self.options["nthread"])

    def _train_params(self) -> dict[str, Any]:
        return {**self.options["params"], "seed": self.options["seed"], "nthread": self.options["nthread"]}

    def _fit(self, archs, y):
        import xgboost as xgb

        target = np.log(positive(y, self.name)) if self.options["log_target"] else y
        dtrain = self._features(archs)
        dtrain.set_label(target)
        try:
            self.booster = xgb.train(self._train_params(), dtrain, self.options["num_boost_round"],
                                     verbose_eval=False)
        except xgb.core.XGBoostError as e:
            # Usually a bad entry in `params`: say so with XGBoost's own first line.
            raise PredictorError(f"{self.name}: XGBoost refused the fit: {str(e).splitlines()[0]}") from None

    def _predict(self, archs):
        out = self.booster.predict(self._features(archs)).astype(np.float64)
        return np.exp(out) if self.options["log_target"] else out

    def _state(self):
        return {"booster_ubj": np.frombuffer(bytes(self.booster.save_raw("ubj")), np.uint8)}

    def _load_state(self, arrays):
        import xgboost as xgb

        raw = np.asarray(arrays["booster_ubj"])
        if raw.dtype != np.uint8 or raw.ndim != 1:
            raise ValueError(f"booster_ubj must be uint8 bytes, got {raw.dtype} {raw.shape}")
        booster = xgb.Booster(params={"nthread": self.options["nthread"]})
        try:
            booster.load_model(bytearray(raw.tobytes()))
        except xgb.core.XGBoostError as e:
            raise ValueError(f"booster_ubj is not an XGBoost model: {str(e).splitlines()[0]}") from None
        self.booster = booster
