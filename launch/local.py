"""Runs a sweep on this machine, one bundle of members at a time per worker.

    python -m launch.local --config experiments/beta_vae.py --root runs/beta_sweep [--workers N] [--devices 0,1]
        [--bundle_size N] [--name NAME] [--dry_run] [--config.FIELD=VALUE ...]

One worker per GPU that runs here would train on (`common.visible_gpus`: those CUDA_VISIBLE_DEVICES or else
`nvidia-smi -L` lists, when JAX can use them), or per `--devices` group ('0+1,2+3' gives two workers with two GPUs
each), else `--workers` on the CPU; the launcher says which in one line. Members that differ only in the variant's
scalar hyper-parameters, learning rate or seed train as one vmapped `aejax.bundle` process of up to `--bundle_size`
members (default: up to 64 on GPUs; on the CPU up to 4 for small dense nets such as dae.py's, else 1, as bundling
larger nets there is no faster); `--bundle_size 1` runs each member as a normal `aejax.main`. Either way each member
writes a normal run's workdir. Rerunning skips finished members and resumes unfinished ones; a member another run or
launcher is at work on is skipped (its bundle trains the rest). SIGINT or SIGTERM stops the runs with a checkpoint.
Ends with a table of the members (also `<root>/summary.csv`); exits 1 if a member failed or was interrupted.
`--dry_run` lists the members and the bundles.
"""
import functools
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable

from absl import app, flags

from aejax import config as config_lib
from aejax.errors import ConfigError
from launch import common

flags.adopt_module_key_flags(common)  # --config, --root, --name, --dry_run, --bundle_size: listed by --help.
_WORKERS = flags.DEFINE_integer("workers", None, "Members run at once (default: one per GPU group, else 1).",
                                lower_bound=1)
_DEVICES = flags.DEFINE_string("devices", None, "CUDA_VISIBLE_DEVICES of each worker, comma-separated: '0,1', or "
                               "'0+1,2+3' for two GPUs per worker (default: every GPU visible, one each).")

# common.run_bundle's signature: (sweep, members, env=, started=) -> {run id: exit code or None}.
Runner = Callable[..., dict[str, int | None]]


def device_groups(devices: str | None, gpus: common.Gpus) -> list[str]:
  """The CUDA_VISIBLE_DEVICES value of each worker: the groups of `devices` ('0+1,2+3'), else one per GPU of
  `gpus`; [] for the CPU. Naming a GPU that is not among `gpus` is a `ConfigError`."""
  if devices is None:
    return list(gpus.ids)
  groups = [group.replace("+", ",") for group in devices.split(",")]
  if not gpus.ids:
    raise ConfigError(f"--devices={devices}: {gpus.source}: leave --devices out to train on the CPU "
                      "(--workers N trains N members at once)")
  missing = [d for group in groups for d in group.split(",") if d not in gpus.names]
  if missing:
    raise ConfigError(f"--devices={devices}: GPU {missing[0]!r} is not there ({gpus.source} lists "
                      f"{', '.join(gpus.ids)}): name GPUs among them, or leave --devices out to use them all")
  return groups


def where(workers: int, groups: list[str], gpus: common.Gpus, devices: str | None) -> str:
  """The line that says where the workers train: 'launch.local: 2 workers on GPUs 0 | 1 (nvidia-smi)'."""
  count = f"{workers} worker{'s' if workers > 1 else ''}"
  if not groups:
    return f"launch.local: {count} on the CPU ({gpus.source})"
  source = "--devices" if devices is not None else gpus.source
  return f"launch.local: {count} on GPU{'s' if len(groups) > 1 else ''} {' | '.join(groups)} ({source})"


def launch(sweep: common.Sweep, workers: int, groups: list[str], runner: Runner = common.run_bundle,
           bundle_size: int | None = 1) -> dict[str, int | None]:
  """Runs the unfinished members in bundles of at most `bundle_size` (None: automatic) on `workers` threads
  (worker i on device group i mod len(groups)).

  `runner` runs one bundle; it is the one place a launcher decides how. SIGINT or SIGTERM stops taking new
  bundles and sends SIGTERM to the running ones, which checkpoint and exit. Returns each member's exit code
  (None: not run here, as finished before or locked by another run or launcher).
  """
  exit_codes, running, stop = {}, {}, threading.Event()
  pending: queue.SimpleQueue[tuple[common.Member, ...]] = queue.SimpleQueue()
  units = common.plan(sweep, bundle_size, accelerator=bool(groups))
  for unit in units:
    pending.put(unit)

  def started(key: str, process: subprocess.Popen) -> None:
    running[key] = process
    if stop.is_set():  # Interrupted while it was starting.
      process.terminate()

  def report(member: common.Member, code: int | None, how: str = "") -> None:
    exit_codes[member.run_id] = code
    if code is None:
      why = "already finished" if common.is_finished(member) else "in use by another run or launcher"
      print(f"{member.run_id}: skipped, {why}", flush=True)
    else:
      print(f"{member.run_id}: {common.status(member, code)} {how} (log: {member.workdir / common.LOG_FILE})",
            flush=True)

  def work(worker: int) -> None:
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": groups[worker % len(groups)]} if groups else None
    where = f"GPU {env['CUDA_VISIBLE_DEVICES']}" if env else "the CPU"
    while not stop.is_set():
      try:
        unit = pending.get_nowait()
      except queue.Empty:
        return
      start = time.perf_counter()
      codes = runner(sweep, unit, env=env, started=functools.partial(started, unit[0].run_id))
      running.pop(unit[0].run_id, None)
      ran = sum(code is not None for code in codes.values())
      how = f"on {where}{f' in a bundle of {ran}' if ran > 1 else ''} in {time.perf_counter() - start:.0f} s"
      for member in unit:
        report(member, codes[member.run_id], how)

  def interrupt(signum: int, frame) -> None:  # pylint: disable=unused-argument
    stop.set()
    for process in list(running.values()):
      process.terminate()

  planned = {m.run_id for unit in units for m in unit}
  for member in sweep.members:
    if member.run_id not in planned:
      report(member, None)
  threads = [threading.Thread(target=work, args=(i,), daemon=True) for i in range(workers)]
  previous = {s: signal.signal(s, interrupt) for s in (signal.SIGINT, signal.SIGTERM)}
  try:
    for thread in threads:
      thread.start()
    for thread in threads:
      thread.join()
  finally:
    for s, handler in previous.items():
      signal.signal(s, handler)
  return exit_codes


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  try:
    gpus = common.visible_gpus()
    groups = device_groups(_DEVICES.value, gpus)
    sweep = common.from_flags()
    workers = _WORKERS.value or len(groups) or 1
    units = common.plan(sweep, common.BUNDLE_SIZE.value, accelerator=bool(groups))
    print(f"{common.describe(sweep, units)}\n{where(workers, groups, gpus, _DEVICES.value)}", flush=True)
    if common.DRY_RUN.value:
      return
    common.prepare_data(sweep)
  except ConfigError as e:
    sys.exit(f"launch.local: error: {e}")
  common.finish(sweep, launch(sweep, workers, groups, bundle_size=common.BUNDLE_SIZE.value))


if __name__ == "__main__":
  app.run(main, flags_parser=config_lib.flags_parser(
      "launch.local", example="python -m launch.local --config experiments/beta_vae.py:smoke --root runs/beta_smoke "
      "--dry_run"))
