"""The recommendation family: MovieLens read and split by each protocol, AutoRec's masked loss, the ranking and
rating measures against hand computations, EASE against its definition, a low-rank matrix recovered, the suite
beside its baselines, resume, bundles and the one-line errors."""
import dataclasses
import json
import math
import os
import pathlib
import sys
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from aejax import bundle, config as config_lib, evaluate, signals, sweep as sweep_lib, train
from aejax.data import catalog, ratings
from aejax.errors import ConfigError
from aejax.variants.recommend import autorec, baselines, metrics, models

from conftest import REPO, saved_checkpoint

# MovieLens 100K's u.data: beside the checkout (here and in CI), or wherever AEJAX_ML100K_DIR says.
ML_100K = pathlib.Path(os.environ.get("AEJAX_ML100K_DIR", REPO.parent / "shared" / "data" / "ml-100k"))


def _config(name: str, manual_dir=ML_100K, **fields) -> config_lib.config_dict.ConfigDict:
  c = config_lib.from_file(f"{REPO}/experiments/{name}.py:smoke")
  c.data.manual_dir = str(manual_dir)
  c.update_from_flattened_dict(fields)
  return c


@pytest.fixture(scope="module")
def triples() -> ratings.Triples:
  if not (ML_100K / "u.data").is_file():
    pytest.fail(f"MovieLens 100K's u.data not found in {ML_100K}: put it in ../shared/data/ml-100k beside the "
                "checkout or set AEJAX_ML100K_DIR")
  return ratings.read("movielens_100k", str(ML_100K))


def test_movielens_100k_is_read_whole(triples):
  assert len(triples.ratings) == 100_000
  assert triples.users.max() == 942 and triples.items.max() == 1_681
  assert np.bincount(triples.ratings.astype(int))[1:].tolist() == [6_110, 11_370, 27_145, 34_174, 21_201]


def test_kfold_folds_partition_the_ratings_and_follow_the_split_seed(triples):
  r = _config("autorec").data.ratings
  r.protocol = "kfold"
  masks = []
  for fold in range(r.folds):
    r.fold = fold
    masks.append(ratings.test_mask(len(triples.ratings), r))
  assert np.array_equal(np.sum(masks, axis=0), np.ones(len(triples.ratings)))  # Each rating in exactly one fold.
  assert all(abs(m.sum() - 20_000) <= 1 for m in masks)
  again = ratings.test_mask(len(triples.ratings), r)
  r.split_seed = 1
  assert np.array_equal(again, masks[-1]) and not np.array_equal(ratings.test_mask(len(triples.ratings), r), again)


def test_explicit_matrices_hold_each_rating_once_where_it_belongs(triples):
  c = _config("autorec", **{"data.ratings.rows": "users"})
  m = ratings.explicit(triples, catalog.get("movielens_100k"), c.data.ratings)
  held = ratings.test_mask(len(triples.ratings), c.data.ratings)
  assert np.count_nonzero(m.train) == 90_000 and np.count_nonzero(m.test_targets) == 10_000
  codes = np.round(triples.ratings / ratings.CODE_SCALE)
  np.testing.assert_array_equal(m.train[triples.users[~held], triples.items[~held]], codes[~held])
  np.testing.assert_array_equal(m.test_targets[triples.users[held], triples.items[held]], codes[held])
  by_item = ratings.explicit(triples, catalog.get("movielens_100k"), _config("autorec").data.ratings)
  np.testing.assert_array_equal(by_item.train, m.train.T)  # The same split, transposed.


def test_strong_generalization_holds_out_whole_users_and_splits_each_ones_interactions(triples):
  r = _config("mult_vae").data.ratings
  m = ratings.strong_generalization(triples, catalog.get("movielens_100k"), r)
  positive = triples.ratings >= 4
  counts = np.bincount(triples.users[positive], minlength=943)
  kept = np.flatnonzero(counts >= 5)
  assert not set(m.train_ids) & set(m.test_ids) and set(m.train_ids) | set(m.test_ids) <= set(kept)
  assert len(m.test_ids) + len(m.train_ids) >= len(kept) - 2 and abs(len(m.test_ids) - 0.2 * len(kept)) <= 3
  seen_by_train = np.isin(triples.items, triples.items[positive & np.isin(triples.users, m.train_ids)])
  np.testing.assert_array_equal(m.columns, np.unique(triples.items[positive & seen_by_train]))
  usable = np.bincount(triples.users[positive & seen_by_train], minlength=943)
  folded, scored = (m.test_inputs > 0).sum(1), (m.test_targets > 0).sum(1)
  assert not np.any((m.test_inputs > 0) & (m.test_targets > 0))
  np.testing.assert_array_equal(folded + scored, usable[m.test_ids])  # Every interaction, one side or the other.
  assert scored.min() >= 1 and folded.min() >= 1
  np.testing.assert_allclose(scored / usable[m.test_ids], 0.2, atol=0.5 / 5)
  assert np.array_equal((m.train > 0).sum(1), counts[m.train_ids])
  # Which interactions are scored is drawn, not the first ones of each user.
  first = [np.flatnonzero(positive & seen_by_train & (triples.users == u))[:n] for u, n in zip(m.test_ids, scored)]
  assert not all(np.all(m.test_targets[row, np.searchsorted(m.columns, triples.items[f])] > 0)
                 for row, f in enumerate(first))
  assert np.array_equal(ratings.strong_generalization(triples, catalog.get("movielens_100k"), r).test_targets,
                        m.test_targets)


def test_only_observed_entries_carry_gradient():
  """With the weight cost off, an item no row of the batch rated gets no gradient in its output weights or bias,
  and the loss's gradient with respect to the predictions is 0 off the observed entries."""
  r = jnp.array([[5.0, 0.0, 3.0, 0.0], [1.0, 0.0, 0.0, 2.0]])
  model = models.AutoRec(hidden=3, outputs=4)
  params = model.init(jax.random.key(0), r)
  config = _config("autorec")
  grads = jax.grad(lambda p: autorec.loss(model, config, p, {"ratings": r}, jax.random.key(1),
                                          {"recommend.l2": jnp.array(0.0)}, 0)[0])(params)
  out = grads["params"]["decoder"]
  assert np.all(np.asarray(out["bias"])[1] == 0) and np.all(np.asarray(out["kernel"])[:, 1] == 0)
  assert np.all(np.asarray(out["bias"])[[0, 2, 3]] != 0)
  prediction = model.apply(params, r)
  on_output = jax.grad(lambda y: metrics.rating_errors(y, r)["squared"].sum())(prediction)
  np.testing.assert_array_equal(np.asarray(on_output) == 0, np.asarray(r) == 0)


def test_rating_errors_are_numpys():
  rng = np.random.default_rng(0)
  targets = rng.integers(0, 6, (5, 7)).astype(np.float32)
  predicted = rng.uniform(1, 5, (5, 7)).astype(np.float32)
  errors = metrics.rating_errors(jnp.asarray(predicted), jnp.asarray(targets))
  observed = targets > 0
  diff = [predicted[i][observed[i]] - targets[i][observed[i]] for i in range(5)]
  np.testing.assert_allclose(errors["squared"], [np.sum(d**2) for d in diff], rtol=1e-6)
  np.testing.assert_allclose(errors["absolute"], [np.sum(np.abs(d)) for d in diff], rtol=1e-6)
  np.testing.assert_array_equal(errors["count"], observed.sum(1))


def test_recall_and_ndcg_of_hand_ranked_lists():
  """Six items; scores rank them 0 > 1 > ... > 5, item 5 seen (excluded). User A holds out items 1 and 4, user B
  item 0 only (fewer than k), user C nothing, user D items 0, 2, 3 and 4 (more than k = 2 and the cut-off 3)."""
  scores = jnp.tile(jnp.arange(6.0)[::-1], (4, 1))
  seen = jnp.zeros((4, 6)).at[:, 5].set(1.0)
  targets = jnp.zeros((4, 6)).at[0, 1].set(1).at[0, 4].set(1).at[1, 0].set(1).at[3, jnp.array([0, 2, 3, 4])].set(1)
  top = metrics.rank_top(scores, seen, 5)
  np.testing.assert_array_equal(top, [[0, 1, 2, 3, 4]] * 4)
  out = metrics.ranking(top, targets, (2, 5), 3)
  # A: 1 of its 2 in the top 2; B: 1 of min(2, 1); D: 1 hit (item 0) of min(2, 4) = 2.
  np.testing.assert_allclose(out["recall@2"], [1 / 2, 1.0, 0.0, 1 / 2])
  np.testing.assert_allclose(out["recall@5"], [1.0, 1.0, 0.0, 1.0])  # D: 4 of min(5, 4).
  dcg_a = 1 / math.log2(3)  # Item 1 at rank 2; item 4 is at rank 5, past the cut-off 3.
  ideal_a = 1 / math.log2(2) + 1 / math.log2(3)
  dcg_d = 1 / math.log2(2) + 1 / math.log2(4)  # Items 0 and 2 at ranks 1 and 3.
  ideal_d = 1 / math.log2(2) + 1 / math.log2(3) + 1 / math.log2(4)  # min(3, 4) = 3 hits at best.
  np.testing.assert_allclose(out["ndcg@3"], [dcg_a / ideal_a, 1.0, 0.0, dcg_d / ideal_d], rtol=1e-6)


def test_ease_weights_solve_each_columns_constrained_ridge_regression():
  """Column j of B is the ridge regression of item j on the other items (B_jj = 0), solved here directly."""
  x = (np.random.default_rng(0).random((30, 6)) < 0.4).astype(np.float64)
  b = baselines.ease(x, 3.0)
  for j in range(6):
    others = [i for i in range(6) if i != j]
    xo = x[:, others]
    expected = np.linalg.solve(xo.T @ xo + 3.0 * np.eye(5), xo.T @ x[:, j])
    np.testing.assert_allclose(b[others, j], expected, atol=1e-10)
    assert b[j, j] == 0


def test_means_baselines_fall_back_to_the_global_mean():
  train = (np.array([0, 0, 1]), np.array([0, 1, 0]), np.array([4.0, 2.0, 5.0]))
  out = baselines.mean_predictions(train, (np.array([0, 2]), np.array([1, 2])), num_users=3, num_items=3)
  np.testing.assert_allclose(out["global_mean"], [11 / 3] * 2)
  np.testing.assert_allclose(out["user_mean"], [3.0, 11 / 3])  # User 2 has no train ratings.
  np.testing.assert_allclose(out["item_mean"], [2.0, 11 / 3])


def _low_rank_file(folder, users=60, items=40, rank=2, share=0.5, seed=0):
  """A u.data file of a rank-2 rating matrix (ratings 1..5), `share` of its entries observed, for a data set
  registered as 'synthetic' by the caller."""
  rng = np.random.default_rng(seed)
  u, v = rng.normal(size=(users, rank)), rng.normal(size=(items, rank))
  full = np.clip(np.round(3 + u @ v.T), 1, 5)
  observed = rng.random((users, items)) < share
  observed[np.arange(users), rng.integers(0, items, users)] = True  # Every user and every item rated at least once.
  observed[rng.integers(0, users, items), np.arange(items)] = True
  rows, cols = np.nonzero(observed)
  folder.mkdir(parents=True, exist_ok=True)
  ids = 3 * np.arange(items) + 2  # Item ids that are not their indices + 1.
  (folder / "u.data").write_text("".join(f"{a + 1}\t{ids[b]}\t{int(full[a, b])}\t0\n" for a, b in zip(rows, cols)))
  flags = ["|".join("1" if g == item % 3 else "0" for g in range(19)) for item in range(items)]  # Genres 0, 1, 2.
  (folder / "u.item").write_text("".join(f"{ids[item]}|t|d||u|{flags[item]}\n" for item in range(items)))
  return catalog.Ratings(title="synthetic", num_users=users, num_items=items, rating_scale=(1.0, 5.0),
                         manual_file="u.data")


@pytest.fixture()
def synthetic(tmp_path, monkeypatch):
  dataset = _low_rank_file(tmp_path / "synthetic")
  monkeypatch.setitem(catalog._REGISTRY, "synthetic", dataset)  # pylint: disable=protected-access
  return tmp_path / "synthetic"


def test_autorec_recovers_a_low_rank_matrix_far_better_than_item_means(synthetic, tmp_path):
  c = _config("autorec", synthetic, **{"data.name": "synthetic", "recommend.hidden": 20, "recommend.l2": 1e-3,
                                       "learning_rate": 1e-2, "batch_size": 8, "num_steps": 600,
                                       "eval_every": 600, "checkpoint_every": 600, "data.ratings.test_fraction": 0.2,
                                       "eval.suites": ("recommend",)})
  summary = train.train_and_evaluate(c, tmp_path / "run")
  report = evaluate.evaluate_run(tmp_path / "run", ["recommend"])
  assert summary["test/mse"] == pytest.approx(report["recommend/rmse"] ** 2, rel=1e-5)  # The loop's exact MSE.
  assert report["recommend/rmse"] < 0.5 * report["recommend/item_mean_rmse"], report
  assert pathlib.Path(report["image/eval_item_map"]).is_file()  # Coloured by the u.item beside u.data.


def test_surprise_baselines_score_the_same_held_out_ratings(synthetic, tmp_path):
  pytest.importorskip("surprise", reason="scikit-surprise is the test extra's (pip install -e '.[test]')")
  c = _config("autorec", synthetic, **{"data.name": "synthetic", "num_steps": 20, "eval_every": 20, "batch_size": 8,
                                       "checkpoint_every": 20, "recommend.surprise": True})
  train.train_and_evaluate(c, tmp_path / "run")
  report = evaluate.evaluate_run(tmp_path / "run", ["recommend"])
  for name in baselines.SURPRISE_MODELS:
    assert 0 < report[f"recommend/{name}_rmse"] < report["recommend/global_mean_rmse"] and \
        report[f"recommend/{name}_seconds"] > 0


def test_without_surprise_the_suite_says_so_in_one_line(synthetic, tmp_path, monkeypatch, capsys):
  monkeypatch.setitem(sys.modules, "surprise", None)  # import surprise raises ImportError.
  c = _config("autorec", synthetic, **{"data.name": "synthetic", "num_steps": 10, "eval_every": 10, "batch_size": 8,
                                       "checkpoint_every": 10, "recommend.surprise": True})
  train.train_and_evaluate(c, tmp_path / "run")
  report = evaluate.evaluate_run(tmp_path / "run", ["recommend"])
  assert "recommend/svd_rmse" not in report and "recommend/item_mean_rmse" in report
  assert "aejax: recommend suite: scikit-surprise is not installed" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["autorec", "mult_vae", "mult_dae"])
def test_smoke_runs_learn_and_the_suite_scores_them_beside_the_baselines(name, tmp_path):
  c = _config(name)
  summary = train.train_and_evaluate(c, tmp_path / "run")
  rows = [r for r in map(json.loads, (tmp_path / "run" / "metrics.jsonl").read_text().splitlines())
          if "train/loss" in r]
  assert rows[-1]["train/loss"] < rows[0]["train/loss"]
  report = evaluate.evaluate_run(tmp_path / "run", None)
  assert report["suites"] == ["recommend"]
  if name == "autorec":
    assert report["recommend/rmse"] == pytest.approx(math.sqrt(summary["test/mse"]), rel=1e-5)
    assert report["recommend/test_ratings"] == 10_000
  else:
    assert report["recommend/ndcg@100"] == pytest.approx(summary["test/ndcg@100"], rel=1e-5)
    assert report["recommend/ease_ndcg@100"] > report["recommend/popularity_ndcg@100"]
  pictures = {"eval_error_by_activity"} if name == "autorec" else {"eval_ranking_by_activity"}
  assert {k for k in report if k.startswith("image/")} == {f"image/{p}" for p in pictures | {"eval_item_map"}}
  assert all(pathlib.Path(report[k]).is_file() for k in report if k.startswith("image/"))


def test_mult_vae_resumed_after_sigterm_equals_uninterrupted(tmp_path, monkeypatch, preempt_at):
  fields = {"num_steps": 40, "log_every": 10, "eval_every": 40, "checkpoint_every": 40, "eval.suites": ()}
  train.train_and_evaluate(_config("mult_vae", **fields), tmp_path / "whole")
  preempt_at(20)
  with pytest.raises(signals.Interrupted, match="at step 20; checkpoint saved"):
    train.train_and_evaluate(_config("mult_vae", **fields), tmp_path / "resumed")
  monkeypatch.undo()
  train.train_and_evaluate(_config("mult_vae", **fields), tmp_path / "resumed")
  for x, y in zip(jax.tree.leaves(saved_checkpoint(tmp_path / "whole", 40)),
                  jax.tree.leaves(saved_checkpoint(tmp_path / "resumed", 40)), strict=True):
    np.testing.assert_array_equal(x, y)


def test_a_bundle_of_l2_and_seed_members_ends_as_if_each_trained_alone(tmp_path):
  fields = {"num_steps": 20, "eval_every": 20, "checkpoint_every": 20, "eval.suites": ()}
  members = [_config("autorec", **fields), _config("autorec", **fields, **{"recommend.l2": 0.3, "seed": 1})]
  bundle.train_bundle(members, [tmp_path / "m0", tmp_path / "m1"])
  train.train_and_evaluate(members[1], tmp_path / "alone")
  for x, y in zip(jax.tree.leaves(saved_checkpoint(tmp_path / "alone", 20)),
                  jax.tree.leaves(saved_checkpoint(tmp_path / "m1", 20)), strict=True):
    np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6)


def _bad_file(folder, text):
  folder.mkdir(exist_ok=True)
  (folder / "u.data").write_text(text)
  return folder


@pytest.mark.parametrize("text, message", [
    ("196,242,3,881250949\n", "is not in the GroupLens layout of u.data (user, item, rating, timestamp separated by "
     "tabs, one rating a line): give the original MovieLens 100K file"),
    ("944\t1\t3\t0\n", "user ids run 944..944, where MovieLens 100K has 943 users"),
])
def test_a_ratings_file_of_another_layout_or_other_ids_is_one_line(tmp_path, text, message):
  folder = _bad_file(tmp_path / "bad", text)
  with pytest.raises(ConfigError, match=re.escape(message)):
    ratings.read("movielens_100k", str(folder))


@pytest.mark.parametrize("fields, message", [
    ({"data.ratings.fold": 5, "data.ratings.protocol": "kfold"},
     "config.data.ratings.fold=5: use a fold index in 0..4 (folds=5)"),
    ({"data.ratings.threshold": 6.0}, "config.data.ratings.threshold=6.0: movielens_100k's ratings run 1..5: use a "
     "threshold above 1 and at most 5, e.g. 4"),
    ({"data.ratings.protocol": "strong"}, "config.data.ratings.protocol='strong': autorec predicts explicit ratings"),
    ({"data.name": "mnist"}, "config.data.name='mnist': autorec learns from ratings: use one of movielens_100k"),
])
def test_bad_ratings_fields_are_one_line(fields, message):
  with pytest.raises(ConfigError, match="^" + re.escape(message)):
    train.check_config(_config("autorec", **fields))


def test_an_image_variant_on_ratings_is_one_line():
  c = config_lib.from_file(f"{REPO}/experiments/ae.py:smoke")
  c.data.name = "movielens_100k"
  with pytest.raises(ConfigError, match="^" + re.escape("config.data.name='movielens_100k' is a ratings data set, "
                                                        "which "
                                                        "only the recommendation variants read")):
    train.check_config(c)


def test_image_suites_on_a_ratings_run_are_one_line():
  with pytest.raises(ConfigError, match="^" + re.escape("suite 'recon' scores images, and movielens_100k holds "
                                                        "ratings: use recommend")):
    train.check_config(_config("autorec", **{"eval.suites": ("recon",)}))


@pytest.mark.parametrize("name, size", [("autorec", 12), ("mult_vae", 12), ("mult_dae", 12)])
def test_every_sweep_member_passes_the_checks_and_the_launchers_read_their_data(name, size, tmp_path, capsys):
  from launch import common  # pylint: disable=g-import-not-at-top
  spec, overrides = f"{REPO}/experiments/{name}.py", {"data.manual_dir": str(ML_100K)}
  sweep = common.resolve(sweep_lib.override(config_lib.from_file(spec), overrides), spec, overrides, tmp_path)
  assert len(sweep.members) == size  # Each member checked as a run would be.
  common.prepare_data(sweep)  # What launch.local and launch.slurm do before starting the members.
  assert sweep.datasets == (("movielens_100k", None, str(ML_100K), True, None),)
  assert sweep_lib.load_curves(spec)[0][1][0].startswith("recommend/")  # Curves of the suite's measures.


def test_tfds_stock_movielens_is_read_where_it_is_prepared(tmp_path, monkeypatch):
  """TFDS's own `movielens` builder, prepared here from three ratings (its GroupLens parsing needs TensorFlow, so
  its generator is replaced), read back by aejax without TFDS's readers."""
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  from tensorflow_datasets.structured import movielens  # pylint: disable=g-import-not-at-top
  rows = [(1, 10, 3.0), (3, 5, 4.5), (2, 10, 1.0)]

  def generate(self, dir_path=None):
    del dir_path
    names = self.info.features.keys()
    for i, (user, movie, rating) in enumerate(rows):
      full = {"movie_id": str(movie), "movie_title": "t", "movie_genres": [0], "user_id": str(user),
              "user_rating": rating, "timestamp": 0, "user_gender": True, "bucketized_user_age": 25.0,
              "user_occupation_label": 0, "user_occupation_text": "x", "user_zip_code": "1", "raw_user_age": 25.0}
      yield i, {k: v for k, v in full.items() if k in names}

  monkeypatch.setattr(movielens.Movielens, "_split_generators", lambda self, dl: {"train": self._generate_examples()})
  monkeypatch.setattr(movielens.Movielens, "_generate_examples", generate)
  tfds.builder("movielens/100k-ratings", data_dir=tmp_path, file_format="array_record").download_and_prepare()
  monkeypatch.setitem(catalog._REGISTRY, "tiny", catalog.Ratings(  # pylint: disable=protected-access
      title="tiny", num_users=3, num_items=2, rating_scale=(1.0, 5.0), manual_file="u.data",
      stock="movielens/100k-ratings"))
  triples = ratings.read("tiny", None, str(tmp_path))  # Sorted by user, then item.
  np.testing.assert_array_equal(triples.users, [0, 1, 2])
  np.testing.assert_array_equal(triples.items, [1, 1, 0])  # Movie ids 5 and 10, by rank.
  np.testing.assert_array_equal(triples.ratings, [3.0, 1.0, 4.5])


def test_without_manual_dir_or_tensorflow_the_stock_builder_is_one_line(tmp_path):
  try:
    import tensorflow  # noqa: F401  pylint: disable=g-import-not-at-top,unused-import
    pytest.skip("TensorFlow is installed here: TFDS's builder would download MovieLens")
  except ImportError:
    pass
  with pytest.raises(ConfigError, match="^" + re.escape("data.manual_dir=None: TFDS's movielens/100k-ratings builder "
                                                        "parses the GroupLens files with TensorFlow, which is not "
                                                        "installed")):
    ratings.read("movielens_100k", None, str(tmp_path))


@pytest.mark.parametrize("manual_file, text", [
    ("u.data", "1\t10\t3\t881250949\n3\t5\t5\t881250950\n2\t10\t1\t881250951\n"),  # 100K
    ("ratings.dat", "1::10::3::978300760\n3::5::5::978300761\n2::10::1::978300762\n"),  # 1M
    ("ratings.csv", "userId,movieId,rating,timestamp\n1,10,3.0,1112486027\n3,5,4.5,1112484676\n2,10,1.0,1112484819\n"),
])
def test_each_grouplens_layout_is_read(tmp_path, monkeypatch, manual_file, text):
  (tmp_path / manual_file).write_text(text)
  monkeypatch.setitem(catalog._REGISTRY, "tiny", catalog.Ratings(  # pylint: disable=protected-access
      title="tiny", num_users=3, num_items=2, rating_scale=(0.5, 5.0), manual_file=manual_file))
  triples = ratings.read("tiny", str(tmp_path))  # Sorted by user, then item.
  np.testing.assert_array_equal(triples.users, [0, 1, 2])
  np.testing.assert_array_equal(triples.items, [1, 1, 0])
  assert triples.ratings[0] == 3.0 and triples.ratings[1] == 1.0 and triples.ratings[2] in (4.5, 5.0)


def test_mult_vae_loss_is_a_numpy_transcription_of_liang_et_al():
  """The loss at step 30 of a 100-step anneal to β_max = 0.2: input L2-normalised, then dropped (kept entries
  scaled by 1/keep), a tanh layer, the Gaussian code's draw, the tanh layer back, the multinomial NLL of the
  interactions, β·KL and the weight cost; the draws are the loss's own (its key split the same way)."""
  from aejax.variants.recommend import mult_vae  # pylint: disable=g-import-not-at-top
  x = np.zeros((3, 7), np.float32)
  x[0, [0, 2, 5]] = 4.0
  x[1, [1]] = 5.0
  x[2, [3, 4, 5, 6]] = 4.5
  model = models.MultVAE(widths=(5,), latent_dim=2, outputs=7, variational=True)
  params = model.init(jax.random.key(0), jnp.asarray(x))
  hp = {"beta": jnp.array(0.2), "kl_warmup_steps": jnp.array(100.0), "recommend.l2": jnp.array(0.01),
        "recommend.dropout": jnp.array(0.5)}
  key = jax.random.key(7)
  total, terms = mult_vae.loss(model, None, params, {"ratings": jnp.asarray(x)}, key, hp, jnp.array(30))
  drop_key, code_key = jax.random.split(key)
  kept = np.asarray(jax.random.bernoulli(drop_key, 0.5, x.shape))
  p = jax.tree.map(np.asarray, params["params"])
  dense = lambda h, layer: h @ p[layer]["kernel"] + p[layer]["bias"]  # noqa: E731
  binary = (x > 0).astype(np.float64)
  h = np.where(kept, binary / np.linalg.norm(binary, axis=1, keepdims=True) / 0.5, 0.0)
  code = dense(np.tanh(dense(h, "encoder_0")), "code")
  mean, logvar = code[:, :2], code[:, 2:]
  z = mean + np.exp(0.5 * logvar) * np.asarray(jax.random.normal(code_key, mean.shape))
  logits = dense(np.tanh(dense(z, "decoder_0")), "logits")
  log_softmax = logits - np.log(np.sum(np.exp(logits), axis=1, keepdims=True))
  nll = np.mean(-np.sum(log_softmax * binary, axis=1))
  kl = np.mean(0.5 * np.sum(mean**2 + np.exp(logvar) - logvar - 1, axis=1))
  beta = 0.2 * 31 / 100  # Linear from 0, (step + 1) / kl_warmup_steps of β_max.
  cost = 0.01 * 0.5 * sum(np.sum(p[layer]["kernel"] ** 2) for layer in p)
  np.testing.assert_allclose([terms["multinomial_nll"], terms["kl"], terms["beta"], terms["weight_cost"]],
                             [nll, kl, beta, cost], rtol=1e-5)
  np.testing.assert_allclose(total, nll + beta * kl + cost, rtol=1e-5)


@pytest.mark.parametrize("manual_file, movies, text", [
    ("u.data", "u.item", "5|A (1995)|01-Jan-1995||http://x|0|0|0|1|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0\n"
                         "10|B (1995)|01-Jan-1995||http://x|0|0|0|0|0|0|0|0|1|0|0|0|0|0|0|0|0|1|0\n"),
    ("ratings.dat", "movies.dat", "5::A (1995)::Animation|Comedy\n10::B (1995)::Drama|War\n"),
    ("ratings.csv", "movies.csv", 'movieId,title,genres\n5,"A, The (1995)",Animation|Comedy\n10,B (1995),Drama|War\n'),
])
def test_each_releases_movies_file_gives_the_items_first_genres(tmp_path, manual_file, movies, text):
  from aejax.variants.recommend import suite  # pylint: disable=g-import-not-at-top
  (tmp_path / movies).write_text(text)
  dataset = dataclasses.replace(catalog.get("movielens_100k"), manual_file=manual_file)
  names, first = suite.genres(str(tmp_path), dataset, np.array([5, 10, 7]))  # Movie 7 is not in the file.
  assert [names[g] for g in first] == ["Animation", "Drama", "unknown"]
  assert suite.genres(str(tmp_path / "none"), dataset, np.array([5])) is None


def test_validation_users_are_drawn_after_the_test_users_and_train_on_neither_side(triples):
  dataset = catalog.get("movielens_100k")
  r = _config("mult_vae").data.ratings
  plain = ratings.strong_generalization(triples, dataset, r)
  r.validation_fraction = 0.2
  test = ratings.strong_generalization(triples, dataset, r)
  r.score = "validation"
  validation = ratings.strong_generalization(triples, dataset, r)
  np.testing.assert_array_equal(test.test_ids, plain.test_ids)  # The same test users with or without validation.
  np.testing.assert_array_equal(test.train_ids, validation.train_ids)
  assert not set(validation.test_ids) & set(test.test_ids)
  assert not (set(validation.test_ids) | set(test.test_ids)) & set(test.train_ids)
  assert len(validation.test_ids) == pytest.approx(len(test.test_ids), abs=3)
  assert set(plain.train_ids) == set(test.train_ids) | set(validation.test_ids)


@pytest.mark.parametrize("fields, message", [
    ({"data.ratings.score": "validation"}, "config.data.ratings.score='validation': there are no validation users"),
    ({"data.ratings.validation_fraction": 0.8}, "config.data.ratings.validation_fraction=0.8: use 0 (none) or a "
     "share of the users below 1 - heldout_fraction = 0.8"),
])
def test_bad_validation_fields_are_one_line(fields, message):
  with pytest.raises(ConfigError, match="^" + re.escape(message)):
    train.check_config(_config("mult_vae", **fields))


def test_no_download_without_manual_dir_is_one_line(tmp_path):
  with pytest.raises(ConfigError, match="^" + re.escape("data.download=False and TFDS's movielens/100k-ratings is "
                                                        "not prepared in")):
    ratings.read("movielens_100k", None, str(tmp_path), download=False)


def test_a_share_that_holds_out_no_user_is_one_line(triples):
  r = _config("mult_vae", **{"data.ratings.validation_fraction": 0.0005, "data.ratings.score": "validation"})
  with pytest.raises(ConfigError, match="^" + re.escape("config.data.ratings.validation_fraction=0.0005: it holds "
                                                        "out no user")):
    ratings.strong_generalization(triples, catalog.get("movielens_100k"), r.data.ratings)
