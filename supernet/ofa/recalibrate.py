"""Batch-norm recalibration of one subnet, and its accuracy with inherited weights.

Once-for-All (Cai et al., ICLR 2020, Sec. 3.3) shares each BN layer across all widths and
kernel sizes, so after training the running statistics describe a mixture of subnets, not
the one being evaluated. Before evaluating a subnet, OFA resets its statistics and sets them
from a few training batches (about 2000 images):

    mean_c = (1/T) sum_t mu_{t,c},      var_c = (1/T) sum_t sigma^2_{t,c}

with mu_t and sigma^2_t the (biased) batch mean and variance of channel c on batch t, taken
in a train-mode forward pass of that subnet. Here each batch's statistics come from a
train-mode pass with BN momentum 0 (the running value becomes the batch value); entries the
subnet does not use (skipped blocks, channels beyond its widths) keep their stored values.

Everything is a pure function of `(graphdef, params, stats, arch, batches)` with the
architecture traced, jitted once per input resolution for every subnet. It works for any
model called as `model(x, arch=arch, train=...)` (the OFA and FBNet supernets alike):

    >>> stats_a = recalibrate_bn(graphdef, params, stats, arch, calibration)   # [T, B, r, r, c]
    >>> acc = evaluate(graphdef, params, stats, arch, calibration, val_images, val_labels)
    >>> acc = accuracy_after_recalibration(graphdef, params, stats, arch, train_split, test_split)
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jaxtyping import Array, Float, Int

from supernet import data as data_lib
from supernet.layers import BatchNorm


def _zero_momentum(model: nnx.Module) -> None:
    """Make every BN's running value the last batch's value (static: changes the trace only)."""
    for _, node in nnx.iter_graph(model):
        if isinstance(node, BatchNorm):
            node.momentum = 0.0


def _recalibrate(graphdef, params, stats, arch, batches):
    def add_batch(total, x):
        # Fresh arrays at this trace level: NNX refuses to update variables of the outer trace.
        model = nnx.merge(graphdef, params, jax.tree.map(jnp.asarray, stats))
        _zero_momentum(model)
        model(x, arch=arch, train=True)
        return jax.tree.map(jnp.add, total, nnx.state(model, nnx.BatchStat)), None

    zeros = jax.tree.map(jnp.zeros_like, stats)
    total, _ = jax.lax.scan(add_batch, zeros, batches)
    return jax.tree.map(lambda t: t / batches.shape[0], total)


@functools.partial(jax.jit, static_argnums=0)
def recalibrate_bn(graphdef: nnx.GraphDef, params: nnx.State, stats: nnx.State, arch: Int[Array, " d"],
                   batches: Float[Array, "t b r r c"]) -> nnx.State:
    """The BN statistics of subnet `arch`, recalibrated on `batches` (see the module docstring).

    `batches` must be at the architecture's resolution. Returns a full statistics state whose
    entries used by `arch` are the averages of its batch statistics; the others are `stats`'s.
    """
    return _recalibrate(graphdef, params, stats, arch, batches)


@functools.partial(jax.jit, static_argnums=0)
def count_correct(graphdef: nnx.GraphDef, params: nnx.State, stats: nnx.State, arch: Int[Array, " d"],
                  images: Float[Array, "v b r r c"], labels: Int[Array, "v b"]) -> Int[Array, ""]:
    """Top-1 correct predictions of subnet `arch` (evaluation mode) over `[v, b]` batches."""
    def add_batch(total, batch):
        x, y = batch
        logits = nnx.merge(graphdef, params, stats)(x, arch=arch, train=False)
        return total + jnp.sum(jnp.argmax(logits, -1) == y), None

    total, _ = jax.lax.scan(add_batch, jnp.zeros((), jnp.int32), (images, labels))
    return total


def evaluate(graphdef: nnx.GraphDef, params: nnx.State, stats: nnx.State, arch: Int[Array, " d"],
             calibration: Float[Array, "t b r r c"], images: Float[Array, "v b r r c"],
             labels: Int[Array, "v b"]) -> Float[Array, ""]:
    """Top-1 accuracy in percent of subnet `arch` after BN recalibration on `calibration`.

    `recalibrate_bn` then `count_correct`: two programs per resolution (and batch shapes)
    serve every architecture, and a trainer that already recalibrates reuses the first. The
    recalibrated statistics are discarded (call `recalibrate_bn` to keep them).
    """
    calibrated = recalibrate_bn(graphdef, params, stats, arch, calibration)
    correct = count_correct(graphdef, params, calibrated, arch, images, labels)
    return 100.0 * correct / (labels.shape[0] * labels.shape[1])


def accuracy_after_recalibration(graphdef: nnx.GraphDef, params: nnx.State, stats: nnx.State, arch,
                                 train: data_lib.Dataset, test: data_lib.Dataset, *,
                                 recalibration_images: int = 2000, batch_size: int = 100, seed: int = 0) -> float:
    """`evaluate` on dataset splits whose images are already at the architecture's resolution.

    Recalibrates on the first `recalibration_images` (rounded down to whole batches, at least
    one batch) of a seeded shuffle of `train` (OFA: 2000 images), then scores every image of
    `test`: the last batch is padded with blank images labelled -1, which never count as
    correct, so the batch shape (and the compiled program) stays the same.
    """
    if recalibration_images < 1 or batch_size < 1:
        raise ValueError(f"recalibration_images and batch_size must be >= 1, got {recalibration_images}, {batch_size}")
    arch = np.asarray(arch, np.int32)
    size = min(batch_size, recalibration_images, len(train.labels))
    count = max(1, recalibration_images // size)
    calibration = np.stack([b["image"] for _, b in zip(range(count), data_lib.batches(train, size, seed, 0))])
    n = len(test.labels)
    if n == 0:
        raise ValueError("the test split is empty")
    size = min(batch_size, n)
    padded = -(-n // size) * size
    images = np.zeros((padded, *test.images.shape[1:]), np.float32)
    images[:n] = data_lib.normalize(test, test.images)
    labels = np.full(padded, -1, np.int32)
    labels[:n] = test.labels
    shape = (padded // size, size)
    correct = count_correct(graphdef, params, recalibrate_bn(graphdef, params, stats, arch, calibration),
                            arch, images.reshape(*shape, *images.shape[1:]), labels.reshape(shape))
    return 100.0 * int(correct) / n
