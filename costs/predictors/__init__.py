"""Cost predictors, one file each, all meeting `base.Predictor`'s protocol; chosen by name.

    lut       additive per-decision table fitted by non-negative least squares (additive.py)
    analytic  a roofline on analytic MACs and memory traffic, four coefficients (roofline.py)
    flops     cost proportional to FLOPs, the naive baseline (flops.py)
    transfer  a new device from N samples over models of fully measured devices (transfer.py)
    xgboost   gradient-boosted trees, XGBoost's defaults on one-hot features (xgboost_model.py)
    mlp       wide-and-deep network (additive path + regularized MLP), Huber loss (mlp.py)
    gp        Gaussian process: additive-table + ARD-RBF kernel, robust, with predict_std (gp.py)
"""

from __future__ import annotations

from costs.predictors.additive import AdditivePredictor
from costs.predictors.base import Predictor, PredictorError, load_predictor
from costs.predictors.flops import FlopsPredictor
from costs.predictors.gp import GPPredictor
from costs.predictors.mlp import MLPPredictor
from costs.predictors.roofline import RooflinePredictor
from costs.predictors.transfer import TransferPredictor
from costs.predictors.xgboost_model import XGBoostPredictor

PREDICTORS: dict[str, type[Predictor]] = {
    cls.name: cls for cls in (AdditivePredictor, XGBoostPredictor, MLPPredictor, GPPredictor, RooflinePredictor,
                              FlopsPredictor, TransferPredictor)
}
# Models that fit on one device's measurements alone (`transfer` also needs source devices).
STANDALONE = tuple(n for n in PREDICTORS if n != TransferPredictor.name)


def get_predictor(name: str, space, **options) -> Predictor:
    """A new, unfitted predictor `name` for `space` (options: the class's keyword arguments)."""
    if name not in PREDICTORS:
        raise PredictorError(f"unknown cost model {name!r}; models: {', '.join(PREDICTORS)}")
    return PREDICTORS[name](space, **options)


__all__ = ["PREDICTORS", "STANDALONE", "Predictor", "PredictorError", "get_predictor", "load_predictor"]
