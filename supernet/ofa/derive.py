"""From a trained OFA workdir to a standalone subnet on disk, and back.

OFA has no single derived architecture: any subnet of the trained supernet is served without
retraining. `derive_subnet` takes one architecture (OFA's public record `{ks, e, d, r}`),
recalibrates its BN statistics on training images, extracts the static network with its
sliced and transformed weights (`supernet.ofa.subnet.extract`), measures its test accuracy,
and writes it as a folder:

    <out>/subnet.json     space, preset, fingerprint, the record, phase, accuracy, analytic costs
    <out>/weights/        orbax checkpoint of the subnet's parameters and BN statistics

`load_subnet(out)` rebuilds the `OFASubnet` from that folder alone (no supernet needed).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp
from flax import nnx

from supernet import data as data_lib
from supernet.config import ConfigError
from supernet.ofa.layers import ShapeInit
from supernet.ofa.recalibrate import recalibrate_bn
from supernet.ofa.subnet import OFASubnet, extract
from supernet.spaces import get_space


def finished_phase_state(workdir: Path):
    """(run, state, phase) of the last finished phase of an OFA workdir."""
    from supernet.ofa.trainer import _phase_result, build, load_phase_state

    saved = workdir / "config.json"
    if not saved.exists():
        raise FileNotFoundError(f"{workdir} is not a training workdir (no config.json)")
    config = json.loads(saved.read_text())
    if config.get("kind") != "ofa":
        raise ConfigError(f"{workdir} holds a {config.get('kind', 'supernet')!r} run, not an OFA run")
    run, like = build(config)
    finished = [p for p in run.phases if _phase_result(workdir, p) is not None]
    if not finished:
        raise ConfigError(f"{workdir}: no phase has finished yet; train first (hwnas train ... --workdir {workdir})")
    phase = finished[-1]
    return run, load_phase_state(run, like, workdir, phase), phase


def derive_subnet(workdir: str | Path, record: dict, out: str | Path | None = None,
                  recalibration_images: int | None = None) -> dict[str, Any]:
    """Extract the subnet `record` from `workdir`'s last finished phase and write it to `out`.

    `recalibration_images` defaults to the run's `eval.recalibration_images` (2000 if unset,
    OFA's choice): the images its phase results were scored with, so a subnet listed in a
    phase's `result.json` derives with the accuracy reported there.
    """
    from costs.analytic import analytic_costs
    from supernet.ofa.trainer import subnet_accuracy

    workdir = Path(workdir)
    run, state, phase = finished_phase_state(workdir)
    if recalibration_images is None:
        recalibration_images = int(run.config.get("eval", {}).get("recalibration_images", 2000))
    if recalibration_images < 1:
        raise ValueError(f"recalibration_images must be >= 1, got {recalibration_images}")
    space = run.space
    arch = np.asarray(space.canonical(space.from_public(record)[None])[0], np.int32)
    resolution = space.macro.resolutions[int(arch[space.resolution_index])]
    train = run.datasets[resolution][0]
    batch = min(100, recalibration_images, len(train.labels))
    count = max(1, recalibration_images // batch)
    # The images `subnet_accuracy` recalibrates on: the written subnet scores what is reported.
    seed = int(run.config["seed"])
    calibration = np.stack([b["image"] for _, b in zip(range(count), data_lib.batches(train, batch, seed, 0))])
    stats = recalibrate_bn(run.graphdef, state.params, state.batch_stats, arch, calibration)
    subnet = extract(nnx.merge(run.graphdef, state.params, stats), arch)
    accuracy = subnet_accuracy(run, state, arch, recalibration_images)
    costs = analytic_costs(space, arch[None])
    out = Path(out) if out else workdir / "subnets" / _name(space.to_public(arch))
    summary = {
        "format": "hwnas-ofa-subnet", "version": 1, "space": space.name,
        "preset": run.config["space"].get("preset"), "space_fingerprint": space.fingerprint(),
        "arch": space.to_public(arch), "phase": phase.name, "test_accuracy": accuracy,
        "analytic": {field: float(getattr(costs, field)[0]) for field in costs._fields},
        "path": str(out),
    }
    out.mkdir(parents=True, exist_ok=True)
    weights = out.resolve() / "weights"
    with ocp.StandardCheckpointer() as ckpt:
        ckpt.save(weights, nnx.state(subnet), force=True)
    (out / "subnet.json").write_text(json.dumps(summary, indent=1))
    return summary


def load_subnet(path: str | Path) -> OFASubnet:
    """The standalone subnet written by `derive_subnet` (eval mode gives its saved function)."""
    path = Path(path)
    meta_file = path / "subnet.json"
    if not meta_file.exists():
        raise FileNotFoundError(f"{path} holds no derived OFA subnet (no subnet.json)")
    meta = json.loads(meta_file.read_text())
    if meta.get("format") != "hwnas-ofa-subnet":
        raise ValueError(f"{meta_file}: not an hwnas OFA subnet file")
    space = get_space(meta["space"], meta["preset"])
    if space.fingerprint() != meta["space_fingerprint"]:
        raise ValueError(f"{meta_file}: written for another {meta['space']} config than preset {meta['preset']!r}")
    subnet = OFASubnet(space, space.from_public(meta["arch"]), ShapeInit())
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, nnx.state(subnet))
    with ocp.StandardCheckpointer() as ckpt:
        nnx.update(subnet, ckpt.restore(path.resolve() / "weights", abstract))
    return subnet


def _name(record: dict) -> str:
    import hashlib

    digest = hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()[:12]
    return f"r{record['r']}-{digest}"
