"""The trainer: one linear loop for supernets (any method) and for extracted subnets.

    state = init(config)                        # or the latest checkpoint in workdir
    for step in range(state.step, total_steps):
        state = weight_step(state, train_batch(step), step)          # every step
        if step >= warmup and step % arch_every == 0:
            state = arch_step(state, val_batch(step), step)          # held-out data (bilevel, first order)

Flax NNX in the functional style at the jit boundary: the model is split once into a graph
definition and state; each step is a `jax.jit` function of (train state, batch, step) that
donates the state and merges the model inside. Every random draw uses
`fold_in(key(seed), step)` and the data order is a function of (seed, epoch), so a run is a
pure function of its config; checkpoints hold the whole train state, and a resumed run ends
with the same parameters as an uninterrupted one.

Warm-up epochs train weights only, on uniformly sampled paths (every method), so that the
architecture parameters later compare candidates that have all been trained.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import hashlib
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any, Callable, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from costs.hardware_loss import HardwareLoss
from costs.lut import LatencyTable
from supernet import data as data_lib
from supernet.checkpoint import Checkpointer
from supernet.config import ConfigError, dumps
from supernet.fbnet_supernet import FBNetSupernet
from supernet.methods import (ArchState, Method, accuracy, cross_entropy, derive, entropy, get_method,
                              init_arch_state)
from supernet.spaces import FBNetSpace, get_space
from supernet.subnet import FBNetSubnet


DERIVE_STREAM = 2**31 - 1  # fold_in tag of the derivation draw: never a step number


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


class TrainState(NamedTuple):
    # Plain nested dicts of arrays (`nnx.to_pure_dict`), which `nnx.merge` accepts: an
    # `nnx.State` of `nnx.Variable`s is a Python-level pytree node per variable, and building
    # 500 of them back at every jitted call cost the demo supernet's step 3.5 ms of its ~20 ms.
    params: Any  # {module path: array} of the nnx.Param variables
    batch_stats: Any  # {module path: array} of the nnx.BatchStat variables
    opt_weights: Any
    arch: ArchState
    opt_arch: Any
    step: jax.Array  # int32 []: the next step to run


@dataclasses.dataclass
class Run:
    """Everything a training run is built from (static during the run)."""

    config: dict
    space: FBNetSpace
    graphdef: Any
    method: Method
    hardware: HardwareLoss
    tx_weights: optax.GradientTransformation
    tx_arch: optax.GradientTransformation
    train: data_lib.Dataset
    val: data_lib.Dataset
    test: data_lib.Dataset
    steps_per_epoch: int
    total_steps: int
    warmup_steps: int
    arch_steps: bool
    model_kind: str  # "supernet" | "subnet"
    subnet_arch: tuple[int, ...] | None = None
    _program: "_Program | None" = None

    @property
    def program(self) -> "_Program":
        """The jitted step functions, shared by every run of this process with the same program.

        Runs that differ only in hardware weights and targets, checkpointing or logging (the
        demo's several latency targets, a sweep over lambda) reuse the compiled steps: XLA
        compilation of a supernet step costs far more than running it on CPU.
        """
        if self._program is None:
            key = program_key(self)
            if key not in _PROGRAMS:
                if len(_PROGRAMS) >= _MAX_PROGRAMS:
                    _PROGRAMS.pop(next(iter(_PROGRAMS)))  # oldest first
                _PROGRAMS[key] = _Program(make_steps(self))
            self._program = _PROGRAMS[key]
        return self._program

    @property
    def steps(self) -> dict[str, Callable]:
        return self.program.steps

    def step_fn(self, name: str) -> Callable:
        """The loop's step `name`: its ahead-of-time executable (`compile_ahead`), else the jit."""
        return self.program.compiled.get(self.program.canonical(name)) or self.steps[name]


@dataclasses.dataclass
class _Program:
    steps: dict[str, Callable]
    compiled: dict[str, Any] = dataclasses.field(default_factory=dict)

    def canonical(self, name: str) -> str:
        """Warm-up shares the weight step's program for single-path methods and subnets."""
        return "weights" if name == "warmup" and self.steps["warmup"] is self.steps["weights"] else name


_PROGRAMS: dict[str, _Program] = {}
_MAX_PROGRAMS = 8


def program_key(run: Run) -> str:
    """What the step functions depend on: the config minus what is traced or host-side only.

    Hardware weights and targets enter the steps as traced arrays, tables by their contents
    (not their file names); checkpoint, log and eval settings never reach a step.
    """
    config = json.loads(dumps(run.config))
    for section in ("checkpoint", "log", "eval"):
        config.pop(section, None)
    for term in config.get("hardware", {}).get("terms", []):
        for field in ("lut", "weight", "target"):
            term.pop(field, None)
    config.get("subnet", {}).pop("from", None)  # the weights come in through the state
    tables = [t.to_json() for t in run.hardware.tables]
    payload = [config, tables, run.steps_per_epoch, run.total_steps, run.warmup_steps, run.subnet_arch]
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


# ----------------------------------------------------------------------------- building
def build(config: dict, datasets: tuple | None = None) -> tuple[Run, TrainState]:
    """The static run description and the initial train state of `config`."""
    seed = int(config["seed"])
    space = get_space(config["space"]["name"], config["space"].get("preset"))
    if space.name != "fbnet":
        raise ConfigError(f"the trainer supports the fbnet space for now, not {space.name!r}")
    train, val, test = datasets or load_data(config["data"], seed, space.macro.input_size)
    _check_data(train, space)
    kind = config.get("kind", "supernet")
    if kind == "supernet":
        model = FBNetSupernet(space.macro, seed)
        method = get_method(config["method"]["name"], **config["method"].get("options", {}))
        subnet_arch = None
    elif kind == "subnet":
        model, subnet_arch = _subnet_model(config.get("subnet") or {}, space, seed)
        method = get_method("fixed")
    else:
        raise ConfigError(f"config 'kind' must be 'supernet' or 'subnet', got {kind!r}")
    graphdef, params, batch_stats = nnx.split(model, nnx.Param, nnx.BatchStat)
    params, batch_stats = nnx.to_pure_dict(params), nnx.to_pure_dict(batch_stats)

    sched = config["schedule"]
    batch_size = int(config["data"]["batch_size"])
    full_epoch = data_lib.num_batches(len(train.labels), batch_size)
    if full_epoch == 0:
        raise ConfigError(f"batch_size {batch_size} exceeds the {len(train.labels)} training images")
    steps_per_epoch = min(full_epoch, int(sched.get("steps_per_epoch") or full_epoch))
    total_steps = int(round(float(sched["epochs"]) * steps_per_epoch))
    warmup_steps = int(round(float(sched.get("warmup_epochs", 0)) * steps_per_epoch))
    arch_steps = method.arch_loss is not None

    tx_weights = make_optimizer(config["optim"]["weights"], total_steps)
    tx_arch = make_optimizer(config["optim"]["arch"], total_steps)
    hardware = load_hardware(config.get("hardware", {}), space)
    arch = init_arch_state(space.num_decisions, len(space.decisions[0].choices))
    state = TrainState(params, batch_stats, tx_weights.init(params), arch, tx_arch.init(arch.alpha),
                       jnp.zeros((), jnp.int32))
    run = Run(config, space, graphdef, method, hardware, tx_weights, tx_arch, train, val, test,
              steps_per_epoch, total_steps, warmup_steps, arch_steps, kind, subnet_arch)
    return run, state


def _subnet_model(cfg: dict, space: FBNetSpace, seed: int):
    """A standalone subnet: inherited from a trained supernet (`subnet.from`), else from scratch."""
    if cfg.get("from"):
        from supernet.derive import load_subnet  # the subnet comes from a trained supernet

        model, arch = load_subnet(cfg["from"], cfg.get("arch"))
        if model.config != space.macro:
            raise ConfigError("subnet.from was trained on another space config than space.preset")
        return model, arch
    if cfg.get("arch") is None:
        raise ConfigError("a subnet run needs subnet.from (a supernet workdir) or subnet.arch (to train from scratch)")
    arch = tuple(int(a) for a in space.from_public(list(cfg["arch"])))
    return FBNetSubnet(space.macro, arch, seed), arch


def load_data(cfg: dict, seed: int, input_size: int):
    """(train, val, test): train/val split of the training set for bilevel search."""
    train_full = data_lib.load_dataset(cfg["dataset"], "train")
    test = data_lib.load_dataset(cfg["dataset"], "test")._replace(mean=train_full.mean, std=train_full.std)
    if cfg.get("limit_train"):
        train_full = _stratified_head(train_full, int(cfg["limit_train"]))
    if cfg.get("limit_test"):
        test = _stratified_head(test, int(cfg["limit_test"]))
    train, val = data_lib.split_train_val(train_full, float(cfg.get("val_fraction", 0.2)), seed)
    return tuple(_fit_size(d, input_size) for d in (train, val, test))


def _stratified_head(dataset: data_lib.Dataset, n: int) -> data_lib.Dataset:
    """About n images, the same number from each class (smoke runs)."""
    per_class = max(1, n // dataset.num_classes)
    index = np.sort(np.concatenate([np.flatnonzero(dataset.labels == c)[:per_class]
                                    for c in range(dataset.num_classes)]))
    return dataset._replace(images=dataset.images[index], labels=dataset.labels[index])


def _fit_size(dataset: data_lib.Dataset, size: int) -> data_lib.Dataset:
    """Resize images to the network's input size once, up front (bilinear)."""
    n, h, w, c = dataset.images.shape
    if h == size and w == size:
        return dataset
    resized = jax.image.resize(jnp.asarray(dataset.images, jnp.float32), (n, size, size, c), "bilinear")
    return dataset._replace(images=np.asarray(jnp.clip(jnp.round(resized), 0, 255)).astype(np.uint8))


def _check_data(train: data_lib.Dataset, space: FBNetSpace) -> None:
    c = train.images.shape[-1]
    if c != space.macro.in_channels:
        raise ConfigError(f"images have {c} channel(s) but the space config expects {space.macro.in_channels}")
    if train.num_classes > space.macro.num_classes:
        raise ConfigError(f"data has {train.num_classes} classes but the network has {space.macro.num_classes} outputs")


def make_optimizer(cfg: dict, total_steps: int) -> optax.GradientTransformation:
    """SGD (momentum, Nesterov) or Adam, optional cosine decay; weight decay on kernels only.

    Decay applies to parameters with 2+ dimensions (conv and linear kernels), not to BN
    scales and biases, as ProxylessNAS and most ImageNet recipes do.
    """
    lr = float(cfg["lr"])
    schedule = optax.cosine_decay_schedule(lr, max(1, total_steps)) if cfg.get("cosine") else lr
    name = cfg.get("name", "adam")
    if name == "sgd":
        opt = optax.sgd(schedule, momentum=float(cfg.get("momentum", 0.9)), nesterov=bool(cfg.get("nesterov", True)))
    elif name == "adam":
        opt = optax.adam(schedule, b1=float(cfg.get("b1", 0.9)), b2=float(cfg.get("b2", 0.999)))
    else:
        raise ConfigError(f"unknown optimizer {name!r}; use 'sgd' or 'adam'")
    # One flat vector instead of a tree: a supernet holds every candidate's weights, hundreds
    # of small arrays, and XLA on CPU runs an update loop per array (Adam over the demo
    # supernet's 302 arrays: 10 ms per step as a tree, 2 ms flat; experiments/bench_step.py).
    opt = optax.flatten(opt)
    wd = float(cfg.get("weight_decay", 0.0))
    if wd == 0:
        return opt
    mask = lambda params: jax.tree.map(lambda p: p.ndim >= 2, params)  # noqa: E731
    return optax.chain(optax.add_decayed_weights(wd, mask=mask), opt)


def load_hardware(cfg: dict, space: FBNetSpace) -> HardwareLoss:
    terms = cfg.get("terms", [])
    tables = [LatencyTable.load(t["lut"], space) for t in terms]
    for t, term in zip(tables, terms):
        if term.get("metric") and term["metric"] != t.metric:
            raise ConfigError(f"{term['lut']}: holds {t.metric}, the config asks for {term['metric']}")
    return HardwareLoss.build(tables, [t.get("weight", 1.0) for t in terms], [t.get("target", 1.0) for t in terms],
                              cfg.get("form", "absolute"))


# ----------------------------------------------------------------------------- steps
def _forward(graphdef, params, batch_stats, x, inputs, train):
    model = nnx.merge(graphdef, params, batch_stats)
    logits = model(x, **inputs, train=train)
    return logits, nnx.to_pure_dict(nnx.state(model, nnx.BatchStat))


def make_steps(run: Run) -> dict[str, Callable]:
    """The jitted step functions of a run: the weight step, the architecture step, evaluation.

    Whether a weight step is a warm-up step (uniform paths) is a traced flag, and the
    hardware weights and targets are traced arrays, so runs that differ only in those
    (e.g. the same search under several latency targets) share one compiled program.
    """
    root = jax.random.key(int(run.config["seed"]))
    aug = run.config["data"].get("augment") or {}
    gd, method, hardware = run.graphdef, run.method, run.hardware
    uniform_inputs = get_method("uniform").weight_inputs
    supernet = run.model_kind == "supernet"
    # Weighted methods (DARTS, FBNet) warm up on single paths: different inputs, other program.
    same_kind = supernet and method.name in ("uniform", "proxyless", "proxyless_rl")

    def prepare(batch, key):
        x = batch["image"]
        if aug:
            x = data_lib.augment(key, x, padding=int(aug.get("padding", 2)), flip=bool(aug.get("flip", True)))
        return x, batch["label"]

    def weight_step(state: TrainState, batch, step, warm, inputs_fn):
        k_path, k_aug = jax.random.split(jax.random.fold_in(root, step))
        epoch = step / run.steps_per_epoch
        x, labels = prepare(batch, k_aug)
        inputs = inputs_fn(state.arch, k_path, epoch)
        if same_kind:  # one program for warm-up and search steps: pick the path by the flag
            uniform = uniform_inputs(state.arch, k_path, epoch)["arch"]
            inputs = {"arch": jnp.where(warm, uniform, inputs["arch"])}

        def loss_fn(params, batch_stats):  # stats are an argument so NNX may update them here
            logits, new_stats = _forward(gd, params, batch_stats, x, inputs, True)
            return cross_entropy(logits, labels), (logits, new_stats)

        (ce, (logits, new_stats)), (grads, _) = jax.value_and_grad(loss_fn, argnums=(0, 1), has_aux=True)(
            state.params, state.batch_stats)
        updates, opt = run.tx_weights.update(grads, state.opt_weights, state.params)
        params = optax.apply_updates(state.params, updates)
        metrics = {"loss": ce, "accuracy": accuracy(logits, labels)}
        return state._replace(params=params, batch_stats=new_stats, opt_weights=opt, step=step + 1), metrics

    def arch_step(state: TrainState, batch, step, hw_weights, hw_targets):
        key = jax.random.fold_in(jax.random.fold_in(root, step), 1)
        epoch = step / run.steps_per_epoch
        x, labels = batch["image"], batch["label"]
        hw = hardware._replace(weights=hw_weights, targets=hw_targets)

        def loss_fn(alpha, batch_stats):
            def forward(**inputs):  # BN statistics of the held-out batch are not kept
                return _forward(gd, state.params, batch_stats, x, inputs, True)[0]

            return method.arch_loss(alpha, state.arch, key, epoch, forward, labels, hw)

        (loss, aux), (grad, _) = jax.value_and_grad(loss_fn, argnums=(0, 1), has_aux=True)(
            state.arch.alpha, state.batch_stats)
        updates, opt = run.tx_arch.update(grad, state.opt_arch, state.arch.alpha)
        arch = state.arch._replace(alpha=optax.apply_updates(state.arch.alpha, updates))
        if method.post_update is not None:
            arch = method.post_update(state.arch, arch, aux)
        metrics = {"arch_loss": loss, **{k: v for k, v in aux.items() if k in ("ce", "costs", "reward")}}
        return state._replace(arch=arch, opt_arch=opt), metrics

    def eval_logits(params, batch_stats, x, arch):
        inputs = {"arch": arch} if supernet else {}
        return _forward(gd, params, batch_stats, x, inputs, False)[0]

    donate = {"donate_argnums": 0}
    steps = {
        "weights": jax.jit(lambda s, b, t, w: weight_step(s, b, t, w, method.weight_inputs), **donate),
        "arch": jax.jit(arch_step, **donate),
        "eval": jax.jit(eval_logits),
    }
    steps["warmup"] = steps["weights"] if same_kind or not supernet else jax.jit(
        lambda s, b, t, w: weight_step(s, b, t, w, uniform_inputs), **donate)
    return steps


def compile_ahead(runs: Sequence[tuple[Run, TrainState]], stop_after: int | None = None) -> None:
    """Compile the step functions the loops of `runs` will call, all at once, a thread per core.

    Tracing and lowering hold the GIL, XLA's compiler does not, and on CPU compiling is most
    of a short run: for the demo space the weight and architecture steps take about 1.5 and
    2 minutes each on 2 cores, one after the other when the loop meets them. Compiled here
    side by side, the wait is the longer of the two. Shapes come from the runs' configs
    (batch size, image size) and states; the executables are kept with the run's program, so
    runs sharing it (`Run.program`) share them too.
    """
    jobs: dict[tuple[int, str], tuple[_Program, str, Any]] = {}
    for run, state in runs:
        program = run.program
        for name, args in _loop_signatures(run, state, stop_after):
            name = program.canonical(name)
            if name not in program.compiled and (id(program), name) not in jobs:
                jobs[id(program), name] = (program, name, run.steps[name].lower(*args))
    if not jobs:
        return
    with concurrent.futures.ThreadPoolExecutor(min(len(jobs), os.cpu_count() or 1)) as pool:
        done = pool.map(lambda job: job[2].compile(), jobs.values())
        for (program, name, _), executable in zip(jobs.values(), done):
            program.compiled[name] = executable


def _loop_signatures(run: Run, state: TrainState, stop_after: int | None = None) -> list[tuple[str, tuple]]:
    """(step name, abstract arguments) of every step the loop runs from `state.step` on."""
    start = int(state.step)
    end = run.total_steps if stop_after is None else min(run.total_steps, start + int(stop_after))
    if start >= end:
        return []
    shape = lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype)  # noqa: E731  (arrays: jax or numpy)
    abstract_state = jax.tree.map(shape, state)
    batch = jax.tree.map(shape, _batch_at(run.train, int(run.config["data"]["batch_size"]), 0, 0, 0))
    step, flag = jax.ShapeDtypeStruct((), jnp.int32), jax.ShapeDtypeStruct((), jnp.bool_)
    signatures = []
    searching = run.arch_steps and end > run.warmup_steps
    if start < run.warmup_steps or not run.arch_steps:
        signatures.append(("warmup", (abstract_state, batch, step, flag)))
    if searching:
        signatures.append(("weights", (abstract_state, batch, step, flag)))
        signatures.append(("arch", (abstract_state, batch, step, *map(shape, hardware_arrays(run)))))
    return signatures


def hardware_arrays(run: Run) -> tuple[jax.Array, jax.Array]:
    return (jnp.asarray(run.hardware.weights, jnp.float32), jnp.asarray(run.hardware.targets, jnp.float32))


# ----------------------------------------------------------------------------- the loop
class TrainResult(NamedTuple):
    state: TrainState
    run: Run
    arch: np.ndarray | None  # the derived architecture (supernets) or the subnet's own
    test_accuracy: float
    workdir: Path


def train(config: dict, workdir: str | Path, *, datasets: tuple | None = None, stop_after: int | None = None,
          progress: bool = True) -> TrainResult:
    """Train (or resume) the run of `config` in `workdir`; see the module docstring.

    `stop_after` ends this call after that many steps (an interruption, for tests and for
    splitting long runs); calling again resumes from the latest checkpoint.
    """
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    _check_same_config(workdir, config)
    run, state = build(config, datasets)
    ckpt = Checkpointer(workdir, keep=int(config["checkpoint"].get("keep", 3)))
    try:
        if ckpt.latest_step() is not None:
            state = ckpt.restore(state)
        else:
            ckpt.save(0, state)  # a loadable checkpoint exists from the first moment
        compile_ahead([(run, state)], stop_after)
        state = _loop(run, state, ckpt, workdir, stop_after, progress)
    finally:
        ckpt.close()
    arch = derive_arch(run, state) if run.model_kind == "supernet" else np.asarray(run.subnet_arch)
    test_acc = evaluate(run, state, run.test, arch)
    if int(state.step) >= run.total_steps:
        _write_json(workdir / "result.json", _summary(run, state, arch, test_acc))
    return TrainResult(state, run, arch, test_acc, workdir)


def _loop(run: Run, state: TrainState, ckpt: Checkpointer, workdir: Path, stop_after, progress) -> TrainState:
    cfg, seed = run.config, int(run.config["seed"])
    batch_size = int(cfg["data"]["batch_size"])
    every_ckpt = int(cfg["checkpoint"]["every_steps"])
    every_log = int(cfg["log"]["every_steps"])
    arch_every = int(cfg["schedule"].get("arch_every", 1))
    val_per_epoch = max(1, data_lib.num_batches(len(run.val.labels), batch_size))
    start = int(state.step)
    end = run.total_steps if stop_after is None else min(run.total_steps, start + int(stop_after))
    last_saved = ckpt.latest_step()
    hw = hardware_arrays(run)
    bar = _progress(progress, start, run.total_steps)
    with open(workdir / "metrics.jsonl", "a") as log:
        for step in range(start, end):
            epoch, index = divmod(step, run.steps_per_epoch)
            batch = _batch_at(run.train, batch_size, seed, epoch, index)
            warm = step < run.warmup_steps or not run.arch_steps
            state, metrics = run.step_fn("warmup" if warm else "weights")(state, batch, jnp.int32(step), jnp.bool_(warm))
            if not warm and (step - run.warmup_steps) % arch_every == 0:
                k = (step - run.warmup_steps) // arch_every
                val_epoch, val_index = divmod(k, val_per_epoch)
                val_batch = _batch_at(run.val, batch_size, seed + 1, val_epoch, val_index)
                state, arch_metrics = run.step_fn("arch")(state, val_batch, jnp.int32(step), *hw)
                metrics = {**metrics, **arch_metrics}
            _check_finite(metrics, step, epoch, ckpt, last_saved)
            done = step + 1
            if done % every_log == 0 or done == run.total_steps:
                record = _log_record(run, state, metrics, done)
                log.write(json.dumps(record) + "\n")
                log.flush()
                bar.set_postfix(loss=f"{record['loss']:.3f}", acc=f"{record['accuracy']:.2f}")
            if done % every_ckpt == 0 or done == end:  # `end`: a stopped call resumes where it stopped
                ckpt.save(done, state)
                last_saved = done
            bar.update(1)
    bar.close()
    return state


def _batch_at(dataset, batch_size, seed, epoch, index):
    return next(data_lib.batches(dataset, batch_size, seed, epoch, start=index))


def _check_finite(metrics, step, epoch, ckpt, last_saved):
    bad = {k: np.asarray(v) for k, v in metrics.items() if not np.all(np.isfinite(np.asarray(v)))}
    if bad:
        name, value = next(iter(bad.items()))
        value = value.reshape(-1)[~np.isfinite(value.reshape(-1))][0]
        raise TrainingDiverged(
            f"{name} became {value} at step {step} (epoch {epoch}); training stopped. The last good "
            f"checkpoint is step {last_saved} in {ckpt.directory}: lower the learning rate or check the data, "
            f"then resume"
        )


def _log_record(run: Run, state: TrainState, metrics: dict, step: int) -> dict:
    record = {"step": step, "epoch": step / run.steps_per_epoch, "time": time.time()}
    for k, v in metrics.items():
        v = np.asarray(v)
        record[k] = float(v) if v.ndim == 0 else v.tolist()
    if run.model_kind == "supernet":
        alpha = state.arch.alpha
        record["entropy"] = float(entropy(alpha))
        probs = jax.nn.softmax(alpha, axis=-1)
        record["expected_cost"] = np.asarray(run.hardware.expected(probs)).tolist()
        record["derived_cost"] = np.asarray(run.hardware.cost(derive(alpha))).tolist()
        if run.method.temperature is not None:
            record["temperature"] = float(run.method.temperature(jnp.float32(record["epoch"])))
    return record


def _progress(enabled: bool, start: int, total: int):
    from tqdm import tqdm

    return tqdm(total=total, initial=start, disable=not enabled, unit="step", dynamic_ncols=True, leave=False)


# ----------------------------------------------------------------------------- results
def derive_arch(run: Run, state: TrainState) -> np.ndarray:
    samples = int(run.config.get("eval", {}).get("derive_samples", 0))
    key = jax.random.fold_in(jax.random.key(int(run.config["seed"])), DERIVE_STREAM)
    return np.asarray(derive(state.arch.alpha, samples=samples, key=key))


def evaluate(run: Run, state: TrainState, dataset: data_lib.Dataset, arch, batch_size: int = 500) -> float:
    """Top-1 accuracy of `arch` (eval mode: BN running statistics) on `dataset`."""
    eval_fn = run.steps["eval"]
    correct, seen = 0, 0
    arch = jnp.asarray(arch, jnp.int32)
    for batch in data_lib.batches(dataset, min(batch_size, len(dataset.labels)), 0, 0, drop_remainder=False):
        logits = eval_fn(state.params, state.batch_stats, batch["image"], arch)
        correct += int(jnp.sum(jnp.argmax(logits, -1) == batch["label"]))
        seen += len(batch["label"])
    return correct / max(1, seen)


def _summary(run: Run, state: TrainState, arch, test_acc: float) -> dict:
    space = run.space
    out = {"space": space.name, "preset": run.config["space"].get("preset"), "kind": run.model_kind,
           "method": run.method.name, "steps": int(state.step), "test_accuracy": test_acc,
           "arch": space.to_public(arch), "arch_str": space.describe(arch)}
    if run.hardware.tables:
        out["lut_cost"] = [float(c) for c in np.asarray(run.hardware.cost(jnp.asarray(arch)))]
        out["lut_units"] = [t.unit for t in run.hardware.tables]
    return out


def _write_json(path: Path, payload: dict) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(payload, indent=1))
    tmp.replace(path)


def _check_same_config(workdir: Path, config: dict) -> None:
    """A workdir belongs to one config: resuming with a different one is refused."""
    saved = workdir / "config.json"
    text = dumps(config)
    if saved.exists():
        old = json.loads(saved.read_text())
        new = json.loads(text)
        if old != new:
            diff = sorted(_diff_keys(old, new))
            raise ConfigError(f"{workdir} holds a run with another config (differs in {', '.join(diff)}); "
                              f"use a new --workdir, or the same settings to resume")
    else:
        saved.write_text(text)


def _diff_keys(a, b, prefix=""):
    if isinstance(a, dict) and isinstance(b, dict):
        for k in set(a) | set(b):
            yield from _diff_keys(a.get(k), b.get(k), f"{prefix}{k}.")
    elif a != b:
        yield prefix.rstrip(".")


def load_state(workdir: str | Path) -> tuple[Run, TrainState]:
    """The run and the latest checkpointed state of a training workdir."""
    workdir = Path(workdir)
    saved = workdir / "config.json"
    if not saved.exists():
        raise FileNotFoundError(f"{workdir} is not a training workdir (no config.json); run `hwnas train` first")
    config = json.loads(saved.read_text())
    run, state = build(config)
    ckpt = Checkpointer(workdir)
    try:
        state = ckpt.restore(state)
    finally:
        ckpt.close()
    return run, state


def fork(source: str | Path, workdir: str | Path, config: dict, *, datasets: tuple | None = None) -> int:
    """Start the run of `config` in `workdir` from `source`'s latest checkpoint, if it is shared.

    Runs that differ only in hardware weights and targets are the same run until the end of
    warm-up (architecture steps are the only place the hardware term enters), so a search
    under several latency targets trains the warm-up once and forks it. The fork is refused
    unless the configs differ in nothing else and the checkpoint is within warm-up; resuming
    the fork then ends exactly where an independent run of `config` would. Returns the step.
    """
    source, workdir = Path(source), Path(workdir)
    saved = source / "config.json"
    if not saved.exists():
        raise FileNotFoundError(f"{source} is not a training workdir (no config.json)")
    if (workdir / "config.json").exists():
        raise ConfigError(f"{workdir} already holds a run; fork into a new workdir")
    base = _without_hardware_values(json.loads(saved.read_text()))
    if base != _without_hardware_values(json.loads(dumps(config))):
        diff = sorted(_diff_keys(base, _without_hardware_values(json.loads(dumps(config)))))
        raise ConfigError(f"cannot fork {source}: its config differs in {', '.join(diff)}, not only in "
                          f"hardware weights and targets")
    ckpt = Checkpointer(source)
    try:
        step = ckpt.latest_step()
    finally:
        ckpt.close()
    run, _ = build(config, datasets)
    if step is None or step > run.warmup_steps:
        raise ConfigError(f"cannot fork {source}: its latest checkpoint (step {step}) is not within the "
                          f"{run.warmup_steps} warm-up steps that runs with other targets share")
    workdir.mkdir(parents=True, exist_ok=True)
    shutil.copytree(source / "checkpoints" / str(step), workdir / "checkpoints" / str(step))
    metrics = source / "metrics.jsonl"
    if metrics.exists():
        lines = [line for line in metrics.read_text().splitlines() if json.loads(line)["step"] <= step]
        (workdir / "metrics.jsonl").write_text("".join(line + "\n" for line in lines))
    (workdir / "config.json").write_text(dumps(config))
    return step


def _without_hardware_values(config: dict) -> dict:
    for term in config.get("hardware", {}).get("terms", []):
        term.pop("weight", None)
        term.pop("target", None)
    return config
