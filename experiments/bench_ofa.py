"""OFA supernet: step time vs the standalone subnet, compute following the subnet, compile count.

Runbook:
    python experiments/bench_ofa.py --preset micro        # minutes on CPU (committed results)
    python experiments/bench_ofa.py                       # fashion_mnist preset: about 11 minutes on 2 CPU cores
    python experiments/bench_ofa.py --json                # the same as one JSON object
    python experiments/bench_ofa.py --preset micro --steps 3 --compile-steps 10  # a quick check

Rows (each a training step: forward, backward, optimizer update, on the same batch):

    supernet <name>   the progressive-shrinking step (`supernet.ofa.trainer.make_step`, one
                      subnet per step, no distillation) with the sampler pinned to the
                      architecture (a one-hot mask), so it trains exactly that subnet
    subnet <name>     the standalone static subnet (`supernet.ofa.subnet.OFASubnet`), same
                      optimizer, same batch

for the largest, the smallest and one random architecture of the space, all at the largest
resolution. `time_x` is each row's time over its own standalone subnet's; `vs_largest` is
each row's time over the largest architecture's row of the same kind: compute follows the
subnet when the smallest is several times cheaper than the largest. Compiles: XLA compilations
of the supernet step over `--compile-steps` steps, each with a random subnet and a random
resolution; one per resolution is the goal. Median of `--steps` rounds after warm-up, every row
called once per round (interleaved), so drifting load on a shared machine reaches all rows alike.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402
from flax import nnx  # noqa: E402

from supernet import data as data_lib  # noqa: E402
from supernet.compilation import count_compilations  # noqa: E402
from supernet.layers import HostInit  # noqa: E402
from supernet.methods import cross_entropy  # noqa: E402
from supernet.ofa.phases import extreme_arch, resolution_at  # noqa: E402
from supernet.ofa.subnet import OFASubnet  # noqa: E402
from supernet.ofa.trainer import build  # noqa: E402
from supernet.profile import time_steps_interleaved  # noqa: E402


def config_for(preset: str, batch_size: int) -> dict:
    return {
        "kind": "ofa", "seed": 0, "space": {"name": "ofa_mbv3", "preset": preset},
        "data": {"dataset": "fashion_mnist_default", "val_fraction": 0.1, "batch_size": batch_size, "augment": {},
                 "limit_train": 2000, "limit_test": 100},
        "schedule": {"steps_per_epoch": 0},
        "optim": {"name": "sgd", "momentum": 0.9, "nesterov": True, "weight_decay": 0.0},
        "ofa": {"phases": [{"name": "bench", "epochs": 1, "lr": 0.01}], "run": "all"},
        "checkpoint": {"every_steps": 1000}, "log": {"every_steps": 1000}, "eval": {},
    }


def subnet_step(graphdef, tx):
    """The standalone subnet's training step: the supernet step's loss and optimizer."""

    def step(carry, images, labels):
        params, stats, opt = carry

        def loss_fn(params, stats):
            model = nnx.merge(graphdef, params, jax.tree.map(jnp.asarray, stats))  # this trace's own arrays
            logits = model(images, train=True)
            return cross_entropy(logits, labels), nnx.state(model, nnx.BatchStat)

        (loss, stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, stats)
        updates, opt = tx.update(grads, opt, params)
        params = optax.apply_updates(params, jax.tree.map(lambda u: -0.01 * u, updates))
        return (params, stats, opt), loss

    return jax.jit(step, donate_argnums=0)


def bench(preset: str, batch_size: int, steps: int, compile_steps: int, seed: int) -> dict:
    run, state = build(config_for(preset, batch_size))
    space, phase = run.space, run.phases[0]
    full = np.ones((space.num_decisions, int(space.cardinalities.max())), bool)
    full[:, :] = np.arange(full.shape[1])[None, :] < space.cardinalities[:, None]
    r_top = len(space.macro.resolutions) - 1
    random = np.asarray(space.sample(jax.random.key(seed), 1)[0]).copy()
    random[-1] = r_top
    archs = {"largest": extreme_arch(space, full, True), "smallest": extreme_arch(space, full, False),
             "random": random}
    archs["smallest"][-1] = r_top
    train = run.datasets[space.macro.resolutions[r_top]][0]
    batch = next(data_lib.batches(train, batch_size, 0, 0))
    images, labels = jnp.asarray(batch["image"]), jnp.asarray(batch["label"])
    step_fn = run.step_fn(phase)
    rows, programs = [], []
    for name, arch in archs.items():
        pin = np.zeros_like(full)
        pin[np.arange(len(arch)), arch] = True
        args = (images, labels, jnp.int32(r_top), jnp.int32(0), jnp.asarray(pin), jnp.float32(0), jnp.float32(0.01),
                jnp.int32(1))  # one subnet per step
        _, fresh = build(config_for(preset, batch_size))
        programs.append([step_fn, fresh, args])
        model = OFASubnet(space, arch, HostInit(seed))
        graphdef, params, stats = nnx.split(model, nnx.Param, nnx.BatchStat)
        programs.append([subnet_step(graphdef, run.tx), (params, stats, run.tx.init(params)), (images, labels)])
        public = space.to_public(arch)
        rows += [{"arch": name, "kind": "supernet", "public": public}, {"arch": name, "kind": "subnet", "public": public}]
    for row, ms in zip(rows, time_steps_interleaved(programs, steps)):
        row["ms"] = ms
    for supernet_row, subnet_row in zip(rows[::2], rows[1::2]):
        supernet_row["time_x"] = supernet_row["ms"] / subnet_row["ms"]
        subnet_row["time_x"] = 1.0
    for row in rows:
        largest = next(r for r in rows if r["arch"] == "largest" and r["kind"] == row["kind"])
        row["vs_largest"] = row["ms"] / largest["ms"]

    # Compile count: random subnets at random resolutions, a fresh program (nothing cached).
    run.step = None
    step_fn = run.step_fn(phase)
    _, state = build(config_for(preset, batch_size))
    used = set()
    key = jax.random.key(seed + 1)
    with count_compilations() as counter:
        for step in range(compile_steps):
            r = resolution_at(space.macro.resolutions, seed, step)
            used.add(r)
            res = space.macro.resolutions[r]
            x = jax.image.resize(images, (batch_size, res, res, images.shape[-1]), "bilinear")
            state, metrics = step_fn(state, x, labels, jnp.int32(r), jnp.int32(step), jnp.asarray(full),
                                     jnp.float32(0), jnp.float32(0.01), jnp.int32(1))
        jax.block_until_ready(metrics)
    return {"preset": preset, "batch_size": batch_size, "backend": jax.default_backend(), "steps": steps,
            "rows": rows, "compile_steps": compile_steps, "resolutions_used": len(used),
            "step_compiles": step_fn._cache_size(), "backend_compiles_total": counter.count}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="fashion_mnist")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=10, help="timed steps per row")
    parser.add_argument("--compile-steps", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    result = bench(args.preset, args.batch_size, args.steps, args.compile_steps, args.seed)
    if args.json:
        print(json.dumps(result, indent=1))
        return 0
    print(f"preset {result['preset']}, batch {result['batch_size']}, {result['backend']}")
    print(f"{'arch':>9} {'kind':>9} {'ms':>9} {'time_x':>7} {'vs_largest':>10}")
    for row in result["rows"]:
        print(f"{row['arch']:>9} {row['kind']:>9} {row['ms']:9.2f} {row['time_x']:7.2f} {row['vs_largest']:10.2f}")
    print(f"compilations of the supernet step over {result['compile_steps']} random subnets at "
          f"{result['resolutions_used']} resolutions: {result['step_compiles']} "
          f"(backend compilations in all, small helpers included: {result['backend_compiles_total']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
