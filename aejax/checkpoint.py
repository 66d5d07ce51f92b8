"""Checkpoints under `<workdir>/checkpoints` with orbax: periodic, atomic, last K kept, resumable."""
import pathlib
from typing import Any

import jax
import orbax.checkpoint as ocp


class Checkpoints:
  """Saves and restores the train state's arrays (step, params, optimiser state).

  Orbax writes each step into a temporary directory and renames it when complete, so a crash
  mid-write never leaves a checkpoint that looks finished; such leftovers are removed on the next start.
  """

  def __init__(self, workdir: str | pathlib.Path, keep: int, read_only: bool = False):
    """`read_only` is for a reader beside a run that may still be training (the evaluation suite): it neither
    creates, cleans nor saves, and involves this process only, not the others of a multi-process run."""
    self.directory = pathlib.Path(workdir).absolute() / "checkpoints"
    if read_only:
      this_process = jax.process_index()
      options = ocp.CheckpointManagerOptions(
          create=False, cleanup_tmp_directories=False, save_interval_steps=0,
          multiprocessing_options=ocp.options.MultiprocessingOptions(primary_host=this_process,
                                                                     active_processes={this_process}))
    else:
      options = ocp.CheckpointManagerOptions(max_to_keep=keep, create=True, cleanup_tmp_directories=True)
    self._manager = ocp.CheckpointManager(self.directory, item_handlers=ocp.StandardCheckpointHandler(),
                                          options=options)

  @property
  def latest_step(self) -> int | None:
    return self._manager.latest_step()

  def save(self, step: int, state: Any) -> None:
    """Writes `state` at `step` (asynchronously; `wait` or `close` finishes it)."""
    if self._manager.latest_step() != step:
      self._manager.save(step, args=ocp.args.StandardSave(_arrays(state)), force=True)

  def restore_latest(self, state: Any) -> Any:
    """`state` with its arrays replaced by the latest checkpoint's, or `state` unchanged if there is none; a
    `ValueError` if the checkpoint's arrays do not fit `state` (another model's)."""
    step = self._manager.latest_step()
    if step is None:
      return state
    arrays = _arrays(state)
    if _shapes(self._manager.item_metadata(step).tree) != _shapes(arrays):
      raise ValueError(f"checkpoint {step} in {self.directory} holds arrays of other shapes than this state's")
    restored = self._manager.restore(step, args=ocp.args.StandardRestore(arrays))
    return state.replace(**restored)

  def wait(self) -> None:
    self._manager.wait_until_finished()

  def close(self) -> None:
    self._manager.close()


def _shapes(tree: Any) -> list[tuple[int, ...]]:
  return sorted(tuple(leaf.shape) for leaf in jax.tree.leaves(tree))


def _arrays(state: Any) -> dict[str, Any]:
  return {"step": state.step, "params": state.params, "opt_state": state.opt_state}
