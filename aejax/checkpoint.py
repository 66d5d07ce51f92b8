"""Checkpoints under `<workdir>/checkpoints` with orbax: periodic, atomic, sealed by a digest, last K kept, resumable.

Integrity. Orbax writes each step into a temporary folder and renames it when complete, so a crash mid-write never
leaves a checkpoint that looks finished (such leftovers are removed on the next start). Orbax does not notice
damage done afterwards, though: a flipped byte restores silently, a truncated file ends in a traceback. So each
step, once orbax has finished it, is sealed by `aejax_digest.json`: the size and SHA-256 of each of its files. The
seal is written by a background thread as soon as orbax's own background save ends, so that the training loop
does not wait for it.

A step is restored only if it passes every check, newest first:
- sealed: every file it lists has its size and hash (a missing, shorter or altered file is damage); a seal that
  cannot be read is damage too, since it is written whole or not at all;
- unsealed (the process died between orbax's rename and the seal, or the run predates seals): it is used only if
  orbax restores it; it cannot be checked for a flipped byte;
- either way: its arrays must have the shapes of this state (else it is another model's: `OtherModel`, no
  fallback) and be finite.
A step that fails is skipped with one line on stderr. A run (the writer) moves it out of orbax's sight into
`<workdir>/damaged_checkpoints/<step>`, kept as evidence, so that its rerun trains from the older step and saves
that step again; a reader (`read_only`, the evaluation suite) leaves the workdir as it is. If no step passes, one
`ConfigError` line says so and what to do.

Rotation. The writer keeps the `keep` newest steps, and deletes older ones only once the newest is sealed, so a
crash at any moment leaves at least one sealed step.
"""
import contextlib
import errno
import gc
import hashlib
import json
import logging
import os
import pathlib
import re
import shutil
import sys
import threading
from collections.abc import Iterator
from typing import Any

import jax
import jax.numpy as jnp
import orbax.checkpoint as ocp
from jax.experimental import multihost_utils

from aejax import writers
from aejax.errors import ConfigError

DIGEST = "aejax_digest.json"
DAMAGED = "damaged_checkpoints"  # Beside `checkpoints`: orbax never takes what is in there for a step.


class Damaged(Exception):
  """A checkpoint step that must not be restored; the message says why, in a few words."""


class DiskFull(ConfigError):
  """A checkpoint could not be written for want of space; the older ones are intact and a rerun resumes."""


def disk_full(directory: pathlib.Path, what: str, need: int | None = None) -> DiskFull:
  """The one line for a full disk at `directory`: what failed, the space needed and free, the fix."""
  free = shutil.disk_usage(directory if directory.exists() else directory.parent).free
  need_text = f"about {need / 2**20:,.1f} MiB needed, " if need is not None else ""
  return DiskFull(f"{what} in {directory}: the disk is full ({need_text}{free / 2**20:,.1f} MiB free); the older "
                  "checkpoints are intact: free some space (or lower keep_checkpoints) and rerun the same command to "
                  "resume")


class OtherModel(ValueError):
  """A sound checkpoint step whose arrays have other shapes than the state's: another model's."""


class Checkpoints:
  """Saves and restores the train state's arrays (step, params, optimiser state), each step sealed by a digest."""

  def __init__(self, workdir: str | pathlib.Path, keep: int, read_only: bool = False):
    """`read_only` is for a reader beside a run that may still be training (the evaluation suite): it neither
    creates, cleans, moves nor saves, and involves this process only, not the others of a multi-process run."""
    self.directory = pathlib.Path(workdir).absolute() / "checkpoints"
    self._keep = keep
    self._read_only = read_only
    self._primary = read_only or jax.process_index() == 0
    self._sealer: threading.Thread | None = None
    self._seal_error: BaseException | None = None
    if read_only:
      this_process = jax.process_index()
      options = ocp.CheckpointManagerOptions(
          create=False, cleanup_tmp_directories=False, save_interval_steps=0,
          multiprocessing_options=ocp.options.MultiprocessingOptions(primary_host=this_process,
                                                                     active_processes={this_process}))
    else:  # No max_to_keep: orbax would delete old steps before the new one is sealed (`_settle` waits for the seal).
      options = ocp.CheckpointManagerOptions(create=True, cleanup_tmp_directories=True)
    self._manager = ocp.CheckpointManager(self.directory, item_handlers=ocp.StandardCheckpointHandler(),
                                          options=options)

  @property
  def latest_step(self) -> int | None:
    return self._manager.latest_step()

  def save(self, step: int, state: Any) -> None:
    """Writes `state` at `step` (asynchronously, then sealed in the background; `wait` or `close` finishes it)."""
    if self._manager.latest_step() != step:
      self._settle()
      arrays = _arrays(state)
      need = sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(arrays))  # Uncompressed: at most this.
      if self._no_room_for(need):
        raise disk_full(self.directory, f"checkpoint {step} was not written", need)
      try:
        self._manager.save(step, args=ocp.args.StandardSave(arrays), force=True)
      except OSError as e:
        if _is_disk_full(e):
          raise disk_full(self.directory, f"checkpoint {step} was not written", need) from e
        raise
      self._sealer = threading.Thread(target=self._seal, args=(step,), name=f"aejax-seal-{step}")
      self._sealer.start()

  def restore_latest(self, state: Any) -> Any:
    """`state` with its arrays replaced by those of the newest step that passes the checks (module docstring), or
    `state` unchanged if there is no step. Steps skipped on the way are one line on stderr; a `ConfigError` if
    none passes; `OtherModel` if a sound step's arrays do not fit `state` (another model's)."""
    steps = sorted(self._manager.all_steps(), reverse=True)
    if not steps:
      return state
    arrays = _arrays(state)
    skipped = {}
    with _orbax_failures_quiet(skipped):
      for step in steps:
        try:
          restored = self._restore(step, arrays)
          break
        except Damaged as e:
          skipped[step] = str(e)
      else:
        reasons = "; ".join(f"{step}: {why}" for step, why in skipped.items())
        raise ConfigError(f"no checkpoint in {self.directory} can be restored ({reasons}): nothing was moved or "
                          "deleted; move that folder elsewhere and rerun to train afresh")
    moved = {} if self._read_only else self._move_aside(skipped)
    if skipped and self._primary:
      print(_skipped_line(self.directory, skipped, step, moved), file=sys.stderr, flush=True)
    return state.replace(**restored)

  def wait(self) -> None:
    """Returns once the last save is written and sealed (and older steps rotated out)."""
    self._settle()
    try:
      self._manager.wait_until_finished()
    except Exception as e:  # pylint: disable=broad-exception-caught  (orbax re-raises its writer's error here)
      if _is_disk_full(e):
        raise disk_full(self.directory, "a checkpoint could not be finished") from e
      raise

  def close(self) -> None:
    try:
      self._settle()
    finally:
      self._manager.close()

  def _restore(self, step: int, arrays: dict[str, Any]) -> dict[str, Any]:
    """The arrays of `step` if it passes the checks; `Damaged` if not; `OtherModel` if it is another model's."""
    check_digest(self.directory / str(step))
    try:
      shapes = _shapes(self._manager.item_metadata(step).tree)
    except Exception as e:  # pylint: disable=broad-exception-caught  (whatever orbax raises on garbage)
      raise Damaged(f"its metadata cannot be read: {_brief(e)}") from e
    if shapes != _shapes(arrays):
      raise OtherModel(f"checkpoint {step} in {self.directory} holds arrays of other shapes than this state's")
    try:
      restored = self._manager.restore(step, args=ocp.args.StandardRestore(arrays))
    except Exception as e:  # pylint: disable=broad-exception-caught
      raise Damaged(f"orbax cannot read it: {_brief(e)}") from e
    if not _all_finite(restored):
      raise Damaged("its arrays hold NaN or infinite values")
    return restored

  def _move_aside(self, skipped: dict[int, str]) -> dict[int, pathlib.Path]:
    """Moves the `skipped` steps to `<workdir>/damaged_checkpoints/` (the primary process, once every process has
    chosen its step), then lets orbax see the folder anew, so that those steps can be saved again; returns where
    each went."""
    if jax.process_count() > 1:
      multihost_utils.sync_global_devices("aejax checkpoints chosen")
    moved = {}
    if self._primary:
      for step in skipped:
        moved[step] = (self.directory / str(step)).rename(_free_name(self.directory.parent / DAMAGED, str(step)))
    if jax.process_count() > 1:
      multihost_utils.sync_global_devices("aejax damaged checkpoints moved")
    self._manager.reload()
    return moved

  def _seal(self, step: int) -> None:
    """The sealing thread: waits for orbax's save of `step` to end, then writes its digest."""
    try:
      self._manager.wait_until_finished()
      if self._primary:
        write_digest(self.directory / str(step))
    except BaseException as e:  # pylint: disable=broad-exception-caught  (raised in the caller's thread by `_settle`)
      self._seal_error = e

  def _no_room_for(self, need: int) -> bool:
    """Whether the checkpoints' disk has less than `need` bytes free, as process 0 sees it: every process of a
    multi-process run gets its answer, so that all of them stop, or none enters orbax's save."""
    short = shutil.disk_usage(self.directory).free < need
    if jax.process_count() > 1 and not self._read_only:
      short = bool(multihost_utils.broadcast_one_to_all(jnp.asarray(short)))
    return short

  def _settle(self) -> None:
    """Joins the sealing thread (raising its error here), then deletes the steps beyond the `keep` newest."""
    if self._sealer is None:
      return
    self._sealer.join()
    self._sealer = None
    if self._seal_error is not None:
      error, self._seal_error = self._seal_error, None
      if _is_disk_full(error):
        raise disk_full(self.directory, "a checkpoint could not be finished") from error
      raise error
    for step in sorted(self._manager.all_steps())[:-self._keep]:
      self._manager.delete(step)


def write_digest(folder: pathlib.Path) -> None:
  """Seals a finished checkpoint step: `folder/aejax_digest.json` with each file's size and SHA-256."""
  files = {path: {"size": size, "sha256": sha} for path, size, sha in _files(folder)}
  writers.write_atomically(folder / DIGEST, json.dumps({"files": files}, indent=1))


def check_digest(folder: pathlib.Path) -> bool:
  """True if the step in `folder` is sealed and matches its digest, False if it is not sealed; `Damaged` if its
  files differ from the digest (or it is unreadable, or the folder is empty)."""
  if not folder.is_dir():
    raise Damaged("its folder is gone")
  try:
    text = (folder / DIGEST).read_text()
  except FileNotFoundError:
    if not any(folder.iterdir()):
      raise Damaged("the folder is empty") from None
    return False
  try:
    expected = {path: (entry["size"], entry["sha256"]) for path, entry in json.loads(text)["files"].items()}
  except (ValueError, KeyError, TypeError, AttributeError) as e:
    raise Damaged(f"its digest {DIGEST} is unreadable") from e
  for path, (size, sha) in expected.items():
    file = folder / path
    if not file.is_file():
      raise Damaged(f"file {path} is missing")
    if file.stat().st_size != size:
      raise Damaged(f"file {path} has {file.stat().st_size} bytes, its digest {size}")
    if _sha256(file) != sha:
      raise Damaged(f"file {path} differs from its digest")
  return True


def _files(folder: pathlib.Path) -> list[tuple[str, int, str]]:
  """(relative path, size, SHA-256) of each file in `folder`, its digest and the digest's temporary copy aside."""
  return [(str(p.relative_to(folder)), p.stat().st_size, _sha256(p)) for p in sorted(folder.rglob("*"))
          if p.is_file() and DIGEST not in p.name]


def _sha256(path: pathlib.Path) -> str:
  with path.open("rb") as f:
    return hashlib.file_digest(f, "sha256").hexdigest()


def _free_name(parent: pathlib.Path, name: str) -> pathlib.Path:
  """`parent/name`, or `parent/name-2`, `-3`... if taken (a step damaged again), with `parent` created."""
  parent.mkdir(exist_ok=True)
  path, n = parent / name, 1
  while path.exists():
    n += 1
    path = parent / f"{name}-{n}"
  return path


def _skipped_line(directory: pathlib.Path, skipped: dict[int, str], restored: int,
                  moved: dict[int, pathlib.Path]) -> str:
  """One line: which steps were skipped and why, where they went, and the step restored instead."""
  steps = " and ".join(f"{step} ({why})" for step, why in skipped.items())
  where = f"moved to {' and '.join(map(str, moved.values()))}" if moved else "left in place"
  return (f"aejax: skipped damaged checkpoint{'s' * (len(skipped) > 1)} {steps} in {directory}, {where}; "
          f"restored checkpoint {restored}")


@contextlib.contextmanager
def _orbax_failures_quiet(failed: dict[int, str]) -> Iterator[None]:
  """Keeps stderr to the one line while restores may fail: what a failed orbax restore leaves behind (TensorStore
  reads ending after orbax closed its event loop, asyncio tasks whose errors nobody retrieved) would otherwise print
  a traceback each, then or whenever they are freed; they are silenced, and freed before leaving once `failed`
  (the steps that failed, filled within) is not empty. Not otherwise: a full collection of a process holding JAX's
  objects takes about 0.3 s, on every resume and evaluation."""
  asyncio_logger, previous_hook = logging.getLogger("asyncio"), sys.unraisablehook
  level = asyncio_logger.level

  def hook(unraisable: Any) -> None:
    if not _left_by_orbax(unraisable):
      previous_hook(unraisable)

  asyncio_logger.setLevel(logging.CRITICAL)
  sys.unraisablehook = hook
  try:
    yield
  finally:
    if failed:
      gc.collect()
    asyncio_logger.setLevel(level)
    sys.unraisablehook = previous_hook


def _left_by_orbax(unraisable: Any) -> bool:
  error, code = unraisable.exc_value, getattr(unraisable.object, "cr_code", None)
  return ((isinstance(error, RuntimeError) and str(error) == "Event loop is closed")
          or (code is not None and f"{os.sep}orbax{os.sep}" in code.co_filename))


def _brief(error: BaseException) -> str:
  """An orbax error in a few words: its first cause's first line, or for TensorStore's the array and the fault
  (`Error reading "<array>/0.0" in OCDBT database at local file "<path>": <fault>`)."""
  while error.__cause__ is not None:
    error = error.__cause__
  text = re.sub(r" \[tensorstore_spec=.*", "", str(error).strip().split("\n")[0])
  tensorstore = re.match(r'.*Error reading "([^"/]+)[^"]*" in .+": (.+)$', text)
  text = f"array {tensorstore[1]}: {tensorstore[2]}" if tensorstore else f"{type(error).__name__}: {text}"
  return text if len(text) <= 160 else f"{text[:160]}..."


def _is_disk_full(error: BaseException | None) -> bool:
  """Whether `error`, or one it was raised from, is the OS's 'no space left on device' or 'disk quota exceeded'
  (a cluster's usual full disk); orbax wraps them."""
  while error is not None:
    if (isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT)
        or "No space left on device" in str(error) or "Disk quota exceeded" in str(error)):
      return True
    error = error.__cause__ or error.__context__
  return False


@jax.jit
def _all_finite(tree: Any) -> jax.Array:
  """Whether every float array of `tree` is finite: one program, one scalar back from the device."""
  leaves = [x for x in jax.tree.leaves(tree) if jnp.issubdtype(x.dtype, jnp.inexact)]
  return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in leaves])) if leaves else jnp.bool_(True)


def _shapes(tree: Any) -> list[tuple[int, ...]]:
  return sorted(tuple(leaf.shape) for leaf in jax.tree.leaves(tree))


def _arrays(state: Any) -> dict[str, Any]:
  """What a checkpoint holds: step, parameters, optimiser state, and the variant's carry where it has one (a
  variant without keeps the files it always had)."""
  arrays = {"step": state.step, "params": state.params, "opt_state": state.opt_state}
  return {**arrays, "carry": state.carry} if jax.tree.leaves(getattr(state, "carry", {})) else arrays
