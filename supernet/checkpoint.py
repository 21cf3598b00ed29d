"""Checkpoints of a whole train state with orbax, so an interrupted run resumes exactly.

The train state is one pytree (weights, BN statistics, both optimizer states, architecture
parameters, step). Everything else a run depends on (RNG keys, data order, schedules) is a
function of the config, the seed and the step, so the step is all the position a resume needs.
Orbax writes each step to a temporary folder and renames it when complete, so a crash while
saving leaves the previous checkpoint intact.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import jax
import orbax.checkpoint as ocp


class _QuietWaits(logging.Filter):
    """Orbax warns whenever a save waits for the previous one; ours wait on purpose (`save`)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Waiting for previous save")


logging.getLogger("absl").addFilter(_QuietWaits())


class Checkpointer:
    """Save/restore train states under `workdir/checkpoints`, keeping the newest `keep`."""

    def __init__(self, workdir: str | Path, keep: int = 3):
        self.directory = Path(workdir).resolve() / "checkpoints"
        self._manager = ocp.CheckpointManager(
            self.directory, options=ocp.CheckpointManagerOptions(max_to_keep=keep, create=True)
        )

    def latest_step(self) -> int | None:
        return self._manager.latest_step()

    def save(self, step: int, state: Any) -> None:
        self._manager.save(int(step), args=ocp.args.StandardSave(state))
        self._manager.wait_until_finished()

    def restore(self, like: Any, step: int | None = None) -> Any:
        """Restore into the structure of `like` (a freshly initialized state of the same config)."""
        step = self.latest_step() if step is None else step
        if step is None:
            raise FileNotFoundError(f"no checkpoint in {self.directory}")
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, like)
        try:
            return self._manager.restore(step, args=ocp.args.StandardRestore(abstract))
        except (ValueError, KeyError) as e:
            raise ValueError(
                f"checkpoint step {step} in {self.directory} does not fit this config's train state "
                f"(was it written by another experiment?): {e}"
            ) from None

    def close(self) -> None:
        self._manager.close()
