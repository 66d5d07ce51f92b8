"""Runs a sweep on a SLURM cluster through submitit: one job array, one bundle of members per task.

    python -m launch.slurm --config experiments/beta_vae.py --root runs/beta_sweep [--partition P]
        [--gpus_per_task 1] [--cpus_per_task 8] [--timeout_min 240] [--array_parallelism 64] [--bundle_size N]
        [--wait] [--local] [--name NAME] [--dry_run] [--config.FIELD=VALUE ...]

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

_PARTITION = flags.DEFINE_string("partition", None, "SLURM partition (default: the cluster's).")
_GPUS = flags.DEFINE_integer("gpus_per_task", 1, "GPUs of each task (one bundle).", lower_bound=0)
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
    sweep = common.from_flags()
    accelerator = _GPUS.value > 0
    print(common.describe(sweep, common.plan(sweep, common.BUNDLE_SIZE.value, accelerator)), flush=True)
    parameters = dict(timeout_min=_TIMEOUT.value, gpus_per_node=_GPUS.value, cpus_per_task=_CPUS.value,
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
    sys.exit(f"launch: error: {e}")
  tasks = len({job.job_id for job in jobs.values()})
  finished = f"; the other {len(sweep.members) - len(jobs)} are finished" if len(jobs) < len(sweep.members) else ""
  print(f"submitted {len(jobs)} of {len(sweep.members)} members in {tasks} task(s){finished}: "
        f"{', '.join(f'{run_id} {job.job_id}' for run_id, job in jobs.items()) or 'none'}", flush=True)
  if not (_WAIT.value or _LOCAL.value):
    return
  common.finish(sweep, wait(jobs))


if __name__ == "__main__":
  app.run(main, flags_parser=config_lib.flags_parser("launch"))
