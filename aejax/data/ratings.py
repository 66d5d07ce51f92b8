"""Ratings data sets (`catalog.Ratings`): the (user, item, rating) triples read from the GroupLens files or TFDS's
`movielens` builder, split by one of the protocols of the recommendation literature, as dense rating matrices.

Protocols (`config.data.ratings.protocol`), all drawn from `ratings.split_seed` alone, so that every model compared
(and every fold of a k-fold run) sees the same split whatever its own seed:
- 'holdout': a random `test_fraction` of the ratings is held out (AutoRec's 90/10);
- 'kfold': the ratings in `folds` random folds, fold `fold` held out (scikit-surprise's `KFold`);
- 'strong': strong generalisation (Liang et al. 2018) on implicit feedback: ratings >= `threshold` are the
  interactions, users with fewer than `min_interactions` of them are dropped, `heldout_fraction` of the users are
  held out for test (and `validation_fraction` more for validation, scored instead with `score='validation'`); of
  each held-out user's interactions a random `fold_in` fraction is the model's input and the rest are scored.

Matrices hold rating codes, uint8: the rating times 2 (exact for half stars), 0 where there is none, one row per
user or per item (`ratings.rows`: AutoRec's U- and I- variants); 1.6 MB for MovieLens 100K, 22 MB for 1M, kept
on the device whole (the train matrix, and the test split's targets beside it). 20M's 138,493 x 26,744 is 3.7 GB
a matrix: training holds two on the device, and the recommend suite works on float copies on the host (some
30 GB, and EASE's three 26,744² float64 matrices, 17 GB), so 20M needs a large machine; gathering rows from a
sparse layout per batch, which would lift this, is not done.
"""
import dataclasses
import pathlib
import sys
import time
import warnings

import numpy as np
from ml_collections import config_dict

from aejax.data import catalog
from aejax.errors import ConfigError

CODE_SCALE = 0.5  # A rating code times this is the rating.
PROTOCOLS = ("holdout", "kfold", "strong")
ROWS = ("items", "users")
# The GroupLens layouts: (separator, header lines) of each release's ratings file.
_LAYOUTS = {"u.data": ("\t", 0), "ratings.dat": ("::", 0), "ratings.csv": (",", 1)}
_SEPARATOR_NAMES = {"\t": "tabs", "::": "'::'", ",": "commas"}


@dataclasses.dataclass(frozen=True)
class Triples:
  """The ratings of a data set: 0-based user and item indices (int32) and ratings (float32), by user then item."""
  users: np.ndarray
  items: np.ndarray
  ratings: np.ndarray
  item_ids: np.ndarray  # The id in the files of each item index (int64, ascending).


@dataclasses.dataclass(frozen=True)
class Matrices:
  """A split as rating-code matrices (uint8, `CODE_SCALE`): the train rows, and the test rows' inputs (what the
  model sees) and targets (what is scored); each row's index (its user or item) in `*_ids`, each column's in
  `columns`."""
  train: np.ndarray
  train_ids: np.ndarray
  test_inputs: np.ndarray
  test_targets: np.ndarray
  test_ids: np.ndarray
  columns: np.ndarray  # Each column's user or item index.
  item_ids: np.ndarray  # The id in the files of each item index (`Triples.item_ids`).


def read(name: str, manual_dir: str | None, data_dir: str | None = None, download: bool = True) -> Triples:
  """The ratings of data set `name`: from `manual_dir`'s GroupLens file (`catalog.Ratings.manual_file`) when given,
  else from TFDS's stock builder in `data_dir` (prepared there first if `download`); a `ConfigError` for a file in
  another layout, ids beyond the data set's counts or ratings off its scale."""
  dataset = catalog.get(name)
  start = time.perf_counter()
  if manual_dir is not None:
    path = pathlib.Path(manual_dir).expanduser() / dataset.manual_file
    if not path.is_file():
      raise ConfigError(f"data.manual_dir={manual_dir!r} holds no {dataset.manual_file}: point it at the folder of "
                        f"the {dataset.title} release (GroupLens), or None to use TFDS's {dataset.stock} builder")
    users, item_ids, values = _parse(path, dataset)
    source = str(path)
  else:
    users, item_ids, values, source = _read_stock(dataset, data_dir, download)
  triples = _index(users, item_ids, values, dataset, source)
  if manual_dir is None or time.perf_counter() - start > 1.0:
    print(f"aejax: read {len(values):,} {dataset.title} ratings from {source} in {time.perf_counter() - start:.1f} s",
          file=sys.stderr, flush=True)
  return triples


def _parse(path: pathlib.Path, dataset: catalog.Ratings) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """The (user id, item id, rating) columns of a GroupLens ratings file (ids as in the file)."""
  separator, header = _LAYOUTS[dataset.manual_file]
  lines = path.read_bytes().splitlines()[header:]
  text = b" ".join(lines).replace(separator.encode(), b" ").replace(b"\t", b" ")
  # NumPy's C parser of whitespace-separated numbers (MovieLens 20M's 20 million lines in seconds): it raises, or
  # (older NumPy) warns and stops, at the first thing that is not a number, which the count below catches.
  with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    try:
      values = np.fromstring(text.decode("latin-1"), sep=" ")
    except ValueError:
      values = np.zeros(0)
  if len(values) != 4 * len(lines) or not lines:
    raise ConfigError(f"data.manual_dir: {str(path)!r} is not in the GroupLens layout of {dataset.manual_file} "
                      f"(user, item, rating, timestamp separated by {_SEPARATOR_NAMES[separator]}, one rating a "
                      f"line): give the original {dataset.title} file")
  table = values.reshape(len(lines), 4)
  return table[:, 0].astype(np.int64), table[:, 1].astype(np.int64), table[:, 2].astype(np.float32)


def _read_stock(dataset: catalog.Ratings, data_dir: str | None,
                download: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray, str]:
  """The (user id, item id, rating) columns of TFDS's stock builder (`dataset.stock`), prepared in `data_dir` (TFDS
  downloads it first where it is not): its parsing of the GroupLens files needs TensorFlow."""
  # pylint: disable=g-import-not-at-top,unused-import  (only without data.manual_dir)
  import tensorflow_datasets as tfds
  # Registers the builder: TFDS leaves its structured data sets out of its registry where TensorFlow is missing.
  from tensorflow_datasets.structured import movielens  # noqa: F401

  from aejax.data import datasets
  # pylint: enable=g-import-not-at-top,unused-import
  builder = tfds.builder(dataset.stock, data_dir=data_dir, file_format="array_record")
  if not builder.is_prepared():
    if not download:
      raise ConfigError(f"data.download=False and TFDS's {dataset.stock} is not prepared in {builder.data_dir}: "
                        f"allow the download, or give the {dataset.title} files as --config.data.manual_dir")
    try:
      import tensorflow  # noqa: F401  pylint: disable=g-import-not-at-top,unused-import
    except ImportError:
      raise ConfigError(f"data.manual_dir=None: TFDS's {dataset.stock} builder parses the GroupLens files with "
                        "TensorFlow, which is not installed: pip install tensorflow, or download the "
                        f"{dataset.title} release from grouplens.org and give its folder as --config.data.manual_dir")
    with datasets.preparation_lock(pathlib.Path(builder.data_dir).parents[2], dataset.stock.replace("/", "-")):
      if not builder.is_prepared():  # Else another process prepared it while this one waited.
        try:
          builder.download_and_prepare()
        except Exception as e:  # pylint: disable=broad-except  (TFDS's download and parsing raise many kinds)
          raise ConfigError(f"data.manual_dir=None: TFDS's {dataset.stock} builder failed ({type(e).__name__}: "
                            f"{str(e).splitlines()[0] if str(e) else ''}): download the {dataset.title} release "
                            "from grouplens.org and give its folder as --config.data.manual_dir") from e
    builder = tfds.builder(dataset.stock, data_dir=data_dir, file_format="array_record")  # Reads what is there now.
  info = builder.info.splits["train"]
  features = [datasets.tf_example(record).features.feature
              for record in datasets.read_records(info.filepaths, info.shard_lengths, info.num_examples)]
  users = np.array([int(f["user_id"].bytes_list.value[0]) for f in features], np.int64)
  items = np.array([int(f["movie_id"].bytes_list.value[0]) for f in features], np.int64)
  values = np.array([f["user_rating"].float_list.value[0] for f in features], np.float32)
  return users, items, values, f"TFDS's {dataset.stock} in {builder.data_dir}"


def _index(users: np.ndarray, item_ids: np.ndarray, values: np.ndarray, dataset: catalog.Ratings,
           source: str) -> Triples:
  """0-based indices, users by id (1..num_users) and items by rank among the rated ids, sorted by user and item;
  checked against the counts."""
  low, high = dataset.rating_scale

  def bad(why: str) -> ConfigError:
    return ConfigError(f"{source}: {why}, where {dataset.title} has {dataset.num_users:,} users (ids 1.."
                       f"{dataset.num_users:,}), {dataset.num_items:,} rated items and ratings {low:g}..{high:g}: "
                       f"give the original {dataset.title} ratings")

  if len(users) == 0:
    raise bad("no ratings")
  if users.min() < 1 or users.max() > dataset.num_users:
    raise bad(f"user ids run {users.min()}..{users.max()}")
  distinct, items = np.unique(item_ids, return_inverse=True)
  if len(distinct) != dataset.num_items:
    raise bad(f"{len(distinct):,} items are rated")
  if values.min() < low or values.max() > high or np.any(values * 2 != np.round(values * 2)):
    raise bad(f"ratings run {values.min():g}..{values.max():g}")
  order = np.lexsort((items, users))  # By user, then item: a split drawn by seed is the same from either source.
  return Triples((users[order] - 1).astype(np.int32), items[order].astype(np.int32), values[order], distinct)


def test_mask(count: int, r: config_dict.ConfigDict) -> np.ndarray:
  """Which of `count` ratings are held out, bool (count,), by protocol 'holdout' or 'kfold' of `r` (a
  `config.data.ratings`)."""
  order = np.random.default_rng(r.split_seed).permutation(count)
  held = np.zeros(count, bool)
  if r.protocol == "holdout":
    held[order[:round(r.test_fraction * count)]] = True
  else:
    held[np.array_split(order, r.folds)[r.fold]] = True
  return held


def _codes(rows: np.ndarray, cols: np.ndarray, values: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
  matrix = np.zeros(shape, np.uint8)
  matrix[rows, cols] = np.round(values / CODE_SCALE).astype(np.uint8)
  return matrix


def explicit(triples: Triples, dataset: catalog.Ratings, r: config_dict.ConfigDict) -> Matrices:
  """The 'holdout' or 'kfold' split as matrices with a row per `r.rows`: every row in train and in test, the test
  rows' inputs their train ratings and their targets the held-out ones."""
  held = test_mask(len(triples.ratings), r)
  by_item = r.rows == "items"
  rows, cols = (triples.items, triples.users) if by_item else (triples.users, triples.items)
  shape = (dataset.num_items, dataset.num_users) if by_item else (dataset.num_users, dataset.num_items)
  train = _codes(rows[~held], cols[~held], triples.ratings[~held], shape)
  ids = np.arange(shape[0], dtype=np.int32)
  return Matrices(train, ids, train, _codes(rows[held], cols[held], triples.ratings[held], shape), ids,
                  np.arange(shape[1], dtype=np.int32), triples.item_ids)


def strong_generalization(triples: Triples, dataset: catalog.Ratings, r: config_dict.ConfigDict) -> Matrices:
  """The 'strong' split: a row per user and a column per item that the train users interacted with (as Liang et
  al. keep them); the train users' interactions whole, the held-out users' split into the `fold_in` share given as
  input and the rest scored, at least one of each (a held-out user left with fewer than 2 interactions with those
  items is dropped). The held-out users are the test users (`heldout_fraction` of them), or with `score` =
  'validation' the next `validation_fraction` drawn, for choosing hyper-parameters; neither set trains (so with
  validation users the test users are the same, the train users fewer and the columns theirs)."""
  rng = np.random.default_rng(r.split_seed)
  positive = triples.ratings >= r.threshold
  users, items, values = triples.users[positive], triples.items[positive], triples.ratings[positive]
  kept = np.flatnonzero(np.bincount(users, minlength=dataset.num_users) >= r.min_interactions)
  drawn = rng.permutation(kept)
  num_test, num_validation = round(r.heldout_fraction * len(kept)), round(r.validation_fraction * len(kept))
  test_users, validation_users = drawn[:num_test], drawn[num_test:num_test + num_validation]
  heldout = np.sort(test_users if r.score == "test" else validation_users)
  train_users = np.setdiff1d(kept, np.concatenate([test_users, validation_users]))
  in_train = np.isin(users, train_users)
  columns = np.unique(items[in_train])
  column_of = np.full(dataset.num_items, -1)
  column_of[columns] = np.arange(len(columns))
  is_heldout = np.isin(users, heldout) & (column_of[items] >= 0)
  heldout = heldout[np.bincount(users[is_heldout], minlength=dataset.num_users)[heldout] >= 2]
  if len(heldout) == 0:
    share = "heldout_fraction" if r.score == "test" else "validation_fraction"
    raise ConfigError(f"config.data.ratings.{share}={r[share]!r}: it holds out no user with 2 interactions to fold in "
                      f"and score: use a larger share, e.g. 0.2")
  is_heldout &= np.isin(users, heldout)
  # Each held-out user's interactions in a random order, the first (1 - fold_in) share of them scored.
  order = np.flatnonzero(is_heldout)
  order = order[np.lexsort((rng.random(len(order)), users[order]))]
  starts = np.flatnonzero(np.r_[True, np.diff(users[order]) != 0])
  sizes = np.diff(np.r_[starts, len(order)])
  count = np.clip(np.round((1 - r.fold_in) * sizes), 1, sizes - 1)
  scored = np.zeros(len(users), bool)
  scored[order[np.arange(len(order)) - np.repeat(starts, sizes) < np.repeat(count, sizes)]] = True

  def matrix(chosen: np.ndarray, row_users: np.ndarray) -> np.ndarray:
    row_of = np.full(dataset.num_users, -1)
    row_of[row_users] = np.arange(len(row_users))
    return _codes(row_of[users[chosen]], column_of[items[chosen]], values[chosen], (len(row_users), len(columns)))

  return Matrices(matrix(in_train, train_users), train_users.astype(np.int32),
                  matrix(is_heldout & ~scored, heldout), matrix(is_heldout & scored, heldout),
                  heldout.astype(np.int32), columns.astype(np.int32), triples.item_ids)


def matrices(data: config_dict.ConfigDict) -> Matrices:
  """The split of `config.data` (a ratings data set, `data.ratings` its protocol) as rating-code matrices."""
  dataset = catalog.get(data.name)
  triples = read(data.name, data.manual_dir, data.data_dir, data.download)
  if data.ratings.protocol == "strong":
    return strong_generalization(triples, dataset, data.ratings)
  return explicit(triples, dataset, data.ratings)
