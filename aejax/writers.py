"""Where scalars and pictures go: always a JSON-lines file and PNGs in the workdir, W&B when enabled."""
import json
import math
import netrc
import os
import pathlib
import sys
import time
import uuid
from typing import TYPE_CHECKING, Any

from absl import logging
from ml_collections import config_dict

if TYPE_CHECKING:  # aejax.images imports JAX: launchers, which read run files here, start without it.
  from aejax import images


def write_atomically(path: pathlib.Path, text: str) -> None:
  """Writes `text` to `path` whole or not at all: a reader, or a process killed mid-write, never sees a part."""
  tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
  tmp.write_text(text)
  tmp.replace(path)


def to_json(value: Any, **kwargs: Any) -> str:
  """`json.dumps` that writes NaN and ±inf as null: strict JSON, which every reader parses (bare NaN is not)."""

  def finite(v: Any) -> Any:
    if isinstance(v, float):
      return v if math.isfinite(v) else None
    if isinstance(v, dict):
      return {k: finite(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
      return [finite(x) for x in v]
    return v

  return json.dumps(finite(value), allow_nan=False, **kwargs)


def has_wandb_key() -> bool:
  """True if W&B can authenticate without asking (env var or ~/.netrc)."""
  if os.environ.get("WANDB_API_KEY"):
    return True
  try:
    return netrc.netrc().authenticators("api.wandb.ai") is not None
  except (FileNotFoundError, netrc.NetrcParseError):
    return False


def wandb_mode(requested: str) -> str:
  """'online' without credentials becomes 'offline' (sync later with `wandb sync`): never blocks a fresh machine."""
  if requested == "online" and not has_wandb_key():
    logging.warning("No W&B API key found: logging offline to the workdir; run `wandb sync` later to upload.")
    return "offline"
  return requested


def run_name(workdir: pathlib.Path, config: config_dict.ConfigDict) -> str:
  """The run's name in its W&B run and its pictures' titles: `wandb.name`, or the workdir's name."""
  return config.wandb.name or workdir.name


class MetricWriter:
  """Writes `<workdir>/metrics.jsonl` (one JSON object per step) and `<workdir>/images/*.png`, mirrored to W&B.

  A trainer passes the step it starts from: rows past it (written after the last checkpoint) are dropped, so
  the file reads as one uninterrupted run. A reader of a finished run (the evaluation suite) passes None and
  appends; a reader of a run still training passes `rows=False`: its results go to their own files (eval.json,
  pictures), and neither the trainer's metrics.jsonl nor its W&B run is touched.
  """

  def __init__(self, workdir: pathlib.Path, config: config_dict.ConfigDict, start_step: int | None,
               rows: bool = True):
    self.metrics_path = workdir / "metrics.jsonl"
    self.workdir = workdir
    self.images_dir = workdir / "images"
    self.run_name = run_name(workdir, config)
    self._file, self._wandb = None, None
    if not rows:
      return
    if start_step is not None:
      _truncate_after(self.metrics_path, start_step)
    self._file = self.metrics_path.open("a")
    if not _ends_a_line(self.metrics_path):  # A row cut short by a killed process: the next starts on its own line.
      self._file.write("\n")
    self._wandb = _init_wandb(workdir, config)

  def write_scalars(self, step: int, scalars: dict[str, Any]) -> None:
    if self._file is None:
      return
    row = {"step": step, "time": time.time(), **{k: v if isinstance(v, int) else float(v) for k, v in scalars.items()}}
    self._file.write(to_json(row) + "\n")
    self._file.flush()
    if self._wandb is not None:
      self._wandb.log({k: v for k, v in row.items() if k not in ("step", "time")}, step=step)

  def write_images(self, step: int, pictures: dict[str, "images.Grid"]) -> dict[str, pathlib.Path]:
    """Saves each grid as `<name>_<step>.png`, its rows labelled and titled with the run, the step and the name
    (`images.layout`), and returns the paths."""
    from aejax import images  # pylint: disable=g-import-not-at-top,redefined-outer-name  (see TYPE_CHECKING above)
    paths = {name: images.save_png(self.images_dir / f"{name}_{step:07d}.png", grid,
                                   f"{self.run_name}  ·  step {step}  ·  {name}")
             for name, grid in pictures.items()}
    if self._wandb is not None:
      import wandb  # pylint: disable=g-import-not-at-top
      self._wandb.log({f"images/{name}": wandb.Image(str(p)) for name, p in paths.items()}, step=step)
    return paths

  def write_summary(self, summary: dict[str, Any], file_name: str = "summary.json") -> None:
    """Writes `summary` to `<workdir>/<file_name>` (whole or not at all) and into the W&B run's summary."""
    write_atomically(self.workdir / file_name, to_json(summary, indent=2) + "\n")
    if self._wandb is not None:
      self._wandb.summary.update(summary)

  def close(self) -> None:
    if self._file is not None:
      self._file.close()
    if self._wandb is not None:
      self._wandb.finish()
      print(f"aejax: {wandb_destination(self._wandb)}", file=sys.stderr, flush=True)


class NullWriter:
  """`MetricWriter`'s interface writing nothing: for processes other than the first of a multi-process run,
  where process 0 writes the run's files and W&B run."""

  def __init__(self, workdir: pathlib.Path):
    self.metrics_path = workdir / "metrics.jsonl"  # Named in the run's summary, as process 0 writes it.

  def write_scalars(self, step: int, scalars: dict[str, Any]) -> None:
    del step, scalars

  def write_images(self, step: int, pictures: dict[str, "images.Grid"]) -> dict[str, pathlib.Path]:
    del step, pictures
    return {}

  def write_summary(self, summary: dict[str, Any], file_name: str = "summary.json") -> None:
    del summary, file_name

  def close(self) -> None:
    pass


def latest_checkpoint(workdir: pathlib.Path) -> int | None:
  """The step of the run's newest complete checkpoint (orbax renames a checkpoint to its step when it is written)."""
  steps = [int(p.name) for p in (workdir / "checkpoints").glob("*") if p.name.isdigit()]
  return max(steps, default=None)


def report_step(path: pathlib.Path) -> int | None:
  """The step a run's summary.json or eval.json reports, None if it has none yet."""
  return json.loads(path.read_text())["step"] if path.exists() else None


def is_finished(workdir: pathlib.Path, num_steps: int, evaluated: bool) -> bool:
  """Whether the run in `workdir` has checkpointed its last step and written its summary (and, if `evaluated`, its
  eval.json) at or after it: launchers skip such a run, and sweep curves count it. The last step is `num_steps`, or
  the step of a summary that says the run ended at its learner's stopping rule (`converged`)."""
  summary = workdir / "summary.json"
  report = json.loads(summary.read_text()) if summary.exists() else {}
  last = min(num_steps, report["step"]) if report.get("converged") else num_steps
  steps = [latest_checkpoint(workdir), report.get("step")]
  if evaluated:
    steps.append(report_step(workdir / "eval.json"))
  return all(step is not None and step >= last for step in steps)


def read_rows(path: pathlib.Path) -> list[dict[str, Any]]:
  """The rows of a metrics.jsonl file ([] if there is none), leaving out a row cut short by a killed process."""
  if not path.exists():
    return []
  rows = []
  for line in path.read_text().splitlines():
    try:
      rows.append(json.loads(line))
    except json.JSONDecodeError:
      continue
  return rows


def _ends_a_line(path: pathlib.Path) -> bool:
  with path.open("rb") as f:
    if f.seek(0, os.SEEK_END) == 0:
      return True
    f.seek(-1, os.SEEK_END)
    return f.read(1) == b"\n"


def _truncate_after(path: pathlib.Path, step: int) -> None:
  if not path.exists():
    return
  write_atomically(path, "".join(to_json(row) + "\n" for row in read_rows(path) if row["step"] <= step))


def start_wandb(mode: str, **init_args: Any) -> Any:
  """A new W&B run (`wandb.init(mode=mode, **init_args)`), or None when `mode` is 'disabled'.

  Several runs may live in one process (the members of a bundle, a launcher's curves). The mode is also set
  for the process, or an offline run's process still calls W&B's servers (its telemetry) when it exits.
  W&B's own lines (some 30 a run: its version, the run's folder, a history and a summary table) are shown at
  `--verbosity=1` (absl's flag) or more; otherwise W&B is silent, and `wandb_destination` says in one line where
  the run went.
  """
  if mode == "disabled":
    return None
  import wandb  # pylint: disable=g-import-not-at-top  (slow import, only when used)
  silent = logging.get_verbosity() < logging.DEBUG
  wandb.setup(wandb.Settings(mode=mode))
  return wandb.init(mode=mode, reinit="create_new", settings=wandb.Settings(silent=silent), **init_args)


def wandb_destination(run: Any) -> str:
  """Where the W&B `run` went: its page, or the local folder that `wandb sync` uploads."""
  if run.offline:
    return f"W&B run saved offline in {run.settings.sync_dir} (upload it with `wandb sync {run.settings.sync_dir}`)"
  return f"W&B run at {run.url}"


def _init_wandb(workdir: pathlib.Path, config: config_dict.ConfigDict) -> Any:
  mode = wandb_mode(config.wandb.mode)
  if mode == "disabled":
    return None
  id_file = workdir / "wandb_id"
  if not id_file.exists():
    write_atomically(id_file, uuid.uuid4().hex[:12])  # One W&B run per workdir, resumed with it.
  return start_wandb(
      mode, project=config.wandb.project, entity=config.wandb.entity, group=config.wandb.group,
      tags=list(config.wandb.tags), name=run_name(workdir, config), config=config.to_dict(),
      dir=str(workdir), id=id_file.read_text().strip(), resume="allow")


def format_report(title: str, report: dict[str, Any]) -> str:
  """`report` as aligned `name  value` lines under `title`, floats to 4 decimals, as the command lines print it."""
  width = max(len(k) for k in report)
  return "\n".join([title] + [f"  {k:<{width}}  {v:.4f}" if isinstance(v, float) else f"  {k:<{width}}  {v}"
                              for k, v in report.items()])
