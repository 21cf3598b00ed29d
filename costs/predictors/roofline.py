"""`analytic`: a roofline fitted to a device: each layer is compute- or memory-bound.

Williams, Waterman & Patterson ("Roofline", CACM 2009): an op that performs `m` MACs and moves
`t` bytes takes at least max(m / P, t / B) on a device with compute throughput P and memory
bandwidth B. Real networks add a cost per op (kernel launch, dispatch, synchronization) that
dominates small ops on GPUs at batch 1. With `m_u`, `t_u` the analytic MACs and memory
traffic of unit u (a searchable layer, an OFA block, a NAS-Bench-201 edge summed over its
cells, and the fixed part of the network as one more unit; `costs.analytic`):

    cost(a) = c0 + sum_u [ max(m_u / P, t_u / B) + o * 1(unit u runs) ]

Four positive coefficients (1/P, 1/B, o, c0), fitted on log scale by nonlinear least squares
of the log ratio, log(cost / y) (`scipy.optimize.least_squares`, a few starts: the max makes
it non-convex). The log ratio weighs a 2x error alike for small and large networks; the plain
relative error (cost - y) / y let the few near-empty NAS-Bench-201 cells (0.003 ms on a Pixel
3) pull every coefficient to zero. No
per-op measurement is needed and only four numbers are learned, so it extrapolates to
architectures unlike the training ones; what it cannot see is anything the analytic counts
leave out (fusion, cache reuse, op-specific kernels).
"""

from __future__ import annotations

import numpy as np

from costs.features import unit_costs
from costs.predictors.base import Predictor, positive

# Log-offsets of the naive initial guess (all terms; then the per-op and fixed terms).
_STARTS = tuple((a, a, a + b, a + b) for a in (-2.0, 0.0, 2.0) for b in (-3.0, 0.0))


class RooflinePredictor(Predictor):
    """Options: `batch_size` (activations are moved once per example), `bytes_per_element`."""

    name = "analytic"
    min_train_size = 4

    def __init__(self, space, *, batch_size: int = 1, bytes_per_element: int = 4, **kw):
        super().__init__(space, batch_size=int(batch_size), bytes_per_element=int(bytes_per_element), **kw)

    def units(self, archs) -> tuple[np.ndarray, np.ndarray]:
        """MACs and traffic bytes `[n, units + 1]` of each unit of each architecture."""
        macs, act, weight = unit_costs(self.space, archs, ("macs", "act_traffic", "weight_traffic"))
        bpe, batch = self.options["bytes_per_element"], self.options["batch_size"]
        return macs * batch, (act * batch + weight) * bpe

    @staticmethod
    def _cost(log_coef, macs, traffic) -> np.ndarray:
        inv_p, inv_b, overhead, fixed = np.exp(log_coef)
        runs = traffic > 0
        return fixed + np.sum(np.maximum(macs * inv_p, traffic * inv_b) + overhead * runs, axis=1)

    def _fit(self, archs, y):
        from scipy import optimize  # late: scipy.optimize costs a second at import, every CLI call would pay it

        positive(y, self.name)
        macs, traffic = self.units(archs)
        log_y = np.log(y)

        def residual(theta):
            return np.log(np.maximum(self._cost(theta, macs, traffic), 1e-30)) - log_y

        best = None
        guess = self._guess(macs, traffic, y)
        for start in [_alternating_start(macs, traffic, y, guess)] + [guess + np.array(s) for s in _STARTS]:
            fit = optimize.least_squares(residual, start, method="trf", max_nfev=200, xtol=1e-12, ftol=1e-12)
            if best is None or fit.cost < best.cost:
                best = fit
        self.log_coef = best.x

    @staticmethod
    def _guess(macs, traffic, y) -> np.ndarray:
        """Each term alone would explain the median latency."""
        med = float(np.median(y))
        return np.log([med / np.median(macs.sum(1)), med / np.median(traffic.sum(1)),
                       med / max(1.0, np.median((traffic > 0).sum(1))), med])

    def _predict(self, archs):
        return self._cost(self.log_coef, *self.units(archs))

    @property
    def coefficients(self) -> dict[str, float]:
        """The fitted device: MAC/s-like throughput, bandwidth, per-op and fixed cost."""
        inv_p, inv_b, overhead, fixed = np.exp(self.log_coef)
        return {"macs_per_unit_time": 1 / inv_p, "bytes_per_unit_time": 1 / inv_b,
                "per_op": overhead, "fixed": fixed}

    def _state(self):
        return {"log_coef": self.log_coef}

    def _load_state(self, arrays):
        coef = np.asarray(arrays["log_coef"], np.float64)
        if coef.shape != (4,):
            raise ValueError(f"log_coef has shape {coef.shape}, expected (4,)")
        self.log_coef = coef


def _alternating_start(macs, traffic, y, guess: np.ndarray, rounds: int = 30) -> np.ndarray:
    """A start in the right basin: which bound each unit hits, then the coefficients, in turn.

    Given which units are compute-bound, the cost is linear in (1/P, 1/B, o, c0): solve that
    by non-negative least squares of the relative error, re-decide the bounds, repeat until
    they stop changing (the max is what makes the full problem non-convex).
    """
    from scipy import optimize

    runs = (traffic > 0).sum(1).astype(np.float64)
    compute = np.ones_like(macs, dtype=bool)  # first guess: every unit compute-bound
    w = 1.0 / y
    coef = np.zeros(4)
    for _ in range(rounds):
        design = np.stack([(macs * compute).sum(1), (traffic * ~compute).sum(1), runs, np.ones_like(y)], 1)
        scale = np.maximum(design.max(0), 1e-30)
        coef = optimize.nnls(design / scale * w[:, None], y * w)[0] / scale
        inv_p, inv_b = max(coef[0], 1e-30), max(coef[1], 1e-30)
        now = macs * inv_p >= traffic * inv_b
        if np.array_equal(now, compute):
            break
        compute = now
    # A zero coefficient starts at a term worth 0.1 % of the median latency, not at log(0).
    return np.where(coef > 0, np.log(np.maximum(coef, 1e-300)), guess + np.log(1e-3))
