"""Sweep curves: the table behind them against a hand computation, the picture, and bad input."""
import csv
import json

import numpy as np
import pytest
from PIL import Image

from aejax import curves
from aejax.errors import ConfigError

# (beta, seed) -> (test/recon_error, test/kl)
_RUNS = {(1.0, 0): (30.0, 5.0), (1.0, 1): (32.0, 7.0), (4.0, 0): (40.0, 2.0), (4.0, 1): (44.0, 1.0)}


def _sweep(root):
  for (beta, seed), (error, kl) in _RUNS.items():
    workdir = root / f"beta{beta:g}-seed{seed}"
    workdir.mkdir(parents=True)
    (workdir / "config.json").write_text(json.dumps({"beta": beta, "seed": seed, "model": {"kind": "mlp"}}))
    (workdir / "summary.json").write_text(json.dumps({"step": 10, "test/recon_error": error, "test/kl": kl,
                                                       "checkpoint": str(workdir / "checkpoints" / "10")}))
  (root / "beta4-seed0" / "eval.json").write_text(json.dumps({"denoise/psnr": 17.5, "suites": ["denoise"]}))
  unfinished = root / "beta16-seed0"  # No summary.json: left out.
  unfinished.mkdir()
  (unfinished / "config.json").write_text(json.dumps({"beta": 16.0, "seed": 0}))
  return root


def test_table_groups_members_by_the_swept_field(tmp_path):
  rows = curves.table(curves.read_members(_sweep(tmp_path)), "beta", ["test/recon_error", "test/kl", "denoise/psnr"])
  assert [row["beta"] for row in rows] == [1.0, 4.0]
  assert [row["members"] for row in rows] == [2, 2]
  for row, beta in zip(rows, (1.0, 4.0)):
    errors = [v[0] for k, v in _RUNS.items() if k[0] == beta]
    kls = [v[1] for k, v in _RUNS.items() if k[0] == beta]
    assert row["test/recon_error mean"] == pytest.approx(np.mean(errors))
    assert (row["test/kl min"], row["test/kl max"]) == (min(kls), max(kls))
  assert rows[1]["denoise/psnr mean"] == 17.5  # From the one member that has an eval.json.
  assert np.isnan(rows[0]["denoise/psnr mean"])


def test_curves_write_the_picture_and_its_table(tmp_path):
  png, table = curves.curves(_sweep(tmp_path), "beta", ["test/recon_error", "test/kl"])
  assert png == tmp_path / "curves_beta.png"
  width, height = Image.open(png).size
  assert (width, height) == (900, 380)  # Two panels of 4.5 x 3.8 inches at 100 dpi.
  with table.open() as f:
    rows = list(csv.DictReader(f))
  assert [float(r["test/kl mean"]) for r in rows] == [6.0, 1.5]


@pytest.mark.parametrize("x,ys,message", [
    ("beta", ["test/elbo"], "--y='test/elbo' is in no member's summary.json or eval.json: use one of "),
    ("gamma", ["test/kl"], "--x='gamma' is not a config field of the sweep's runs"),
])
def test_unknown_fields_are_one_line_errors(tmp_path, x, ys, message):
  with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace("[", r"\[")):
    curves.curves(_sweep(tmp_path), x, ys)


def test_a_root_without_finished_runs_is_one_line_error(tmp_path):
  with pytest.raises(ConfigError, match="holds no finished run"):
    curves.curves(tmp_path, "beta", ["test/kl"])
