"""`lut`: an additive per-decision cost table fitted from whole-network measurements.

When no per-op profile exists (only whole networks were timed on the device), fit the table
a `LatencyTable` would hold: cost(a) = fixed + sum_i T[i, a_i], with every entry >= 0,

    min_{fixed >= 0, T >= 0}  sum_n (fixed + sum_i T[i, a_n,i] - y_n)^2

by non-negative least squares on the one-hot design (Lawson-Hanson, `scipy.optimize.nnls`).
This is the additive model behind ProxylessNAS's and FBNet's lookup tables, so it is also the
baseline that says how much of a device's latency is *not* a sum of per-layer costs. The
one-hot columns of a decision sum to the intercept column, so the table is not unique; the
predictions are. For `ofa_mbv3` the indicators of blocks beyond a stage's depth are zero
(`costs.features.one_hot`), so inactive blocks cost nothing, as in `OFALatencyTable`.

`to_table()` turns a fitted fbnet or nasbench201 model into a `LatencyTable`, so a table
fitted from a few hundred whole-network measurements enters the training loss like a profiled
one.
"""

from __future__ import annotations

import numpy as np

from costs.features import ofa_active_blocks, one_hot
from costs.predictors.base import Predictor, PredictorError


class AdditivePredictor(Predictor):
    name = "lut"

    def _fit(self, archs, y):
        from scipy import optimize  # late: scipy.optimize costs a second at import, every CLI call would pay it

        design = np.concatenate([np.ones((len(archs), 1)), one_hot(self.space, archs)], axis=1)
        # nnls solves exactly; scale the columns' target to O(1) for its tolerance checks.
        scale = float(np.mean(np.abs(y))) or 1.0
        coef, _ = optimize.nnls(design.astype(np.float64), y / scale, maxiter=50 * design.shape[1])
        self.coef = coef * scale

    def _predict(self, archs):
        # A gather per decision (what the one-hot product computes, without building it).
        per = self._table()[np.arange(archs.shape[1]), archs]
        if self.space.name == "ofa_mbv3":
            active = ofa_active_blocks(self.space, archs)
            per[:, self.space.kernel_slice] *= active
            per[:, self.space.expand_slice] *= active
        return self.coef[0] + per.sum(axis=1)

    def _table(self) -> np.ndarray:
        """`[decisions, max choices]` fitted entries, NaN where a decision has fewer choices."""
        cards = self.space.cardinalities
        table = np.full((len(cards), max(cards)), np.nan)
        offset = 1
        for i, c in enumerate(cards):
            table[i, :c] = self.coef[offset:offset + c]
            offset += c
        return table

    def _state(self):
        return {"coef": self.coef}

    def _load_state(self, arrays):
        coef = np.asarray(arrays["coef"], np.float64)
        if coef.shape != (1 + int(np.sum(self.space.cardinalities)),):
            raise ValueError(f"coef has shape {coef.shape}")
        self.coef = coef

    def to_table(self, device: dict | None = None):
        """The fitted model as a `costs.LatencyTable` (fbnet and nasbench201)."""
        from costs.lut import LatencyTable

        if self.space.name == "ofa_mbv3":
            raise PredictorError("lut: an ofa_mbv3 table is per resolution and block; profile one with `hwnas profile`")
        table = self._table()
        info = dict(device or {"name": self.device or "fitted"})
        info.setdefault("source", f"fitted from {self.train_size} whole-network measurements (nnls)")
        return LatencyTable.for_space(self.space, table, fixed=float(self.coef[0]), device=info, metric=self.metric)
