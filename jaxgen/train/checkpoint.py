"""Orbax checkpoints of the train state: async saves every N steps, automatic resume."""

import os
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp


class Checkpointer:
  """Saves `TrainState`s under `workdir/checkpoints/<step>` and restores the latest one."""

  def __init__(self, workdir: str | os.PathLike, *, every: int, keep: int = 2):
    if every <= 0:
      raise ValueError(f"checkpoint_every: expected a positive int, got {every}")
    self.every = every
    self.manager = ocp.CheckpointManager(
        os.path.abspath(os.path.join(os.fspath(workdir), "checkpoints")),
        options=ocp.CheckpointManagerOptions(
            max_to_keep=keep, save_interval_steps=every, enable_async_checkpointing=True,
            create=True))

  def latest_step(self) -> int | None:
    return self.manager.latest_step()

  def restore(self, target: Any, step: int | None = None) -> Any:
    """The state at `step` (default: latest) laid out like `target` (arrays or ShapeDtypeStructs
    with shardings)."""
    step = self.latest_step() if step is None else step
    abstract = jax.tree.map(
        lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding), target)
    return self.manager.restore(step, args=ocp.args.StandardRestore(abstract))

  def save(self, step: int, state: Any, force: bool = False) -> bool:
    """Starts an async save when `step` is on the interval (or `force`); returns whether it did."""
    return self.manager.save(step, args=ocp.args.StandardSave(state), force=force)

  def wait(self) -> None:
    """Blocks until pending async saves are on disk."""
    self.manager.wait_until_finished()

  def close(self) -> None:
    self.manager.wait_until_finished()
    self.manager.close()


def restore_state(workdir: str, argument: str = "workdir") -> dict:
  """The latest checkpoint of the `jaxgen train` run in workdir, as a dict of numpy trees
  ({step, params, opt_state, ema_params}); `argument` names workdir in errors."""
  # Checkpointer creates its directory: a mistyped workdir must not gain an empty one.
  checkpointer = None
  if os.path.isdir(os.path.join(os.fspath(workdir), "checkpoints")):
    checkpointer = Checkpointer(workdir, every=1)
  step = checkpointer.latest_step() if checkpointer else None
  if step is None:
    if checkpointer:
      checkpointer.close()
    raise ValueError(f"{argument}={workdir!r} has no checkpoint; expected the workdir of a "
                     "`jaxgen train` run")
  state = checkpointer.manager.restore(step, args=ocp.args.StandardRestore())
  checkpointer.close()
  return jax.tree.map(np.asarray, state)


def restore_params(workdir: str, which: str = "ema_params") -> dict:
  """Numpy params (EMA by default) of the latest checkpoint of the `jaxgen train` run in workdir."""
  return restore_state(workdir)[which]
