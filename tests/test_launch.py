"""The sweep launchers: a local sweep end to end, relaunch and locks, devices, dry run, submitit's local executor."""
import csv
import dataclasses
import json
import os
import pathlib
import pickle
import shutil
import signal
import subprocess
import sys
import threading
import time

import jax
import numpy as np
import pytest

from aejax import bundle
from aejax import config as config_lib
from aejax import locks
from aejax import train, writers
from aejax import sweep as sweep_lib
from aejax.errors import ConfigError
from launch import common, local, slurm

from conftest import REPO, once_per_session

# Two members (seeds 0 and 1) of a tiny AE: a few seconds each.
_EXPERIMENT = f"""from aejax import config as config_lib
from aejax import sweep as sweep_lib


def get_config(arg=None):
  return config_lib.from_file({str(REPO / "experiments" / "ae.py")!r} + (":" + arg if arg else ""))


def get_sweep():
  return sweep_lib.sweep("seed", [0, 1])
"""


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, data_dir, mnist_manual_dir):
  """(config spec, shared overrides) of the two-member sweep on the session's MNIST, written once for the session:
  the sweeps below are launched once for it too."""

  def make(folder):
    (folder / "tiny.py").write_text(_EXPERIMENT)
    overrides = {"num_steps": 4, "data.num_train": 256, "data.num_test": 256, "eval_batch_size": 256,
                 "model.encoder_widths": (32,), "latent_dim": 8, "num_images": 2, "data.data_dir": str(data_dir),
                 "data.manual_dir": str(mnist_manual_dir), "compilation_cache_dir": str(folder / "jax-cache")}
    return f"{folder / 'tiny.py'}:smoke", overrides

  return once_per_session(tmp_path_factory, "launch-tiny", make)


def _resolve(tiny, root) -> common.Sweep:
  spec, overrides = tiny
  return common.resolve(sweep_lib.override(config_lib.from_file(spec), overrides), spec, overrides, root)


def _launch_local(tiny, root):
  spec, overrides = tiny
  command = [sys.executable, "-m", "launch.local", f"--config={spec}", f"--root={root}", "--workers=2",
             *(common.flag(field, value) for field, value in overrides.items())]
  return subprocess.run(command, cwd=REPO, text=True, capture_output=True, timeout=300)


def _test_rows(workdir):
  rows = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
  return [row for row in rows if "test/loss" in row]


@pytest.fixture(scope="module")
def finished_sweep(tiny, tmp_path_factory):
  """A root where `python -m launch.local` ran the two members to their end: (root, the launcher's result). Tests
  copy it before they launch in it."""
  return once_per_session(tmp_path_factory, "launch-finished",
                          lambda folder: (folder / "tiny_sweep", _launch_local(tiny, folder / "tiny_sweep")))


def test_local_sweep_runs_every_member_and_writes_the_summary(finished_sweep):
  root, result = finished_sweep
  assert result.returncode == 0, result.stderr + result.stdout
  with (root / "summary.csv").open() as f:
    rows = list(csv.DictReader(f))
  assert [row["member"] for row in rows] == ["seed0", "seed1"]
  for row, seed in zip(rows, (0, 1)):
    workdir = root / row["member"]
    assert (row["seed"], row["status"], row["step"]) == (str(seed), "finished", "4")
    assert writers.latest_checkpoint(workdir) == 4
    last_test = _test_rows(workdir)[-1]
    assert last_test["step"] == 4 and float(row["test/loss"]) == pytest.approx(last_test["test/loss"], rel=1e-12)
    saved = json.loads((workdir / "config.json").read_text())  # What the run logs to W&B as its config.
    assert (saved["seed"], saved["num_steps"], saved["model"]["encoder_widths"]) == (seed, 4, [32])
    assert (saved["wandb"]["group"], saved["wandb"]["name"]) == ("tiny_sweep", f"seed{seed}")
  assert rows[0]["test/loss"] != rows[1]["test/loss"]  # Different seeds, different runs.
  assert "seed0" in result.stdout and "finished" in result.stdout and str(root / "summary.csv") in result.stdout


def test_relaunch_skips_finished_members(finished_sweep, tiny, tmp_path):
  finished, first = finished_sweep
  assert first.returncode == 0, first.stderr
  root = shutil.copytree(finished, tmp_path / finished.name)
  before = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in root.glob("seed*/metrics.jsonl")}
  assert len(before) == 2
  result = _launch_local(tiny, root)
  assert result.returncode == 0, result.stderr
  assert "seed0: skipped, already finished" in result.stdout and "seed1: skipped, already finished" in result.stdout
  assert {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in root.glob("seed*/metrics.jsonl")} == before
  with (root / "summary.csv").open() as f:
    assert [row["status"] for row in csv.DictReader(f)] == ["finished", "finished"]


def test_more_steps_make_a_finished_member_unfinished(finished_sweep, tiny):
  root, first = finished_sweep
  assert first.returncode == 0, first.stderr
  member = _resolve(tiny, root).members[0]
  assert common.is_finished(member)
  longer = dataclasses.replace(member, num_steps=8)  # Relaunched with --config.num_steps=8, it resumes at step 4.
  assert not common.is_finished(longer) and common.status(longer) == "unfinished"


def test_a_member_stopped_after_its_last_checkpoint_is_not_finished(finished_sweep, tiny, tmp_path):
  """Killed between its last checkpoint and its summary (or its evaluation suites' eval.json): rerun, not skipped."""
  root, first = finished_sweep
  assert first.returncode == 0, first.stderr
  member = _resolve(tiny, root).members[0]
  copy = dataclasses.replace(member, workdir=tmp_path / member.run_id)
  shutil.copytree(member.workdir, copy.workdir)
  assert common.is_finished(copy)
  evaluated = dataclasses.replace(copy, evaluated=True)
  assert not common.is_finished(evaluated)
  (copy.workdir / "eval.json").write_text(json.dumps({"step": member.num_steps}))
  assert common.is_finished(evaluated)
  # Its process ended by a signal once all was written (e.g. SIGTERM just after "aejax: finished"): finished.
  assert common.status(evaluated, -signal.SIGTERM) == common.status(evaluated, 1) == "finished"
  (copy.workdir / "summary.json").unlink()
  assert not common.is_finished(copy) and common.status(copy) == "unfinished"
  # Ended by a signal outside its training loop (no checkpoint on it): interrupted, resumed by a relaunch.
  assert common.status(copy, -signal.SIGTERM) == common.status(copy, 128 + signal.SIGINT) == "interrupted"
  assert common.status(copy, -signal.SIGKILL) == "failed (exit -9)"


def test_the_summary_reads_each_members_own_files_whichever_launcher_writes_it(finished_sweep, tiny, tmp_path):
  """Two launchers on one root: the later one's summary.csv shows what the other's members ended with (their exit
  codes kept in their workdirs), and a member still locked as running."""
  root, _ = finished_sweep
  sweep = _resolve(tiny, tmp_path / "root")
  for m in sweep.members:
    shutil.copytree(_resolve(tiny, root).members[sweep.members.index(m)].workdir, m.workdir)
    (m.workdir / "summary.json").unlink()  # Neither finished.
  (sweep.members[0].workdir / common.EXIT_FILE).write_text("1\n")  # As the other launcher's run_bundle left it.
  holder = subprocess.Popen([sys.executable, "-c", "import pathlib, sys, time; from aejax import locks\n"
                             f"with locks.lock(pathlib.Path({str(sweep.members[1].workdir)!r})):\n"
                             "  print('held', flush=True); time.sleep(60)"], stdout=subprocess.PIPE, text=True)
  try:
    assert holder.stdout.readline() == "held\n"
    rows = common.summary(sweep)  # This launcher ran neither: no exit codes of its own.
    assert [row["status"] for row in rows] == ["failed (exit 1)", "running"]
  finally:
    holder.kill()
    holder.wait()


def test_a_lock_probe_does_not_keep_a_launcher_from_the_member(tmp_path):
  held = threading.Event()

  def probe():  # As `is_locked` does for a status table, if a little longer.
    with locks.lock(tmp_path) as fd:
      assert fd is not None
      held.set()
      time.sleep(0.3)

  prober = threading.Thread(target=probe)
  prober.start()
  held.wait()
  with locks.lock(tmp_path) as impatient:
    assert impatient is None
  with locks.lock(tmp_path, patience_s=5.0) as launcher:
    assert launcher is not None  # Got it once the probe let go.
  prober.join()


def test_held_lock_makes_a_second_launcher_skip_the_member(tiny, tmp_path):
  sweep = _resolve(tiny, tmp_path / "locked")
  with locks.lock(sweep.members[0].workdir) as fd0, locks.lock(sweep.members[1].workdir) as fd1:
    assert fd0 is not None and fd1 is not None
    with locks.lock(sweep.members[0].workdir) as again:
      assert again is None  # Not even this process gets it twice.
    exit_codes = local.launch(sweep, workers=2, groups=[])
    assert exit_codes == {"seed0": None, "seed1": None}
    assert [row["status"] for row in common.summary(sweep, exit_codes)] == ["running", "running"]
  for member in sweep.members:
    assert not (member.workdir / "metrics.jsonl").exists() and not (member.workdir / common.LOG_FILE).exists()
  assert [row["status"] for row in common.summary(sweep)] == ["not started", "not started"]


def test_lock_is_released_when_its_holder_dies(tmp_path):
  holder = subprocess.Popen(
      [sys.executable, "-c", "import fcntl, os, sys, time\n"
       f"fd = os.open({str(tmp_path / locks.LOCK_FILE)!r}, os.O_RDWR | os.O_CREAT)\n"
       "fcntl.flock(fd, fcntl.LOCK_EX)\nprint('held', flush=True)\ntime.sleep(120)"],
      stdout=subprocess.PIPE, text=True)
  try:
    assert holder.stdout.readline().strip() == "held"
    assert locks.is_locked(tmp_path)
  finally:
    holder.kill()
    holder.wait()
  assert not locks.is_locked(tmp_path)


def test_workers_run_at_once_each_on_its_device_group_and_each_member_once(tiny, tmp_path):
  sweep = _resolve(tiny, tmp_path / "fake")
  members = tuple(dataclasses.replace(sweep.members[0], run_id=f"m{i}", workdir=tmp_path / f"m{i}") for i in range(7))
  sweep = dataclasses.replace(sweep, members=members)
  calls, lock, all_three = [], threading.Lock(), threading.Barrier(3, timeout=30)

  def runner(sweep, members, env=None, started=None):  # pylint: disable=unused-argument
    (member,) = members  # --bundle_size 1: one member per process.
    with lock:
      calls.append((threading.get_ident(), member.run_id, env["CUDA_VISIBLE_DEVICES"]))
      first_round = len(calls) <= 3
    if first_round:
      all_three.wait()  # Returns only once three members run at the same time.
    return {member.run_id: 0}

  exit_codes = local.launch(sweep, workers=3, groups=["0,1", "2"], runner=runner)
  assert exit_codes == {f"m{i}": 0 for i in range(7)}
  assert sorted(run_id for _, run_id, _ in calls) == [f"m{i}" for i in range(7)]
  devices_of = {}
  for thread, _, devices in calls:
    devices_of.setdefault(thread, set()).add(devices)
  assert sorted(d for ds in devices_of.values() for d in ds) == ["0,1", "0,1", "2"]  # Worker i: group i mod 2.


def test_failed_and_interrupted_members_are_reported(tiny, tmp_path):
  sweep = _resolve(tiny, tmp_path / "codes")
  codes = {"seed0": 1, "seed1": 128 + signal.SIGTERM}  # aejax.main: bad input; stopped after a checkpoint.
  exit_codes = local.launch(sweep, workers=1, groups=[],
                            runner=lambda s, members, **_: {m.run_id: codes[m.run_id] for m in members})
  assert [row["status"] for row in common.summary(sweep, exit_codes)] == ["failed (exit 1)", "interrupted"]


def test_device_groups():
  four = common.Gpus(("0", "1", "2", "3"), frozenset({"0", "1", "2", "3", "GPU-a1"}), "nvidia-smi")
  assert local.device_groups("0+1,2+3", four) == ["0,1", "2,3"]
  assert local.device_groups("3", four) == ["3"]
  assert local.device_groups("GPU-a1", four) == ["GPU-a1"]
  assert local.device_groups(None, four) == ["0", "1", "2", "3"]
  assert local.device_groups(None, common.Gpus((), frozenset(), "no GPU visible: nvidia-smi lists none")) == []


def _tool(tmp_path, monkeypatch, name, script):
  """Puts an executable `name` running the shell `script` first on the PATH."""
  bin_dir = tmp_path / "bin"
  bin_dir.mkdir(exist_ok=True)
  (bin_dir / name).write_text(f"#!/bin/sh\n{script}\n")
  (bin_dir / name).chmod(0o755)
  monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")


_TWO_GPUS = ("printf 'GPU 0: NVIDIA H100 (UUID: GPU-1a)\\nGPU 1: NVIDIA H100 (UUID: GPU-2b)\\n"
             "  MIG 1g.10gb Device 0: (UUID: MIG-3c)\\n'")  # An nvidia-smi -L of two GPUs, one of them split.


@pytest.mark.parametrize("environ,smi,plugin,ids,source", [
    ({}, _TWO_GPUS, True, ("0", "1"), "nvidia-smi"),
    ({"JAX_PLATFORMS": "cuda,cpu"}, _TWO_GPUS, True, ("0", "1"), "nvidia-smi"),
    ({"CUDA_VISIBLE_DEVICES": "4,6"}, "exit 1", True, ("4", "6"), "CUDA_VISIBLE_DEVICES=4,6"),
    ({"CUDA_VISIBLE_DEVICES": ""}, _TWO_GPUS, True, (), "no GPU visible: CUDA_VISIBLE_DEVICES is empty"),
    ({}, "echo 'No devices found.'", True, (), "no GPU visible: nvidia-smi lists none"),
    ({}, "echo \"NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.\"; exit 9", True, (),
     "no GPU visible: nvidia-smi -L failed (NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA "
     "driver.)"),
    ({}, None, True, (), "no GPU visible: nvidia-smi is not installed"),
    ({"JAX_PLATFORMS": "cpu"}, _TWO_GPUS, True, (),
     "JAX_PLATFORMS=cpu keeps JAX off the 2 GPUs nvidia-smi lists"),
    ({}, _TWO_GPUS, False, (),
     "JAX has no CUDA plugin for the 2 GPUs nvidia-smi lists: pip install -U 'jax[cuda12]'"),
])
def test_visible_gpus_are_those_jax_would_use(tmp_path, monkeypatch, environ, smi, plugin, ids, source):
  for name in ("CUDA_VISIBLE_DEVICES", "JAX_PLATFORMS"):
    monkeypatch.delenv(name, raising=False)
  for name, value in environ.items():
    monkeypatch.setenv(name, value)
  if smi is None:
    monkeypatch.setenv("PATH", str(tmp_path))  # No nvidia-smi.
  else:
    _tool(tmp_path, monkeypatch, "nvidia-smi", smi)
  monkeypatch.setattr(common, "_jax_cuda_plugin", lambda: plugin)
  gpus = common.visible_gpus()
  assert (gpus.ids, gpus.source) == (ids, source)
  if source == "nvidia-smi":
    assert gpus.names == {"0", "1", "GPU-1a", "GPU-2b", "MIG-3c"}


def test_a_jax_cuda_plugin_is_found_without_importing_it(tmp_path, monkeypatch):
  plugin = tmp_path / "jax_plugins" / "xla_cuda12"  # Where jax-cuda12-plugin installs itself.
  plugin.mkdir(parents=True)
  (plugin / "__init__.py").write_text("raise RuntimeError('imported')\n")
  monkeypatch.syspath_prepend(str(tmp_path))
  assert common._jax_cuda_plugin()  # pylint: disable=protected-access


def test_devices_must_name_visible_gpus_and_the_launcher_says_where_it_trains():
  two = common.Gpus(("0", "1"), frozenset({"0", "1", "GPU-1a"}), "nvidia-smi")
  none = common.Gpus((), frozenset(), "no GPU visible: nvidia-smi is not installed")
  with pytest.raises(ConfigError, match=r"^--devices=0,5: GPU '5' is not there \(nvidia-smi lists 0, 1\): name GPUs "
                                        r"among them, or leave --devices out to use them all$"):
    local.device_groups("0,5", two)
  with pytest.raises(ConfigError, match=r"^--devices=0\+1: no GPU visible: nvidia-smi is not installed: leave "
                                        r"--devices out to train on the CPU \(--workers N trains N members at once\)$"):
    local.device_groups("0+1", none)
  assert local.where(2, ["0", "1"], two, None) == "launch.local: 2 workers on GPUs 0 | 1 (nvidia-smi)"
  assert local.where(1, ["0,1"], two, "0+1") == "launch.local: 1 worker on GPU 0,1 (--devices)"
  assert local.where(3, [], none, None) == ("launch.local: 3 workers on the CPU (no GPU visible: nvidia-smi is not "
                                            "installed)")


@pytest.mark.parametrize("requested,local_run,partition,gres,gpus,line", [
    (None, False, "gpu", "gpu:a100:4(S:0-1)\n(null)", 1, "launch.slurm: 1 GPU per task (sinfo: the nodes of "
     "partition gpu have gpu:a100:4(S:0-1)); --gpus_per_task=N asks for N"),
    (None, False, None, "(null)\n(null)", 0, "launch.slurm: CPU tasks, no GPU (sinfo: no node of the cluster has a "
     "GPU); --gpus_per_task=N asks for N"),
    (None, True, "gpu", "gpu:4", 0, "launch.slurm: CPU tasks, no GPU (this machine: no GPU visible: "
     "CUDA_VISIBLE_DEVICES is empty); --gpus_per_task=N asks for N"),
    (2, False, "gpu", "(null)", 2, "launch.slurm: 2 GPUs per task (--gpus_per_task)"),
    (0, True, None, "gpu:4", 0, "launch.slurm: CPU tasks, no GPU (--gpus_per_task)"),
])
def test_slurm_tasks_ask_for_gpus_where_they_will_find_them(tmp_path, monkeypatch, requested, local_run, partition,
                                                            gres, gpus, line):
  asked = tmp_path / "asked"
  _tool(tmp_path, monkeypatch, "sinfo", f"echo \"$@\" > {asked}\nprintf '{gres}\\n'")
  monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")  # This machine: no GPU.
  assert slurm.task_gpus(requested, local_run, partition) == (gpus, line)
  if requested is None and not local_run:
    assert asked.read_text().split() == ["-h", "-o", "%G", *(["-p", partition] if partition else [])]


@pytest.mark.parametrize("bundle_flags, bundles", [
    ([], []),  # Automatic: the β-VAE's 784-512-256-10 net is not small, one process per member on the CPU.
    (["--bundle_size=4"], ["beta1-seed0, beta1-seed1, beta1-seed2, beta2-seed0",
                           "beta2-seed1, beta2-seed2, beta4-seed0, beta4-seed1",
                           "beta4-seed2, beta8-seed0, beta8-seed1, beta8-seed2",
                           "beta16-seed0, beta16-seed1, beta16-seed2"]),
])
def test_dry_run_lists_members_and_bundles_and_runs_nothing(tmp_path, bundle_flags, bundles):
  root = tmp_path / "beta_sweep"
  result = subprocess.run([sys.executable, "-m", "launch.local", "--config=experiments/beta_vae.py:smoke",
                           f"--root={root}", "--dry_run", "--config.num_steps=7", *bundle_flags],
                          cwd=REPO, text=True, capture_output=True, timeout=120,
                          env={**os.environ, "CUDA_VISIBLE_DEVICES": ""})
  assert result.returncode == 0, result.stderr
  lines = result.stdout.splitlines()
  assert "15 members" in lines[0] and "(W&B group beta_sweep)" in lines[0]
  assert lines[1] == "  every member: --config.num_steps=7"
  assert lines[2].split() == ["beta1-seed0", "not", "started", "--config.beta=1", "--config.seed=0"]
  assert lines[16].split() == ["beta16-seed2", "not", "started", "--config.beta=16", "--config.seed=2"]
  assert lines[17] == (f"{len(bundles) or 15} process(es) for 15 unfinished members, {len(bundles)} of them "
                       "vmapped bundles")
  assert lines[18:-1] == [f"  bundle {k}: {members}" for k, members in enumerate(bundles, 1)]
  assert lines[-1] == "launch.local: 1 worker on the CPU (no GPU visible: CUDA_VISIBLE_DEVICES is empty)"
  assert not root.exists()


def test_slurm_dry_run_shows_each_tasks_parameters_and_submits_nothing(tmp_path):
  root = tmp_path / "beta_sweep"
  result = subprocess.run([sys.executable, "-m", "launch.slurm", "--config=experiments/beta_vae.py:smoke",
                           f"--root={root}", "--dry_run", "--local", "--partition=short"],
                          cwd=REPO, text=True, capture_output=True, timeout=120,
                          env={**os.environ, "CUDA_VISIBLE_DEVICES": ""})
  assert result.returncode == 0, result.stderr
  assert result.stdout.splitlines()[-2:] == [  # No GPU here: CPU tasks.
      "launch.slurm: CPU tasks, no GPU (this machine: no GPU visible: CUDA_VISIBLE_DEVICES is empty); "
      "--gpus_per_task=N asks for N",
      "each task: timeout_min=240, gpus_per_node=0, cpus_per_task=8, slurm_array_parallelism=64, slurm_partition=short"]
  assert not root.exists()


def test_gpus_that_jax_will_not_use_are_not_planned(tmp_path, monkeypatch):
  _tool(tmp_path, monkeypatch, "nvidia-smi", _TWO_GPUS)
  monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
  command = [sys.executable, "-m", "launch.local", "--config=experiments/beta_vae.py:smoke", f"--root={tmp_path}/r",
             "--dry_run", "--devices=0,1"]
  result = subprocess.run(command, cwd=REPO, text=True, capture_output=True, timeout=120,
                          env={**os.environ, "JAX_PLATFORMS": "cpu"})
  assert result.returncode == 1 and result.stdout == ""
  assert result.stderr.splitlines() == [
      "launch.local: error: --devices=0,1: JAX_PLATFORMS=cpu keeps JAX off the 2 GPUs nvidia-smi lists: leave "
      "--devices out to train on the CPU (--workers N trains N members at once)"]


def test_bundle_command_line_trains_the_members_it_names(beta):
  spec, overrides = beta
  configs = bundle.sweep_members(spec, sweep_lib.override(config_lib.from_file(spec), overrides), ["beta4-seed1"])
  assert [(c.beta, c.seed, c.wandb.name, c.num_steps) for c in configs] == [(4.0, 1, "beta4-seed1", 4)]
  with pytest.raises(ConfigError, match=r"^--members: beta2-seed0 not in .*beta\.py's get_sweep\(\), whose run ids "
                                        r"are beta1-seed0, beta4-seed1$"):
    bundle.sweep_members(spec, config_lib.from_file(spec), ["beta1-seed0", "beta2-seed0"])


def test_member_command_sets_its_workdir_group_name_and_overrides(tiny, tmp_path):
  sweep = _resolve(tiny, tmp_path / "grouped")
  command = common.command(sweep, sweep.members[1])
  assert command[1:5] == ["-m", "aejax.main", f"--config={sweep.spec}", f"--workdir={tmp_path / 'grouped' / 'seed1'}"]
  assert command[-3:] == ["--config.seed=1", "--config.wandb.group=grouped", "--config.wandb.name=seed1"]
  assert "--config.model.encoder_widths=(32,)" in command


@pytest.mark.parametrize("field,message", [
    ("seed", r"^--config\.seed is swept by .*tiny\.py's get_sweep\(\): drop the flag"),
    ("wandb.group", r"^--config\.wandb\.group and --config\.wandb\.name are set by the launcher"),
])
def test_overriding_a_field_the_launcher_sets_is_an_error(tiny, tmp_path, field, message):
  spec, overrides = tiny
  with pytest.raises(ConfigError, match=message):
    common.resolve(config_lib.from_file(spec), spec, {**overrides, field: "x" if "." in field else 3}, tmp_path)


def test_missing_root_is_one_line_error(tmp_path):
  result = subprocess.run([sys.executable, "-m", "launch.local", "--config=experiments/beta_vae.py"],
                          cwd=REPO, text=True, capture_output=True, timeout=120)
  assert result.returncode == 1
  assert result.stderr.strip().splitlines() == [
      "launch.local: error: --config and --root are required, e.g. --config experiments/beta_vae.py --root "
      "runs/beta_sweep"]


def _member_process(workdir, timeout_s: float = 120) -> tuple[int, int]:
  """(pid, parent pid) of the aejax.main process running in `workdir`, once it has started."""
  deadline = time.time() + timeout_s
  while time.time() < deadline:
    for proc in pathlib.Path("/proc").glob("[0-9]*"):
      try:
        if f"--workdir={workdir}".encode() in (proc / "cmdline").read_bytes().split(b"\0"):
          return int(proc.name), int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
      except OSError:
        continue  # Ended while we looked.
    time.sleep(0.05)
  raise TimeoutError(f"no aejax.main started in {workdir}")


def test_submitit_local_executor_requeues_a_preempted_member_and_skips_finished_ones(tiny, tmp_path, monkeypatch):
  monkeypatch.chdir(REPO)  # The task's process imports `launch` from here.
  sweep = _resolve(tiny, tmp_path / "slurm_sweep")
  sweep = dataclasses.replace(sweep, members=sweep.members[:1])
  workdir = sweep.members[0].workdir
  ex = slurm.executor(sweep, "local", timeout_min=5, gpus_per_node=0, cpus_per_task=1)
  jobs = slurm.submit(sweep, ex)
  assert list(jobs) == ["seed0"]
  first, task = _member_process(workdir)
  time.sleep(0.5)  # Let the task record its run, as it does right after starting it.
  os.kill(task, signal.SIGUSR2)  # What SLURM sends before a timeout or preemption.
  assert slurm.wait(jobs) == {"seed0": 0}
  log = pathlib.Path(jobs["seed0"].paths.stdout).read_text()  # submitit's own log of the task.
  assert "Calling checkpoint method" in log and "Requeued job" in log
  with pytest.raises(ProcessLookupError):
    os.kill(first, 0)  # The first run was stopped; a second one finished the member.
  assert common.is_finished(sweep.members[0]) and _test_rows(workdir)[-1]["step"] == 4
  assert json.loads((workdir / "config.json").read_text())["wandb"]["group"] == "slurm_sweep"
  assert slurm.submit(sweep, ex) == {}  # Finished: nothing to submit again.


@pytest.fixture()
def sbatch(tmp_path, monkeypatch):
  """A fake sbatch on the PATH that submits job 4242; returns where it copies the script it is given."""
  bin_dir, script = tmp_path / "bin", tmp_path / "submitted.sh"
  bin_dir.mkdir()
  (bin_dir / "sbatch").write_text(f"#!/bin/sh\ncp \"$1\" {script}\necho Submitted batch job 4242\n")
  (bin_dir / "srun").write_text("#!/bin/sh\nexit 1\n")
  for tool in bin_dir.iterdir():
    tool.chmod(0o755)
  monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
  return script


def _submitted_task(job):
  return pickle.loads(pathlib.Path(job.paths.submitted_pickle).read_bytes()).function


def test_slurm_gets_one_job_array_with_a_member_per_task(tiny, tmp_path, sbatch):
  script = sbatch
  sweep = _resolve(tiny, tmp_path / "array_sweep")
  ex = slurm.executor(sweep, "slurm", timeout_min=30, gpus_per_node=1, cpus_per_task=4, slurm_array_parallelism=1,
                      slurm_partition="gpu")
  jobs = slurm.submit(sweep, ex)
  assert {run_id: job.job_id for run_id, job in jobs.items()} == {"seed0": "4242_0", "seed1": "4242_1"}
  text = script.read_text()
  for line in ("--array=0-1%1", "--partition=gpu", "--gpus-per-node=1", "--cpus-per-task=4", "--time=30",
               "--job-name=array_sweep", "--signal=USR2@"):
    assert f"#SBATCH {line}" in text
  assert [_submitted_task(job).members for job in jobs.values()] == [(m,) for m in sweep.members]


def test_slurm_gets_a_bundle_per_task(tiny, tmp_path, sbatch):
  sweep = _resolve(tiny, tmp_path / "bundle_sweep")  # Two seeds of one net: they share a bundle.
  ex = slurm.executor(sweep, "slurm", timeout_min=30, gpus_per_node=1, cpus_per_task=4)
  jobs = slurm.submit(sweep, ex, bundle_size=None, accelerator=True)
  assert list(jobs) == ["seed0", "seed1"] and jobs["seed0"] is jobs["seed1"]
  assert _submitted_task(jobs["seed0"]).members == sweep.members
  assert "#SBATCH --gpus-per-node=1" in sbatch.read_text()


def test_checkpoint_stops_the_run_and_requeues_the_same_member(tiny, tmp_path):
  sweep = _resolve(tiny, tmp_path / "requeue")
  task = slurm.BundleTask(sweep, sweep.members[1:])
  stopped = tmp_path / "stopped"
  run = subprocess.Popen([sys.executable, "-c", "import pathlib, signal, sys, time\n"
                          f"stop = lambda *_: (pathlib.Path({str(stopped)!r}).write_text('SIGTERM'), sys.exit(143))\n"
                          "signal.signal(signal.SIGTERM, stop)\nprint('up', flush=True)\ntime.sleep(120)"],
                         stdout=subprocess.PIPE, text=True)
  assert run.stdout.readline().strip() == "up"
  task._started(run)  # pylint: disable=protected-access  (what run_member reports when the run starts)
  delayed = task.checkpoint()
  assert stopped.read_text() == "SIGTERM"  # The run got the signal on which aejax.main checkpoints and exits.
  with pytest.raises(ChildProcessError):
    os.waitpid(run.pid, os.WNOHANG)  # And it has ended: checkpoint() waited for it.
  requeued = pickle.loads(pickle.dumps(delayed.function))
  assert isinstance(requeued, slurm.BundleTask) and requeued.members == sweep.members[1:]
  assert requeued._process is None  # pylint: disable=protected-access


# Two β-VAE members that differ in β and seed: they may share a bundle.
_BETA_EXPERIMENT = f"""from aejax import config as config_lib
from aejax import sweep as sweep_lib


def get_config(arg=None):
  return config_lib.from_file({str(REPO / "experiments" / "beta_vae.py")!r} + (":" + arg if arg else ""))


def get_sweep():
  return sweep_lib.zipit(sweep_lib.sweep("beta", [1.0, 4.0]), sweep_lib.sweep("seed", [0, 1]))
"""

# latent_dim × seed, the seed varying slowest: members of one latent size are not next to each other.
_LATENT_EXPERIMENT = _BETA_EXPERIMENT.replace(
    'sweep_lib.zipit(sweep_lib.sweep("beta", [1.0, 4.0]), sweep_lib.sweep("seed", [0, 1]))',
    'sweep_lib.product(sweep_lib.sweep("seed", [0, 1, 2]), sweep_lib.sweep("latent_dim", [8, 16]))')


def _experiment(folder, name, text, tiny):
  """(spec, overrides) of experiment `text` written as `<folder>/<name>.py`, with the tiny sweep's overrides but
  those it sweeps."""
  (folder / f"{name}.py").write_text(text)
  _, overrides = tiny
  spec = f"{folder / name}.py:smoke"
  swept = {field for member in sweep_lib.load(spec).values() for field in member}
  return spec, {field: value for field, value in overrides.items() if field not in swept}


@pytest.fixture(scope="module")
def beta(tiny, tmp_path_factory):
  return once_per_session(tmp_path_factory, "launch-beta",
                          lambda folder: _experiment(folder, "beta", _BETA_EXPERIMENT, tiny))


def _params(workdir):
  import orbax.checkpoint as ocp  # pylint: disable=g-import-not-at-top
  options = ocp.CheckpointManagerOptions(read_only=True)  # Maybe a folder the other worker reads too.
  with ocp.CheckpointManager(workdir / "checkpoints", options=options) as manager:
    return manager.restore(manager.latest_step())["params"]


@pytest.fixture(scope="module")
def bundled_sweep(beta, tmp_path_factory):
  """A root where `python -m launch.local --bundle_size=2` ran the two β-VAE members: (root, the launcher's result).
  Tests copy it before they launch in it."""
  spec, overrides = beta

  def make(folder):
    command = [sys.executable, "-m", "launch.local", f"--config={spec}", f"--root={folder / 'beta_sweep'}",
               "--bundle_size=2", *(common.flag(field, value) for field, value in overrides.items())]
    return folder / "beta_sweep", subprocess.run(command, cwd=REPO, text=True, capture_output=True, timeout=300)

  return once_per_session(tmp_path_factory, "launch-bundled", make)


def test_bundled_sweep_finishes_every_member_as_if_each_ran_alone(bundled_sweep, beta, tmp_path):
  root, result = bundled_sweep
  assert result.returncode == 0, result.stderr + result.stdout
  assert "beta1-seed0: finished on the CPU in a bundle of 2" in result.stdout
  first, second = root / "beta1-seed0", root / "beta4-seed1"
  assert "aejax: finished bundle" in (first / common.LOG_FILE).read_text()  # One aejax.bundle process for both.
  assert str(first / common.LOG_FILE) in (second / common.LOG_FILE).read_text()
  with (root / "summary.csv").open() as f:
    rows = list(csv.DictReader(f))
  assert [(row["member"], row["beta"], row["seed"], row["status"], row["step"]) for row in rows] == [
      ("beta1-seed0", "1.0", "0", "finished", "4"), ("beta4-seed1", "4.0", "1", "finished", "4")]
  for row in rows:
    workdir = root / row["member"]
    assert float(row["test/loss"]) == pytest.approx(_test_rows(workdir)[-1]["test/loss"], rel=1e-12)
    assert json.loads((workdir / "summary.json").read_text())["step"] == 4
    saved = json.loads((workdir / "config.json").read_text())
    assert (saved["wandb"]["group"], saved["wandb"]["name"]) == ("beta_sweep", row["member"])
  # The second member alone, as aejax.main trains it (what --bundle_size 1 runs).
  spec, overrides = beta
  sweep = common.resolve(sweep_lib.override(config_lib.from_file(spec), overrides), spec, overrides, root)
  train.train_and_evaluate(sweep_lib.override(sweep.config, sweep.members[1].overrides), tmp_path / "alone")
  bundled, single = _params(second), _params(tmp_path / "alone")
  for x, y in zip(jax.tree.leaves(bundled), jax.tree.leaves(single), strict=True):
    np.testing.assert_allclose(x, y, rtol=1e-4, atol=1e-6)
  assert not np.allclose(jax.tree.leaves(_params(first))[0], jax.tree.leaves(bundled)[0])  # β and seed differ.


def test_relaunched_bundle_skips_finished_members(bundled_sweep, beta, capsys, tmp_path):
  finished, first = bundled_sweep
  assert first.returncode == 0, first.stderr
  root = shutil.copytree(finished, tmp_path / finished.name)
  before = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in root.glob("beta*/metrics.jsonl")}
  assert len(before) == 2
  spec, overrides = beta
  sweep = common.resolve(sweep_lib.override(config_lib.from_file(spec), overrides), spec, overrides, root)
  assert common.plan(sweep, 2, accelerator=False) == []
  assert local.launch(sweep, workers=1, groups=[], bundle_size=2) == {"beta1-seed0": None, "beta4-seed1": None}
  out = capsys.readouterr().out
  assert "beta1-seed0: skipped, already finished" in out and "beta4-seed1: skipped, already finished" in out
  assert {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in root.glob("beta*/metrics.jsonl")} == before


def test_bundles_keep_members_of_different_latent_sizes_apart(tiny, tmp_path):
  spec, overrides = _experiment(tmp_path, "latent", _LATENT_EXPERIMENT, tiny)
  sweep = common.resolve(sweep_lib.override(config_lib.from_file(spec), overrides), spec, overrides, tmp_path / "r")
  units = common.bundles(sweep, sweep.members, 2, accelerator=False)
  assert [[m.run_id for m in unit] for unit in units] == [
      ["seed0-latent_dim8", "seed1-latent_dim8"], ["seed2-latent_dim8"],
      ["seed0-latent_dim16", "seed1-latent_dim16"], ["seed2-latent_dim16"]]
  for unit in units:  # Each can train as one program.
    bundle.check_bundle([sweep_lib.override(sweep.config, m.overrides) for m in unit], [m.workdir for m in unit])
  with pytest.raises(ConfigError, match="differs from member 0 in config.latent_dim"):
    bundle.check_bundle([sweep_lib.override(sweep.config, m.overrides) for m in sweep.members[:2]], ["a", "b"])
  # Automatic: the tiny dense net bundles 4 on the CPU and 64 on a GPU, so each latent size is one bundle here.
  for accelerator in (False, True):
    units = common.bundles(sweep, sweep.members, None, accelerator)
    assert [[m.overrides["latent_dim"] for m in unit] for unit in units] == [[8] * 3, [16] * 3]
  assert [len(u) for u in common.bundles(sweep, sweep.members * 3, None, accelerator=False)] == [3, 3, 3, 3, 3, 3]
  (sweep.members[2].workdir / "checkpoints" / "2").mkdir(parents=True)  # seed1-latent_dim8 stopped at step 2.
  assert [[m.run_id for m in unit] for unit in common.bundles(sweep, sweep.members, 2, accelerator=False)] == [
      ["seed0-latent_dim8", "seed2-latent_dim8"], ["seed0-latent_dim16", "seed1-latent_dim16"],
      ["seed2-latent_dim16"], ["seed1-latent_dim8"]]  # It resumes apart from the others, which start afresh.


@pytest.mark.parametrize("name, fields, cpu, gpu", [
    ("dae", {}, 4, 64),  # The seed's 784-128-64-32: 221,184 multiply-adds per image, small.
    ("dae", {"model.encoder_widths": (256, 64)}, 1, 64),  # 438,272: not small.
    ("vae", {}, 1, 64),
    ("conv_ae", {}, 1, 64),
    ("stacked_ae", {}, 1, 1),  # Its own train step: never bundled automatically.
])
def test_automatic_bundle_size(name, fields, cpu, gpu):
  config = config_lib.from_file(f"{REPO}/experiments/{name}.py")
  config.update_from_flattened_dict(fields)
  assert (bundle.auto_size(config, accelerator=False), bundle.auto_size(config, accelerator=True)) == (cpu, gpu)
