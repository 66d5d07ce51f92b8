"""Data parallelism: a run over 4 CPU devices, in one process or in two joined by `jax.distributed`, trains like
the same run on 1; SIGTERM to one of two processes stops both at one step, and they resume; a batch that does
not split over the devices is refused.

The test process's JAX already has one CPU device, so the multi-device runs happen in subprocesses started
with `--xla_force_host_platform_device_count`.
"""
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

from aejax import config as config_lib, parallel, train

from conftest import REPO, once_per_session, xla_flags

# Dynamic binarisation and the VAE's sampling: the random draws must not depend on how the batch is split.
FIELDS = {"data.binarize": "dynamic", "num_steps": 8, "log_every": 4, "eval_every": 8, "checkpoint_every": 8,
          "eval_batch_size": 96, "data.num_test": 500}  # 6 eval batches, the last one padded.


def _start(workdir, data_dir, manual_dir, devices: int, env: dict[str, str] | None = None, name: str = "",
           **fields):
  """`python -m aejax.main` on experiments/vae.py:smoke with FIELDS and `fields`, over `devices` CPU devices.

  Its output goes to files beside `workdir`, not pipes: of two processes joined by collectives, one blocked on
  a full pipe that nobody reads yet would stall the other too.
  """
  flags = [f"--config.{k}={v}" for k, v in {**FIELDS, "data.data_dir": data_dir, "data.manual_dir": manual_dir,
                                              **fields}.items()]
  command = [sys.executable, "-m", "aejax.main", "--config", "experiments/vae.py:smoke", "--workdir", str(workdir),
             *flags]
  env = {**os.environ, "XLA_FLAGS": xla_flags(f"--xla_force_host_platform_device_count={devices}"),
         "JAX_PLATFORMS": "cpu", **(env or {})}
  logs = [workdir.with_name(f"{workdir.name}{name}.{stream}") for stream in ("out", "err")]
  with logs[0].open("w") as out, logs[1].open("w") as err:
    proc = subprocess.Popen(command, env=env, cwd=REPO, stdout=out, stderr=err, text=True)
  proc.logs = logs
  return proc


def _finish(proc) -> tuple[int, str, str]:
  proc.wait(timeout=300)
  return proc.returncode, proc.logs[0].read_text(), proc.logs[1].read_text()


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("localhost", 0))
    return s.getsockname()[1]


@pytest.fixture(scope="module")
def root(tmp_path_factory):
  return tmp_path_factory.mktemp("parallel")


@pytest.fixture(scope="module")
def runs(tmp_path_factory, data_dir, mnist_manual_dir):
  """The same run on 1 device (here) and on 4 (a subprocess, started first); and batch size 30 tried on 4: the
  folder of the three ('root') and the two subprocesses' (exit code, stdout, stderr)."""
  dirs = (str(data_dir), str(mnist_manual_dir))

  def make(root):
    four = _start(root / "four", *dirs, devices=4)
    indivisible = _start(root / "indivisible", *dirs, devices=4, batch_size=30)
    try:
      config = config_lib.from_file(f"{REPO}/experiments/vae.py:smoke")
      config.update_from_flattened_dict({**FIELDS, "data.data_dir": dirs[0], "data.manual_dir": dirs[1]})
      train.train_and_evaluate(config, root / "one")
      return {"root": root, "four": _finish(four), "indivisible": _finish(indivisible)}
    finally:
      four.kill()
      indivisible.kill()

  return once_per_session(tmp_path_factory, "parallel", make)


def _latest(workdir):
  """The latest checkpoint's arrays, read with orbax alone onto this process's one device."""
  options = ocp.CheckpointManagerOptions(read_only=True)  # Maybe a folder the other worker reads too.
  with ocp.CheckpointManager(workdir / "checkpoints", options=options) as manager:
    path = workdir / "checkpoints" / str(manager.latest_step()) / "default"  # Orbax's folder of the one item.
  one = jax.sharding.SingleDeviceSharding(jax.devices()[0])
  with ocp.StandardCheckpointer() as checkpointer:
    like = jax.tree.map(lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=one),
                        checkpointer.metadata(path).item_metadata.tree)
    return checkpointer.restore(path, like)


def _rows(workdir):
  return [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]


def _assert_same_state(one_workdir, other_workdir, num_steps: int = FIELDS["num_steps"], params_atol: float = 1e-5,
                       moments_atol: float = 1e-5):
  """Same parameters and optimiser state at the end (up to float reassociation where the two split the batch
  differently: Adam's m/√v turns it into parameter differences of a few 1e-6 where a gradient is near zero; an
  all-reduce that sums or drops a shard moves parameters by about the learning rate, 1e-3); integers (the step,
  Adam's count) equal."""
  one, other = _latest(one_workdir), _latest(other_workdir)
  assert int(other["step"]) == num_steps
  for (path, a), b in zip(jax.tree_util.tree_leaves_with_path(one), jax.tree.leaves(other), strict=True):
    if np.issubdtype(a.dtype, np.integer):
      np.testing.assert_array_equal(a, b, err_msg=jax.tree_util.keystr(path))
    else:
      atol = params_atol if path[0] == jax.tree_util.DictKey("params") else moments_atol
      np.testing.assert_allclose(a, b, rtol=1e-4, atol=atol, err_msg=jax.tree_util.keystr(path))


def _assert_same_training(one_workdir, other_workdir, evaluated: bool = False):
  """Same end state, same logged metrics (up to float reassociation); `evaluated`: the other's last row is its
  evaluation suites', which the one did not run."""
  _assert_same_state(one_workdir, other_workdir)
  other_rows = _rows(other_workdir)[:-1] if evaluated else _rows(other_workdir)
  for r1, r2 in zip(_rows(one_workdir), other_rows, strict=True):  # Each row written once.
    assert r1.keys() == r2.keys()
    for k in r1.keys() - {"time", "train/samples_per_s"}:
      assert r2[k] == pytest.approx(r1[k], rel=1e-4), k


def test_four_devices_train_like_one(runs):
  rc, out, err = runs["four"]
  assert rc == 0, err[-3000:]
  assert "aejax: finished" in out
  _assert_same_training(runs["root"] / "one", runs["root"] / "four")


def _start_two_tasks(workdir, data_dir, manual_dir, tag: str = "", **fields) -> list[subprocess.Popen]:
  """Two SLURM-like tasks of 2 CPU devices each, joined by `jax.distributed` (gloo), training in one workdir;
  their logs beside it, named with `tag`."""
  port = _free_port()
  return [_start(workdir, str(data_dir), str(manual_dir), devices=2, name=f"{tag}-task{i}",
                 env={"SLURM_JOB_ID": "1", "SLURM_STEP_NODELIST": "localhost", "SLURM_NTASKS": "2",
                      "SLURM_PROCID": str(i), "SLURM_LOCALID": str(i), "JAX_COORDINATOR_PORT": str(port)},
                 **fields)
          for i in range(2)]


def _finish_all(tasks) -> list[tuple[int, str, str]]:
  try:
    return [_finish(t) for t in tasks]
  finally:
    for t in tasks:
      t.kill()


def test_two_processes_with_jax_distributed_train_like_one_and_evaluate(runs, root, data_dir, mnist_manual_dir):
  workdir = root / "two_processes"
  results = _finish_all(_start_two_tasks(workdir, data_dir, mnist_manual_dir, **{"eval.suites": "('recon',)"}))
  for rc, out, err in results:
    assert rc == 0, err[-3000:]
    assert "aejax: finished" in out
  assert "aejax: evaluated" in results[0][1]  # Process 0 alone runs the config's evaluation suites.
  evaluation = json.loads((workdir / "eval.json").read_text())
  assert _rows(workdir)[-1]["recon/squared_error"] == evaluation["recon/squared_error"]
  _assert_same_training(runs["root"] / "one", workdir, evaluated=True)


def test_sigterm_to_one_of_two_processes_stops_both_at_one_step_and_resumes(root, data_dir, mnist_manual_dir):
  """A scheduler's SIGTERM reaches each task at its own moment: here only task 1 gets it. Both must checkpoint at
  one agreed step and exit (a task left training would wait forever on the other's collectives); rerun, they
  end where the same run ends uninterrupted."""
  fields = {"num_steps": 40, "checkpoint_every": 40, "eval_every": 40}
  workdir = root / "preempted"
  tasks = _start_two_tasks(workdir, data_dir, mnist_manual_dir, **fields)
  metrics = workdir / "metrics.jsonl"
  deadline = time.monotonic() + 240
  while not (metrics.exists() and metrics.read_text()) and time.monotonic() < deadline and tasks[1].poll() is None:
    time.sleep(0.2)
  tasks[1].send_signal(signal.SIGTERM)
  stopped = _finish_all(tasks)
  steps = []
  for rc, out, err in stopped:
    assert rc == 128 + signal.SIGTERM, err[-3000:]
    steps += [int(s) for s in re.findall(r"stopped by signal 15 at step (\d+);", err)]
  assert len(steps) == 2 and steps[0] == steps[1] and 0 < steps[0] < fields["num_steps"], steps
  with ocp.CheckpointManager(workdir / "checkpoints") as manager:
    assert manager.all_steps() == [steps[0]]
  for rc, out, err in _finish_all(_start_two_tasks(workdir, data_dir, mnist_manual_dir, "-resumed", **fields)):
    assert rc == 0, err[-3000:]
  # The same run uninterrupted, on this process's one device (a third pair of processes cost 12 s of the test
  # command): two processes train like one, up to float reassociation, which Adam turns into parameter differences
  # of up to 1.2e-5 after 40 steps here, so parameters within 1e-4 and Adam's moments within 1e-4 relative or 1e-7
  # absolute (first moments moved by up to 2.8e-8; 82 % of the second moments lie above 1e-7), the step and Adam's
  # count exactly. A resume on another batch or key moves the moments at once, and the parameters after a few steps.
  config = config_lib.from_file(f"{REPO}/experiments/vae.py:smoke")
  config.update_from_flattened_dict({**FIELDS, **fields, "data.data_dir": str(data_dir),
                                     "data.manual_dir": str(mnist_manual_dir)})
  train.train_and_evaluate(config, root / "uninterrupted")
  _assert_same_state(root / "uninterrupted", workdir, fields["num_steps"], params_atol=1e-4, moments_atol=1e-7)


def test_batch_not_divisible_by_devices_is_one_clear_error(runs):
  rc, out, err = runs["indivisible"]
  assert rc == 1 and not out
  assert err.strip().splitlines()[-1] == ("aejax: error: config.batch_size=30 does not split over the 4 devices of "
                                          "this run: use a multiple of 4, e.g. --config.batch_size=28")
  assert not (runs["root"] / "indivisible").exists()  # Refused before any work.


def test_check_batch_size_on_one_device_accepts_any_size():
  mesh = parallel.data_mesh()
  parallel.check_batch_size(31, mesh)
  assert parallel.round_up(31, mesh) == 31


@pytest.mark.parametrize("env, expected", [
    ({}, False),
    ({"SLURM_NTASKS": "1", "SLURM_JOB_ID": "7"}, False),  # One task of a job array: a plain run.
    ({"SLURM_NTASKS": "4", "SLURM_JOB_ID": "7"}, True),
    ({"JAX_COORDINATOR_ADDRESS": "10.0.0.1:1234"}, True),
    ({"TPU_WORKER_HOSTNAMES": "t0,t1"}, True),
    ({"TPU_WORKER_HOSTNAMES": "t0"}, False),
])
def test_multiprocess_launch_is_detected_from_the_environment(env, expected):
  assert parallel.is_multiprocess_launch(env) is expected

