"""Checkpoints under `<workdir>/checkpoints` with orbax: periodic, atomic, last K kept, resumable."""
import pathlib
from typing import Any

import orbax.checkpoint as ocp


class Checkpoints:
  """Saves and restores the train state's arrays (step, params, optimiser state).

  Orbax writes each step into a temporary directory and renames it when complete, so a crash
  mid-write never leaves a checkpoint that looks finished; such leftovers are removed on the next start.
  """

  def __init__(self, workdir: str | pathlib.Path, keep: int):
    self.directory = pathlib.Path(workdir).absolute() / "checkpoints"
    self._manager = ocp.CheckpointManager(
        self.directory,
        options=ocp.CheckpointManagerOptions(max_to_keep=keep, create=True, cleanup_tmp_directories=True))

  @property
  def latest_step(self) -> int | None:
    return self._manager.latest_step()

  def save(self, step: int, state: Any) -> None:
    """Writes `state` at `step` (asynchronously; `wait` or `close` finishes it)."""
    if self._manager.latest_step() != step:
      self._manager.save(step, args=ocp.args.StandardSave(_arrays(state)), force=True)

  def restore_latest(self, state: Any) -> Any:
    """`state` with its arrays replaced by the latest checkpoint's, or `state` unchanged if there is none."""
    step = self._manager.latest_step()
    if step is None:
      return state
    restored = self._manager.restore(step, args=ocp.args.StandardRestore(_arrays(state)))
    return state.replace(**restored)

  def wait(self) -> None:
    self._manager.wait_until_finished()

  def close(self) -> None:
    self._manager.close()


def _arrays(state: Any) -> dict[str, Any]:
  return {"step": state.step, "params": state.params, "opt_state": state.opt_state}
