"""Fault drills: divergence, signals at every moment of a command, a full disk, a run shortened by mistake (damaged
checkpoints: test_checkpoint.py)."""
import contextlib
import dataclasses
import errno
import json
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
import pytest

from aejax import bundle, checkpoint, registry, signals, train, writers
from aejax.errors import ConfigError

REPO = pathlib.Path(__file__).resolve().parents[1]


def _strict_rows(workdir: pathlib.Path) -> list[dict]:
  """metrics.jsonl parsed as strict JSON: a bare NaN or Infinity fails the test."""

  def reject(constant: str):
    raise AssertionError(f"non-JSON constant {constant} in {workdir / 'metrics.jsonl'}")

  return [json.loads(line, parse_constant=reject) for line in (workdir / "metrics.jsonl").read_text().splitlines()]


def _checkpoint_params(workdir: pathlib.Path, step: int):
  return ocp.StandardCheckpointer().restore(workdir / "checkpoints" / str(step) / "default")["params"]


@pytest.fixture()
def nan_from(monkeypatch):
  """`nan_from(first, last=None)`: the `ae` variant's loss is NaN at the steps from `first` to `last` (state.step,
  counted from 0), as a diverging run's would be."""

  def arm(first: int, last: int | None = None) -> None:
    ae = registry.get("ae")

    def loss(model, config, params, batch, key, hparams, step):
      value, metrics = ae.loss(model, config, params, batch, key, hparams, step)
      bad = (step >= first) & (step <= (last if last is not None else np.iinfo(np.int32).max))
      return jnp.where(bad, jnp.nan, value), metrics

    patched = dataclasses.replace(ae, loss=loss)
    monkeypatch.setitem(registry._REGISTRY, "ae", patched)  # pylint: disable=protected-access

  return arm


def test_divergence_stops_the_run_and_keeps_its_last_finite_checkpoints(smoke_config, tmp_path, nan_from):
  nan_from(35)  # Steps 36 on are NaN; checkpoints at 10, 20, 30 (two kept), and none after.
  config = smoke_config("ae", log_every=5, checkpoint_every=10, eval_every=10, keep_checkpoints=2)
  with pytest.raises(train.Diverged, match=rf"^training diverged, stopped: {tmp_path} at step 36 \(train/loss=nan; "
                     r"last finite checkpoint: 30\): lower config\.learning_rate=0\.001, clip gradients"):
    train.train_and_evaluate(config, tmp_path)
  assert sorted(int(p.name) for p in (tmp_path / "checkpoints").iterdir()) == [20, 30]
  for step in (20, 30):
    assert all(np.isfinite(leaf).all() for leaf in jax.tree.leaves(_checkpoint_params(tmp_path, step)))
  rows = _strict_rows(tmp_path)
  train_rows = [r for r in rows if "train/loss" in r]
  assert [r["step"] for r in train_rows] == [5, 10, 15, 20, 25, 30, 35]  # The finite steps, and nothing after.
  assert all(np.isfinite(r["train/loss"]) and r["train/steps"] == 5 for r in train_rows)
  assert not (tmp_path / "summary.json").exists()


def test_a_diverging_command_exits_nonzero_with_one_line(smoke_config, tmp_path):
  config = smoke_config("ae")  # A real divergence: no patched loss.
  proc = subprocess.run(
      [sys.executable, "-m", "aejax.main", f"--config={REPO}/experiments/ae.py:smoke", f"--workdir={tmp_path}",
       "--config.learning_rate=1e6", f"--config.data.data_dir={config.data.data_dir}",
       f"--config.data.manual_dir={config.data.manual_dir}"], capture_output=True, text=True, timeout=300)
  assert proc.returncode == 1
  assert proc.stderr.splitlines()[-1].startswith(f"aejax: error: training diverged, stopped: {tmp_path} at step ")
  assert "Traceback" not in proc.stderr
  _strict_rows(tmp_path)
  for step_dir in (tmp_path / "checkpoints").iterdir():
    assert all(np.isfinite(leaf).all() for leaf in jax.tree.leaves(_checkpoint_params(tmp_path, int(step_dir.name))))


def test_skipping_nonfinite_updates_counts_them_and_trains_on(smoke_config, tmp_path, nan_from):
  nan_from(21, 23)  # Three NaN steps (22 to 24), in the window logged at step 25.
  config = smoke_config("ae", log_every=5, on_nonfinite="skip")
  summary = train.train_and_evaluate(config, tmp_path)
  assert summary["step"] == 60 and np.isfinite(summary["test/loss"])
  rows = {r["step"]: r for r in _strict_rows(tmp_path) if "train/loss" in r}
  assert [rows[s]["train/nonfinite"] for s in (20, 25, 30)] == [0, 3, 0]
  assert rows[25]["train/loss"] is None  # The window's mean is NaN: written as null.
  assert all(np.isfinite(leaf).all() for leaf in jax.tree.leaves(_checkpoint_params(tmp_path, 60)))


def test_a_diverging_bundle_member_stops_alone(smoke_config, tmp_path):
  configs = [smoke_config("ae", num_steps=20, learning_rate=lr, checkpoint_every=10, eval_every=10, log_every=5)
             for lr in (1e-3, 1e6)]
  workdirs = [tmp_path / "steady", tmp_path / "wild"]
  with pytest.raises(train.Diverged, match=rf"^training diverged, stopped: {workdirs[1]} at step \d+ .*each member's "
                     "learning_rate"):
    bundle.train_bundle(configs, workdirs)
  assert json.loads((workdirs[0] / "summary.json").read_text())["step"] == 20  # The steady member finished...
  train.train_and_evaluate(configs[0], tmp_path / "alone")  # ...as it would have alone.
  for got, want in zip(jax.tree.leaves(_checkpoint_params(workdirs[0], 20)),
                       jax.tree.leaves(_checkpoint_params(tmp_path / "alone", 20)), strict=True):
    np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-5)  # The rate scales updates: rounding differs.
  assert [r["step"] for r in _strict_rows(workdirs[0])] == [r["step"] for r in _strict_rows(tmp_path / "alone")]
  assert not (workdirs[1] / "summary.json").exists()
  assert not (workdirs[1] / "checkpoints").exists() or not any((workdirs[1] / "checkpoints").iterdir())


def test_a_signal_after_an_unchecked_divergence_saves_nothing_non_finite(smoke_config, tmp_path, nan_from,
                                                                         monkeypatch):
  """A signal between two checked steps (logs every 10 here), after the loss went NaN at step 23: the loop checks
  those steps before its signal's checkpoint, so the one checkpoint kept stays finite."""
  nan_from(22)
  stops = iter([None] * 24 + [signal.SIGTERM])

  @contextlib.contextmanager
  def stop_at_step_24():
    yield lambda step: next(stops)

  monkeypatch.setattr(signals, "loop_signals", stop_at_step_24)
  config = smoke_config("ae", log_every=10, checkpoint_every=10, eval_every=10, keep_checkpoints=1)
  with pytest.raises(train.Diverged, match=r"at step 23 \(train/loss=nan; last finite checkpoint: 20\)"):
    train.train_and_evaluate(config, tmp_path)
  assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["20"]
  assert all(np.isfinite(leaf).all() for leaf in jax.tree.leaves(_checkpoint_params(tmp_path, 20)))
  assert [r["step"] for r in _strict_rows(tmp_path) if "train/loss" in r] == [10, 20, 22]


def test_a_rerun_cannot_shorten_a_run_and_leaves_its_config(smoke_config, tmp_path):
  train.train_and_evaluate(smoke_config("ae", num_steps=30), tmp_path)
  saved = (tmp_path / "config.json").read_text()
  with pytest.raises(ConfigError, match=rf"^--workdir='{tmp_path}' holds checkpoint 30, past config\.num_steps=20:"
                     r" a run cannot be shortened; rerun with num_steps >= 30, or use a new --workdir$"):
    train.train_and_evaluate(smoke_config("ae", num_steps=20), tmp_path)
  assert (tmp_path / "config.json").read_text() == saved


def _start(args: list[str], **kwargs) -> subprocess.Popen:
  return subprocess.Popen([sys.executable, "-m", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          **kwargs)


def _wait_for_handlers(proc: subprocess.Popen) -> None:
  """Returns once `proc` catches SIGTERM, which `signals.install` (its first line) takes after SIGINT: Python itself
  catches only SIGINT, so from then on both are aejax's."""
  deadline = time.monotonic() + 30
  while time.monotonic() < deadline:
    status = pathlib.Path(f"/proc/{proc.pid}/status").read_text()
    caught = int(next(line.split()[1] for line in status.splitlines() if line.startswith("SigCgt:")), 16)
    if caught >> (signal.SIGTERM - 1) & 1:
      return
    time.sleep(0.005)
  raise AssertionError("the command never installed its signal handlers")


def test_install_takes_sigint_before_sigterm(monkeypatch):
  """The order `_wait_for_handlers` relies on: in the other order, a SIGINT between the two `signal.signal` calls met
  Python's KeyboardInterrupt (a traceback and exit code -2 in a CI run)."""
  taken = []
  monkeypatch.setattr(signal, "signal", lambda signum, handler: taken.append(signum))
  monkeypatch.setattr(sys, "unraisablehook", sys.unraisablehook)  # Restored after the test: `install` wraps both.
  monkeypatch.setattr(sys, "excepthook", sys.excepthook)
  signals.install("aejax")
  assert taken == [signal.SIGINT, signal.SIGTERM]


def test_a_signal_at_any_moment_of_start_up_ends_the_command_with_one_line(smoke_config, tmp_path):
  """Signals sent 0 to 4 s after the command's first line (imports, flags, data, compilation, the first steps):
  each ends it within seconds with 128 + the signal and one line, never a traceback nor a run trained to its end.
  SIGINT and SIGTERM take turns over the moments (one handler serves both: `signals.install`).

  Not before that first line (`signals.install`): in the interpreter's own start (`site` and the venv's .pth
  files, tens of ms) no aejax code has run yet, and Python's default handler answers."""
  config = smoke_config("ae", num_steps=100_000)
  delays = (0.0, 0.2, 0.5, 0.8, 1.2, 1.6, 2.0, 3.0, 4.0)
  procs = []
  for k, delay in enumerate(delays):
    signum = (signal.SIGINT, signal.SIGTERM)[k % 2]
    proc = _start(["aejax.main", f"--config={REPO}/experiments/ae.py:smoke", f"--workdir={tmp_path / str(k)}",
                   "--config.num_steps=100000", f"--config.data.data_dir={config.data.data_dir}",
                   f"--config.data.manual_dir={config.data.manual_dir}",
                   f"--config.compilation_cache_dir={tmp_path / 'cache'}"])  # Its own: the first start compiles.
    _wait_for_handlers(proc)
    time.sleep(delay)
    proc.send_signal(signum)
    sent = time.perf_counter()
    _, err = proc.communicate(timeout=60)
    procs.append((signum, delay, proc.returncode, err, time.perf_counter() - sent))
  for signum, delay, code, err, took in procs:
    lines = [line for line in err.splitlines() if line.startswith("aejax")]
    assert code == 128 + signum, (signum, delay, err[-2000:])
    assert "Traceback" not in err and "Exception ignored" not in err, (signum, delay, err[-2000:])
    assert len(lines) == 1 and lines[0].startswith(f"aejax: stopped by signal {signum}"), (signum, delay, err[-2000:])
    assert took < 30, (signum, delay, took)


# A command whose signal arrives 0.3 s into XLA's compilation of 2,000 chained ops (3.7 s here): the handler runs
# inside the compilation, which the exception cuts short (the command ends about 2 s before it would have ended).
_SIGNAL_IN_COMPILATION = """
import os, signal, sys, threading
from aejax import signals
signals.install("aejax")
with signals.exit_on_signals("aejax"):
  import jax, jax.numpy as jnp
  def chain(x):
    for i in range(2000):
      x = jnp.sin(x) * (i + 1.0) + jnp.cos(x[::-1])
    return x
  lowered = jax.jit(chain).lower(jnp.ones(64))
  threading.Timer(0.3, os.kill, (os.getpid(), int(sys.argv[1]))).start()
  lowered.compile()
"""


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_during_a_compilation_ends_the_command_with_its_code_not_a_crash(signum):
  """Stopped there, the interpreter's shutdown used to crash in XLA's destructors (exit -11 after the line)."""
  proc = subprocess.run([sys.executable, "-c", _SIGNAL_IN_COMPILATION, str(int(signum))], capture_output=True,
                        text=True, timeout=120,  # With XLA's optimisations, so that the compilation lasts.
                        env={**os.environ, "JAX_PLATFORMS": "cpu", "JAX_DISABLE_MOST_OPTIMIZATIONS": "0"})
  assert proc.returncode == 128 + signum, proc.stderr[-2000:]
  assert proc.stderr == (f"aejax: stopped by signal {signum}; nothing was lost: rerun the same command to resume "
                         "from the last checkpoint\n")


@pytest.fixture()
def small_disk(tmp_path, monkeypatch):
  """(folder, fill, free_up): a folder on a 64 MiB tmpfs where this machine lets the test mount one, `fill()`
  leaving it about 1 MiB free, `free_up()` undoing that. Without mount rights, the folder is plain and `fill`
  makes the checkpoint writer see 1 MiB free (the same check; the OS's own ENOSPC is drilled below)."""
  folder = tmp_path / "disk"
  folder.mkdir()
  mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(folder)],
                           capture_output=True).returncode == 0
  filler = folder / "filler"

  def fill() -> None:
    if mounted:
      with filler.open("wb") as f:
        f.write(b"\0" * (shutil.disk_usage(folder).free - 2**20))
    else:
      monkeypatch.setattr(checkpoint.shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(2**30, 2**30, 2**20))

  def free_up() -> None:
    if mounted:
      filler.unlink()
    else:
      monkeypatch.undo()

  yield folder, fill, free_up
  if mounted:
    subprocess.run(["umount", str(folder)], check=True)


def test_a_full_disk_stops_the_run_at_that_checkpoint_and_the_rerun_resumes(smoke_config, tmp_path, small_disk,
                                                                              monkeypatch):
  folder, fill, free_up = small_disk
  config = smoke_config("ae", num_steps=30, log_every=5, checkpoint_every=10, eval_every=10)
  train.train_and_evaluate(config, tmp_path / "reference")
  workdir = folder / "run"
  write_scalars = writers.MetricWriter.write_scalars

  def write_then_fill(self, step, scalars):
    write_scalars(self, step, scalars)
    if step == 15:  # Once checkpoint 10 is finished and sealed (in the background): the disk fills before 20.
      deadline = time.monotonic() + 60
      while not (workdir / "checkpoints" / "10" / checkpoint.DIGEST).exists() and time.monotonic() < deadline:
        time.sleep(0.05)
      fill()

  monkeypatch.setattr(writers.MetricWriter, "write_scalars", write_then_fill)
  line = (rf"^checkpoint 20 was not written in {workdir}/checkpoints: the disk is full \(about [\d.]+ MiB needed, "
          r"[\d.]+ MiB free\); the older checkpoints are intact: free some space \(or lower keep_checkpoints\) and "
          r"rerun the same command to resume$")
  with pytest.raises(checkpoint.DiskFull, match=line):
    train.train_and_evaluate(config, workdir)
  monkeypatch.setattr(writers.MetricWriter, "write_scalars", write_scalars)
  assert sorted(p.name for p in (workdir / "checkpoints").iterdir()) == ["10"]  # Nothing half-written beside it.
  with pytest.raises(checkpoint.DiskFull, match=line):  # Rerun while still full: the same line.
    train.train_and_evaluate(config, workdir)
  free_up()
  assert train.train_and_evaluate(config, workdir)["step"] == 30
  for got, want in zip(jax.tree.leaves(_checkpoint_params(workdir, 30)),
                       jax.tree.leaves(_checkpoint_params(tmp_path / "reference", 30)), strict=True):
    np.testing.assert_array_equal(got, want)


def test_no_space_while_a_checkpoint_is_finished_is_one_line(smoke_config, tmp_path, monkeypatch):
  def no_space(folder):
    raise OSError(errno.ENOSPC, "No space left on device", str(folder / checkpoint.DIGEST))

  monkeypatch.setattr(checkpoint, "write_digest", no_space)  # As the OS would answer the sealing thread.
  with pytest.raises(checkpoint.DiskFull, match=rf"^a checkpoint could not be finished in {tmp_path}/checkpoints: "
                     r"the disk is full \([\d,.]+ MiB free\)"):
    train.train_and_evaluate(smoke_config("ae", num_steps=20, checkpoint_every=10, eval_every=10), tmp_path)


def test_a_signal_in_a_long_evaluation_suite_acts_within_seconds(smoke_config, tmp_path):
  train.train_and_evaluate(smoke_config("vae", num_steps=2, checkpoint_every=2, eval_every=2), tmp_path)
  proc = _start(["aejax.evaluate", f"--workdir={tmp_path}", "--suite=nll", "--nll_samples=20000"])  # 80 s here.
  time.sleep(8)  # Start-up done (about 5 s here): inside the suite.
  proc.send_signal(signal.SIGINT)
  sent = time.perf_counter()
  _, err = proc.communicate(timeout=120)
  took = time.perf_counter() - sent
  assert proc.returncode == 128 + signal.SIGINT, err[-2000:]
  assert err.splitlines()[-1] == (f"aejax.evaluate: stopped by signal {signal.SIGINT}; nothing was lost: rerun the "
                                  "same command to evaluate again"), err[-2000:]
  assert took < 15, took  # About 2 s of work per call of the suite here.


@pytest.mark.optimized
def test_kill_9_at_several_moments_then_reruns_end_as_an_uninterrupted_run(smoke_config, tmp_path):
  """SIGKILL (nothing can be saved) at three moments of one workdir's runs, in start-up and in training, each
  followed by a rerun: the last rerun ends with the parameters and metrics rows of a run never stopped."""
  fields = dict(num_steps=150, log_every=10, checkpoint_every=20, eval_every=50)
  config = smoke_config("ae", **fields)
  reference = train.train_and_evaluate(config, tmp_path / "reference")
  workdir = tmp_path / "killed"
  command = ["aejax.main", f"--config={REPO}/experiments/ae.py:smoke", f"--workdir={workdir}",
             f"--config.data.data_dir={config.data.data_dir}", f"--config.data.manual_dir={config.data.manual_dir}",
             *(f"--config.{k}={v}" for k, v in fields.items())]
  for killed_after in (None, 40, 100):  # In start-up, then once checkpoints 40 and 100 exist: each rerun resumes.
    proc = _start(command)
    deadline = time.monotonic() + 120
    while killed_after and not (workdir / "checkpoints" / str(killed_after)).exists() and time.monotonic() < deadline:
      time.sleep(0.01)
    if not killed_after:
      _wait_for_handlers(proc)
      time.sleep(1.0)
    proc.kill()
    proc.wait()
    assert not (workdir / "summary.json").exists()  # Killed before its end.
  proc = _start(command)
  _, err = proc.communicate(timeout=300)
  assert proc.returncode == 0, err[-2000:]
  assert json.loads((workdir / "summary.json").read_text())["step"] == reference["step"] == 150
  for got, want in zip(jax.tree.leaves(_checkpoint_params(workdir, 150)),
                       jax.tree.leaves(_checkpoint_params(tmp_path / "reference", 150)), strict=True):
    np.testing.assert_array_equal(got, want)
  rows = [[{k: v for k, v in r.items() if k not in ("time", "train/samples_per_s")} for r in
           _strict_rows(w)] for w in (workdir, tmp_path / "reference")]
  assert [r["step"] for r in rows[0]] == [r["step"] for r in rows[1]]
  for got, want in zip(*rows):
    assert got == pytest.approx(want, rel=1e-6)
