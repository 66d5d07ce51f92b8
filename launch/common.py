"""What the local and SLURM launchers share: the resolved sweep, member workdirs and locks, the finished
check, grouping members into bundles, running one bundle, the summary table, and the curves drawn at the end.

A member trains in `<root>/<run id>`, so a rerun resumes it from its checkpoints. Members whose configs
differ only in per-member fields (`aejax.bundle.bundle_key`: the variant's scalar hyper-parameters, the
learning rate, the seed) are grouped into bundles of at most `--bundle_size` members (default: the
automatic size of `aejax.bundle.auto_size`: on an accelerator 64; on the CPU 4 for small dense nets, else
1). A bundle of one runs as a normal `python -m aejax.main`; a larger one as one `python -m aejax.bundle`,
one vmapped program whose members each write a normal run's workdir. While it runs, the process that
started it holds an OS lock on every member's `<root>/<run id>/.lock` (`aejax.locks`; passed on to the run,
so it outlives a killed launcher and dies with the run): two launchers on the same sweep, or a launcher and
a hand-started run, never train a member twice.
"""
import contextlib
import csv
import dataclasses
import importlib.metadata
import importlib.util
import io
import os
import pathlib
import pkgutil
import re
import signal
import subprocess
import sys
from collections.abc import Callable, Sequence
from typing import Any

from absl import flags
from ml_collections import config_dict, config_flags

from aejax import locks, sweep as sweep_lib, writers
from aejax.errors import ConfigError, check_folder

CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Experiment config file with a get_sweep() (append ':smoke' for tiny members); "
    "--config.FIELD=VALUE overrides apply to every member.", lock_config=True)
ROOT = flags.DEFINE_string("root", None, "Sweep folder: one workdir per member, <root>/<run id>, and summary.csv.")
NAME = flags.DEFINE_string("name", None, "Sweep name, the W&B group of its members (default: the root's folder name).")
DRY_RUN = flags.DEFINE_bool("dry_run", False, "List the members, their overrides and status, and the bundles; "
                             "run nothing.")
BUNDLE_SIZE = flags.DEFINE_integer(
    "bundle_size", None, "Most members per vmapped bundle, one process each; 1: one aejax.main per member "
    "(default: automatic, 64 on GPUs, on the CPU 4 for small dense nets and 1 for others).", lower_bound=1)

LOG_FILE = "launch.log"
EXIT_FILE = "launch.exit"  # In a member's workdir: the exit code of its last process a launcher ran.
SUMMARY_FILE = "summary.csv"
_SET_BY_LAUNCHER = ("wandb.group", "wandb.name")


@dataclasses.dataclass(frozen=True)
class Gpus:
  """The GPUs that a run started on this machine would train on, as a launcher reads them (`visible_gpus`)."""
  ids: tuple[str, ...]  # Their CUDA_VISIBLE_DEVICES ids, one per GPU; () when runs here train on the CPU.
  names: frozenset[str]  # Every id that may name one of them: `ids` and the UUIDs nvidia-smi lists.
  source: str  # What lists them ('nvidia-smi', 'CUDA_VISIBLE_DEVICES=4,6'), or why there are none.


def visible_gpus() -> Gpus:
  """The GPUs a run started here would train on: those CUDA_VISIBLE_DEVICES names, else those `nvidia-smi -L`
  lists, if JAX_PLATFORMS lets JAX use GPUs and a JAX CUDA plugin is installed (what JAX needs to see them).

  Read without starting JAX's GPU backend in the launcher, which would hold memory on the GPUs its runs need
  (the GPUs themselves in exclusive compute mode), and without importing JAX: one `nvidia-smi -L` at most.
  """
  listed = os.environ.get("CUDA_VISIBLE_DEVICES")
  if listed is not None:
    ids = tuple(d.strip() for d in listed.split(",") if d.strip())
    names, source = frozenset(ids), f"CUDA_VISIBLE_DEVICES={listed}"
    if not ids:
      return Gpus((), frozenset(), "no GPU visible: CUDA_VISIBLE_DEVICES is empty")
  else:
    listing, failure = _nvidia_smi()
    if failure:
      return Gpus((), frozenset(), f"no GPU visible: {failure}")
    ids = tuple(str(i) for i in range(sum(line.startswith("GPU ") for line in listing.splitlines())))
    names, source = frozenset(ids) | frozenset(re.findall(r"UUID: ([\w-]+)", listing)), "nvidia-smi"
  if not ids:
    return Gpus((), frozenset(), f"no GPU visible: {source} lists none")
  listed_by = f"the {len(ids)} GPU{'s' if len(ids) > 1 else ''} {source} lists"
  platforms = os.environ.get("JAX_PLATFORMS", "")
  if platforms and not {"cuda", "gpu"} & {p.strip() for p in platforms.split(",")}:
    return Gpus((), frozenset(), f"JAX_PLATFORMS={platforms} keeps JAX off {listed_by}")
  if not _jax_cuda_plugin():
    return Gpus((), frozenset(), f"JAX has no CUDA plugin for {listed_by}: pip install -U 'jax[cuda12]'")
  return Gpus(ids, names, source)


def _nvidia_smi() -> tuple[str, str]:
  """(`nvidia-smi -L`'s listing, '') or ('', why there is none)."""
  try:
    return subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=60, check=True).stdout, ""
  except OSError:
    return "", "nvidia-smi is not installed"
  except subprocess.TimeoutExpired:
    return "", "nvidia-smi -L did not answer in 60 s"
  except subprocess.CalledProcessError as e:
    said = (e.stdout or e.stderr or "").strip().splitlines()
    return "", f"nvidia-smi -L failed{f' ({said[0]})' if said else ''}"


def _jax_cuda_plugin() -> bool:
  """Whether a JAX CUDA plugin is installed (a `jax_plugins` module or entry point JAX loads), without JAX."""
  package = importlib.util.find_spec("jax_plugins")
  names = [m.name for m in pkgutil.iter_modules(package.submodule_search_locations)] if package else []
  names += [e.name for e in importlib.metadata.entry_points(group="jax_plugins")]
  return any("cuda" in name for name in names)


@dataclasses.dataclass(frozen=True)
class Member:
  """One run of the sweep: its id, its overrides, how many steps finish it, its workdir, and whether it ends
  with evaluation suites (`eval.suites`)."""
  run_id: str
  overrides: dict[str, Any]
  num_steps: int
  workdir: pathlib.Path
  evaluated: bool = False


@dataclasses.dataclass(frozen=True)
class Sweep:
  """A sweep ready to launch: the config every member starts from, the shared overrides, the members."""
  spec: str  # Absolute config path with its argument, e.g. '/repo/experiments/beta_vae.py:smoke'.
  config: config_dict.ConfigDict  # The config of `spec` with the shared overrides, before the members' own.
  root: pathlib.Path
  name: str  # The W&B group.
  flags: tuple[str, ...]  # `--config.FIELD=VALUE` for every member.
  members: tuple[Member, ...]
  # (name, data_dir, manual_dir, download, resize) of each data set read.
  datasets: tuple[tuple[str, str | None, str | None, bool, tuple[int, int] | None], ...]


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
  return Sweep(spec=spec, config=config, root=root, name=name or root.name,
               flags=tuple(flag(field, value) for field, value in overrides.items()),
               members=tuple(Member(run_id, o, configs[run_id].num_steps, root / run_id,
                                    bool(configs[run_id].eval.suites)) for run_id, o in members.items()),
               datasets=tuple(dict.fromkeys((c.data.name, c.data.data_dir, c.data.manual_dir, c.data.download,
                                             c.data.resize) for c in configs.values())))


def prepare_data(sweep: Sweep) -> None:
  """Prepares each dataset the members read once, before they start (at once they would race to write it)."""
  # pylint: disable=g-import-not-at-top  (TFDS is slow to import; not for --dry_run)
  from aejax.data import catalog, datasets, ratings
  for name, data_dir, manual_dir, download, resize in sweep.datasets:
    if catalog.is_ratings(name):
      ratings.read(name, manual_dir, data_dir, download)
    else:
      datasets.load_split(name, "test", data_dir=data_dir, manual_dir=manual_dir, download=download, num_examples=1,
                          resize=resize)


def from_flags() -> Sweep:
  """The sweep that the launcher's `--config`, `--config.FIELD=VALUE`, `--root` and `--name` flags describe."""
  if CONFIG.value is None or not ROOT.value:
    raise ConfigError("--config and --root are required, e.g. --config experiments/beta_vae.py --root runs/beta_sweep")
  check_folder(pathlib.Path(ROOT.value), "--root")
  config_flag = flags.FLAGS["config"]
  spec = config_flag.serialize().partition("=")[2]
  return resolve(CONFIG.value, spec, config_flags.get_override_values(config_flag), ROOT.value, NAME.value)


def command(sweep: Sweep, member: Member) -> list[str]:
  """The aejax.main command line of `member`: its workdir, W&B group and name, shared overrides, then its own."""
  return [sys.executable, "-m", "aejax.main", f"--config={sweep.spec}", f"--workdir={member.workdir}", *sweep.flags,
          *(flag(field, value) for field, value in member.overrides.items()),
          flag("wandb.group", sweep.name), flag("wandb.name", member.run_id)]


def bundle_command(sweep: Sweep, members: Sequence[Member]) -> list[str]:
  """The aejax.bundle command line that trains `members` together: shared overrides and the W&B group."""
  return [sys.executable, "-m", "aejax.bundle", f"--config={sweep.spec}", f"--root={sweep.root}",
          f"--members={','.join(m.run_id for m in members)}", *sweep.flags, flag("wandb.group", sweep.name)]


def bundles(sweep: Sweep, members: Sequence[Member], size: int | None,
            accelerator: bool) -> list[tuple[Member, ...]]:
  """`members` grouped into bundles: members of one bundle share `aejax.bundle.bundle_key` and their latest
  checkpoint's step (a bundle resumes its members together), at most `size` of them (None: `aejax.bundle.auto_size`
  of the group on an accelerator or on the CPU), a group split into as few bundles as that allows, of sizes within
  one of each other, in the sweep's order."""
  from aejax import bundle  # pylint: disable=g-import-not-at-top  (JAX is slow to import; not for --help)
  groups: dict[tuple, list[tuple[Member, config_dict.ConfigDict]]] = {}
  for m in members:
    config = sweep_lib.override(sweep.config, m.overrides)
    groups.setdefault((bundle.bundle_key(config), writers.latest_checkpoint(m.workdir)), []).append((m, config))
  units = []
  for group in groups.values():
    parts = -(-len(group) // (size or bundle.auto_size(group[0][1], accelerator)))
    bounds = [-(-len(group) * i // parts) for i in range(parts + 1)]  # Sizes within one of each other.
    units.extend(tuple(m for m, _ in group[a:b]) for a, b in zip(bounds, bounds[1:]))
  return units


def plan(sweep: Sweep, size: int | None, accelerator: bool) -> list[tuple[Member, ...]]:
  """The bundles of the sweep's unfinished members (see `bundles`)."""
  return bundles(sweep, [m for m in sweep.members if not is_finished(m)], size, accelerator)


def is_finished(member: Member) -> bool:
  """True once the member has checkpointed its last step and written its summary (and eval.json, if it runs
  evaluation suites) for that step (`aejax.writers.is_finished`); a member killed in between is rerun, which only
  evaluates."""
  return writers.is_finished(member.workdir, member.num_steps, member.evaluated)


def last_metrics(workdir: pathlib.Path) -> dict[str, Any]:
  """The last logged step and the last test metrics in `<workdir>/metrics.jsonl` ({} before the first row)."""
  rows = writers.read_rows(workdir / "metrics.jsonl")
  tests = [row for row in rows if any(k.startswith("test/") for k in row)]
  return {**({"step": rows[-1]["step"]} if rows else {}),
          **({k: v for k, v in tests[-1].items() if k.startswith("test/")} if tests else {})}


def run_bundle(sweep: Sweep, members: Sequence[Member], env: dict[str, str] | None = None,
               started: Callable[[subprocess.Popen], None] | None = None) -> dict[str, int | None]:
  """Runs `members` to their end as one process under all their locks: aejax.main for one, aejax.bundle for more.

  Members finished before or locked by another run or launcher are left out and the rest train. The output is
  appended to the first one's `<workdir>/launch.log` (the others' say where it is). Returns each member's exit
  code, that of the process, or None when it did not run. `started` receives the process (for launchers that
  forward signals to it).
  """
  with contextlib.ExitStack() as held:
    fds = {m.run_id: held.enter_context(locks.lock(m.workdir, patience_s=0.2)) for m in members}
    todo = [m for m in members if fds[m.run_id] is not None and not is_finished(m)]
    if not todo:
      return {m.run_id: None for m in members}
    log_path = todo[0].workdir / LOG_FILE
    for m in todo[1:]:
      with (m.workdir / LOG_FILE).open("a") as note:
        note.write(f"launch: training in a bundle with {', '.join(t.run_id for t in todo if t != m)}; "
                   f"the output is in {log_path}\n")
    for m in todo:  # An exit code from an earlier process is no longer this member's state.
      (m.workdir / EXIT_FILE).unlink(missing_ok=True)
    with log_path.open("a") as log:
      process = subprocess.Popen(command(sweep, todo[0]) if len(todo) == 1 else bundle_command(sweep, todo),
                                 stdout=log, stderr=subprocess.STDOUT, env=env,
                                 pass_fds=tuple(fds[m.run_id] for m in todo))  # The run holds them on.
      if started is not None:
        started(process)
      code = process.wait()
      for m in todo:  # Read by whichever launcher writes the sweep's summary last (`status`).
        writers.write_atomically(m.workdir / EXIT_FILE, f"{code}\n")
  return {m.run_id: code if m in todo else None for m in members}


def _last_exit_code(member: Member) -> int | None:
  """The exit code of the member's last process a launcher ran (`EXIT_FILE`), None if none has."""
  try:
    return int((member.workdir / EXIT_FILE).read_text())
  except (OSError, ValueError):
    return None


def status(member: Member, exit_code: int | None = None) -> str:
  """finished, running (locked by a run or a launcher), interrupted, failed (exit N), unfinished (has resumable
  steps) or not started; `exit_code` is aejax.main's if it ran here (negative: the signal that ended it), else
  that of the member's last launched process, from its workdir (another launcher's, on the same root)."""
  if is_finished(member):
    return "finished"  # All it writes is written, whatever ended its process afterwards.
  if exit_code is None:
    if locks.is_locked(member.workdir):
      return "running"
    exit_code = _last_exit_code(member)
  if exit_code in (128 + signal.SIGINT, 128 + signal.SIGTERM, -signal.SIGINT, -signal.SIGTERM):
    return "interrupted"  # Stopped by a signal (with a checkpoint, in its training loop): a relaunch resumes it.
  if exit_code:
    return f"failed (exit {exit_code})"  # Even after its last checkpoint (e.g. in its evaluation suites).
  if locks.is_locked(member.workdir):
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
  writers.write_atomically(path, text.getvalue())  # Whole or not at all, should two launchers write it at once.
  return path


def _reason(error: Exception) -> str:
  return (str(error).strip().splitlines() or [type(error).__name__])[0]


def draw_curves(sweep: Sweep, rows: list[dict[str, Any]]) -> list[str]:
  """Draws the pictures of the config file's `get_curves()` (`aejax.curves`: PNG, CSV, W&B run) once every member
  has finished; returns a `curves: ...` line per picture, or one saying why there is none. Never raises: a sweep
  succeeds or fails by its members, not by its pictures."""
  unfinished = [row["member"] for row in rows if row["status"] != "finished"]
  if unfinished:
    return [f"curves: not drawn, {len(unfinished)} of {len(rows)} members did not finish (e.g. {unfinished[0]})"]
  try:
    declared = sweep_lib.load_curves(sweep.spec)
  except Exception as e:  # pylint: disable=broad-except  (reported, not raised: see above)
    return [f"curves: {_reason(e)}"]
  if not declared:
    return [f"curves: none declared (add get_curves() to {sweep.spec.partition(':')[0]} to draw some)"]
  from aejax import curves  # pylint: disable=g-import-not-at-top  (numpy, matplotlib and W&B: only here)
  lines = []
  for x, ys in declared:
    try:
      png, csv_path, run = curves.curves(sweep.root, x, ys)
    except Exception as e:  # pylint: disable=broad-except  (W&B's errors too)
      lines.append(f"curves: {x}: {_reason(e)}")
    else:
      lines.append(f"curves: {png} (table {csv_path}" + (f", W&B {run})" if run else ")"))
  return lines


def finish(sweep: Sweep, exit_codes: dict[str, int | None]) -> None:
  """Prints the sweep's summary table, writes `<root>/summary.csv`, draws the declared curves of a finished sweep
  (`draw_curves`), and exits 1 if a member failed or was stopped."""
  with locks.lock(sweep.root, patience_s=30.0) as held:  # Two launchers on one root: the last to write reads last.
    if held is None:
      print(f"launch: {sweep.root}'s lock stayed held for 30 s: writing its summary without it", flush=True)
    rows = summary(sweep, exit_codes)
    path = write_summary(sweep, rows)
  print(f"{table(rows)}\nsummary: {path}", flush=True)
  print(*draw_curves(sweep, rows), sep="\n")
  if any(row["status"].startswith(("failed", "interrupted")) for row in rows):
    sys.exit(1)


def table(rows: list[dict[str, Any]]) -> str:
  """The rows as an aligned text table, floats to 4 significant digits."""
  columns = _columns(rows)
  cells = [columns] + [[f"{row[c]:.4g}" if isinstance(row.get(c), float) else str(row.get(c, ""))
                        for c in columns] for row in rows]
  widths = [max(len(line[i]) for line in cells) for i in range(len(columns))]
  return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(line, widths)).rstrip() for line in cells)


def describe(sweep: Sweep, units: Sequence[tuple[Member, ...]] = ()) -> str:
  """The dry-run listing: each member's status and the flags it adds to the shared command, then the bundles of
  more than one member among `units`."""
  width = max(len(m.run_id) for m in sweep.members)
  lines = [f"{sweep.name}: {len(sweep.members)} members of {sweep.spec} under {sweep.root} (W&B group {sweep.name})",
           "  every member: " + " ".join(sweep.flags) if sweep.flags else "  every member: no shared overrides"]
  for m in sweep.members:
    own = " ".join(flag(field, value) for field, value in m.overrides.items())
    lines.append(f"  {m.run_id:<{width}}  {status(m):<11}  {own}")
  bundled = [unit for unit in units if len(unit) > 1]
  lines.append(f"{len(units)} process(es) for {sum(map(len, units))} unfinished members, {len(bundled)} of them "
               "vmapped bundles" + "".join(f"\n  bundle {k}: {', '.join(m.run_id for m in unit)}"
                                           for k, unit in enumerate(bundled, 1)))
  return "\n".join(lines)
