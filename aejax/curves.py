"""Sweep curves: a metric of a finished sweep's members against the field the sweep varies.

    python -m aejax.curves --root runs/beta_sweep --x beta --y test/recon_error,test/kl

Reads every member workdir under ROOT (its `config.json`, and the metrics of its `summary.json` and, if
present, `eval.json`), groups the members by the value of `--x` (a dotted config field), and plots the mean of
each `--y` metric over each group (the other swept fields, such as seeds) with its min-max range, one panel
per metric: β against reconstruction error and KL is the rate-distortion curve; λ against error and mean
activation, or the noise factor against `denoise/...psnr...`, the others the issue names. Writes
`ROOT/curves_<x>.png` and the table behind it as `ROOT/curves_<x>.csv`, and logs both (a `wandb.Image` and a
`wandb.Table`) as a W&B run `curves-<x>` of job type "curves" in the members' project and group, in the mode
of their `wandb.mode` unless `--wandb_mode` says otherwise ('disabled': no run), its files under ROOT/wandb
(an offline run uploads later with `wandb sync ROOT/wandb/offline-run-*`).
"""
import csv
import io
import json
import pathlib
import sys
from collections.abc import Sequence
from typing import Any

import numpy as np
from absl import app, flags

from aejax import config as config_lib
from aejax import writers
from aejax.errors import ConfigError


def read_members(root: pathlib.Path) -> list[tuple[dict, dict[str, float]]]:
  """(config, metrics) of each finished member under `root`: its config.json with summary.json and eval.json.

  Finished is as for the launchers (`writers.is_finished`: checkpoint, summary and, if the run names suites,
  eval.json of its last step); the others are left out with a line saying so, as is an eval.json of another step
  than the summary's (evaluated by hand before the run was extended).
  """
  members, unfinished = [], []
  for config_path in sorted(root.glob("*/config.json")):
    workdir, config = config_path.parent, json.loads(config_path.read_text())
    if not writers.is_finished(workdir, config["num_steps"], bool(config.get("eval", {}).get("suites"))):
      unfinished.append(workdir.name)
      continue
    reports = [json.loads((workdir / "summary.json").read_text())]
    if (workdir / "eval.json").exists():
      evaluated = json.loads((workdir / "eval.json").read_text())
      if evaluated["step"] == reports[0]["step"]:
        reports.append(evaluated)
      else:
        print(f"aejax.curves: {workdir.name}: eval.json is of step {evaluated['step']}, its summary of step "
              f"{reports[0]['step']}: its evaluation metrics are left out (rerun python -m aejax.evaluate "
              f"--workdir {workdir})", file=sys.stderr)
    members.append((config, {k: v for report in reports for k, v in report.items() if isinstance(v, (int, float))}))
  if unfinished:
    print(f"aejax.curves: {len(unfinished)} unfinished member(s) left out, e.g. {unfinished[0]}", file=sys.stderr)
  if not members:
    raise ConfigError(f"--root={str(root)!r} holds no finished run (one with a checkpoint and summary.json of its "
                      "last step): point it at a sweep's root after its members have finished")
  return members


def _field(config: dict, field: str) -> Any:
  value = config
  for part in field.split("."):
    if not isinstance(value, dict) or part not in value:
      raise ConfigError(f"--x={field!r} is not a config field of the sweep's runs: use a dotted field such as beta, "
                        "noise_factor or data.num_train")
    value = value[part]
  if isinstance(value, bool) or not isinstance(value, (int, float)):
    raise ConfigError(f"--x={field!r} has the value {value!r}, not a number: curves plot metrics against a numeric "
                      "field; use one such as beta, noise_factor or latent_dim")
  return value


def table(members: Sequence[tuple[dict, dict[str, float]]], x: str, ys: Sequence[str]) -> list[dict[str, float]]:
  """One row per value of `x` (sorted): the value, the member count, and mean, min and max of each metric in `ys`
  over the members that have it (NaN where none has)."""
  known = sorted({k for _, metrics in members for k in metrics})
  missing = [y for y in ys if all(y not in metrics for _, metrics in members)]
  if missing:
    raise ConfigError(f"--y={missing[0]!r} is in no member's summary.json or eval.json: use one of {', '.join(known)}")
  groups: dict[Any, list[dict[str, float]]] = {}
  for config, metrics in members:
    groups.setdefault(_field(config, x), []).append(metrics)
  rows = []
  for value in sorted(groups):
    row = {x: value, "members": len(groups[value])}
    for y in ys:
      values = np.array([m[y] for m in groups[value] if y in m], np.float64)
      stats = (values.mean(), values.min(), values.max()) if values.size else (np.nan,) * 3  # NaN: not plotted.
      row.update({f"{y} {name}": stat for name, stat in zip(("mean", "min", "max"), stats)})
    rows.append(row)
  return rows


def plot(rows: Sequence[dict[str, float]], x: str, ys: Sequence[str], path: pathlib.Path) -> pathlib.Path:
  """One panel per metric: the mean against `x`, the min-max range shaded; saved as a PNG at `path`."""
  import matplotlib  # pylint: disable=g-import-not-at-top  (only for this picture)
  matplotlib.use("Agg")
  from matplotlib import pyplot as plt  # pylint: disable=g-import-not-at-top
  figure, axes = plt.subplots(1, len(ys), figsize=(4.5 * len(ys), 3.8), dpi=100, squeeze=False)
  xs = [row[x] for row in rows]
  for axis, y in zip(axes[0], ys):
    axis.plot(xs, [row[f"{y} mean"] for row in rows], marker="o")
    axis.fill_between(xs, [row[f"{y} min"] for row in rows], [row[f"{y} max"] for row in rows], alpha=0.25)
    axis.set(xlabel=x, ylabel=y)
    if min(xs) > 0 and max(xs) / min(xs) >= 100:
      axis.set_xscale("log")
  figure.tight_layout()
  figure.savefig(path)
  plt.close(figure)
  return path


def log_wandb(root: pathlib.Path, x: str, rows: Sequence[dict[str, Any]], png: pathlib.Path,
              settings: dict[str, Any], mode: str | None = None) -> str | None:
  """Logs the picture and its table as a W&B run of job type 'curves' with the members' W&B `settings` (their
  config's `wandb` fields; `mode`, if given, replaces theirs), its files under `root`; returns the run's URL, or
  its folder when offline (for `wandb sync`), or None when the mode is 'disabled' or the members have no W&B
  settings."""
  mode = writers.wandb_mode(mode or settings.get("mode", "disabled"))
  run = writers.start_wandb(mode, project=settings.get("project"), entity=settings.get("entity"),
                            group=settings.get("group"), tags=list(settings.get("tags", ())), job_type="curves",
                            name=f"curves-{x}", dir=str(root), config={"x": x, "root": str(root)})
  if run is None:
    return None
  import wandb  # pylint: disable=g-import-not-at-top  (imported by start_wandb already)
  columns = list(rows[0])
  run.log({f"curves/{x}": wandb.Image(str(png)),
           f"curves/{x}_table": wandb.Table(columns=columns, data=[[row[c] for c in columns] for row in rows])})
  where = run.url if mode == "online" else str(pathlib.Path(run.dir).parent)
  run.finish()
  return where


def curves(root: str | pathlib.Path, x: str, ys: Sequence[str],
           wandb_mode: str | None = None) -> tuple[pathlib.Path, pathlib.Path, str | None]:
  """Writes `ROOT/curves_<x>.png` and `.csv` for a finished sweep and logs them to W&B (`log_wandb`, with the
  first member's W&B settings: the launchers give all members one project and group); returns the two paths and
  where the W&B run went (None: not logged)."""
  root = pathlib.Path(root)
  members = read_members(root)
  rows = table(members, x, ys)
  csv_path = root / f"curves_{x}.csv"
  text = io.StringIO()
  writer = csv.DictWriter(text, fieldnames=list(rows[0]))
  writer.writeheader()
  writer.writerows(rows)
  writers.write_atomically(csv_path, text.getvalue())
  png = plot(rows, x, ys, root / f"curves_{x}.png")
  return png, csv_path, log_wandb(root, x, rows, png, members[0][0].get("wandb", {}), wandb_mode)


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  if not (_ROOT.value and _X.value and _Y.value):
    sys.exit("aejax.curves: error: --root, --x and --y are required, e.g. --root runs/beta_sweep --x beta "
             "--y test/recon_error,test/kl")
  try:
    png, table_path, run = curves(_ROOT.value, _X.value, _Y.value, _WANDB_MODE.value)
  except ConfigError as e:
    sys.exit(f"aejax.curves: error: {e}")
  print(f"aejax.curves: {png}\n  table: {table_path}" + (f"\n  W&B: {run}" if run else ""))


if __name__ == "__main__":
  _ROOT = flags.DEFINE_string("root", None, "The sweep's root: one finished run's workdir per member below it.")
  _X = flags.DEFINE_string("x", None, "The swept config field on the horizontal axis, e.g. beta.")
  _Y = flags.DEFINE_list("y", None, "Metrics of summary.json / eval.json, e.g. test/recon_error,test/kl.")
  _WANDB_MODE = flags.DEFINE_enum("wandb_mode", None, config_lib.WANDB_MODES, "W&B mode of the curves' run "
                                  "(default: the members' wandb.mode); 'online' without an API key logs offline.")
  app.run(main, flags_parser=config_lib.flags_parser("aejax.curves"))
