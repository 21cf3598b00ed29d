"""A trained supernet as a search evaluator: any subnet's accuracy with inherited weights.

    evaluator = SupernetEvaluator.from_workdir("runs/uniform", cost_model=LUTCostModel(space, (lut,)))
    evaluator(archs)   # {"accuracy": [n] percent, "latency_ms": [n], ...}

For each architecture (Once-for-All's recipe, Cai et al. 2020, section 3.3; SPOS, Guo et al.
2020): the batch-norm statistics of its path are recalibrated on `calibration_batches`
training batches (train-mode forward passes, running averages updated as in training,
starting from the checkpoint's), because a path's statistics in a weight-sharing supernet
were accumulated while other paths surrounded it. Then top-1 accuracy on the run's held-out
validation split, in evaluation mode. Calibration and evaluation are `lax.scan`s inside one
jitted function of the architecture, so one XLA compilation serves every subnet; the
recalibrated statistics are thrown away after each architecture.

Accuracy is in percent, like the tabular benchmarks' (`searchers.objectives`). Costs come
from any cost model of `searchers.evaluators` (a latency table, analytic counts).
"""

from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from supernet import data as data_lib


class SupernetEvaluator:
    """`archs int32 [n, d] -> metrics` from a supernet's weights (see the module docstring)."""

    covers_space = False  # not a table of the whole space: no exact optimum to compare with

    def __init__(self, run, state, cost_model=None, *, calibration_batches: int = 20, batch_size: int = 250,
                 max_val_images: int | None = None):
        if run.model_kind != "supernet":
            raise ValueError("the supernet evaluator needs a supernet run, not a subnet run")
        if calibration_batches < 1:
            raise ValueError(f"calibration_batches must be >= 1, got {calibration_batches}")
        self.space, self.cost_model = run.space, cost_model
        self.params, self.batch_stats = state.params, state.batch_stats
        train_batch = int(run.config["data"]["batch_size"])
        calib = [b["image"] for _, b in zip(range(calibration_batches),
                                            _cycle(run.train, train_batch, int(run.config["seed"])))]
        self.calibration = jnp.asarray(np.stack(calib))
        val = run.val if max_val_images is None else run.val._replace(
            images=run.val.images[:max_val_images], labels=run.val.labels[:max_val_images])
        size = min(batch_size, len(val.labels))
        batches = list(data_lib.batches(val, size, 0, 0))  # full batches: one shape, one program
        if not batches:
            raise ValueError("the run has no validation images to evaluate on")
        self.val_images = jnp.asarray(np.stack([b["image"] for b in batches]))
        self.val_labels = jnp.asarray(np.stack([b["label"] for b in batches]))
        self._correct = jax.jit(_correct_fn(run.graphdef))

    @classmethod
    def from_workdir(cls, workdir: str | Path, cost_model=None, **kwargs) -> "SupernetEvaluator":
        from supernet.train import load_state

        run, state = load_state(workdir)
        return cls(run, state, cost_model, **kwargs)

    @property
    def metric_names(self) -> tuple[str, ...]:
        return ("accuracy",) + tuple(getattr(self.cost_model, "metric_names", ()))

    @property
    def num_val_images(self) -> int:
        return int(np.prod(self.val_labels.shape))

    def __call__(self, archs) -> dict[str, np.ndarray]:
        archs = self.space.validate(np.atleast_2d(np.asarray(archs)))
        correct = np.array([int(self._correct(self.params, self.batch_stats, jnp.asarray(a), self.calibration,
                                              self.val_images, self.val_labels)) for a in archs])
        metrics = {"accuracy": 100.0 * correct / self.num_val_images}
        if self.cost_model is not None:
            metrics.update(self.cost_model(archs))
        return metrics

    def metric_range(self, name: str):
        fn = getattr(self.cost_model, "metric_range", None)
        return fn(name) if fn is not None else None


def _correct_fn(graphdef):
    def correct(params, batch_stats, arch, calibration, val_images, val_labels):
        def calibrate(stats, x):
            # Fresh variables at this trace level: NNX refuses to mutate ones from the outer trace.
            model = nnx.merge(graphdef, params, jax.tree.map(jnp.asarray, stats))
            model(x, arch=arch, train=True)
            return nnx.to_pure_dict(nnx.state(model, nnx.BatchStat)), None

        stats, _ = jax.lax.scan(calibrate, batch_stats, calibration)

        def count(total, batch):
            x, y = batch
            logits = nnx.merge(graphdef, params, jax.tree.map(jnp.asarray, stats))(x, arch=arch, train=False)
            return total + jnp.sum(jnp.argmax(logits, -1) == y), None

        total, _ = jax.lax.scan(count, jnp.zeros((), jnp.int32), (val_images, val_labels))
        return total

    return correct


def _cycle(dataset, batch_size: int, seed: int):
    epoch = 0
    while True:
        yield from data_lib.batches(dataset, batch_size, seed, epoch)
        epoch += 1
