"""Sweep curves: the table behind them against a hand computation, the picture, bad input, the W&B run (offline,
with the network blocked), and the launchers drawing the curves a sweep declares."""
import csv
import json
import socket

import numpy as np
import pytest
import wandb
from PIL import Image

from aejax import curves
from aejax.errors import ConfigError
from launch import common

# (beta, seed) -> (test/recon_error, test/kl, test/recon)
_RUNS = {(1.0, 0): (30.0, 5.0, 80.0), (1.0, 1): (32.0, 7.0, 84.0), (4.0, 0): (40.0, 2.0, 95.0),
         (4.0, 1): (44.0, 1.0, 99.0)}


def _sweep(root, wandb=None):
  """Four finished members (and an unfinished one) under `root`; `wandb`: their config's W&B fields, if any."""
  for (beta, seed), (error, kl, recon) in _RUNS.items():
    workdir = root / f"beta{beta:g}-seed{seed}"
    workdir.mkdir(parents=True)
    config = {"beta": beta, "seed": seed, "num_steps": 10, "model": {"kind": "mlp"},
              **({"wandb": wandb} if wandb else {})}
    (workdir / "config.json").write_text(json.dumps(config))
    (workdir / "summary.json").write_text(json.dumps({"step": 10, "test/recon_error": error, "test/kl": kl,
                                                       "test/recon": recon,
                                                       "checkpoint": str(workdir / "checkpoints" / "10")}))
    (workdir / "checkpoints" / "10").mkdir(parents=True)
  (root / "beta4-seed0" / "eval.json").write_text(json.dumps({"step": 10, "denoise/psnr": 17.5, "suites": ["denoise"]}))
  (root / "beta1-seed1" / "eval.json").write_text(json.dumps({"step": 5, "denoise/psnr": 99.0}))  # Stale: left out.
  unfinished = root / "beta16-seed0"  # No summary.json: left out.
  unfinished.mkdir()
  (unfinished / "config.json").write_text(json.dumps({"beta": 16.0, "seed": 0, "num_steps": 10}))
  extended = root / "beta16-seed1"  # Its summary is of step 10 of the 20 it now trains for: left out.
  extended.mkdir()
  (extended / "config.json").write_text(json.dumps({"beta": 16.0, "seed": 1, "num_steps": 20}))
  (extended / "summary.json").write_text(json.dumps({"step": 10, "test/recon_error": 1.0, "test/kl": 1.0}))
  (extended / "checkpoints" / "10").mkdir(parents=True)
  return root


def test_table_groups_members_by_the_swept_field(tmp_path, capsys):
  rows = curves.table(curves.read_members(_sweep(tmp_path)), "beta", ["test/recon_error", "test/kl", "denoise/psnr"])
  err = capsys.readouterr().err
  assert "beta1-seed1: eval.json is of step 5, its summary of step 10: its evaluation metrics are left out" in err
  assert "aejax.curves: 2 unfinished member(s) left out, e.g. beta16-seed0" in err
  assert [row["beta"] for row in rows] == [1.0, 4.0]
  assert [row["members"] for row in rows] == [2, 2]
  for row, beta in zip(rows, (1.0, 4.0)):
    errors = [v[0] for k, v in _RUNS.items() if k[0] == beta]
    kls = [v[1] for k, v in _RUNS.items() if k[0] == beta]
    assert row["test/recon_error mean"] == pytest.approx(np.mean(errors))
    assert (row["test/kl min"], row["test/kl max"]) == (min(kls), max(kls))
  assert rows[1]["denoise/psnr mean"] == 17.5  # From the one member that has an eval.json of its last step.
  assert np.isnan(rows[0]["denoise/psnr mean"])


def test_curves_write_the_picture_and_its_table(tmp_path):
  png, table, run = curves.curves(_sweep(tmp_path), "beta", ["test/recon_error", "test/kl"])
  assert png == tmp_path / "curves_beta.png"
  assert run is None and not (tmp_path / "wandb").exists()  # Members without W&B settings: no W&B run.
  width, height = Image.open(png).size
  assert (width, height) == (1350, 400)  # Two metrics and the rate-distortion plane, 4.5 x 4 inches each at 100 dpi.
  with table.open() as f:
    rows = list(csv.DictReader(f))
  assert [float(r["test/kl mean"]) for r in rows] == [6.0, 1.5]
  assert [float(r["test/recon mean"]) for r in rows] == [82.0, 97.0]  # The plane's distortion, in its table too.


@pytest.mark.parametrize("values,scale", [
    ([1, 2, 4, 8, 16], "log2"), ([16, 1, 4, 4], "log2"), ([0.5, 1, 2], "log2"), ([64, 128, 256, 1024], "log2"),
    ([0.01, 0.1, 1, 10], "log"), ([0.1, 0.25, 0.5, 0.75, 1.0], "linear"), ([0, 1, 2, 4], "linear"),
    ([3, 6, 12], "linear"), ([1, 2, 3, 4], "linear"), ([-2, -1], "linear"), ([4], "linear"),
])
def test_powers_of_two_get_a_log2_axis_and_other_values_not(values, scale):
  assert curves.x_scale(values) == scale


def test_beta_sweep_draws_the_rate_distortion_plane_of_the_members_on_a_log2_axis(tmp_path):
  members = curves.read_members(_sweep(tmp_path))
  assert curves.has_rate_distortion(members, "beta") and not curves.has_rate_distortion(members, "seed")
  ys = ["test/recon_error", "test/kl"]
  rows = curves.table(members, "beta", ys + ["test/recon"])
  axes = curves.figure(rows, "beta", ys, rate_distortion=True).axes
  assert len(axes) == 3
  for axis in axes[:2]:
    assert axis.get_xscale() == "log" and axis.xaxis.get_transform().base == 2
    assert [tick.get_text() for tick in axis.get_xticklabels()] == ["1", "4"]
  plane = axes[2]
  expected = [[np.mean([v[2] for k, v in _RUNS.items() if k[0] == beta]),  # Distortion: the mean test/recon.
               np.mean([v[1] for k, v in _RUNS.items() if k[0] == beta])]  # Rate: the mean test/kl.
              for beta in (1.0, 4.0)]
  np.testing.assert_allclose(plane.lines[0].get_xydata(), expected)
  assert [text.get_text() for text in plane.texts] == ["β = 1", "β = 4"]
  assert (plane.get_xlabel(), plane.get_ylabel()) == ("distortion: test/recon (nats)", "rate: test/kl (nats)")
  seeds = curves.figure(curves.table(members, "seed", ys), "seed", ys).axes
  assert len(seeds) == 2 and seeds[0].get_xscale() == "linear"


def test_beta_sweep_without_the_reconstruction_term_has_no_plane(tmp_path):
  root = _sweep(tmp_path)
  for summary in root.glob("*/summary.json"):
    report = json.loads(summary.read_text())
    report.pop("test/recon", None)
    summary.write_text(json.dumps(report))
  png, _, _ = curves.curves(root, "beta", ["test/recon_error", "test/kl"])
  assert Image.open(png).size == (900, 400)


@pytest.mark.parametrize("x,ys,message", [
    ("beta", ["test/elbo"], "--y='test/elbo' is in no member's summary.json or eval.json: use one of "),
    ("gamma", ["test/kl"], "--x='gamma' is not a config field of the sweep's runs"),
    ("model.kind", ["test/kl"], "--x='model.kind' has the value 'mlp', not a number: curves plot metrics against"),
])
def test_unknown_fields_are_one_line_errors(tmp_path, x, ys, message):
  with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace("[", r"\[")):
    curves.curves(_sweep(tmp_path), x, ys)


def test_a_root_without_finished_runs_is_one_line_error(tmp_path):
  with pytest.raises(ConfigError, match="holds no finished run"):
    curves.curves(tmp_path, "beta", ["test/kl"])


def _wandb_fields(mode):
  return {"mode": mode, "project": "aejax", "entity": None, "group": "beta_sweep", "tags": ["beta_vae"], "name": None}


@pytest.fixture()
def no_network(monkeypatch):
  """Makes every internet connection of this process fail (local sockets, such as W&B's service's, still work)
  and keeps W&B's files in `HOME` and its output quiet; returns the list of attempts."""
  attempts = []
  connect = socket.socket.connect

  def guarded(sock, address, *args):
    if sock.family in (socket.AF_INET, socket.AF_INET6):
      attempts.append(address)
      raise RuntimeError("network blocked by test")
    return connect(sock, address, *args)

  def no_lookup(*args, **kwargs):
    attempts.append(args)
    raise RuntimeError("network blocked by test")

  monkeypatch.setattr(socket.socket, "connect", guarded)
  monkeypatch.setattr(socket, "getaddrinfo", no_lookup)
  return attempts


def test_curves_log_an_offline_wandb_run_under_the_root(tmp_path, monkeypatch, no_network):
  home = tmp_path / "home"
  for name, value in (("HOME", home), ("WANDB_DIR", home / "wandb_dir"), ("WANDB_CACHE_DIR", home / "cache"),
                      ("WANDB_CONFIG_DIR", home / "config"), ("WANDB_DATA_DIR", home / "data"),
                      ("WANDB_SILENT", "true"), ("WANDB_DISABLE_GIT", "true")):
    monkeypatch.setenv(name, str(value))
  monkeypatch.delenv("WANDB_API_KEY", raising=False)
  root = _sweep(tmp_path / "beta_sweep", _wandb_fields("disabled"))
  png, _, run = curves.curves(root, "beta", ["test/recon_error", "test/kl"], wandb_mode="offline")  # Theirs: off.
  runs = list((root / "wandb").glob("offline-run-*"))
  assert len(runs) == 1 and run == str(runs[0])
  pictures = list(runs[0].glob("files/media/images/curves/beta_*.png"))
  assert len(pictures) == 1 and Image.open(pictures[0]).size == Image.open(png).size
  tables = list(runs[0].glob("files/media/table/curves/beta_table_*.table.json"))
  assert len(tables) == 1
  logged = json.loads(tables[0].read_text())
  assert logged["columns"][:3] == ["beta", "members", "test/recon_error mean"]
  assert [row[:2] for row in logged["data"]] == [[1.0, 2], [4.0, 2]]
  wandb.teardown()  # Stops W&B's service, which writes out the run's record: its group, job type and name.
  record = next(runs[0].glob("run-*.wandb")).read_bytes()
  assert all(text in record for text in (b"beta_sweep", b"curves", b"curves-beta"))
  assert not no_network


def test_wandb_mode_disabled_overrides_the_members_mode(tmp_path):
  root = _sweep(tmp_path, _wandb_fields("offline"))
  assert curves.curves(root, "beta", ["test/kl"], wandb_mode="disabled")[2] is None
  assert not (root / "wandb").exists()


def _finished_sweep(root, spec):
  """A `common.Sweep` of the four finished members of `_sweep(root)`, from the experiment file `spec`."""
  _sweep(root)
  members = tuple(common.Member(f"beta{b:g}-seed{s}", {"beta": b, "seed": s}, 10, root / f"beta{b:g}-seed{s}")
                  for b, s in _RUNS)
  return common.Sweep(spec=spec, config=None, root=root, name=root.name, flags=(), members=members, datasets=())


def _experiment(tmp_path, curves_body):
  path = tmp_path / "exp.py"
  path.write_text(f"def get_sweep():\n  return []\n\n\ndef get_curves():\n  return {curves_body}\n")
  return f"{path}:smoke"


def test_finish_draws_the_declared_curves(tmp_path, capsys):
  spec = _experiment(tmp_path, "[('beta', ['test/kl']), ('seed', ['test/recon_error'])]")
  sweep = _finished_sweep(tmp_path / "sweep", spec)
  common.finish(sweep, {m.run_id: 0 for m in sweep.members})
  lines = capsys.readouterr().out.splitlines()
  root = sweep.root
  assert lines[-2:] == [f"curves: {root / 'curves_beta.png'} (table {root / 'curves_beta.csv'})",
                        f"curves: {root / 'curves_seed.png'} (table {root / 'curves_seed.csv'})"]
  assert (root / "curves_beta.png").exists() and (root / "curves_seed.png").exists()


@pytest.mark.parametrize("curves_body,exit_codes,line", [
    ("[('beta', ['test/elbo'])]", {}, "curves: beta: --y='test/elbo' is in no member's summary.json or eval.json: "
                                      "use one of denoise/psnr, step, test/kl, test/recon, test/recon_error"),
    ("[('beta', 'test/kl')]", {}, "curves: {path}: get_curves() returned [('beta', 'test/kl')]: return a list of "
                                  "(x, [metrics]) pairs, e.g. [('beta', ['test/recon_error', 'test/kl'])]"),
    ("[]", {}, "curves: none declared (add get_curves() to {path} to draw some)"),
    ("[('beta', ['test/kl'])]", {"beta4-seed1": 1},
     "curves: not drawn, 1 of 4 members did not finish (e.g. beta4-seed1)"),
])
def test_finish_reports_curves_it_cannot_draw_in_one_line(tmp_path, capsys, curves_body, exit_codes, line):
  spec = _experiment(tmp_path, curves_body)
  sweep = _finished_sweep(tmp_path / "sweep", spec)
  if exit_codes:
    for run_id in exit_codes:  # Failed before its end (a member that wrote all it writes counts as finished).
      (sweep.root / run_id / "summary.json").unlink()
    with pytest.raises(SystemExit):  # The failed member fails the sweep, not the curves.
      common.finish(sweep, exit_codes)
  else:
    common.finish(sweep, {})  # A finished sweep stays a success whatever its curves do.
  out = capsys.readouterr().out.splitlines()
  assert out[-1] == line.format(path=spec.partition(":")[0])
  assert not list(sweep.root.glob("curves_*.png"))
