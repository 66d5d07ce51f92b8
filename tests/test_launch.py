"""The sweep launchers: a local sweep end to end, relaunch and locks, devices, dry run, submitit's local executor."""
import csv
import dataclasses
import json
import os
import pathlib
import pickle
import signal
import subprocess
import sys
import threading
import time

import pytest

from aejax import config as config_lib
from aejax import sweep as sweep_lib
from aejax.errors import ConfigError
from launch import common, local, slurm

from conftest import REPO

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
  """(config spec, shared overrides) of the two-member sweep on the session's MNIST."""
  folder = tmp_path_factory.mktemp("tiny")
  (folder / "tiny.py").write_text(_EXPERIMENT)
  overrides = {"num_steps": 4, "data.num_train": 256, "data.num_test": 256, "eval_batch_size": 256,
               "model.encoder_widths": (32,), "latent_dim": 8, "num_images": 2, "data.data_dir": str(data_dir),
               "data.manual_dir": str(mnist_manual_dir),
               "compilation_cache_dir": str(tmp_path_factory.getbasetemp() / "launch-jax-cache")}
  return f"{folder / 'tiny.py'}:smoke", overrides


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
  """A root where `python -m launch.local` ran the two members to their end: (root, the launcher's result)."""
  root = tmp_path_factory.mktemp("sweeps") / "tiny_sweep"
  return root, _launch_local(tiny, root)


def test_local_sweep_runs_every_member_and_writes_the_summary(finished_sweep):
  root, result = finished_sweep
  assert result.returncode == 0, result.stderr + result.stdout
  with (root / "summary.csv").open() as f:
    rows = list(csv.DictReader(f))
  assert [row["member"] for row in rows] == ["seed0", "seed1"]
  for row, seed in zip(rows, (0, 1)):
    workdir = root / row["member"]
    assert (row["seed"], row["status"], row["step"]) == (str(seed), "finished", "4")
    assert common.latest_checkpoint(workdir) == 4
    last_test = _test_rows(workdir)[-1]
    assert last_test["step"] == 4 and float(row["test/loss"]) == pytest.approx(last_test["test/loss"], rel=1e-12)
    saved = json.loads((workdir / "config.json").read_text())  # What the run logs to W&B as its config.
    assert (saved["seed"], saved["num_steps"], saved["model"]["encoder_widths"]) == (seed, 4, [32])
    assert (saved["wandb"]["group"], saved["wandb"]["name"]) == ("tiny_sweep", f"seed{seed}")
  assert rows[0]["test/loss"] != rows[1]["test/loss"]  # Different seeds, different runs.
  assert "seed0" in result.stdout and "finished" in result.stdout and str(root / "summary.csv") in result.stdout


def test_relaunch_skips_finished_members(finished_sweep, tiny):
  root, first = finished_sweep
  assert first.returncode == 0, first.stderr
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


def test_held_lock_makes_a_second_launcher_skip_the_member(tiny, tmp_path):
  sweep = _resolve(tiny, tmp_path / "locked")
  with common.lock(sweep.members[0].workdir) as fd0, common.lock(sweep.members[1].workdir) as fd1:
    assert fd0 is not None and fd1 is not None
    with common.lock(sweep.members[0].workdir) as again:
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
       f"fd = os.open({str(tmp_path / common.LOCK_FILE)!r}, os.O_RDWR | os.O_CREAT)\n"
       "fcntl.flock(fd, fcntl.LOCK_EX)\nprint('held', flush=True)\ntime.sleep(120)"],
      stdout=subprocess.PIPE, text=True)
  try:
    assert holder.stdout.readline().strip() == "held"
    assert common.is_locked(tmp_path)
  finally:
    holder.kill()
    holder.wait()
  assert not common.is_locked(tmp_path)


def test_workers_run_at_once_each_on_its_device_group_and_each_member_once(tiny, tmp_path):
  sweep = _resolve(tiny, tmp_path / "fake")
  members = tuple(dataclasses.replace(sweep.members[0], run_id=f"m{i}", workdir=tmp_path / f"m{i}") for i in range(7))
  sweep = dataclasses.replace(sweep, members=members)
  calls, lock, all_three = [], threading.Lock(), threading.Barrier(3, timeout=30)

  def runner(sweep, member, env=None, started=None):  # pylint: disable=unused-argument
    with lock:
      calls.append((threading.get_ident(), member.run_id, env["CUDA_VISIBLE_DEVICES"]))
      first_round = len(calls) <= 3
    if first_round:
      all_three.wait()  # Returns only once three members run at the same time.
    return 0

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
  exit_codes = local.launch(sweep, workers=1, groups=[], runner=lambda s, member, **_: codes[member.run_id])
  assert [row["status"] for row in common.summary(sweep, exit_codes)] == ["failed (exit 1)", "interrupted"]


def test_device_groups(monkeypatch):
  assert local.device_groups("0+1,2+3") == ["0,1", "2,3"]
  assert local.device_groups("3") == ["3"]
  monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "4,6")
  assert local.device_groups(None) == ["4", "6"]
  monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
  monkeypatch.setenv("PATH", "")  # No nvidia-smi: the CPU.
  assert local.device_groups(None) == []


def test_dry_run_lists_members_and_runs_nothing(tmp_path):
  root = tmp_path / "beta_sweep"
  result = subprocess.run([sys.executable, "-m", "launch.local", "--config=experiments/beta_vae.py:smoke",
                           f"--root={root}", "--dry_run", "--config.num_steps=7"],
                          cwd=REPO, text=True, capture_output=True, timeout=120)
  assert result.returncode == 0, result.stderr
  lines = result.stdout.splitlines()
  assert "15 members" in lines[0] and "(W&B group beta_sweep)" in lines[0]
  assert lines[1] == "  every member: --config.num_steps=7"
  assert lines[2].split() == ["beta1-seed0", "not", "started", "--config.beta=1", "--config.seed=0"]
  assert lines[16].split() == ["beta16-seed2", "not", "started", "--config.beta=16", "--config.seed=2"]
  assert not root.exists()


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
      "launch: error: --config and --root are required, e.g. --config experiments/beta_vae.py --root runs/beta_sweep"]


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


def test_slurm_gets_one_job_array_with_a_member_per_task(tiny, tmp_path, monkeypatch):
  bin_dir, script = tmp_path / "bin", tmp_path / "submitted.sh"
  bin_dir.mkdir()
  (bin_dir / "sbatch").write_text(f"#!/bin/sh\ncp \"$1\" {script}\necho Submitted batch job 4242\n")
  (bin_dir / "srun").write_text("#!/bin/sh\nexit 1\n")
  for tool in bin_dir.iterdir():
    tool.chmod(0o755)
  monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
  sweep = _resolve(tiny, tmp_path / "array_sweep")
  ex = slurm.executor(sweep, "slurm", timeout_min=30, gpus_per_node=1, cpus_per_task=4, slurm_array_parallelism=1,
                      slurm_partition="gpu")
  jobs = slurm.submit(sweep, ex)
  assert {run_id: job.job_id for run_id, job in jobs.items()} == {"seed0": "4242_0", "seed1": "4242_1"}
  text = script.read_text()
  for line in ("--array=0-1%1", "--partition=gpu", "--gpus-per-node=1", "--cpus-per-task=4", "--time=30",
               "--job-name=array_sweep", "--signal=USR2@"):
    assert f"#SBATCH {line}" in text
  tasks = [pickle.loads(pathlib.Path(job.paths.submitted_pickle).read_bytes()).function for job in jobs.values()]
  assert [task.member for task in tasks] == list(sweep.members)


def test_checkpoint_stops_the_run_and_requeues_the_same_member(tiny, tmp_path):
  sweep = _resolve(tiny, tmp_path / "requeue")
  task = slurm.MemberTask(sweep, sweep.members[1])
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
  assert isinstance(requeued, slurm.MemberTask) and requeued.member == sweep.members[1]
  assert requeued._process is None  # pylint: disable=protected-access
