"""Sweep curves: metrics of a finished sweep's members against the config field the sweep varies.

    python -m aejax.curves --root runs/beta_vae_sweep --x beta --y test/recon_error,test/kl

Reads every finished member workdir under ROOT (its `config.json`, `summary.json` and, if present, `eval.json`),
groups the members by the value of `--x` (a dotted config field) and draws, one panel per `--y` metric, the mean
over each group (the other swept fields, such as seeds) with its min-max range. Values in powers of two (β = 1, 2,
4, 8, 16) get a log2 axis; positive values spanning two decades or more (λ = 0.01 ... 10) a log10 axis. A β sweep
of VAEs also gets the rate-distortion plane: the KL (rate, `test/kl`) against the reconstruction term -log p(x|z)
(distortion, `test/recon`), one point per β. Other pairs: λ against `test/recon_error` and the mean activation,
or the noise factor against `denoise/...psnr...`.

Writes `ROOT/curves_<x>.png` and the table behind it as `ROOT/curves_<x>.csv`, and logs both (a `wandb.Image`
and a `wandb.Table`) as a W&B run `curves-<x>` of job type "curves" in the members' project and group, in the
mode of their `wandb.mode` unless `--wandb_mode` says otherwise ('disabled': no run), its files under ROOT/wandb
(an offline run uploads later with `wandb sync ROOT/wandb/offline-run-*`). The launchers draw the curves a
sweep's experiment file declares (`get_curves()`) when its last member finishes.
"""
import csv
import io
import json
import pathlib
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from absl import app, flags

from aejax import config as config_lib
from aejax import writers
from aejax.errors import ConfigError

if TYPE_CHECKING:
  from matplotlib.figure import Figure

RATE, DISTORTION = "test/kl", "test/recon"  # A VAE's KL and reconstruction term -log p(x|z), in nats per image.


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


def x_scale(values: Sequence[float]) -> str:
  """The horizontal axis for the swept `values`: 'log2' when they are powers of two (β = 1, 2, 4, 8, 16), 'log'
  when they are positive and span two decades or more (λ = 0.01 ... 10), else 'linear'."""
  values = np.unique(np.asarray(values, np.float64))
  if len(values) < 2 or values.min() <= 0:
    return "linear"
  exponents = np.log2(values)
  if np.allclose(exponents, np.round(exponents)):
    return "log2"
  return "log" if values.max() / values.min() >= 100 else "linear"


def has_rate_distortion(members: Sequence[tuple[dict, dict[str, float]]], x: str) -> bool:
  """Whether the sweep's curves get the rate-distortion plane: a β sweep whose members report RATE and DISTORTION."""
  return x == "beta" and all(any(m in metrics for _, metrics in members) for m in (RATE, DISTORTION))


def figure(rows: Sequence[dict[str, float]], x: str, ys: Sequence[str], rate_distortion: bool = False,
           title: str = "") -> "Figure":
  """One panel per metric: its mean against `x`, the min-max range over the members shaded; with `rate_distortion`,
  a last panel of the rows' mean RATE against their mean DISTORTION, one labelled point per β, the members' ranges
  as error bars. A Figure of its own, outside pyplot's global state."""
  from matplotlib.figure import Figure  # pylint: disable=g-import-not-at-top  (only for this picture)
  panels = len(ys) + rate_distortion
  fig = Figure(figsize=(4.5 * panels, 4.0), dpi=100, layout="constrained")
  axes = fig.subplots(1, panels, squeeze=False)[0]
  xs = [row[x] for row in rows]
  scale = x_scale(xs)
  for axis, y in zip(axes, ys):
    axis.plot(xs, [row[f"{y} mean"] for row in rows], marker="o")
    axis.fill_between(xs, [row[f"{y} min"] for row in rows], [row[f"{y} max"] for row in rows], alpha=0.25)
    axis.set(xlabel={"log2": f"{x} (log2 scale)", "log": f"{x} (log scale)"}.get(scale, x), ylabel=y)
    if scale != "linear":
      axis.set_xscale("log", base=2 if scale == "log2" else 10)
      axis.set_xticks(xs, [f"{v:g}" for v in xs])
      axis.minorticks_off()
    axis.grid(alpha=0.3)
  if rate_distortion:
    axis = axes[-1]
    points = [row for row in rows if np.isfinite(row[f"{RATE} mean"]) and np.isfinite(row[f"{DISTORTION} mean"])]
    distortion = np.array([[row[f"{DISTORTION} {s}"] for row in points] for s in ("mean", "min", "max")])
    rate = np.array([[row[f"{RATE} {s}"] for row in points] for s in ("mean", "min", "max")])
    axis.errorbar(distortion[0], rate[0], xerr=[distortion[0] - distortion[1], distortion[2] - distortion[0]],
                  yerr=[rate[0] - rate[1], rate[2] - rate[0]], marker="o", capsize=3)
    for row, d, r in zip(points, distortion[0], rate[0]):
      axis.annotate(f"β = {row[x]:g}", (d, r), textcoords="offset points", xytext=(6, 6))
    axis.set(xlabel=f"distortion: {DISTORTION} (nats)", ylabel=f"rate: {RATE} (nats)", title="rate-distortion plane")
    axis.margins(0.15)
    axis.grid(alpha=0.3)
  if title:
    fig.suptitle(title, fontsize="medium", wrap=True)
  return fig


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
  """Writes `ROOT/curves_<x>.png` (`figure`, with the rate-distortion plane for a β sweep of VAEs, whose table then
  has RATE and DISTORTION too) and `.csv` for a finished sweep and logs them to W&B (`log_wandb`, with the first
  member's W&B settings: the launchers give all members one project and group); returns the two paths and where
  the W&B run went (None: not logged)."""
  root = pathlib.Path(root)
  members = read_members(root)
  rate_distortion = has_rate_distortion(members, x)
  rows = table(members, x, list(ys) + [m for m in (RATE, DISTORTION) if rate_distortion and m not in ys])
  csv_path = root / f"curves_{x}.csv"
  text = io.StringIO()
  writer = csv.DictWriter(text, fieldnames=list(rows[0]))
  writer.writeheader()
  writer.writerows(rows)
  writers.write_atomically(csv_path, text.getvalue())
  png = root / f"curves_{x}.png"
  title = f"{root.name}: {len(members)} runs, their mean and range at each {x}"
  figure(rows, x, ys, rate_distortion, title).savefig(png)
  return png, csv_path, log_wandb(root, x, rows, png, members[0][0].get("wandb", {}), wandb_mode)


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  if not (_ROOT.value and _X.value and _Y.value):
    sys.exit("aejax.curves: error: --root, --x and --y are required, e.g. --root runs/beta_vae_sweep --x beta "
             "--y test/recon_error,test/kl")
  try:
    png, table_path, run = curves(_ROOT.value, _X.value, _Y.value, _WANDB_MODE.value)
  except ConfigError as e:
    sys.exit(f"aejax.curves: error: {e}")
  print(f"aejax.curves: {png}\n  table: {table_path}" + (f"\n  W&B: {run}" if run else ""))


if __name__ == "__main__":
  _ROOT = flags.DEFINE_string("root", None, "The sweep's root folder, one member's workdir below it per run, e.g. "
                              "runs/beta_vae_sweep (the launchers' --root).")
  _X = flags.DEFINE_string("x", None, "The swept config field on the horizontal axis (dotted when nested), e.g. beta, "
                           "noise_factor, data.num_train.")
  _Y = flags.DEFINE_list("y", None, "Metrics of the members' summary.json / eval.json, one panel each, e.g. "
                         "test/recon_error,test/kl.")
  _WANDB_MODE = flags.DEFINE_enum("wandb_mode", None, config_lib.WANDB_MODES, "W&B mode of the curves' run "
                                  "(default: the members' wandb.mode); 'online' without an API key logs offline.")
  app.run(main, flags_parser=config_lib.flags_parser(
      "aejax.curves",
      example="python -m aejax.curves --root runs/beta_vae_sweep --x beta --y test/recon_error,test/kl"))
