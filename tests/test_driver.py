"""The search driver: distinct-arch budget, repeats, truncation, stalls, history, keys, resume equality."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from searchers import SEARCHER_NAMES, get_searcher
from searchers.base import Searcher
from searchers.driver import run_search
from searchers.objectives import parse_objective
from supernet.spaces import get_space
from supernet.spaces.base import Decision, SearchSpace

NB201 = get_space("nasbench201")


def toy_metrics(archs):
    """Deterministic fake metrics: fast to compute, distinct enough to rank."""
    a = np.asarray(archs, np.float64)
    return {"accuracy": 50 + 40 * np.tanh(a @ np.arange(1.0, a.shape[1] + 1) / 20),
            "latency_ms": 1 + (a ** 2).sum(1)}


class TinySpace(SearchSpace):
    """2 x 3 choices, where choice 0 of `gate` makes `op` irrelevant: 1 + 2 * 3 = 7 networks."""

    name = "tiny"

    def _build_decisions(self):
        return [Decision("gate", (0, 1, 2)), Decision("op", ("a", "b", "c"))]

    def to_public(self, arch):
        return "-".join(map(str, self.validate(arch).tolist()))

    def canonical(self, archs):
        archs = jnp.asarray(archs)
        return archs.at[:, 1].set(jnp.where(archs[:, 0] == 0, 0, archs[:, 1]))

    @property
    def size(self):
        return 7


def scripted(batches, *, m=1, log=None):
    """A searcher that proposes the given batches in turn and records what `tell` receives."""
    batches = [np.asarray(b, np.int32) for b in batches]

    def ask(state, key):
        return jnp.asarray(batches[min(int(state), len(batches) - 1)]), state + 1

    def tell(state, archs, objectives):
        if log is not None:
            log.append((np.asarray(archs), np.asarray(objectives)))
        return state

    return Searcher("scripted", lambda key: jnp.zeros((), jnp.int32), ask, tell, len(batches[0]), m)


def run(searcher, budget, space=NB201, evaluate=toy_metrics, objective="mnas:20", **kw):
    return run_search(searcher, space, evaluate, budget, 0, objective=parse_objective(objective),
                      progress=False, **kw)


def test_budget_counts_distinct_archs_and_repeats_are_answered_from_history():
    a, b, c = [0, 0, 0, 0, 0, 1], [1, 1, 1, 1, 1, 1], [2, 2, 2, 2, 2, 2]
    log = []
    calls = []

    def evaluate(archs):
        calls.append(len(archs))
        return toy_metrics(archs)

    result = run(scripted([[a, b, a], [b, c, a]], log=log), budget=3, evaluate=evaluate)
    assert calls == [2, 1] and len(result) == 3 and result.stop_reason == "budget"
    assert result.archs.tolist() == [a, b, c] and result.rounds.tolist() == [1, 1, 2]
    (archs1, told1), (archs2, told2) = log
    assert told1[0] == told1[2] == result.objectives[0]  # the in-batch repeat gets the same objective
    np.testing.assert_array_equal(told2, result.objectives[[1, 2, 0]])


def test_budget_truncates_a_batch_deterministically_and_tells_inf_for_the_rest():
    log = []
    batch = NB201.enumerate()[:10]
    result = run(scripted([batch], log=log), budget=4)
    assert len(result) == 4 and result.num_rounds == 1
    np.testing.assert_array_equal(result.archs, batch[:4])  # the first ones, in batch order
    told = log[0][1]
    assert np.isfinite(told[:4]).all() and np.isinf(told[4:]).all()


def test_a_searcher_proposing_only_repeats_is_stopped_with_a_message():
    result = run(scripted([NB201.enumerate()[:2]]), budget=50, patience=5)
    assert result.stop_reason == "stalled" and len(result) == 2 and result.num_rounds == 6
    assert "5 rounds in a row" in result.message and "2 of the budget of 50" in result.message


def test_equivalent_archs_count_once_and_an_exhausted_space_stops():
    space = TinySpace()
    searcher = get_searcher("random", space, batch_size=4)
    result = run(searcher, budget=100, space=space)
    assert result.stop_reason == "exhausted" and len(result) == 7
    assert len({tuple(r) for r in result.archs.tolist()}) == 7
    assert (result.archs[result.archs[:, 0] == 0, 1] == 0).all()  # stored in canonical form


def test_round_keys_are_fold_in_of_seed_and_round():
    searcher = get_searcher("random", NB201, batch_size=8)
    result = run_search(searcher, NB201, toy_metrics, 8, 7, objective=parse_objective("mnas:20"), progress=False)
    expected = np.asarray(NB201.sample(jax.random.fold_in(jax.random.key(7), 1), 8))
    assert len(np.unique(expected, axis=0)) == 8  # no repeat in this draw, so the history is the draw
    np.testing.assert_array_equal(result.archs, expected)


def test_history_file_holds_every_record_in_public_encoding(tmp_path):
    path = tmp_path / "h.jsonl"
    result = run(get_searcher("random", NB201, batch_size=5), budget=12, objective="max-acc:lat<=40",
                 history_path=path)
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert lines == result.records() and len(lines) == 12
    assert lines[0]["arch"] == NB201.to_public(result.archs[0]) and lines[0]["arch"].startswith("|")
    assert [r["order"] for r in lines] == list(range(12))
    infeasible = [r for r in lines if r["metrics"]["latency_ms"] > 40]
    assert infeasible and all(r["objectives"] == [None] for r in infeasible)


def test_front_is_the_feasible_non_dominated_set():
    result = run(get_searcher("random", NB201, batch_size=20, num_objectives=2), budget=60,
                 objective="pareto:lat,lat<=60")
    front = result.front()
    objs = result.objectives
    for i in front:
        assert np.isfinite(objs[i]).all()
        dominated = (objs <= objs[i]).all(1) & (objs < objs[i]).any(1)
        assert not dominated.any()
    others = np.setdiff1d(np.flatnonzero(result.feasible), front)
    for j in others:  # every other feasible point is dominated or a duplicate of a front point
        assert ((objs[front] <= objs[j]).all(1)).any()


@pytest.mark.parametrize("problem, message", [
    ({"objective": "pareto"}, "built for 1 objective"),
    ({"evaluate": lambda a: {"accuracy": np.full(len(a), np.nan), "latency_ms": np.ones(len(a))}},
     "NaN for metric 'accuracy' of architecture |"),
    ({"evaluate": lambda a: {"accuracy": np.ones(1)}}, "shape"),
    ({"budget": 0}, "budget must be a positive integer"),
])
def test_driver_errors_name_the_problem(problem, message):
    kwargs = {"budget": 5, **problem}
    with pytest.raises(ValueError, match=message):
        run(get_searcher("random", NB201, batch_size=4), **kwargs)


class Interrupt(Exception):
    pass


def interrupting(after_calls):
    calls = {"n": 0}

    def evaluate(archs):
        calls["n"] += 1
        if calls["n"] > after_calls:
            raise Interrupt
        return toy_metrics(archs)

    return evaluate


def test_resume_of_random_search_equals_a_run_straight_through(tmp_path):
    searcher = get_searcher("random", NB201, batch_size=6)
    straight = run(searcher, budget=30, history_path=tmp_path / "straight.jsonl")
    with pytest.raises(Interrupt):
        run(searcher, budget=30, evaluate=interrupting(3), checkpoint_dir=tmp_path / "ckpt",
            history_path=tmp_path / "resumed.jsonl", checkpoint_every=2)
    resumed = run(searcher, budget=30, checkpoint_dir=tmp_path / "ckpt", resume=True,
                  history_path=tmp_path / "resumed.jsonl")
    assert resumed.records() == straight.records()
    assert resumed.num_rounds == straight.num_rounds
    assert (tmp_path / "resumed.jsonl").read_text() == (tmp_path / "straight.jsonl").read_text()
    # resuming a finished search changes nothing
    again = run(searcher, budget=30, checkpoint_dir=tmp_path / "ckpt", resume=True)
    assert again.records() == straight.records()


def test_checkpoint_is_not_overwritten_and_belongs_to_one_search(tmp_path):
    searcher = get_searcher("random", NB201, batch_size=5)
    run(searcher, budget=5, checkpoint_dir=tmp_path)
    with pytest.raises(ValueError, match="already holds a search checkpoint"):
        run(searcher, budget=5, checkpoint_dir=tmp_path)
    with pytest.raises(ValueError, match="belongs to another search.*budget 5 \\(now 6\\)"):
        run(searcher, budget=6, checkpoint_dir=tmp_path, resume=True)
    fresh = run(searcher, budget=5, checkpoint_dir=tmp_path / "new", resume=True)  # nothing to resume: starts
    assert len(fresh) == 5


# Small settings keep every searcher's compile and fit quick on two CPU cores.
SMALL = {"nsga2": {"population": 8}, "evolution": {"population": 8, "sample_size": 3},
         "bo": {"capacity": 64, "pool_size": 64, "fit_size": 32, "fit_steps": 5},
         "thompson": {"capacity": 64, "pool_size": 64, "num_initial": 4}}


@pytest.mark.parametrize("name", SEARCHER_NAMES)
def test_resume_equality_for_every_searcher(name, tmp_path):
    # One searcher object for all three runs: it is pure, and its jitted functions compile once.
    searcher = get_searcher(name, NB201, batch_size=4, num_objectives=1, **SMALL.get(name, {}))
    straight = run(searcher, budget=12)
    with pytest.raises(Interrupt):
        run(searcher, budget=12, evaluate=interrupting(2), checkpoint_dir=tmp_path)
    resumed = run(searcher, budget=12, checkpoint_dir=tmp_path, resume=True)
    assert resumed.records() == straight.records()
