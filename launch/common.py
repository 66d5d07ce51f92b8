"""What the local and SLURM launchers share: the resolved sweep, member workdirs and locks, the finished
check, running one member, and the summary table.

A member runs as a normal `python -m aejax.main` in `<root>/<run id>`, so a rerun resumes it from its
checkpoints. While it runs, the process that started it holds an OS lock on `<root>/<run id>/.lock`
(also held by the run itself, so it outlives a killed launcher and dies with the run): two launchers on
the same sweep never run a member twice.
"""
import contextlib
import csv
import dataclasses
import fcntl
import io
import json
import os
import pathlib
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from typing import Any

from absl import flags
from ml_collections import config_dict, config_flags

from aejax import sweep as sweep_lib
from aejax.errors import ConfigError

CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Experiment config file with a get_sweep() (append ':smoke' for tiny members); "
    "--config.FIELD=VALUE overrides apply to every member.", lock_config=True)
ROOT = flags.DEFINE_string("root", None, "Sweep folder: one workdir per member, <root>/<run id>, and summary.csv.")
NAME = flags.DEFINE_string("name", None, "Sweep name, the W&B group of its members (default: the root's folder name).")
DRY_RUN = flags.DEFINE_bool("dry_run", False, "List the members, their overrides and status; run nothing.")

LOCK_FILE = ".lock"
LOG_FILE = "launch.log"
SUMMARY_FILE = "summary.csv"
_SET_BY_LAUNCHER = ("wandb.group", "wandb.name")


@dataclasses.dataclass(frozen=True)
class Member:
  """One run of the sweep: its id, its overrides, how many steps finish it, and its workdir."""
  run_id: str
  overrides: dict[str, Any]
  num_steps: int
  workdir: pathlib.Path


@dataclasses.dataclass(frozen=True)
class Sweep:
  """A sweep ready to launch: the config every member starts from, the shared overrides, the members."""
  spec: str  # Absolute config path with its argument, e.g. '/repo/experiments/beta_vae.py:smoke'.
  root: pathlib.Path
  name: str  # The W&B group.
  flags: tuple[str, ...]  # `--config.FIELD=VALUE` for every member.
  members: tuple[Member, ...]
  datasets: tuple[tuple[str, str | None, str | None, bool], ...]  # (name, data_dir, manual_dir, download) read.


def flag(field: str, value: Any) -> str:
  """The aejax.main flag that sets `field` to `value`: ('beta', 4.0) -> '--config.beta=4.0'."""
  return f"--config.{field}={value if isinstance(value, str) else repr(value)}"


def resolve(config: config_dict.ConfigDict, spec: str, overrides: dict[str, Any], root: str | pathlib.Path,
            name: str | None = None) -> Sweep:
  """The sweep of config file `spec` ('path.py[:arg]'), whose `config` already has the shared `overrides` applied."""
  path, _, arg = spec.partition(":")
  spec = str(pathlib.Path(path).absolute()) + (f":{arg}" if arg else "")
  members = sweep_lib.load(spec, config)
  swept = {field for member in members.values() for field in member}
  swept_and_shared = sorted(overrides.keys() & swept)
  if swept_and_shared:
    raise ConfigError(f"--config.{swept_and_shared[0]} is swept by {path}'s get_sweep(): drop the flag or change "
                      "the sweep")
  if overrides.keys() & set(_SET_BY_LAUNCHER):
    raise ConfigError("--config.wandb.group and --config.wandb.name are set by the launcher for each member: name "
                      "the sweep with --name instead")
  root = pathlib.Path(root).absolute()
  configs = {run_id: sweep_lib.override(config, o) for run_id, o in members.items()}
  return Sweep(spec=spec, root=root, name=name or root.name,
               flags=tuple(flag(field, value) for field, value in overrides.items()),
               members=tuple(Member(run_id, o, configs[run_id].num_steps, root / run_id)
                             for run_id, o in members.items()),
               datasets=tuple(dict.fromkeys((c.data.name, c.data.data_dir, c.data.manual_dir, c.data.download)
                                            for c in configs.values())))


def prepare_data(sweep: Sweep) -> None:
  """Prepares each dataset the members read once, before they start (at once they would race to write it)."""
  from aejax import datasets  # pylint: disable=g-import-not-at-top  (TFDS is slow to import; not for --dry_run)
  for name, data_dir, manual_dir, download in sweep.datasets:
    datasets.load_split(name, "test", data_dir=data_dir, manual_dir=manual_dir, download=download, num_examples=1)


def from_flags() -> Sweep:
  """The sweep that the launcher's `--config`, `--config.FIELD=VALUE`, `--root` and `--name` flags describe."""
  if CONFIG.value is None or not ROOT.value:
    raise ConfigError("--config and --root are required, e.g. --config experiments/beta_vae.py --root runs/beta_sweep")
  config_flag = flags.FLAGS["config"]
  spec = config_flag.serialize().partition("=")[2]
  return resolve(CONFIG.value, spec, config_flags.get_override_values(config_flag), ROOT.value, NAME.value)


def command(sweep: Sweep, member: Member) -> list[str]:
  """The aejax.main command line of `member`: its workdir, W&B group and name, shared overrides, then its own."""
  return [sys.executable, "-m", "aejax.main", f"--config={sweep.spec}", f"--workdir={member.workdir}", *sweep.flags,
          *(flag(field, value) for field, value in member.overrides.items()),
          flag("wandb.group", sweep.name), flag("wandb.name", member.run_id)]


@contextlib.contextmanager
def lock(workdir: pathlib.Path) -> Iterator[int | None]:
  """Holds `<workdir>/.lock` without waiting: yields its file descriptor, or None if another process holds it.

  The OS drops the lock when every process holding the descriptor has ended, so a crash never leaves it stale.
  """
  workdir.mkdir(parents=True, exist_ok=True)
  fd = os.open(workdir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
  try:
    try:
      fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
      yield None
    else:
      yield fd
  finally:
    os.close(fd)


def is_locked(workdir: pathlib.Path) -> bool:
  """True while some process holds `<workdir>/.lock` (the member is running)."""
  if not (workdir / LOCK_FILE).exists():
    return False
  with lock(workdir) as fd:
    return fd is None


def latest_checkpoint(workdir: pathlib.Path) -> int | None:
  """The step of the newest complete checkpoint (orbax renames a checkpoint to its step when it is written)."""
  steps = [int(p.name) for p in (workdir / "checkpoints").glob("*") if p.name.isdigit()]
  return max(steps, default=None)


def is_finished(member: Member) -> bool:
  """True once the member has checkpointed its last step (it is then evaluated and logged too)."""
  step = latest_checkpoint(member.workdir)
  return step is not None and step >= member.num_steps


def last_metrics(workdir: pathlib.Path) -> dict[str, Any]:
  """The last logged step and the last test metrics in `<workdir>/metrics.jsonl` ({} before the first row)."""
  path = workdir / "metrics.jsonl"
  if not path.exists():
    return {}
  rows = [json.loads(line) for line in path.read_text().splitlines() if line]
  tests = [row for row in rows if any(k.startswith("test/") for k in row)]
  return {**({"step": rows[-1]["step"]} if rows else {}),
          **({k: v for k, v in tests[-1].items() if k.startswith("test/")} if tests else {})}


def run_member(sweep: Sweep, member: Member, env: dict[str, str] | None = None,
               started: Callable[[subprocess.Popen], None] | None = None) -> int | None:
  """Runs `member` to its end under its lock, its output appended to `<workdir>/launch.log`.

  Returns aejax.main's exit code, or None when the member did not run: finished before, or locked by
  another launcher. `started` receives the process (for launchers that forward signals to it).
  """
  with lock(member.workdir) as fd:
    if fd is None or is_finished(member):
      return None
    with (member.workdir / LOG_FILE).open("a") as log:
      process = subprocess.Popen(command(sweep, member), stdout=log, stderr=subprocess.STDOUT, env=env,
                                 pass_fds=(fd,))
      if started is not None:
        started(process)
      return process.wait()


def status(member: Member, exit_code: int | None = None) -> str:
  """failed (exit N), interrupted, finished, running (locked by a launcher), unfinished (has resumable steps) or
  not started; `exit_code` is aejax.main's if it ran here."""
  if exit_code in (128 + signal.SIGINT, 128 + signal.SIGTERM):
    return "interrupted"  # aejax.main checkpointed on the signal: a relaunch resumes it.
  if exit_code:
    return f"failed (exit {exit_code})"  # Even after its last checkpoint (e.g. in its evaluation suites).
  if is_finished(member):
    return "finished"
  if is_locked(member.workdir):
    return "running"
  return "unfinished" if last_metrics(member.workdir) else "not started"


def summary(sweep: Sweep, exit_codes: dict[str, int | None] | None = None) -> list[dict[str, Any]]:
  """One row per member: its id, swept values, status, last step and last test metrics, read from its workdir."""
  exit_codes = exit_codes or {}
  return [{"member": m.run_id, **m.overrides, "status": status(m, exit_codes.get(m.run_id)),
           **last_metrics(m.workdir)} for m in sweep.members]


def _columns(rows: list[dict[str, Any]]) -> list[str]:
  return list(dict.fromkeys(k for row in rows for k in row))


def write_summary(sweep: Sweep, rows: list[dict[str, Any]]) -> pathlib.Path:
  """Writes the rows as `<root>/summary.csv` (one column per key of any row) and returns its path."""
  text = io.StringIO()
  writer = csv.DictWriter(text, fieldnames=_columns(rows))
  writer.writeheader()
  writer.writerows(rows)
  path = sweep.root / SUMMARY_FILE
  sweep.root.mkdir(parents=True, exist_ok=True)
  tmp = path.with_name(f".{SUMMARY_FILE}.{os.getpid()}")
  tmp.write_text(text.getvalue())
  tmp.replace(path)  # Whole or not at all, should two launchers write it at once.
  return path


def table(rows: list[dict[str, Any]]) -> str:
  """The rows as an aligned text table, floats to 4 significant digits."""
  columns = _columns(rows)
  cells = [columns] + [[f"{row[c]:.4g}" if isinstance(row.get(c), float) else str(row.get(c, ""))
                        for c in columns] for row in rows]
  widths = [max(len(line[i]) for line in cells) for i in range(len(columns))]
  return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(line, widths)).rstrip() for line in cells)


def describe(sweep: Sweep) -> str:
  """The dry-run listing: each member's status and the flags it adds to the shared command."""
  width = max(len(m.run_id) for m in sweep.members)
  lines = [f"{sweep.name}: {len(sweep.members)} members of {sweep.spec} under {sweep.root} (W&B group {sweep.name})",
           "  every member: " + " ".join(sweep.flags) if sweep.flags else "  every member: no shared overrides"]
  for m in sweep.members:
    own = " ".join(flag(field, value) for field, value in m.overrides.items())
    lines.append(f"  {m.run_id:<{width}}  {status(m):<11}  {own}")
  return "\n".join(lines)
