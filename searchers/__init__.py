"""Search strategies over a search space (random, evolution, NSGA-II, REINFORCE, BO, local, TPE, Thompson).

Searchers see a `supernet.spaces` space and an evaluate function, never a Flax module. Every
searcher follows one protocol (`searchers.base.Searcher`: optax-style `init`/`ask`/`tell`
over a state pytree); `run_search` drives one against an evaluator for a budget of distinct
architectures, with orbax checkpoints and a full history.

    from searchers import get_searcher, parse_objective, run_search, TabularEvaluator

    evaluate = TabularEvaluator.nasbench201("../shared/data", device="raspi4")
    objective = parse_objective("pareto")                  # [-acc, log latency]
    searcher = get_searcher("nsga2", evaluate.space, num_objectives=objective.num_objectives)
    result = run_search(searcher, evaluate.space, evaluate, budget=300, seed=0, objective=objective)

Searcher modules are imported on first use (`get_searcher`), so importing `searchers` stays
cheap and a module that fails to import affects only its own searcher.
"""

from __future__ import annotations

import importlib

from searchers.base import Searcher
from searchers.driver import SearchResult, run_search
from searchers.evaluators import (
    AnalyticCostModel,
    LUTCostModel,
    PredictorEvaluator,
    RidgeRegressor,
    TabularEvaluator,
)
from searchers.objectives import (
    MNAS,
    Constraint,
    MaxAccuracy,
    Objective,
    ObjectiveError,
    Pareto,
    TuNAS,
    WeightedProduct,
    WeightedSum,
    parse_objective,
)
from searchers.reference import hypervolume_ratio, true_front

SEARCHER_NAMES = ("random", "evolution", "nsga2", "reinforce", "bo", "local", "tpe", "thompson")
_MODULES = {
    "random": "searchers.random_search",
    "evolution": "searchers.evolution",
    "nsga2": "searchers.nsga2",
    "reinforce": "searchers.reinforce",
    "bo": "searchers.bo",
    "local": "searchers.local",
    "tpe": "searchers.tpe",
    "thompson": "searchers.thompson",
}


def get_searcher(name: str, space, **options) -> Searcher:
    """The searcher `name` over `space`, built by its module's `make(space, **options)`.

    Options are the module's keywords (`num_objectives`, `batch_size`, `population`, ...);
    an option the searcher does not take is an error naming the searcher.
    """
    if name not in _MODULES:
        raise ValueError(f"unknown searcher {name!r}; searchers: {', '.join(SEARCHER_NAMES)}")
    module_name = _MODULES[name]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        if err.name != module_name:  # the module exists but one of its imports is missing
            raise
        raise ValueError(f"searcher {name!r} is not available: its module {module_name} is not installed") from None
    try:
        return module.make(space, **options)
    except TypeError as err:  # an unknown keyword: say which searcher refused it
        raise ValueError(f"searcher {name!r}: {err}") from None


__all__ = [
    "MNAS", "SEARCHER_NAMES", "AnalyticCostModel", "Constraint", "LUTCostModel", "MaxAccuracy", "Objective",
    "ObjectiveError", "Pareto", "PredictorEvaluator", "RidgeRegressor", "SearchResult", "Searcher",
    "TabularEvaluator", "TuNAS", "WeightedProduct", "WeightedSum", "get_searcher", "hypervolume_ratio",
    "parse_objective", "run_search", "true_front",
]
