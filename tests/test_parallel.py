"""Data parallelism: a run over 4 CPU devices, in one process or in two joined by `jax.distributed`, trains like
the same run on 1; a batch that does not split over the devices is refused.

The test process's JAX already has one CPU device, so the multi-device runs happen in subprocesses started
with `--xla_force_host_platform_device_count`.
"""
import json
import os
import socket
import subprocess
import sys

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

from aejax import config as config_lib, parallel, train

from conftest import REPO

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
  env = {**os.environ, "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}", "JAX_PLATFORMS": "cpu",
         **(env or {})}
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
def runs(root, data_dir, mnist_manual_dir):
  """The same run on 1 device (here) and on 4 (a subprocess, started first); and batch size 30 tried on 4."""
  dirs = (str(data_dir), str(mnist_manual_dir))
  four = _start(root / "four", *dirs, devices=4)
  indivisible = _start(root / "indivisible", *dirs, devices=4, batch_size=30)
  try:
    config = config_lib.from_file(f"{REPO}/experiments/vae.py:smoke")
    config.update_from_flattened_dict({**FIELDS, "data.data_dir": dirs[0], "data.manual_dir": dirs[1]})
    train.train_and_evaluate(config, root / "one")
    yield {"four": _finish(four), "indivisible": _finish(indivisible)}
  finally:
    four.kill()
    indivisible.kill()


def _latest(workdir, like=None):
  """The latest checkpoint's arrays, read with orbax alone (onto the devices of `like`'s arrays when given)."""
  with ocp.CheckpointManager(workdir / "checkpoints") as manager:
    args = None if like is None else ocp.args.StandardRestore(like)
    return manager.restore(manager.latest_step(), args=args)


def _rows(workdir):
  return [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]


def _assert_same_training(one_workdir, other_workdir):
  """Same parameters and optimiser state at the end, same logged metrics (up to float reassociation)."""
  one = _latest(one_workdir)
  other = _latest(other_workdir, like=one)  # Saved from several devices, read onto this process's one.
  assert int(other["step"]) == FIELDS["num_steps"]
  for a, b in zip(jax.tree.leaves(one), jax.tree.leaves(other), strict=True):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
  for r1, r2 in zip(_rows(one_workdir), _rows(other_workdir), strict=True):  # Each row written once.
    assert r1.keys() == r2.keys()
    for k in r1.keys() - {"time", "train/samples_per_s"}:
      assert r2[k] == pytest.approx(r1[k], rel=1e-4), k


def test_four_devices_train_like_one(runs, root):
  rc, out, err = runs["four"]
  assert rc == 0, err[-3000:]
  assert "aejax: finished" in out
  _assert_same_training(root / "one", root / "four")


@pytest.mark.slow
def test_two_processes_with_jax_distributed_train_like_one(runs, root, data_dir, mnist_manual_dir):
  """Two SLURM-like tasks of 2 CPU devices each, joined by `jax.distributed` (gloo), share one workdir."""
  port = _free_port()
  tasks = [_start(root / "two_processes", str(data_dir), str(mnist_manual_dir), devices=2, name=f"-task{i}",
                  env={"SLURM_JOB_ID": "1", "SLURM_STEP_NODELIST": "localhost", "SLURM_NTASKS": "2",
                       "SLURM_PROCID": str(i), "SLURM_LOCALID": str(i), "JAX_COORDINATOR_PORT": str(port)})
           for i in range(2)]
  try:
    for rc, out, err in [_finish(t) for t in tasks]:
      assert rc == 0, err[-3000:]
      assert "aejax: finished" in out
  finally:
    for t in tasks:
      t.kill()
  _assert_same_training(root / "one", root / "two_processes")


def test_batch_not_divisible_by_devices_is_one_clear_error(runs, root):
  rc, out, err = runs["indivisible"]
  assert rc == 1 and not out
  assert err.strip().splitlines()[-1] == ("aejax: error: config.batch_size=30 does not split over the 4 devices of "
                                          "this run: use a multiple of 4, e.g. --config.batch_size=28")
  assert not (root / "indivisible").exists()  # Refused before any work.


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

