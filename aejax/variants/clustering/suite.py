"""The `clustering` suite: a DEC or IDEC run's clusters of the train split's first `eval.num_train` examples (with
`data.with_test` and eval.num_train = 70,000: all of MNIST), scored against the labels it never saw by accuracy
(the best one-to-one map of clusters to labels, Hungarian) and normalised mutual information, beside k-means of the
pretrained codes (DEC's starting point) and, with `cluster.pixel_baseline`, k-means of the pixels. Picture: each
cluster's most confident members, a row per cluster labelled by its most common label."""
from typing import Any

import jax
import numpy as np

from aejax import images
from aejax.evaluation import batches

Metrics = dict[str, float]


def scores(labels: np.ndarray, clusters: np.ndarray) -> dict[str, float]:
  """Accuracy (Hungarian-matched), NMI and adjusted Rand index of `clusters` against `labels`."""
  from sklearn import metrics as sk_metrics  # pylint: disable=g-import-not-at-top  (only when scoring)
  from aejax.evaluation import metrics  # pylint: disable=g-import-not-at-top
  return {"accuracy": metrics.clustering_accuracy(labels, clusters),
          "nmi": float(sk_metrics.normalized_mutual_info_score(labels, clusters)),
          "ari": float(sk_metrics.adjusted_rand_score(labels, clusters))}


def clustering(run: Any) -> tuple[Metrics, dict[str, images.Grid]]:
  """The suite (see the module docstring)."""
  from sklearn import cluster as sk_cluster  # pylint: disable=g-import-not-at-top  (only when scoring)
  config, x, labels = run.config, run.train_images, run.train_labels
  assign = jax.jit(lambda params, images: run.model.apply(params, images, method=run.model.assignment))
  q = batches.apply(lambda images: assign(run.state.params, images), x, config.eval_batch_size)
  found = np.argmax(q, axis=1)
  out = {f"clustering/{k}": v for k, v in scores(labels, found).items()}
  out |= {f"clustering/kmeans_codes_{k}": v for k, v in scores(labels, run.model.start.labels[:len(x)]).items()}
  if config.cluster.pixel_baseline:
    pixels = sk_cluster.KMeans(config.cluster.clusters, n_init=10, random_state=config.seed).fit_predict(
        x.reshape(len(x), -1))
    out |= {f"clustering/kmeans_pixels_{k}": v for k, v in scores(labels, pixels).items()}
  out["clustering/confidence"] = float(q.max(axis=1).mean())
  n = config.num_images
  rows, names = [], []
  for k in range(config.cluster.clusters):
    members = np.flatnonzero(found == k)
    best = members[np.argsort(-q[members, k])][:n]
    rows.append(np.concatenate([x[best], np.zeros((n - len(best), *x.shape[1:]), x.dtype)]))
    common = np.bincount(labels[members]).argmax() if len(members) else -1
    names.append(f"cluster {k}: {len(members)}, mostly {common}" if len(members) else f"cluster {k}: empty")
  return out, {"clusters": images.Grid(np.stack(rows), tuple(names))}
