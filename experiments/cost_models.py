"""The survey's Table V redone on measured latencies: how far each cost model can be trusted.

Benmeziane et al. (IJCAI 2021 survey of hardware-aware NAS), Table V, compared estimating
latency by real-time measurement, a LUT, an MLP, XGBoost and analytical estimation on
NAS-Bench-101 on a K80: RMSE 0 / 4.32 / 3.83 / 3.80 / 5.6 and search-time speedups
1 / 2.3 / 5.43 / 5.64 / 5.2. We redo it on real measurements, in three parts.

Runbook:
    python experiments/cost_models.py --data ../shared/data --out experiments/results   # the committed run
    python experiments/cost_models.py --part devices --train-sizes 1000 --json           # one part, JSON
    python experiments/cost_models.py --part cpu --subnets 300 --out experiments/results
    python experiments/cost_models.py --smoke --json     # seconds; what the test runs

speed: every model fitted on 1,000 measured architectures, then timed predicting
    `--predict-size` (100,000) random architectures of each space.

`--out DIR` writes `cost_models.json` (every number) and `cost_models.md` (the command first,
then the tables); without it, tables (or `--json`) go to stdout. Progress goes to stderr.

devices (part a): for every space in `../shared/data` (nasbench201, fbnet, ofa_mbv3), every
    device with measured latency and train size N in `--train-sizes` (20, 100, 1000): fit
    each model of `--models` on N random measured architectures and score it on all the
    others (`costs.evaluate.evaluate`; metrics in `costs.metrics`), for `--seeds` seeds
    (median reported). Models: `lut` (additive table fitted by NNLS), `xgboost` (XGBoost's
    defaults on one-hot features: the baseline), `mlp`, `gp`, `analytic` (roofline on MACs
    and traffic), `flops`. "Best" is the model with the highest median Kendall tau other than
    the two baselines `lut` and `xgboost`; the NAS-Bench-201 check asks that it beat both in
    tau and match them in the +-10 % share at N = 1000.
transfer: every device of a space as the target, all its other devices as sources (their
    full data), N target samples (`--transfer-sizes`, 10 and 20, HELP's setting): the base
    model trained on the N samples alone against `scale` and `stack` transfer
    (`costs.predictors.transfer`). HELP reports mean Spearman 0.932 over six NAS-Bench-201
    devices with 10 samples.
cpu (part b): this machine. The `fbnet` space (`--cpu-preset`), batch `--cpu-batch`, on the
    JAX CPU backend: profile the per-op LUT (`supernet.profile.profile_fbnet`), measure
    `--subnets` whole random subnets (standalone, jitted whole, interleaved rounds), fit the
    models on `--cpu-train` of them and score every estimator on the rest. Then the search
    time: an aging-evolution search of `--search-budget` evaluations maximizing MACs under
    latency <= the median measured subnet latency, with each estimator as the latency model;
    "measured" is the search that would time every candidate, whose time is the budget times
    the measured cost of one subnet (compile + timing) rather than a run of its own. The
    architecture each search returns is then measured, to show whether the estimator's
    "feasible" holds on the device, together with `--cpu-recheck` of the subnets measured a
    second time: how well a measurement repeats bounds what any estimator can score.
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from costs.evaluate import evaluate, split  # noqa: E402
from costs.measured import devices, latency, load_measured  # noqa: E402
from costs.metrics import prediction_metrics  # noqa: E402
from costs.predictors import STANDALONE, get_predictor  # noqa: E402
from supernet.spaces import get_space  # noqa: E402

SPACES = ("nasbench201", "fbnet", "ofa_mbv3")
BASELINES = ("lut", "xgboost")
HELP_SPEARMAN = 0.932  # HELP, NeurIPS 2021: mean over six NAS-Bench-201 devices, 10 samples
SURVEY = {"measured": (0.0, 1.0), "lut": (4.32, 2.3), "mlp": (3.83, 5.43), "xgboost": (3.80, 5.64),
          "analytic": (5.6, 5.2)}  # Table V: RMSE, search-time speedup (NAS-Bench-101, K80)
DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# ============================================================================ part a
def run_devices(data_dir, spaces, models, train_sizes, seeds) -> list[dict]:
    rows = []
    for space in spaces:
        data = load_measured(space, data_dir)
        for device in devices(data):
            for n in train_sizes:
                if n >= len(data.archs):
                    continue
                per_seed = [evaluate(data_dir, space, device, models, n, seed, data=data)["models"]
                            for seed in range(seeds)]
                for i, model in enumerate(per_seed[0]):
                    runs = [s[i] for s in per_seed]
                    rows.append({"space": space, "device": device, "train_size": n, "model": model["model"],
                                 **{k: float(np.median([r[k] for r in runs])) for k in runs[0] if k != "model"}})
                best = max((r for r in rows[-len(per_seed[0]):] if r["model"] not in BASELINES),
                           key=lambda r: r["kendall_tau"], default=None)
                log(f"devices: {space}/{device} N={n}: best {best and best['model']} tau "
                    f"{best and round(best['kendall_tau'], 3)}")
    return rows


def nb201_check(rows) -> list[dict]:
    """Per NAS-Bench-201 device at N = 1000: the best model against both baselines."""
    out = []
    for device in sorted({r["device"] for r in rows if r["space"] == "nasbench201" and r["train_size"] == 1000}):
        cell = {r["model"]: r for r in rows if r["space"] == "nasbench201" and r["device"] == device
                and r["train_size"] == 1000}
        if not all(b in cell for b in BASELINES):
            continue
        best = max((r for m, r in cell.items() if m not in BASELINES), key=lambda r: r["kendall_tau"])
        base_tau = max(cell[b]["kendall_tau"] for b in BASELINES)
        base_w10 = max(cell[b]["within_10"] for b in BASELINES)
        out.append({"device": device, "best": best["model"], "tau": best["kendall_tau"],
                    "within_10": best["within_10"], "lut_tau": cell["lut"]["kendall_tau"],
                    "xgboost_tau": cell["xgboost"]["kendall_tau"], "lut_within_10": cell["lut"]["within_10"],
                    "xgboost_within_10": cell["xgboost"]["within_10"],
                    "met": bool(best["kendall_tau"] > base_tau and best["within_10"] >= base_w10)})
    return out


# ============================================================================ speed
def run_speed(data_dir, spaces, models, n_predict: int) -> list[dict]:
    """Fit on 1000 measured architectures of the space's first device, predict `n_predict`
    random ones: the first call (with any compilation) and the median of 3 more."""
    import jax

    rows = []
    for space in spaces:
        data = load_measured(space, data_dir)
        space_obj = get_space(data.space)
        device = devices(data)[0]
        train, _ = split(len(data.archs), min(1000, len(data.archs) - 1), 0, what=space)
        archs = np.asarray(space_obj.sample(jax.random.key(0), n_predict))
        for name in models:
            t0 = time.perf_counter()
            model = get_predictor(name, space_obj).fit(data.archs[train], latency(data, device)[train])
            fit_s = time.perf_counter() - t0
            times = []
            for _ in range(4):
                t0 = time.perf_counter()
                model.predict(archs)
                times.append(time.perf_counter() - t0)
            rows.append({"space": space, "device": device, "model": name, "fit_s": fit_s,
                         "first_predict_s": times[0], "predict_s": float(np.median(times[1:])), "n": n_predict})
            log(f"speed: {space} {name}: predict {n_predict} in {rows[-1]['predict_s']:.3f} s")
    return rows


# ============================================================================ transfer
def run_transfer(data_dir, spaces, bases, sizes, seeds) -> list[dict]:
    rows = []
    for space in spaces:
        data = load_measured(space, data_dir)
        space_obj = get_space(data.space)
        names = devices(data)
        for base in bases:
            # One model per device on its full data, shared by every target it is a source for.
            full = {d: get_predictor(base, space_obj, device=d).fit(data.archs, latency(data, d)) for d in names}
            for target in names:
                y = latency(data, target)
                for n in sizes:
                    scores = {"alone": [], "scale": [], "stack": []}
                    for seed in range(seeds):
                        train, test = split(len(y), n, seed, what=f"{space}/{target}")
                        alone = get_predictor(base, space_obj).fit(data.archs[train], y[train])
                        scores["alone"].append(prediction_metrics(y[test], alone.predict(data.archs[test])))
                        for method in ("scale", "stack"):
                            model = get_predictor("transfer", space_obj, method=method, base=base)
                            model.use_sources({d: m for d, m in full.items() if d != target}, data.archs)
                            model.fit(data.archs[train], y[train])
                            scores[method].append(prediction_metrics(y[test], model.predict(data.archs[test])))
                    for method, ms in scores.items():
                        rows.append({"space": space, "target": target, "base": base, "train_size": n,
                                     "method": method, "seeds": seeds,
                                     **{k: float(np.median([m._asdict()[k] for m in ms])) for k in ms[0]._fields}})
                    log(f"transfer: {space}/{target} {base} N={n}: " + ", ".join(
                        f"{r['method']} rho {r['spearman']:.3f}" for r in rows[-3:]))
    return rows


# ============================================================================ part b
def run_cpu(args) -> dict:
    import jax

    from costs.analytic import analytic_costs
    from costs.lut import LatencyTable
    from searchers import get_searcher
    from searchers.driver import run_search
    from searchers.objectives import Constraint, WeightedSum
    from supernet.profile import measure_subnets, profile_fbnet

    space = get_space("fbnet", preset=args.cpu_preset)
    archs = np.asarray(space.sample(jax.random.key(args.seed), args.subnets))
    # Measurements are the slow part (a compile per subnet): kept in --cpu-cache as they are
    # made, so an interrupted run continues and a rerun with other models re-uses them.
    settings = {"preset": args.cpu_preset, "batch_size": args.cpu_batch, "subnets": args.subnets,
                "seed": args.seed, "repeats": args.cpu_repeats, "fingerprint": space.fingerprint()}
    cache = Path(args.cpu_cache) if args.cpu_cache else None
    saved = json.loads(cache.read_text()) if cache and cache.exists() else {}
    if saved.get("settings") != settings:
        saved = {"settings": settings, "measured_ms": [], "measure_s": 0.0}
    if "lut" in saved:
        table, lut_s = LatencyTable.from_json(saved["lut"]), saved["lut_s"]
    else:
        t0 = time.perf_counter()
        table = profile_fbnet(space, batch_size=args.cpu_batch, repeats=args.cpu_repeats)
        lut_s = time.perf_counter() - t0
        saved.update(lut=table.to_json(), lut_s=lut_s)
    log(f"cpu: per-op LUT profiled in {lut_s:.0f} s")
    measured = list(saved["measured_ms"])
    while len(measured) < len(archs):  # compile a chunk at a time: bounded memory, resumable
        t0 = time.perf_counter()
        chunk = archs[len(measured):len(measured) + args.cpu_chunk]
        measured += [t.median_ms for t in measure_subnets(space.macro, chunk, batch_size=args.cpu_batch,
                                                          repeats=args.cpu_repeats)]
        saved["measure_s"] += time.perf_counter() - t0
        saved["measured_ms"] = measured
        _forget_compiled()
        if cache:
            cache.parent.mkdir(parents=True, exist_ok=True)
            cache.write_text(json.dumps(saved))
        log(f"cpu: measured {len(measured)}/{len(archs)} subnets ({saved['measure_s']:.0f} s)")
    measure_s = saved["measure_s"] / len(archs)
    y = np.asarray(measured)
    train, test = split(len(y), args.cpu_train, args.seed, what=f"{len(y)} measured subnets")

    # The profiled table's sum in numpy (what `LatencyTable.cost` computes, without a jit
    # compile per batch shape, which would be most of its time here).
    entries, rows = np.nan_to_num(table.table), np.arange(space.num_decisions)
    estimators = {"lut (profiled per op)": lambda a: table.fixed + entries[rows, np.asarray(a)].sum(axis=1)}
    fit_s = {"lut (profiled per op)": lut_s}
    for name in args.models:
        t0 = time.perf_counter()
        model = get_predictor(name, space).fit(archs[train], y[train])
        fit_s[name] = time.perf_counter() - t0
        estimators[name] = model.predict
    accuracy = []
    for name, fn in estimators.items():
        fn(archs[test[:2]])  # warm: the time below is predicting, not a first call's set-up
        t0 = time.perf_counter()
        predicted = fn(archs[test])
        accuracy.append({"estimator": name, **prediction_metrics(y[test], predicted).as_dict(),
                         "setup_s": fit_s[name], "predict_us_per_arch": 1e6 * (time.perf_counter() - t0) / len(test)})

    bound = float(np.median(y))
    objective = WeightedSum(weights=(("macs", -1e-6),), constraints=(Constraint("latency_ms", bound),))
    searches, found = [], []
    # An untimed search first: it compiles the searcher, which every timed search then reuses.
    searcher = get_searcher("evolution", space)
    run_search(searcher, space, lambda a: {"macs": analytic_costs(space, a).macs,
               "latency_ms": analytic_costs(space, a).flops}, budget=args.search_budget, seed=args.seed + 1,
               objective=objective, progress=False)
    for name, fn in estimators.items():
        def cost_model(a, fn=fn):
            a = np.asarray(a)
            return {"macs": analytic_costs(space, a).macs, "latency_ms": fn(a)}

        t0 = time.perf_counter()
        result = run_search(searcher, space, cost_model, budget=args.search_budget,
                            seed=args.seed, objective=objective, progress=False)
        elapsed = time.perf_counter() - t0
        best = result.archs[int(np.argmin(result.objectives[:, 0]))]
        searches.append({"estimator": name, "search_s": elapsed, "setup_s": fit_s[name],
                         "predicted_ms": float(fn(best[None])[0])})
        found.append(best)
    # The found architectures, and the first --cpu-recheck subnets again, timed together: the
    # second timing says how far a measurement on this (shared) machine repeats, the ceiling
    # of what any estimator can score against it.
    k = min(args.cpu_recheck, len(archs))
    timed = [t.median_ms for t in measure_subnets(space.macro, np.concatenate([np.stack(found), archs[:k]]),
                                                  batch_size=args.cpu_batch, repeats=args.cpu_repeats)]
    real, again = timed[:len(found)], np.asarray(timed[len(found):])
    if k >= 2:
        accuracy.insert(0, {"estimator": f"the same {k} subnets measured again", "setup_s": measure_s * k,
                            **prediction_metrics(y[:k], again).as_dict(), "predict_us_per_arch": 1e6 * measure_s})
    measured_search_s = args.search_budget * measure_s
    for s, r in zip(searches, real):
        s["measured_ms"] = r
        s["feasible_on_device"] = bool(r <= bound)
        s["speedup_vs_measuring"] = measured_search_s / (s["search_s"] + s["setup_s"])
    searches.insert(0, {"estimator": "measured (every candidate timed)", "search_s": measured_search_s,
                        "setup_s": 0.0, "speedup_vs_measuring": 1.0})
    return {"preset": args.cpu_preset, "batch_size": args.cpu_batch, "subnets": len(archs),
            "train_size": len(train), "latency_bound_ms": bound, "measure_s_per_subnet": measure_s,
            "measured_ms": {"min": float(y.min()), "median": bound, "max": float(y.max())},
            "accuracy": accuracy, "search": searches, "search_budget": args.search_budget}


def _forget_compiled() -> None:
    """Drop the compiled subnets of a chunk: each is its own XLA program, and a few hundred of
    them held at once exhausted 24 GB (LLVM "Cannot allocate memory")."""
    import jax

    from supernet import profile

    profile._JITTED.clear()
    jax.clear_caches()


# ============================================================================ output
def _fmt(v, digits=3):
    return "-" if v is None else (f"{v:.{digits}f}" if isinstance(v, float) else str(v))


def render(result: dict) -> str:
    lines = [f"# Cost models on measured latencies (`experiments/cost_models.py`)", "", "Produced by:", "",
             "```", result["command"], "```", "", result["machine"], ""]
    rows = result.get("devices")
    if rows:
        lines += ["## (a) Every device of the shared data",
                  "", "Kendall tau / share within +-10 % on every architecture not used for fitting "
                  f"(median over {result['config']['seeds']} seed(s)); best non-baseline model in bold.", ""]
        models = list(dict.fromkeys(r["model"] for r in rows))
        for space in dict.fromkeys(r["space"] for r in rows):
            lines += [f"### {space}", "", "| device | N | " + " | ".join(models) + " |",
                      "|---|---|" + "---|" * len(models)]
            for device in dict.fromkeys(r["device"] for r in rows if r["space"] == space):
                for n in result["config"]["train_sizes"]:
                    cell = {r["model"]: r for r in rows if r["space"] == space and r["device"] == device
                            and r["train_size"] == n}
                    if not cell:
                        continue
                    top = max((m for m in cell if m not in BASELINES), key=lambda m: cell[m]["kendall_tau"],
                              default=None)
                    vals = [(f"**{cell[m]['kendall_tau']:.3f} / {cell[m]['within_10']:.2f}**" if m == top else
                             f"{cell[m]['kendall_tau']:.3f} / {cell[m]['within_10']:.2f}") if m in cell else "-"
                            for m in models]
                    lines.append(f"| {device} | {n} | " + " | ".join(vals) + " |")
            lines.append("")
        lines += ["Fit and predict time (median over devices and seeds; predict per architecture):", "",
                  "| model | N | fit s | predict us/arch | RMSE ms (median over devices) |", "|---|---|---|---|---|"]
        for m in models:
            for n in result["config"]["train_sizes"]:
                sel = [r for r in rows if r["model"] == m and r["train_size"] == n]
                if sel:
                    lines.append(f"| {m} | {n} | {np.median([r['fit_s'] for r in sel]):.3f} | "
                                 f"{np.median([r['predict_us_per_arch'] for r in sel]):.2f} | "
                                 f"{np.median([r['rmse'] for r in sel]):.3f} |")
        lines.append("")
    check = result.get("nb201_check")
    if check:
        lines += ["### NAS-Bench-201 at N = 1000: the best model against both baselines", "",
                  "| device | best | tau | +-10 % | lut tau | xgboost tau | lut +-10 % | xgboost +-10 % | met |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for c in check:
            lines.append(f"| {c['device']} | {c['best']} | {c['tau']:.3f} | {c['within_10']:.3f} | {c['lut_tau']:.3f} | "
                         f"{c['xgboost_tau']:.3f} | {c['lut_within_10']:.3f} | {c['xgboost_within_10']:.3f} | "
                         f"{'yes' if c['met'] else 'no'} |")
        lines.append("")
    speed = result.get("speed")
    if speed:
        lines += [f"## Predicting {speed[0]['n']:,} random architectures", "",
                  "Fitted on 1,000 measured architectures of the space's first device; seconds for one call on "
                  "all of them (median of 3 after a first call that includes any compilation).", "",
                  "| model | " + " | ".join(dict.fromkeys(r["space"] for r in speed)) + " |",
                  "|---|" + "---|" * len(dict.fromkeys(r["space"] for r in speed))]
        for m in dict.fromkeys(r["model"] for r in speed):
            cells = {r["space"]: r for r in speed if r["model"] == m}
            lines.append(f"| {m} | " + " | ".join(
                f"{cells[sp]['predict_s']:.3f} (first {cells[sp]['first_predict_s']:.2f})" if sp in cells else "-"
                for sp in dict.fromkeys(r["space"] for r in speed)) + " |")
        lines.append("")
    transfer = result.get("transfer")
    if transfer:
        lines += ["## Transfer to a new device from N samples", "",
                  "Spearman rho on the target's other architectures (median over seeds); sources: every other "
                  "device of the space, full data.", "",
                  "| space | target | base | N | alone | scale | stack |", "|---|---|---|---|---|---|---|"]
        keys = dict.fromkeys((r["space"], r["target"], r["base"], r["train_size"]) for r in transfer)
        for key in keys:
            cell = {r["method"]: r["spearman"] for r in transfer if (r["space"], r["target"], r["base"], r["train_size"]) == key}
            lines.append("| " + " | ".join(map(str, key)) + " | " + " | ".join(
                f"{cell.get(m, float('nan')):.3f}" for m in ("alone", "scale", "stack")) + " |")
        lines += ["", "Mean Spearman over each space's devices (HELP: 0.932 on six NAS-Bench-201 devices, N = 10):", "",
                  "| space | base | N | alone | scale | stack |", "|---|---|---|---|---|---|"]
        for key in dict.fromkeys((r["space"], r["base"], r["train_size"]) for r in transfer):
            sel = [r for r in transfer if (r["space"], r["base"], r["train_size"]) == key]
            lines.append("| " + " | ".join(map(str, key)) + " | " + " | ".join(
                f"{np.mean([r['spearman'] for r in sel if r['method'] == m]):.3f}" for m in ("alone", "scale", "stack"))
                + " |")
        lines.append("")
    cpu = result.get("cpu")
    if cpu:
        lines += [f"## (b) This machine: fbnet `{cpu['preset']}`, batch {cpu['batch_size']}, JAX CPU", "",
                  f"{cpu['subnets']} random subnets measured whole ({cpu['measure_s_per_subnet']:.2f} s each with "
                  f"compilation; latency {cpu['measured_ms']['min']:.2f} - {cpu['measured_ms']['max']:.2f} ms, median "
                  f"{cpu['measured_ms']['median']:.2f}); fitted models trained on {cpu['train_size']}, all scored on "
                  "the rest.", "",
                  "| estimator | RMSE ms | MAPE | +-10 % | Kendall tau | Spearman | setup s | predict us/arch |",
                  "|---|---|---|---|---|---|---|---|"]
        for a in cpu["accuracy"]:
            lines.append(f"| {a['estimator']} | {a['rmse']:.3f} | {a['mape']:.3f} | {a['within_10']:.2f} | "
                         f"{a['kendall_tau']:.3f} | {a['spearman']:.3f} | {a['setup_s']:.2f} | "
                         f"{a['predict_us_per_arch']:.2f} |")
        lines += ["", f"Search: evolution, {cpu['search_budget']} evaluations, maximize MACs subject to latency <= "
                  f"{cpu['latency_bound_ms']:.2f} ms (the median subnet); the found architecture measured afterwards.", "",
                  "| estimator | search s | setup s | speedup vs measuring | predicted ms | measured ms | feasible |",
                  "|---|---|---|---|---|---|---|"]
        for s in cpu["search"]:
            lines.append(f"| {s['estimator']} | {s['search_s']:.1f} | {s['setup_s']:.1f} | "
                         f"{s['speedup_vs_measuring']:.1f} | {_fmt(s.get('predicted_ms'))} | {_fmt(s.get('measured_ms'))} | "
                         f"{_fmt(s.get('feasible_on_device'))} |")
        lines.append("")
    lines += ["Survey's Table V (NAS-Bench-101, K80): RMSE / search-time speedup: " + ", ".join(
        f"{k} {v[0]} / {v[1]}" for k, v in SURVEY.items()), ""]
    return "\n".join(lines)


# ============================================================================ main
def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", default=str(DEFAULT_DATA), help="folder laid out like ../shared/data")
    p.add_argument("--part", action="append", choices=("devices", "speed", "transfer", "cpu"),
                   help="run only these parts (repeatable; default all four)")
    p.add_argument("--predict-size", type=int, default=100_000, help="architectures the speed part predicts")
    p.add_argument("--spaces", default=",".join(SPACES))
    p.add_argument("--models", default=",".join(STANDALONE))
    p.add_argument("--train-sizes", default="20,100,1000")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--transfer-bases", default="xgboost")
    p.add_argument("--transfer-sizes", default="10,20")
    p.add_argument("--cpu-preset", default="fashion_mnist")
    p.add_argument("--cpu-batch", type=int, default=1)
    p.add_argument("--subnets", type=int, default=300)
    p.add_argument("--cpu-train", type=int, default=100)
    p.add_argument("--cpu-repeats", type=int, default=30)
    p.add_argument("--cpu-chunk", type=int, default=25)
    p.add_argument("--cpu-recheck", type=int, default=25, help="subnets measured a second time (repeatability)")
    p.add_argument("--cpu-cache", default=None, metavar="FILE",
                   help="keep the CPU measurements here (resumable; default OUT/cost_models_cpu.json with --out)")
    p.add_argument("--search-budget", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--smoke", action="store_true", help="tiny settings: seconds")
    p.add_argument("--out", default=None, help="write cost_models.json and cost_models.md here")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    if args.smoke:
        args.spaces, args.models, args.train_sizes, args.seeds = "nasbench201,fbnet", "lut,analytic,flops", "20", 1
        args.transfer_bases, args.transfer_sizes = "lut", "10"
        args.cpu_preset, args.subnets, args.cpu_train, args.cpu_repeats, args.search_budget = "micro", 8, 4, 3, 30
        args.cpu_recheck = 3
        args.models, args.predict_size = "lut,analytic,flops", 1000
    args.spaces = [s for s in args.spaces.split(",") if s]
    args.models = [m for m in args.models.split(",") if m]
    args.train_sizes = [int(n) for n in args.train_sizes.split(",")]
    args.transfer_bases = [b for b in args.transfer_bases.split(",") if b]
    args.transfer_sizes = [int(n) for n in args.transfer_sizes.split(",")]
    args.part = args.part or ["devices", "speed", "transfer", "cpu"]
    if args.cpu_cache is None and args.out and not args.smoke:
        args.cpu_cache = str(Path(args.out) / "cost_models_cpu.json")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    import jax

    result = {"command": "python experiments/cost_models.py " + " ".join(argv if argv is not None else sys.argv[1:]),
              "machine": f"{datetime.date.today()}, {platform.machine()}, jax {jax.__version__} on "
                         f"{jax.default_backend()}",
              "config": {k: v for k, v in vars(args).items() if k not in ("json", "out", "cpu_cache")}}
    t0 = time.perf_counter()
    if "devices" in args.part:
        result["devices"] = run_devices(args.data, args.spaces, args.models, args.train_sizes, args.seeds)
        result["nb201_check"] = nb201_check(result["devices"])
    if "speed" in args.part:
        result["speed"] = run_speed(args.data, args.spaces, args.models, args.predict_size)
    if "transfer" in args.part:
        result["transfer"] = run_transfer(args.data, args.spaces, args.transfer_bases, args.transfer_sizes, args.seeds)
    if "cpu" in args.part:
        result["cpu"] = run_cpu(args)
    result["wall_s"] = time.perf_counter() - t0
    text = render(result)
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "cost_models.json").write_text(json.dumps(result, indent=1))
        (out / "cost_models.md").write_text(text)
    if args.json:
        print(json.dumps(result, indent=1))
    elif not args.out:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
