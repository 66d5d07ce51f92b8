"""The recommenders people already use, on the split a run was trained on: means, popularity, EASE (Steck 2019) and
scikit-surprise's SVD, SVD++ and KNNBaseline. All take and give numpy arrays on the host."""
import pathlib
import tempfile
import time

import numpy as np

SURPRISE_MODELS = ("svd", "svdpp", "knn_baseline")


def mean_predictions(train: tuple[np.ndarray, np.ndarray, np.ndarray], test: tuple[np.ndarray, np.ndarray],
                     num_users: int, num_items: int) -> dict[str, np.ndarray]:
  """Predictions for the test (user, item) pairs by the train ratings' global mean, each user's mean and each
  item's mean (the global mean for a user or item without train ratings)."""
  users, items, values = train
  mean = float(values.mean())

  def by(index: np.ndarray, size: int, at: np.ndarray) -> np.ndarray:
    count = np.bincount(index, minlength=size)
    total = np.bincount(index, weights=values, minlength=size)
    return np.where(count > 0, total / np.maximum(count, 1), mean)[at]

  test_users, test_items = test
  return {"global_mean": np.full(len(test_users), mean), "user_mean": by(users, num_users, test_users),
          "item_mean": by(items, num_items, test_items)}


def ease(train: np.ndarray, l2: float) -> np.ndarray:
  """EASE's item-item weights B (items, items) for a binary user x item matrix: the closed form of
  min ‖X - XB‖² + λ‖B‖² with diag(B) = 0, B = I - P diag(1 / diag(P)), P = (XᵀX + λI)⁻¹; a user's scores are x B."""
  x = np.asarray(train, np.float64)
  gram = x.T @ x + l2 * np.eye(x.shape[1])
  p = np.linalg.inv(gram)
  b = -p / np.diag(p)[None, :]
  np.fill_diagonal(b, 0.0)
  return b


def popularity(train: np.ndarray) -> np.ndarray:
  """Each item's count of train interactions (items,): the popularity ranking's score, the same for every user."""
  return np.asarray(train > 0, np.float64).sum(axis=0)


def surprise_predictions(train: tuple[np.ndarray, np.ndarray, np.ndarray], test: tuple[np.ndarray, np.ndarray],
                         rating_scale: tuple[float, float], seed: int) -> dict[str, tuple[np.ndarray, float]] | None:
  """scikit-surprise's SVD, SVD++ and KNNBaseline (their defaults) fitted on the train triples: each one's
  predictions for the test pairs and its fit-and-predict time in seconds; None where the package is not installed."""
  try:
    import surprise  # pylint: disable=g-import-not-at-top  (an optional extra)
  except ImportError:
    return None
  with tempfile.TemporaryDirectory(prefix="aejax-surprise-") as folder:  # surprise reads folds from files.
    paths = [pathlib.Path(folder) / name for name in ("train", "test")]
    test_values = np.full(len(test[0]), rating_scale[0])  # Read, not used: surprise's test files carry a rating.
    for path, (users, items, values) in zip(paths, (train, (*test, test_values))):
      path.write_text("".join(f"{u}\t{i}\t{r:g}\n" for u, i, r in zip(users, items, values)))
    reader = surprise.Reader(line_format="user item rating", sep="\t", rating_scale=rating_scale)
    folds = surprise.Dataset.load_from_folds([tuple(map(str, paths))], reader)
    trainset, testset = next(surprise.model_selection.PredefinedKFold().split(folds))
  models = dict(zip(SURPRISE_MODELS, (surprise.SVD(random_state=seed), surprise.SVDpp(random_state=seed),
                                      surprise.KNNBaseline(verbose=False))))
  out = {}
  for name, model in models.items():
    start = time.perf_counter()
    model.fit(trainset)
    predicted = np.array([p.est for p in model.test(testset)])
    out[name] = predicted, time.perf_counter() - start
  return out
