"""Checkpoint integrity by drills on a real run's checkpoints: each kind of damage to its newest step is survived by
falling back to the step before, with one line, by the rerun (which then ends as an uninterrupted run) and by the
evaluation (which moves nothing); a process killed before its newest step is sealed loses nothing."""
import gc
import logging
import os
import pathlib
import re
import shutil
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
import pytest

from aejax import checkpoint, evaluate, train
from aejax.errors import ConfigError

from conftest import REPO, once_per_session

# A small net, so that copies and hashes are quick; two steps kept, 30 and 60.
FIELDS = dict(num_steps=60, checkpoint_every=30, eval_every=60, latent_dim=8, model__encoder_widths=(64,))


@pytest.fixture(scope="module")
def reference(smoke_config, tmp_path_factory) -> pathlib.Path:
  """The workdir of an uninterrupted run, trained once for the session: checkpoints 30 and 60, both sealed. Tests
  copy it before they damage it."""

  def make(folder):
    train.train_and_evaluate(smoke_config("ae", **FIELDS), folder / "reference")
    return folder / "reference"

  workdir = once_per_session(tmp_path_factory, "checkpoint-reference", make)
  assert sorted(p.name for p in (workdir / "checkpoints").iterdir()) == ["30", "60"]
  return workdir


def _arrays(step_folder: pathlib.Path) -> dict:
  """A checkpoint step's arrays (step, params, optimiser state), read back with orbax alone."""
  return ocp.StandardCheckpointer().restore(step_folder / "default")


def _assert_equal(tree, expected) -> None:
  leaves, expected_leaves = jax.tree.leaves(tree), jax.tree.leaves(expected)
  assert len(leaves) == len(expected_leaves)
  for x, y in zip(leaves, expected_leaves):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def _aejax_lines(stderr: str) -> list[str]:
  """The lines of aejax's own on stderr, among tqdm's progress redraws."""
  return [line for line in re.split(r"[\r\n]", stderr) if line.startswith("aejax:")]


def _listing(folder: pathlib.Path) -> dict[str, tuple[int, int]]:
  return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*")}


def _largest_data_file(step: pathlib.Path) -> pathlib.Path:
  return max((p for p in step.rglob("*") if p.is_file() and p.parent.name == "d"), key=lambda p: p.stat().st_size)


def _truncate(step):
  path = _largest_data_file(step)
  os.truncate(path, path.stat().st_size // 2)


def _zeros(step):
  path = _largest_data_file(step)
  path.write_bytes(bytes(path.stat().st_size))


def _delete(step):
  _largest_data_file(step).unlink()


def _flip_a_byte(step):
  path = _largest_data_file(step)
  data = bytearray(path.read_bytes())
  data[len(data) // 2] ^= 0x10
  path.write_bytes(bytes(data))


def _garbage(name):
  def damage(step):  # As long as the file was: the digest's hash, not its size, must catch it.
    path = step / name
    path.write_bytes(np.random.default_rng(0).integers(0, 256, path.stat().st_size, np.uint8).tobytes())
  return damage


def _empty(step):
  shutil.rmtree(step)
  step.mkdir()


DAMAGES = {"truncated": _truncate, "zeroed": _zeros, "deleted": _delete, "flipped_byte": _flip_a_byte,
           "garbage_METADATA": _garbage("default/_METADATA"),
           "garbage_CHECKPOINT_METADATA": _garbage("_CHECKPOINT_METADATA"),
           "garbage_sharding": _garbage("default/_sharding"),
           "garbage_array_metadatas": _garbage("default/array_metadatas/process_0"),
           "garbage_manifest": _garbage("default/manifest.ocdbt"),
           "garbage_commit_success": _garbage("commit_success.txt"),
           "emptied_step_folder": _empty}


@pytest.mark.parametrize("damage", DAMAGES.values(), ids=DAMAGES.keys())
def test_a_damaged_step_is_skipped_with_one_line_by_the_evaluation_and_the_rerun(damage, reference, smoke_config,
                                                                                  tmp_path, capsys):
  workdir = tmp_path / "run"
  shutil.copytree(reference, workdir)
  damage(workdir / "checkpoints" / "60")
  damaged = _listing(workdir / "checkpoints" / "60")
  checkpoints = re.escape(str(workdir / "checkpoints"))

  run = evaluate.restore(workdir)  # A reader: falls back, and leaves the workdir as it is.
  assert run.step == 30
  _assert_equal(run.state.params, _arrays(reference / "checkpoints" / "30")["params"])
  [line] = _aejax_lines(capsys.readouterr().err)
  assert re.fullmatch(rf"aejax: skipped damaged checkpoint 60 \(.+\) in {checkpoints}, left in place; "
                      r"restored checkpoint 30", line), line
  assert _listing(workdir / "checkpoints" / "60") == damaged and not (workdir / "damaged_checkpoints").exists()

  summary = train.train_and_evaluate(smoke_config("ae", **FIELDS), workdir)
  [line] = _aejax_lines(capsys.readouterr().err)
  moved = workdir / "damaged_checkpoints" / "60"
  assert re.fullmatch(rf"aejax: skipped damaged checkpoint 60 \(.+\) in {checkpoints}, moved to "
                      rf"{re.escape(str(moved))}; restored checkpoint 30", line), line
  assert _listing(moved) == damaged  # The evidence, as it was.
  assert summary["step"] == 60
  _assert_equal(_arrays(workdir / "checkpoints" / "60"), _arrays(reference / "checkpoints" / "60"))
  assert checkpoint.check_digest(workdir / "checkpoints" / "60")
  assert (workdir / "metrics.jsonl").read_text().count("\n") == (reference / "metrics.jsonl").read_text().count("\n")


# What orbax itself notices in a step that is not sealed (a flipped byte or other timestamps it cannot notice).
UNSEALED = ("truncated", "zeroed", "deleted", "garbage_METADATA", "garbage_sharding", "garbage_array_metadatas",
            "garbage_manifest", "emptied_step_folder")


@pytest.mark.parametrize("name", UNSEALED)
def test_a_damaged_step_not_yet_sealed_is_skipped_when_orbax_cannot_restore_it(name, reference, tmp_path, capsys):
  workdir = tmp_path / "run"
  shutil.copytree(reference, workdir)
  (workdir / "checkpoints" / "60" / checkpoint.DIGEST).unlink()
  DAMAGES[name](workdir / "checkpoints" / "60")
  assert evaluate.restore(workdir).step == 30
  [line] = _aejax_lines(capsys.readouterr().err)
  assert re.fullmatch(r"aejax: skipped damaged checkpoint 60 \(((orbax cannot read it|its metadata cannot be read): "
                      r".+|the folder is empty)\) in .+, left in place; restored checkpoint 30", line), line


def test_what_orbaxs_failed_restore_leaves_behind_prints_nothing(reference, tmp_path, monkeypatch, caplog):
  """A failed restore leaves TensorStore reads that end after orbax closed its event loop, and asyncio tasks whose
  errors nobody retrieved: each would print a traceback (Python's unraisable hook, asyncio's log), then or when
  freed, after the one line."""
  workdir = tmp_path / "run"
  shutil.copytree(reference, workdir)
  (workdir / "checkpoints" / "60" / checkpoint.DIGEST).unlink()
  _zeros(workdir / "checkpoints" / "60")
  unraisable = []
  monkeypatch.setattr(sys, "unraisablehook", unraisable.append)
  with caplog.at_level(logging.WARNING, logger="asyncio"):
    for _ in range(3):
      assert evaluate.restore(workdir).step == 30
      time.sleep(0.2)
      gc.collect()
  assert not unraisable and not caplog.records, (unraisable, caplog.records)


def test_a_sound_restore_takes_no_full_collection(reference, monkeypatch):
  """Only a failed restore leaves something to free: a full collection takes about 0.3 s in a process holding
  JAX's objects, which every resume and evaluation would pay."""
  collections = []
  monkeypatch.setattr(gc, "collect", lambda *args: collections.append(args))
  assert evaluate.restore(reference).step == 60
  assert not collections


def test_the_reasons_name_the_damage(reference, tmp_path):
  step = tmp_path / "60"
  for damage, reason in ((_truncate, r"file default/.+/d/\w+ has \d+ bytes, its digest \d+"),
                         (_delete, r"file default/.+/d/\w+ is missing"),
                         (_flip_a_byte, r"file default/.+/d/\w+ differs from its digest"),
                         (_empty, r"the folder is empty")):
    shutil.rmtree(step, ignore_errors=True)
    shutil.copytree(reference / "checkpoints" / "60", step)
    damage(step)
    with pytest.raises(checkpoint.Damaged, match=rf"^{reason}$"):
      checkpoint.check_digest(step)
  shutil.rmtree(step)
  shutil.copytree(reference / "checkpoints" / "60", step)
  assert checkpoint.check_digest(step)
  (step / checkpoint.DIGEST).write_text('{"files": ')
  with pytest.raises(checkpoint.Damaged, match=r"^its digest aejax_digest.json is unreadable$"):
    checkpoint.check_digest(step)
  (step / checkpoint.DIGEST).unlink()
  assert not checkpoint.check_digest(step)  # Unsealed: for orbax to judge.


def test_several_bad_steps_are_one_line_and_non_finite_arrays_are_skipped(reference, tmp_path, capsys):
  workdir = tmp_path / "run"
  shutil.copytree(reference, workdir)
  run = evaluate.restore(workdir)
  ckpts = checkpoint.Checkpoints(workdir, keep=3)  # A sealed step whose parameters diverged.
  ckpts.save(90, run.state.replace(step=jnp.int32(90), params=jax.tree.map(lambda x: x * jnp.nan, run.state.params)))
  ckpts.close()
  assert checkpoint.check_digest(workdir / "checkpoints" / "90")
  _truncate(workdir / "checkpoints" / "60")
  capsys.readouterr()

  assert evaluate.restore(workdir).step == 30
  [line] = _aejax_lines(capsys.readouterr().err)
  assert re.fullmatch(r"aejax: skipped damaged checkpoints 90 \(its arrays hold NaN or infinite values\) and 60 "
                      r"\(file .+ has \d+ bytes, its digest \d+\) in .+, left in place; restored checkpoint 30", line)


def test_no_sound_step_is_one_line_and_moves_nothing(reference, smoke_config, tmp_path, capsys):
  workdir = tmp_path / "run"
  shutil.copytree(reference, workdir)
  _flip_a_byte(workdir / "checkpoints" / "60")
  _garbage("default/_METADATA")(workdir / "checkpoints" / "30")
  before = _listing(workdir / "checkpoints")
  message = (rf"^no checkpoint in {re.escape(str(workdir / 'checkpoints'))} can be restored \(60: file .+ differs "
             r"from its digest; 30: file default/_METADATA differs from its digest\): nothing was moved or deleted; "
             r"move that folder elsewhere and rerun to train afresh$")
  with pytest.raises(ConfigError, match=message):
    evaluate.restore(workdir)
  with pytest.raises(ConfigError, match=message):
    train.train_and_evaluate(smoke_config("ae", **FIELDS), workdir)
  assert _listing(workdir / "checkpoints") == before and not (workdir / "damaged_checkpoints").exists()
  assert not _aejax_lines(capsys.readouterr().err)


def test_another_models_sound_checkpoint_is_still_another_model_for_the_evaluation(reference, smoke_config, tmp_path):
  with pytest.raises(ConfigError, match=r"holds checkpoints of another model than its config describes"):
    evaluate.restore(reference, smoke_config("ae", **{**FIELDS, "latent_dim": 5}))


_KILLED_BEFORE_THE_SEAL = """
import os, pathlib, signal, sys
from aejax import checkpoint, evaluate, train
write_digest = checkpoint.write_digest
def killed_before_sealing_60(folder):
  if folder.name == "60":
    os.kill(os.getpid(), signal.SIGKILL)
  write_digest(folder)
checkpoint.write_digest = killed_before_sealing_60
train.train_and_evaluate(evaluate.load_config(pathlib.Path(sys.argv[1])), sys.argv[2])
"""


def test_a_kill_between_orbax_and_the_seal_keeps_the_sealed_step_and_resumes(reference, smoke_config, tmp_path,
                                                                              capsys):
  config = smoke_config("ae", **FIELDS, keep_checkpoints=1)
  (tmp_path / "config").mkdir()
  (tmp_path / "config" / "config.json").write_text(config.to_json())
  killed = tmp_path / "killed"
  result = subprocess.run([sys.executable, "-c", _KILLED_BEFORE_THE_SEAL, tmp_path / "config", killed], cwd=REPO,
                          capture_output=True, text=True, timeout=300, check=False)
  assert result.returncode == -9, result.stderr[-3000:]
  # keep_checkpoints=1, yet 30 stays: older steps go only once the newest is sealed.
  assert sorted(p.name for p in (killed / "checkpoints").iterdir()) == ["30", "60"]
  assert checkpoint.check_digest(killed / "checkpoints" / "30")
  assert not checkpoint.check_digest(killed / "checkpoints" / "60")

  # Unsealed but sound, 60 is restored: the kill loses nothing.
  intact, damaged = tmp_path / "intact", tmp_path / "damaged"
  shutil.copytree(killed, intact)
  shutil.copytree(killed, damaged)
  assert train.train_and_evaluate(config, intact)["step"] == 60
  assert not _aejax_lines(capsys.readouterr().err)
  _assert_equal(_arrays(intact / "checkpoints" / "60"), _arrays(reference / "checkpoints" / "60"))

  # Unsealed and truncated: orbax cannot read it, and the rerun trains again from 30 to the same end.
  _truncate(damaged / "checkpoints" / "60")
  assert train.train_and_evaluate(config, damaged)["step"] == 60
  [line] = _aejax_lines(capsys.readouterr().err)
  assert re.fullmatch(r"aejax: skipped damaged checkpoint 60 \(orbax cannot read it: .+\) in .+, moved to .+; "
                      r"restored checkpoint 30", line), line
  _assert_equal(_arrays(damaged / "checkpoints" / "60"), _arrays(reference / "checkpoints" / "60"))
  assert sorted(p.name for p in (damaged / "checkpoints").iterdir()) == ["60"]  # 60 sealed, so 30 rotated out.
  assert checkpoint.check_digest(damaged / "checkpoints" / "60")


def test_a_step_damaged_twice_keeps_both_as_evidence(reference, smoke_config, tmp_path, capsys):
  workdir = tmp_path / "run"
  shutil.copytree(reference, workdir)
  for evidence in ("60", "60-2"):
    _zeros(workdir / "checkpoints" / "60")
    train.train_and_evaluate(smoke_config("ae", **FIELDS), workdir)
    assert _aejax_lines(capsys.readouterr().err)[0].endswith(f"moved to {workdir / 'damaged_checkpoints' / evidence}; "
                                                             "restored checkpoint 30")
  assert sorted(p.name for p in (workdir / "damaged_checkpoints").iterdir()) == ["60", "60-2"]
  _assert_equal(_arrays(workdir / "checkpoints" / "60"), _arrays(reference / "checkpoints" / "60"))
