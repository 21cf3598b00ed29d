"""Hardware cost models: analytic counts and energy, lookup tables, predictors, measured data.

Everything takes architectures as `int32 [n, d]` arrays of a `supernet.spaces` space.
"""

from costs.analytic import AnalyticCosts, analytic_costs, layer_cost_tables
from costs.energy import ENERGY_PRESETS, EnergyModel, energy_mj, energy_preset, energy_table
from costs.lut import LatencyTable, LUTError
from costs.lut_import import LUTImportError, export_csv, import_csv
from costs.measured import (
    MeasuredData,
    MeasuredDataError,
    devices,
    latency,
    load_fbnet,
    load_measured,
    load_nasbench201,
    load_ofa,
)
from costs.metrics import PredictionMetrics, prediction_metrics
from costs.predictors import PREDICTORS, Predictor, PredictorError, get_predictor, load_predictor

__all__ = [
    "ENERGY_PRESETS", "EnergyModel", "LUTImportError", "PREDICTORS", "PredictionMetrics", "Predictor",
    "PredictorError", "energy_mj", "energy_preset", "energy_table", "export_csv", "get_predictor",
    "import_csv", "load_predictor", "prediction_metrics",
    "AnalyticCosts", "LUTError", "LatencyTable", "MeasuredData", "MeasuredDataError", "analytic_costs",
    "devices", "latency", "layer_cost_tables", "load_fbnet", "load_measured", "load_nasbench201", "load_ofa",
]
