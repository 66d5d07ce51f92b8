"""Runs a sweep on a SLURM cluster through submitit: one job array, one bundle of members per task.

    python -m launch.slurm --config experiments/beta_vae.py --root runs/beta_sweep [--partition P]
        [--gpus_per_task N] [--cpus_per_task 8] [--timeout_min 240] [--array_parallelism 64] [--bundle_size N]
        [--wait] [--local] [--name NAME] [--dry_run] [--config.FIELD=VALUE ...]

Each task asks for one GPU when the partition's nodes have GPUs (`sinfo`), or with `--local` when this machine
has GPUs that JAX can use (`common.visible_gpus`), else for none, a CPU task; `--gpus_per_task` says otherwise,
and the launcher says which in one line.
Members that differ only in the variant's scalar hyper-parameters, learning rate or seed train in one task
as one vmapped `aejax.bundle` process of up to `--bundle_size` members (default: up to 64 with GPUs; with
`--gpus_per_task 0` up to 4 for small dense nets, else 1); `--bundle_size 1` gives one `aejax.main` per
task. Finished members are not submitted. A task preempted or out of time stops its run with SIGTERM (which
checkpoints every member first) and requeues itself; the requeued task resumes from the checkpoints.
`--wait` waits for the tasks and ends with the summary table (also `<root>/summary.csv`). `--local` runs
the tasks as processes on this machine through submitit's local executor (no SLURM needed) and waits for
them. `--dry_run` lists the members and the bundles. submitit's logs: `<root>/.submitit/`; each run's
output: `<root>/<run id>/launch.log` (a bundle's: its first member's).
"""
import os
import re
import shutil
import signal
import subprocess
import sys
from typing import Any

import submitit
from absl import app, flags

from aejax import config as config_lib
from aejax.errors import ConfigError
from launch import common

flags.adopt_module_key_flags(common)  # --config, --root, --name, --dry_run, --bundle_size: listed by --help.
_PARTITION = flags.DEFINE_string("partition", None, "SLURM partition (default: the cluster's).")
_GPUS = flags.DEFINE_integer("gpus_per_task", None, "GPUs of each task (one bundle) (default: 1 if the partition's "
                             "nodes have GPUs, or with --local this machine, else 0: CPU tasks).", lower_bound=0)
_CPUS = flags.DEFINE_integer("cpus_per_task", 8, "CPU cores of each task.", lower_bound=1)
_TIMEOUT = flags.DEFINE_integer("timeout_min", 240, "Time limit of each task in minutes; a task that reaches it "
                                "checkpoints and is requeued.", lower_bound=1)
_PARALLELISM = flags.DEFINE_integer("array_parallelism", 64, "Tasks of the array running at once.", lower_bound=1)
_WAIT = flags.DEFINE_bool("wait", False, "Wait for every task, then print and write the summary.")
_LOCAL = flags.DEFINE_bool("local", False, "Run the tasks on this machine (submitit's local executor), not on SLURM.")


class BundleTask(submitit.helpers.Checkpointable):
  """One bundle of members as a submitit task; on preemption or timeout it stops the run with a checkpoint and
  requeues."""

  def __init__(self, sweep: common.Sweep, members: tuple[common.Member, ...]):
    self.sweep, self.members = sweep, members
    self._process = None

  def __call__(self) -> dict[str, int | None]:
    """Runs the bundle (see `common.run_bundle`): each member's exit code, or None if it did not run."""
    return common.run_bundle(self.sweep, self.members, started=self._started)

  def _started(self, process: subprocess.Popen) -> None:
    self._process = process

  def checkpoint(self, *args: Any, **kwargs: Any) -> submitit.helpers.DelayedSubmission:
    """Called by submitit on SLURM's timeout or preemption signal: the same bundle, to resume from its workdirs."""
    if self._process is not None and self._process.returncode is None:
      self._process.send_signal(signal.SIGTERM)  # aejax.main or aejax.bundle writes checkpoints, then exits.
      try:
        os.waitpid(self._process.pid, 0)  # Not Popen.wait: __call__ is inside it, below this signal handler.
      except ChildProcessError:
        pass  # Already reaped.
    return super().checkpoint(*args, **kwargs)

  def __getstate__(self) -> dict[str, Any]:
    return {**self.__dict__, "_process": None}  # A running process does not travel with the requeued task.


def executor(sweep: common.Sweep, cluster: str, **parameters: Any) -> submitit.Executor:
  """A submitit executor for the sweep's tasks ('slurm' or 'local'), logging under `<root>/.submitit`.

  `parameters` are submitit's (timeout_min, gpus_per_node, cpus_per_task, slurm_partition, ...).
  """
  if cluster == "slurm" and not (shutil.which("sbatch") and shutil.which("srun")):
    raise ConfigError("sbatch or srun is not on this machine's PATH: run on a SLURM login node, or add --local to "
                      "run the tasks here")
  ex = submitit.AutoExecutor(folder=sweep.root / ".submitit" / "%j", cluster=cluster)
  ex.update_parameters(name=sweep.name, tasks_per_node=1, nodes=1, **parameters)
  return ex


def task_gpus(requested: int | None, local: bool, partition: str | None) -> tuple[int, str]:
  """The GPUs each task asks for, and the line that says so and why: `requested` (`--gpus_per_task`) if given,
  else 1 where the tasks will find GPUs, 0 (CPU tasks) where they will not: with `local`, this machine's GPUs that
  JAX can use (`common.visible_gpus`); on SLURM, the GPUs `sinfo` shows on the partition's nodes; without SLURM
  here (a dry run), this machine's. With `local`, more GPUs than this machine has are a `ConfigError`."""
  if requested is not None:
    gpus = common.visible_gpus() if local else None
    if gpus is not None and requested > len(gpus.ids):
      fix = f"ask for at most {len(gpus.ids)}" if gpus.ids else "leave --gpus_per_task out for CPU tasks"
      raise ConfigError(f"--gpus_per_task={requested} with --local: {gpus.source}: {fix}")
    return requested, _gpus_line(requested, "--gpus_per_task")
  if local or not shutil.which("sinfo"):
    gpus = common.visible_gpus()
    requested, why = min(len(gpus.ids), 1), f"{'' if local else 'no sinfo here; '}this machine: {gpus.source}"
  else:
    requested, why = _partition_gpus(partition)
  return requested, f"{_gpus_line(requested, why)}; --gpus_per_task=N asks for N"


def _gpus_line(gpus: int, why: str) -> str:
  what = f"{gpus} GPU{'s' if gpus > 1 else ''} per task" if gpus else "CPU tasks, no GPU"
  return f"launch.slurm: {what} ({why})"


def _partition_gpus(partition: str | None) -> tuple[int, str]:
  """(1, why) if `sinfo` shows GPUs (a 'gpu' GRES) on the nodes of `partition` (None: all), else (0, why)."""
  where = f"partition {partition}" if partition else "the cluster"
  try:
    gres = subprocess.run(["sinfo", "-h", "-o", "%G", *(["-p", partition] if partition else [])],
                          capture_output=True, text=True, timeout=60, check=True).stdout.split()
  except (OSError, subprocess.SubprocessError) as e:
    return 0, f"sinfo failed ({type(e).__name__}), so no GPU is assumed on {where}"
  found = sorted({g for g in gres if re.search(r"(^|,)gpu\b", g)})
  return (1, f"sinfo: the nodes of {where} have {', '.join(found)}") if found else \
      (0, f"sinfo: no node of {where} has a GPU")


def submit(sweep: common.Sweep, ex: submitit.Executor, bundle_size: int | None = 1,
           accelerator: bool = False) -> dict[str, submitit.Job]:
  """Submits the bundles of the unfinished members as one job array; returns each member's job by run id."""
  units = common.plan(sweep, bundle_size, accelerator)
  if not units:
    return {}
  with ex.batch():
    jobs = [ex.submit(BundleTask(sweep, unit)) for unit in units]
  return {m.run_id: job for unit, job in zip(units, jobs) for m in unit}


def wait(jobs: dict[str, submitit.Job]) -> dict[str, int | None]:
  """Each member's exit code of its run once its task ends (1 for a task that failed outside it, reported here)."""
  exit_codes = {}
  for run_id, job in jobs.items():
    error = job.exception()
    if error is not None:
      print(f"{run_id}: task {job.job_id} failed: {error}", file=sys.stderr)
    exit_codes[run_id] = 1 if error is not None else job.result()[run_id]
  return exit_codes


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  try:
    gpus, said = task_gpus(_GPUS.value, _LOCAL.value, _PARTITION.value)
    sweep = common.from_flags()
    accelerator = gpus > 0
    print(common.describe(sweep, common.plan(sweep, common.BUNDLE_SIZE.value, accelerator)), flush=True)
    print(said, flush=True)
    parameters = dict(timeout_min=_TIMEOUT.value, gpus_per_node=gpus, cpus_per_task=_CPUS.value,
                      slurm_array_parallelism=_PARALLELISM.value)
    if _PARTITION.value:
      parameters["slurm_partition"] = _PARTITION.value
    print(f"each task: {', '.join(f'{k}={v}' for k, v in parameters.items())}", flush=True)
    if common.DRY_RUN.value:
      return
    ex = executor(sweep, "local" if _LOCAL.value else "slurm", **parameters)
    common.prepare_data(sweep)  # Here, where the network is; compute nodes often have none.
    jobs = submit(sweep, ex, common.BUNDLE_SIZE.value, accelerator)
  except ConfigError as e:
    sys.exit(f"launch.slurm: error: {e}")
  tasks = len({job.job_id for job in jobs.values()})
  finished = f"; the other {len(sweep.members) - len(jobs)} are finished" if len(jobs) < len(sweep.members) else ""
  print(f"submitted {len(jobs)} of {len(sweep.members)} members in {tasks} task(s){finished}: "
        f"{', '.join(f'{run_id} {job.job_id}' for run_id, job in jobs.items()) or 'none'}", flush=True)
  if not (_WAIT.value or _LOCAL.value):
    return
  common.finish(sweep, wait(jobs))


if __name__ == "__main__":
  app.run(main, flags_parser=config_lib.flags_parser(
      "launch.slurm", example="python -m launch.slurm --config experiments/beta_vae.py:smoke --root runs/beta_smoke "
      "--local --dry_run"))
