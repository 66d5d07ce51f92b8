"""`som`: the online and batch steps against NumPy transcriptions, hexagonal distances and the topographic error on
hand-built cases, the PCA start against an eigendecomposition, unfolding on a square, resume, bundles, the codes of
an autoencoder run, and bad input."""
import json
import math
import re
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from aejax import bundle, config as config_lib, registry, signals, train
from aejax.errors import ConfigError
from aejax.variants.som import fields, grids, pictures, som

from conftest import REPO, once_per_session, saved_checkpoint

VARIANT = registry.get("som")


def _config(**fields_):
  """A SOM config from a random start, trained by plain SGD at learning rate 0.5, unless `fields_` say else."""
  c = fields.add(config_lib.base_config())
  c.variant, c.optimizer, c.momentum, c.learning_rate, c.num_steps = "som", "sgd", 0.0, 0.5, 10
  c.som.init = "random"
  c.update_from_flattened_dict(fields_)
  return c


def _model(config, x):
  """The map of `config` over input vectors like `x` (N, D), without loading any data."""
  s = config.som
  return som.SOM(s.rows, s.cols, s.topology == "hexagonal", s.init, som.describe(x, s.init == "pca"), 10)


def _step(config, x, prototypes, labels=None):
  """The new prototypes after one jitted train step from `prototypes` on the batch `x` (B, D), and its metrics."""
  VARIANT.validate(config)
  model = _model(config, x)
  state = train.init_state(VARIANT, model, config, jax.random.key(0), jnp.zeros((1, x.shape[1])))
  state = state.replace(params={**state.params, "prototypes": jnp.asarray(prototypes, jnp.float32)})
  batch = {"image": jnp.asarray(x, jnp.float32),
           "label": jnp.asarray(np.zeros(len(x), int) if labels is None else labels, jnp.int32)}
  new, metrics = jax.jit(train.make_train_step(VARIANT, model, config))(state, batch, jax.random.key(1))
  return np.asarray(new.params["prototypes"]), metrics, new


def _rect_distance(a, b, cols):
  return math.dist(divmod(a, cols), divmod(b, cols))


def _h(kind, d, sigma):
  if kind == "gaussian":
    return math.exp(-d * d / (2 * sigma * sigma))
  if kind == "bubble":
    return float(d <= sigma)
  return (1 - d * d / sigma**2) * math.exp(-d * d / (2 * sigma * sigma))


@pytest.mark.parametrize("kind,batch_size", [("gaussian", 1), ("gaussian", 7), ("bubble", 7), ("mexican_hat", 7)])
def test_online_step_is_the_kohonen_rule_averaged_over_the_batch(kind, batch_size):
  """w_k += α h(d(bmu_i, k)) (x_i - w_k), sample by sample from the same prototypes, averaged; chunks of 3."""
  rng = np.random.default_rng(0)
  rows, cols, sigma, rate = 3, 4, 1.5, 0.5
  config = _config(**{"som.rows": rows, "som.cols": cols, "som.radius": sigma, "som.neighbourhood": kind,
                      "som.chunk_size": 3})
  w = rng.normal(size=(rows * cols, 5))
  x = rng.normal(size=(batch_size, 5))
  moves = np.zeros_like(w)
  for x_i in x:
    bmu = int(np.argmin(((x_i - w) ** 2).sum(1)))
    for k in range(rows * cols):
      moves[k] += rate * _h(kind, _rect_distance(bmu, k, cols), sigma) * (x_i - w[k])
  new, metrics, _ = _step(config, x, w)
  np.testing.assert_allclose(new, w + moves / batch_size, rtol=1e-5, atol=1e-5)
  errors = [np.sqrt(((x_i - w) ** 2).sum(1)).min() for x_i in x]
  assert float(metrics["quantization_error"]) == pytest.approx(np.mean(errors), rel=1e-5)


@pytest.mark.parametrize("kind,rate", [("gaussian", 0.5), ("bubble", 1.0)])
def test_batch_step_moves_to_the_neighbourhood_weighted_means(kind, rate):
  """w_k ← w_k + α (Σ_i h(d(bmu_i, k)) x_i / Σ_i h(d(bmu_i, k)) - w_k), computed directly; chunks of 4 over 11."""
  rng = np.random.default_rng(1)
  rows, cols, sigma = 3, 3, 1.2
  config = _config(**{"som.rows": rows, "som.cols": cols, "som.radius": sigma, "som.neighbourhood": kind,
                      "som.mode": "batch", "som.chunk_size": 4, "learning_rate": rate})
  w = rng.normal(size=(rows * cols, 4))
  x = rng.normal(size=(11, 4))
  bmus = [int(np.argmin(((x_i - w) ** 2).sum(1))) for x_i in x]
  expected = w.copy()
  for k in range(rows * cols):
    weights = np.array([_h(kind, _rect_distance(b, k, cols), sigma) for b in bmus])
    if weights.sum() > 0:
      expected[k] = w[k] + rate * ((weights[:, None] * x).sum(0) / weights.sum() - w[k])
  np.testing.assert_allclose(_step(config, x, w)[0], expected, rtol=1e-5, atol=1e-5)


def test_hexagonal_distances_and_neighbours_by_hand():
  """A 3 x 3 hexagonal grid, odd rows half a unit right: unit 4 (row 1, col 1) has the six neighbours 1, 2, 3, 5,
  7, 8; unit 0 is 1 from 1 and 3, √3 from 4 and 6, √7 from 8; a rectangular grid gives unit 4 only 1, 3, 5, 7."""
  hexagonal = np.asarray(grids.grid_distances(3, 3, True))
  for a, b, d in [(0, 1, 1.0), (0, 3, 1.0), (0, 4, math.sqrt(3)), (0, 6, math.sqrt(3)), (1, 3, 1.0), (3, 6, 1.0),
                  (3, 7, 1.0), (2, 5, 1.0), (2, 8, math.sqrt(3)), (0, 8, math.sqrt(7))]:
    assert hexagonal[a, b] == pytest.approx(d, rel=1e-6) and hexagonal[b, a] == pytest.approx(d, rel=1e-6), (a, b)
  neighbours = np.asarray(grids.are_neighbours(hexagonal)) & (hexagonal > 0)
  assert set(np.flatnonzero(neighbours[4])) == {1, 2, 3, 5, 7, 8}
  rectangular = np.asarray(grids.grid_distances(3, 3, False))
  assert set(np.flatnonzero(np.asarray(grids.are_neighbours(rectangular[4])) & (rectangular[4] > 0))) == {1, 3, 5, 7}


def test_hexagonal_pictures_shift_odd_rows_by_half_a_cell():
  """Cells of 4 pixels on a 2 x 2 hexagonal grid: row 1's cells start 2 pixels right, the gap background (4)."""
  index = pictures.cell_index(2, 2, True, 4)
  assert index.shape == (8, 10)
  assert index[0].tolist() == [0] * 4 + [1] * 4 + [4] * 2
  assert index[7].tolist() == [4] * 2 + [2] * 4 + [3] * 4
  assert pictures.cell_index(2, 2, False, 4)[7].tolist() == [2] * 4 + [3] * 4


def _evaluate(config, prototypes, x, labels=None):
  model = _model(config, x)
  params = {"prototypes": jnp.asarray(prototypes, jnp.float32), "hits": jnp.zeros((model.units, 10))}
  batch = {"image": jnp.asarray(x, jnp.float32), "label": jnp.zeros(len(x), jnp.int32) if labels is None else labels}
  return {k: np.asarray(v) for k, v in VARIANT.evaluate(model, config, params, batch, jax.random.key(0), {}).items()}


def test_topographic_error_is_0_for_an_ordered_line_and_1_for_a_shuffled_one():
  """Prototype value k at unit k (ordered) or at unit order[k], where consecutive values are never grid neighbours;
  each sample sits between values k and k + 1, its first and second best units."""
  config = _config(**{"som.rows": 1, "som.cols": 10})
  values = np.arange(10.0)[:, None] * np.array([[1.0, 0.5]])
  x = (np.arange(9.0)[:, None] + np.array([0.3, 0.6, 0.4])[np.arange(9) % 3, None]) * np.array([[1.0, 0.5]])
  assert _evaluate(config, values, x)["topographic_error"].tolist() == [0.0] * 9
  order = [0, 2, 4, 6, 8, 1, 3, 5, 7, 9]
  shuffled = np.empty_like(values)
  shuffled[order] = values
  assert _evaluate(config, shuffled, x)["topographic_error"].tolist() == [1.0] * 9


def test_topographic_error_counts_hexagonal_neighbours():
  """Units 1 (row 0, col 1) and 2 (row 1, col 0) of a 2 x 2 map are diagonal: neighbours on a hexagonal grid (odd
  rows shifted right), not on a rectangular one. A sample nearest to both counts as an error on the rectangular
  grid only."""
  prototypes = np.array([[10.0, 10.0], [0.0, 0.0], [1.0, 0.0], [-10.0, 10.0]])
  x = np.array([[0.5, 0.1]])
  for topology, error in (("hexagonal", 0.0), ("rectangular", 1.0)):
    config = _config(**{"som.rows": 2, "som.cols": 2, "som.topology": topology})
    assert _evaluate(config, prototypes, x)["topographic_error"].tolist() == [error]


def test_pca_start_spans_the_first_two_principal_axes():
  """Data with variances 25, 9, 1, 0.25, 0.01 along random orthogonal axes: the initial prototypes lie in the
  plane of the top two eigenvectors of the covariance (by NumPy), through the mean, and reach ±1 standard deviation
  along each."""
  rng = np.random.default_rng(2)
  basis, _ = np.linalg.qr(rng.normal(size=(5, 5)))
  x = (rng.normal(size=(4_000, 5)) * np.array([5.0, 3.0, 1.0, 0.5, 0.1])) @ basis.T + 2.0
  config = _config(**{"som.rows": 4, "som.cols": 6, "som.init": "pca"})
  model = _model(config, x)
  prototypes = np.asarray(VARIANT.init(model, jax.random.key(0), jnp.zeros((1, 5)))["prototypes"])
  eigenvalues, eigenvectors = np.linalg.eigh(np.cov(x, rowvar=False))
  top = eigenvectors[:, np.argsort(eigenvalues)[::-1][:2]]
  centred = prototypes - x.mean(0)
  np.testing.assert_allclose(centred - centred @ top @ top.T, 0.0, atol=1e-4)  # In the plane.
  coords = centred @ top
  assert np.linalg.matrix_rank(coords, tol=1e-3) == 2
  stds = np.sqrt(np.sort(eigenvalues)[::-1][:2])
  np.testing.assert_allclose(np.abs(coords).max(0), stds, rtol=1e-3)
  # The first axis runs along the longer side (6 columns), the second down the 4 rows.
  grid = coords.reshape(4, 6, 2)
  assert np.ptp(grid[0, :, 0]) == pytest.approx(2 * stds[0], rel=1e-3) and np.ptp(grid[:, 0, 1]) == pytest.approx(
      2 * stds[1], rel=1e-3)


@pytest.mark.parametrize("mode,steps,batch_size,rate", [("batch", 30, 2_000, 1.0), ("online", 600, 16, 0.5)])
def test_a_map_of_a_uniform_square_unfolds(mode, steps, batch_size, rate):
  """A random 8 x 8 map of points uniform on [0, 1]², radius 4 -> 0.5: the trained map keeps neighbours together
  (test topographic error < 0.1) and quantises the square finely (error < 0.1; a grid of 64 points spaced 1/8
  leaves ~0.05)."""
  rng = np.random.default_rng(3)
  train_x, test_x = rng.random((2_000, 2)), rng.random((1_000, 2))
  config = _config(**{"som.rows": 8, "som.cols": 8, "som.radius": 4.0, "som.final_radius": 0.5, "som.mode": mode,
                      "som.final_rate": 1.0 if mode == "batch" else 0.02,
                      "learning_rate": rate, "num_steps": steps})
  model = _model(config, train_x)
  state = train.init_state(VARIANT, model, config, jax.random.key(0), jnp.zeros((1, 2)))
  step = jax.jit(train.make_train_step(VARIANT, model, config))
  labels = jnp.zeros(batch_size, jnp.int32)
  for t in range(steps):
    batch = train_x[rng.integers(0, len(train_x), batch_size)] if mode == "online" else train_x
    state, _ = step(state, {"image": jnp.asarray(batch, jnp.float32), "label": labels}, jax.random.key(t))
  found = _evaluate(config, state.params["prototypes"], test_x)
  assert found["topographic_error"].mean() < 0.1 and found["quantization_error"].mean() < 0.1, {
      k: v.mean() for k, v in found.items()}
  initial = _evaluate(config, np.asarray(train.init_state(VARIANT, model, config, jax.random.key(0),
                                                          jnp.zeros((1, 2))).params["prototypes"]), test_x)
  assert initial["topographic_error"].mean() > 0.5  # A random start is not ordered.


# Online runs of 20 steps of 64 MNIST images, checkpointed at 10 and 20.
RUN = dict(eval__suites=(), num_images=2, som__mode="online", learning_rate=0.5, som__final_rate=0.05,
           batch_size=64, data__num_train=640, data__num_test=256, num_steps=20, log_every=10, eval_every=10,
           checkpoint_every=10)


@pytest.fixture(scope="module")
def whole_run(smoke_config, tmp_path_factory):
  """(workdir, summary) of an uninterrupted run, trained once for the session."""

  def make(folder):
    return folder / "whole", train.train_and_evaluate(smoke_config("som", **RUN), folder / "whole")

  return once_per_session(tmp_path_factory, "som", make)


def test_smoke_run_measures_and_draws_the_map(whole_run):
  workdir, summary = whole_run
  rows = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
  first_test = next(r for r in rows if "test/quantization_error" in r)
  assert summary["test/quantization_error"] <= first_test["test/quantization_error"]
  assert 0.0 <= summary["test/topographic_error"] <= 1.0 and summary["test/class_map_accuracy"] > 0.2  # Chance: 0.1.
  for name in ("u_matrix", "hit_map", "class_map", "prototypes"):
    assert (workdir / summary[f"image/{name}"]).is_file()


def test_run_resumed_after_sigterm_equals_uninterrupted(whole_run, smoke_config, tmp_path, monkeypatch, preempt_at):
  """Stopped at step 10 of 20 (its radius and rate mid-way down their schedules), then resumed."""
  preempt_at(10)
  with pytest.raises(signals.Interrupted, match="at step 10; checkpoint saved"):
    train.train_and_evaluate(smoke_config("som", **RUN), tmp_path)
  monkeypatch.undo()
  train.train_and_evaluate(smoke_config("som", **RUN), tmp_path)
  whole, resumed = saved_checkpoint(whole_run[0], 20), saved_checkpoint(tmp_path, 20)
  for x, y in zip(jax.tree.leaves(whole), jax.tree.leaves(resumed), strict=True):
    np.testing.assert_array_equal(x, y)


def test_bundle_of_equal_maps_ends_as_if_trained_alone(whole_run, smoke_config, tmp_path):
  """Member 0 is `whole_run`'s config; member 1 differs in radius, final radius, rate, final rate and seed."""
  other = {"som.radius": 2.0, "som.final_radius": 0.5, "som.final_rate": 0.2, "learning_rate": 0.3, "seed": 1}

  def config(member):
    c = smoke_config("som", **RUN)
    c.update_from_flattened_dict(member)
    return c

  bundle.train_bundle([config({}), config(other)], [tmp_path / "m0", tmp_path / "m1"])
  train.train_and_evaluate(config(other), tmp_path / "alone1")
  for alone, member in ((whole_run[0], tmp_path / "m0"), (tmp_path / "alone1", tmp_path / "m1")):
    for x, y in zip(jax.tree.leaves(saved_checkpoint(alone, 20)), jax.tree.leaves(saved_checkpoint(member, 20)),
                    strict=True):
      np.testing.assert_allclose(x, y, rtol=1e-4, atol=1e-5)
  assert not np.allclose(saved_checkpoint(tmp_path / "m0", 20)["params"]["prototypes"],
                         saved_checkpoint(tmp_path / "m1", 20)["params"]["prototypes"], atol=1e-2)


def test_map_of_an_autoencoders_codes(smoke_config, tmp_path):
  """experiments/som_codes.py:smoke over a few steps of experiments/dae.py:smoke: the SOM's inputs are the codes
  its checkpoint's frozen autoencoder gives, and its suite runs."""
  ae_dir = tmp_path / "dae"
  train.train_and_evaluate(smoke_config("dae", num_steps=10, eval_every=10, checkpoint_every=10, num_images=2),
                           ae_dir)
  config = smoke_config("som_codes", som__input_workdir=str(ae_dir), num_images=2, data__num_train=512,
                        batch_size=512, data__num_test=256, eval__num_train=512)
  summary = train.train_and_evaluate(config, tmp_path / "som")
  restored = saved_checkpoint(tmp_path / "som", 10)["params"]
  ae = saved_checkpoint(ae_dir, 10)["params"]
  for x, y in zip(jax.tree.leaves(ae), jax.tree.leaves(restored["autoencoder"]), strict=True):
    np.testing.assert_array_equal(x, y)  # Frozen.
  assert restored["prototypes"].shape == (36, 32)
  from aejax import evaluate  # pylint: disable=g-import-not-at-top
  report = evaluate.evaluate_run(tmp_path / "som", ["som"])
  assert report["som/test_quantization_error"] == pytest.approx(summary["test/quantization_error"], rel=1e-4)
  assert report["som/class_map_accuracy"] > 0.2  # Chance: 0.1 (an autoencoder of 10 steps).


def _check(**fields_):
  c = config_lib.from_file(f"{REPO}/experiments/som.py:smoke")
  c.eval.suites = ()
  c.update_from_flattened_dict(fields_)
  return train.check_config(c)


def _run_folder(path, saved):
  """A folder that looks like a trained run: `saved` as its config.json and an (empty) checkpoint step."""
  (path / "checkpoints" / "10").mkdir(parents=True)
  (path / "config.json").write_text(json.dumps(saved))
  return str(path)


def test_bad_som_fields_are_one_line_errors(tmp_path):
  cases = [
      ({"som.rows": 1, "som.cols": 1}, "config.som.rows x cols=(1, 1): a map needs at least 2 units"),
      ({"som.radius": 0.0}, "config.som.radius=0.0: use a positive neighbourhood radius"),
      ({"som.radius": -1.0}, "config.som.radius=-1.0: use a positive neighbourhood radius"),
      ({"som.neighbourhood": "mexican_hat"}, "config.som.neighbourhood='mexican_hat': the batch update is a weighted "
       "mean"),
      ({"optimizer": "adam", "momentum": 0.9}, "config.optimizer='adam': a SOM's update is applied as it is, times "
       "learning_rate, and decayed by config.som.decay: use --config.optimizer=sgd"),
      ({"lr_schedule": "cosine"}, "config.lr_schedule='cosine': a SOM's update is applied as it is"),
      ({"som.topology": "square"}, "config.som.topology='square': use one of rectangular, hexagonal"),
      ({"som.input_workdir": str(tmp_path / "nothing")}, "config.som.input_workdir="),
  ]
  empty = tmp_path / "empty"
  empty.mkdir()
  (empty / "config.json").write_text(json.dumps({"variant": "dae", "data": {"name": "mnist"}}))
  cases.append(({"som.input_workdir": str(empty)}, f"config.som.input_workdir={str(empty)!r}: that run has no "
                "checkpoint yet"))
  map_run = _run_folder(tmp_path / "map", {"variant": "som", "data": {"name": "mnist"}})
  cases.append(({"som.input_workdir": map_run}, f"config.som.input_workdir={map_run!r}: that run is a SOM"))
  rbm = config_lib.from_file(f"{REPO}/experiments/rbm.py")
  rbm.rbm.visible = "gaussian"
  gaussian = _run_folder(tmp_path / "gaussian_rbm", json.loads(rbm.to_json()))
  cases.append(({"som.input_workdir": gaussian}, f"config.som.input_workdir={gaussian!r}: that run's variant 'rbm' "
                "has no code: give an autoencoder's run"))
  for overrides, message in cases:
    with pytest.raises(ConfigError, match="^" + re.escape(message)):
      _check(**overrides)
  with pytest.raises(ConfigError, match="^" + re.escape("config.som.init='pca': the map's inputs have 1 dimension, "
                                                        "and a PCA plane needs 2: use --config.som.init=random")):
    som.describe(np.zeros((10, 1), np.float32), pca=True)


def test_bad_radius_on_the_command_line_is_one_line_before_any_work(data_dir, mnist_manual_dir, tmp_path):
  result = subprocess.run(
      [sys.executable, "-m", "aejax.main", "--config=experiments/som.py:smoke", f"--workdir={tmp_path / 'run'}",
       f"--config.data.data_dir={data_dir}", f"--config.data.manual_dir={mnist_manual_dir}",
       "--config.som.radius=0"], cwd=REPO, text=True, capture_output=True, timeout=300)
  assert result.returncode == 1
  assert result.stderr.strip().splitlines() == [
      "aejax: error: config.som.radius=0.0: use a positive neighbourhood radius in grid units, e.g. 5"], result.stderr
  assert not (tmp_path / "run").exists()
