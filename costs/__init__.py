"""Hardware cost models: analytic counts, measured lookup tables, public measured data.

Everything takes architectures as `int32 [n, d]` arrays of a `supernet.spaces` space.
"""

from costs.analytic import AnalyticCosts, analytic_costs, layer_cost_tables
from costs.lut import LatencyTable, LUTError
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

__all__ = [
    "AnalyticCosts", "LUTError", "LatencyTable", "MeasuredData", "MeasuredDataError", "analytic_costs",
    "devices", "latency", "layer_cost_tables", "load_fbnet", "load_measured", "load_nasbench201", "load_ofa",
]
