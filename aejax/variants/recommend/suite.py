"""The `recommend` suite: a trained run scored on its own split, beside the classical recommenders fitted on the same
train ratings (`baselines`), with the error by user activity and a map of the item codes.

Explicit ratings (autorec): RMSE and MAE on the held-out ratings of the model, of the global, user and item means,
and of scikit-surprise's SVD, SVD++ and KNNBaseline where that package is installed (`recommend.surprise`), with
their fit times. Implicit feedback (mult_vae, mult_dae): Recall@20, Recall@50 and NDCG@100 over the held-out
users of the model, of the popularity ranking and of EASE (`recommend.ease_l2`). Both: the measure per bucket of
users by their count of train (or fold-in) ratings, cold to heavy, as metrics and a bar chart; and the item codes'
first two principal components, coloured by each item's first genre where data.manual_dir holds the release's
movies file (u.item, movies.dat, movies.csv), else by how often each item is rated.
"""
import csv
import pathlib
import sys
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from aejax import images
from aejax.data import catalog, ratings
from aejax.evaluation import batches
from aejax.variants.recommend import baselines, metrics, models
from aejax.variants.recommend.metrics import NDCG_AT, RECALL_AT

# Users bucketed by their count of train (or fold-in) ratings: [edge_i, edge_i+1).
ACTIVITY_EDGES = (0, 20, 50, 100, 200, np.inf)
_GENRES_100K = ("unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary",
                "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller",
                "War", "Western")

Metrics = dict[str, float]
Pictures = dict[str, images.Grid]


def _entries(matrix: np.ndarray, ids: np.ndarray, by_item: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """(users, items, ratings) of a rating-code matrix's entries, its rows `ids` items (`by_item`) or users."""
  rows, cols = np.nonzero(matrix)
  values = matrix[rows, cols].astype(np.float64) * ratings.CODE_SCALE
  users, items = (cols, ids[rows]) if by_item else (ids[rows], cols)
  return users, items, values


def _bucket_names() -> list[str]:
  return [f"{lo}-{hi - 1:g}" if np.isfinite(hi) else f"{lo}+" for lo, hi in zip(ACTIVITY_EDGES, ACTIVITY_EDGES[1:])]


def _buckets(activity: np.ndarray) -> np.ndarray:
  """The bucket index of each activity count."""
  return np.searchsorted(np.asarray(ACTIVITY_EDGES[1:-1]), activity, side="right")


def _apply(run: Any, x: np.ndarray) -> np.ndarray:
  """The model's output (predicted ratings, or logits) for rows `x`, in batches."""
  fn = jax.jit(lambda rows: run.model.apply(run.state.params, rows))
  return batches.apply(fn, x.astype(np.float32), run.config.eval_batch_size)


def explicit(run: Any, m: ratings.Matrices, dataset: catalog.Ratings) -> tuple[Metrics, Pictures]:
  """RMSE and MAE of the model and of the baselines on the held-out ratings, overall and by user activity."""
  config = run.config
  by_item = config.data.ratings.rows == "items"
  low, high = dataset.rating_scale
  predicted_rows = np.clip(_apply(run, m.test_inputs * ratings.CODE_SCALE), low, high)
  rows, cols = np.nonzero(m.test_targets)
  truth = m.test_targets[rows, cols].astype(np.float64) * ratings.CODE_SCALE
  train = _entries(m.train, m.train_ids, by_item)
  test_users, test_items, _ = _entries(m.test_targets, m.test_ids, by_item)
  predictions = {"model": predicted_rows[rows, cols].astype(np.float64),
                 **baselines.mean_predictions(train, (test_users, test_items), dataset.num_users, dataset.num_items)}
  seconds = {}
  if config.recommend.surprise:
    fitted = baselines.surprise_predictions(train, (test_users, test_items), dataset.rating_scale, config.seed)
    if fitted is None:
      print("aejax: recommend suite: scikit-surprise is not installed, so its SVD, SVD++ and KNNBaseline are left "
            "out (pip install scikit-surprise)", file=sys.stderr, flush=True)
    for name, (values, took) in (fitted or {}).items():
      predictions[name], seconds[name] = values, took
  activity = _buckets(np.bincount(train[0], minlength=dataset.num_users)[test_users])
  out = {}
  for name, values in predictions.items():
    prefix = "recommend/" if name == "model" else f"recommend/{name}_"
    error = values - truth
    out[f"{prefix}rmse"] = float(np.sqrt(np.mean(error**2)))
    out[f"{prefix}mae"] = float(np.mean(np.abs(error)))
    for b, bucket in enumerate(_bucket_names()):
      chosen = activity == b
      if chosen.any():
        out[f"{prefix}rmse_users_{bucket}"] = float(np.sqrt(np.mean(error[chosen] ** 2)))
  out.update({f"recommend/{name}_seconds": took for name, took in seconds.items()})
  out["recommend/test_ratings"] = float(len(truth))
  best = min((name for name in predictions if name != "model"), key=lambda n: out[f"recommend/{n}_rmse"])
  pictures = {"eval_error_by_activity": _bars(out, "rmse", ("model", best), "RMSE on held-out ratings",
                                                      "train ratings"),
              "eval_item_map": _item_map(run, m, by_item, config.data.manual_dir, dataset)}
  return out, pictures


def implicit(run: Any, m: ratings.Matrices, dataset: catalog.Ratings) -> tuple[Metrics, Pictures]:
  """Recall@20, Recall@50 and NDCG@100 over the held-out users of the model, popularity and EASE."""
  seen = (m.test_inputs > 0).astype(np.float32)
  train = (m.train > 0).astype(np.float32)
  scores = {"model": _apply(run, np.asarray(models.normalized(seen))),
            "popularity": np.broadcast_to(baselines.popularity(train), seen.shape),
            "ease": seen @ baselines.ease(train, run.config.recommend.ease_l2)}
  activity = _buckets(seen.sum(axis=1))
  out = {}
  for name, score in scores.items():
    prefix = "recommend/" if name == "model" else f"recommend/{name}_"
    top = metrics.rank_top(jnp.asarray(score, jnp.float32), seen, max(*RECALL_AT, NDCG_AT))
    per_user = {k: np.asarray(v) for k, v in metrics.ranking(top, m.test_targets, RECALL_AT, NDCG_AT).items()}
    out.update({f"{prefix}{k}": float(v.mean()) for k, v in per_user.items()})
    for b, bucket in enumerate(_bucket_names()):
      chosen = activity == b
      if chosen.any():
        out[f"{prefix}ndcg@{NDCG_AT}_users_{bucket}"] = float(per_user[f"ndcg@{NDCG_AT}"][chosen].mean())
  out["recommend/test_users"] = float(len(seen))
  pictures = {"eval_ranking_by_activity": _bars(out, f"ndcg@{NDCG_AT}", ("model", "ease", "popularity"),
                                                f"NDCG@{NDCG_AT} of held-out users", "fold-in interactions"),
              "eval_item_map": _item_map(run, m, False, run.config.data.manual_dir, dataset)}
  return out, pictures


def recommend(run: Any) -> tuple[Metrics, Pictures]:
  """The suite on the run's split (read again from its config, drawn by `data.ratings.split_seed`)."""
  dataset = catalog.get(run.config.data.name)
  m = ratings.matrices(run.config.data)
  if run.config.data.ratings.protocol == "strong":
    return implicit(run, m, dataset)
  return explicit(run, m, dataset)


def _bars(out: Metrics, measure: str, names: tuple[str, ...], title: str, activity: str) -> images.Grid:
  """A bar chart of `measure` per user-activity bucket (users by their count of `activity`), one bar per model in
  `names`."""
  buckets = [b for b in _bucket_names() if f"recommend/{measure}_users_{b}" in out]
  figure, axis = images.pyplot().subplots(figsize=(7, 4), dpi=100)
  width = 0.8 / len(names)
  for n, name in enumerate(names):
    prefix = "recommend/" if name == "model" else f"recommend/{name}_"
    axis.bar(np.arange(len(buckets)) + n * width, [out[f"{prefix}{measure}_users_{b}"] for b in buckets], width,
             label=name)
  axis.set(xticks=np.arange(len(buckets)) + width * (len(names) - 1) / 2, xticklabels=buckets,
           xlabel=f"users by their {activity}", ylabel=measure, title=title)
  axis.legend()
  figure.tight_layout()
  return images.figure_picture(figure)


def item_codes(run: Any, m: ratings.Matrices, by_item: bool) -> np.ndarray:
  """A vector per item (items, D): the code of its row (I-AutoRec), else its column of the output layer's weights."""
  if by_item:
    fn = jax.jit(lambda rows: run.model.apply(run.state.params, rows, method=run.model.encode))
    return batches.apply(fn, m.train.astype(np.float32) * ratings.CODE_SCALE, run.config.eval_batch_size)
  layer = "decoder" if isinstance(run.model, models.AutoRec) else "logits"
  return np.asarray(run.state.params["params"][layer]["kernel"]).T


# Each release's file of movies beside its ratings, and how a line gives (movie id, its genres).
_MOVIE_FILES = {"u.data": "u.item", "ratings.dat": "movies.dat", "ratings.csv": "movies.csv"}


def _movie_genres(path: pathlib.Path) -> dict[int, list[str]]:
  """Movie id -> its genres, from a GroupLens movies file: 100K's u.item (19 flags), 1M's movies.dat
  ('id::title::A|B'), 20M's movies.csv ('movieId,title,A|B' under a header, titles quoted)."""
  if path.name == "movies.csv":
    with path.open(newline="", encoding="utf-8") as f:
      return {int(row[0]): row[2].split("|") for row in list(csv.reader(f))[1:]}
  out = {}
  for line in path.read_bytes().decode("latin-1").splitlines():
    if path.name == "u.item":
      parts = line.split("|")
      flags = parts[-len(_GENRES_100K):]
      out[int(parts[0])] = [g for g, flag in zip(_GENRES_100K, flags) if flag == "1"] or ["unknown"]
    elif line:
      movie, _, kinds = line.split("::")
      out[int(movie)] = kinds.split("|")
  return out


def genres(manual_dir: str | None, dataset: catalog.Ratings,
           item_ids: np.ndarray) -> tuple[tuple[str, ...], np.ndarray] | None:
  """Each item's first genre as an index into the genre names returned beside, from the movies file of
  data.manual_dir's release; None without that file."""
  path = None if manual_dir is None else pathlib.Path(manual_dir).expanduser() / _MOVIE_FILES[dataset.manual_file]
  if path is None or not path.is_file():
    return None
  by_id = _movie_genres(path)
  first = [by_id.get(int(i), ["unknown"])[0] for i in item_ids]
  names = tuple(sorted(set(first)))
  return names, np.searchsorted(np.array(names), first)


def _item_map(run: Any, m: ratings.Matrices, by_item: bool, manual_dir: str | None,
              dataset: catalog.Ratings) -> images.Grid:
  """The item codes' first two principal components, coloured by genre or by log10 of the item's train ratings."""
  from sklearn import decomposition  # pylint: disable=g-import-not-at-top  (only for this picture)
  codes = item_codes(run, m, by_item)
  items = m.train_ids if by_item else m.columns  # The item of each code.
  plane = decomposition.PCA(n_components=2).fit_transform(codes)
  figure, axis = images.pyplot().subplots(figsize=(6.5, 5.5), dpi=100)
  found = genres(manual_dir, dataset, m.item_ids)
  if found is not None:
    names, first = found[0], found[1][items]
    for g in np.unique(first):
      chosen = first == g
      axis.scatter(plane[chosen, 0], plane[chosen, 1], s=4, label=names[g])
    axis.legend(fontsize=6, markerscale=2, ncol=2)
  else:
    counts = (m.train > 0).sum(axis=1 if by_item else 0)
    points = axis.scatter(plane[:, 0], plane[:, 1], c=np.log10(1 + counts), s=4, cmap="viridis")
    figure.colorbar(points, ax=axis, label="log10(1 + train ratings)")
  axis.set(xlabel="PC 1", ylabel="PC 2", title="item codes")
  figure.tight_layout()
  return images.figure_picture(figure)
