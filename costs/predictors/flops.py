"""`flops`: cost proportional to FLOPs, the naive baseline every cost model must beat.

    cost(a) = s * FLOPs(a),   s = argmin_s sum_n ((s f_n - y_n) / y_n)^2
                                = sum(f/y) / sum((f/y)^2)

The scale is fitted on *relative* error so that small and large networks count alike (plain
least squares would fit the largest networks only). One coefficient: its ranking is exactly
the FLOPs ranking, which is what "FLOPs as a latency proxy" means in the survey's critique.
"""

from __future__ import annotations

import numpy as np

from costs.features import unit_costs
from costs.predictors.base import Predictor, positive


class FlopsPredictor(Predictor):
    name = "flops"
    min_train_size = 1

    def _fit(self, archs, y):
        ratio = self._flops(archs) / positive(y, self.name)
        self.scale = float(np.sum(ratio) / np.sum(ratio ** 2))

    def _predict(self, archs):
        return self.scale * self._flops(archs)

    def _flops(self, archs) -> np.ndarray:
        (macs,) = unit_costs(self.space, archs, ("macs",))
        return 2.0 * macs.sum(axis=1)  # = analytic_costs(...).flops, one gather instead of five

    def _state(self):
        return {"scale": np.asarray(self.scale)}

    def _load_state(self, arrays):
        self.scale = float(arrays["scale"])
