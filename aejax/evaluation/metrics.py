"""Evaluation metrics as pure numpy functions: ranking, image quality, clustering, probes, PCA.

Images are float arrays (N, H, W[, C]) in [0, 1]. PSNR comes per image, so that the caller takes the mean (or
the table) it needs; SSIM comes as the mean over images, which scikit-image computes in one call.
"""
import numpy as np
import scipy.optimize
import scipy.stats
from skimage import metrics as sk_metrics
from sklearn import cluster, linear_model, preprocessing

# PSNR of two identical images is infinite; it is reported as this cap instead (an MSE of 1e-10 at a peak of 1),
# so that means over images stay finite. Any real reconstruction of 8-bit data sits far below it.
PSNR_CAP_DB = 100.0


def auroc(scores: np.ndarray, positive: np.ndarray) -> float:
  """Area under the ROC curve of `scores` for telling `positive` (bool) examples from the rest.

  The Mann-Whitney statistic with tied scores counted as one half: 1 when every positive scores above every
  negative, 0 when every one scores below, 0.5 for chance.
  """
  scores, positive = np.asarray(scores, np.float64).ravel(), np.asarray(positive, bool).ravel()
  num_pos, num_neg = int(positive.sum()), int((~positive).sum())
  if num_pos == 0 or num_neg == 0:
    raise ValueError(f"AUROC needs both classes: got {num_pos} positive and {num_neg} negative examples")
  ranks = scipy.stats.rankdata(scores)  # Ties get their average rank.
  return float((ranks[positive].sum() - num_pos * (num_pos + 1) / 2) / (num_pos * num_neg))


def psnr(prediction: np.ndarray, target: np.ndarray, peak: float = 1.0) -> np.ndarray:
  """Peak signal-to-noise ratio in dB per image, 10·log10(peak² / MSE), at most `PSNR_CAP_DB`."""
  prediction, target = np.asarray(prediction, np.float64), np.asarray(target, np.float64)
  mse = np.square(prediction - target).reshape(len(target), -1).mean(axis=1)
  floor = peak**2 * 10.0 ** (-PSNR_CAP_DB / 10.0)
  return 10.0 * np.log10(peak**2 / np.maximum(mse, floor))


def mean_ssim(prediction: np.ndarray, target: np.ndarray) -> float:
  """Structural similarity (scikit-image's: 7x7 windows, data range 1) averaged over images (N, H, W[, C]).

  The images (and colour channels) are stacked as the channels of one call, which scikit-image scores one by
  one and averages: the mean of the per-image figures at a third of the cost of a call per image.
  """
  def channels_last(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float64)
    x = x.reshape(*x.shape[:3], -1)  # (N, H, W, C)
    return np.moveaxis(x, 0, 2).reshape(x.shape[1], x.shape[2], -1)

  return float(sk_metrics.structural_similarity(channels_last(prediction), channels_last(target), data_range=1.0,
                                                channel_axis=-1))


def clustering_accuracy(labels: np.ndarray, clusters: np.ndarray) -> float:
  """Accuracy of `clusters` as predictions of `labels` under the best one-to-one map of clusters to labels.

  The map is the Hungarian assignment on the contingency table, so the figure does not change when the
  cluster ids are permuted; clusters left without a label count as errors.
  """
  labels, clusters = np.asarray(labels).ravel(), np.asarray(clusters).ravel()
  _, label_ids = np.unique(labels, return_inverse=True)
  _, cluster_ids = np.unique(clusters, return_inverse=True)
  table = np.zeros((cluster_ids.max() + 1, label_ids.max() + 1), np.int64)
  np.add.at(table, (cluster_ids, label_ids), 1)
  rows, cols = scipy.optimize.linear_sum_assignment(table, maximize=True)
  return float(table[rows, cols].sum() / len(labels))


def kmeans_accuracy(features: np.ndarray, labels: np.ndarray, seed: int = 0, num_inits: int = 3) -> float:
  """k-means (best of `num_inits` k-means++ starts) with one cluster per label, scored by `clustering_accuracy`."""
  clusters = cluster.KMeans(len(np.unique(labels)), n_init=num_inits, random_state=seed).fit_predict(_flat(features))
  return clustering_accuracy(labels, clusters)


def linear_probe_accuracy(train_features: np.ndarray, train_labels: np.ndarray, test_features: np.ndarray,
                          test_labels: np.ndarray) -> float:
  """Test accuracy of a logistic regression fitted on standardised train features: how linearly readable they are."""
  scaler = preprocessing.StandardScaler().fit(_flat(train_features))
  probe = linear_model.LogisticRegression(max_iter=1_000).fit(scaler.transform(_flat(train_features)), train_labels)
  return float(probe.score(scaler.transform(_flat(test_features)), test_labels))


def pca_fit(x: np.ndarray, num_components: int) -> tuple[np.ndarray, np.ndarray]:
  """The mean (D,) and the top `num_components` principal axes (K, D) of the flattened `x`, by SVD."""
  x = _flat(x).astype(np.float64)
  mean = x.mean(axis=0)
  _, _, axes = np.linalg.svd(x - mean, full_matrices=False)
  return mean, axes[:num_components]


def pca_encode(x: np.ndarray, mean: np.ndarray, axes: np.ndarray) -> np.ndarray:
  """Coordinates (N, K) of the flattened `x` on the principal axes."""
  return (_flat(x) - mean) @ axes.T


def pca_decode(codes: np.ndarray, mean: np.ndarray, axes: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
  """The reconstructions (N, *shape) from PCA coordinates: the projection onto the principal subspace."""
  return (codes @ axes + mean).reshape(len(codes), *shape)


def _flat(x: np.ndarray) -> np.ndarray:
  x = np.asarray(x)
  return x.reshape(len(x), -1)
