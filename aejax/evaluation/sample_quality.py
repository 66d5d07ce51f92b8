"""How good a generative model's samples are, from features of them and of real images: pure numpy functions.

- `frechet_distance`: the Fréchet distance between Gaussians fitted to two feature sets (FID when the features are
  an image classifier's; Heusel et al. 2017).
- `precision_recall`: the share of samples inside the real data's manifold and of real data inside the samples'
  manifold, each manifold the union of k-nearest-neighbour balls (Kynkäänniemi et al. 2019).
- `class_histogram`: what fraction of samples a classifier puts in each class, how many classes they cover, and
  the KL divergence of that histogram from the data's label distribution.
"""
import numpy as np
import scipy.special

# Rows of the distance matrix computed at once by `precision_recall`: a (chunk, N) float64 block, 80 MB for
# N = 10,000, whatever the number of points.
_CHUNK_ROWS = 1_024


def gaussian_fit(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """The mean (D,) and covariance (D, D) (unbiased, float64) of features (N, D)."""
  features = np.asarray(features, np.float64)
  return features.mean(axis=0), np.atleast_2d(np.cov(features, rowvar=False))


def frechet_distance(mean_a: np.ndarray, cov_a: np.ndarray, mean_b: np.ndarray, cov_b: np.ndarray) -> float:
  """‖μ_a - μ_b‖² + tr(Σ_a + Σ_b - 2 (Σ_a Σ_b)^½), the squared 2-Wasserstein distance of two Gaussians.

  The trace of the square root is taken by eigen-decomposition rather than `scipy.linalg.sqrtm(Σ_a Σ_b)`: the
  product of two covariances is not symmetric, and sqrtm of it returns complex parts and loses accuracy when the
  covariances are near singular (as features of 10,000 images in hundreds of dimensions are). The eigenvalues of
  Σ_a Σ_b are those of the symmetric positive semi-definite S Σ_b S, S = Σ_a^½ (S from `eigh`), so
  tr (Σ_a Σ_b)^½ = Σ_i √λ_i(S Σ_b S): real, with round-off's tiny negative eigenvalues clipped to 0.
  """
  mean_a, mean_b = np.asarray(mean_a, np.float64), np.asarray(mean_b, np.float64)
  cov_a, cov_b = np.asarray(cov_a, np.float64), np.asarray(cov_b, np.float64)
  values, vectors = np.linalg.eigh(cov_a)
  root_a = (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T
  middle = root_a @ cov_b @ root_a
  trace_root = np.sqrt(np.clip(np.linalg.eigvalsh((middle + middle.T) / 2), 0, None)).sum()
  return float(np.square(mean_a - mean_b).sum() + np.trace(cov_a) + np.trace(cov_b) - 2 * trace_root)


def _squared_distances(a: np.ndarray, b: np.ndarray, b_norms: np.ndarray) -> np.ndarray:
  """‖a_i - b_j‖² (len(a), len(b)), clipped at 0 against round-off."""
  return np.maximum(np.square(a).sum(axis=1)[:, None] + b_norms[None, :] - 2 * a @ b.T, 0)


def knn_radii(features: np.ndarray, k: int) -> np.ndarray:
  """Each point's squared distance to its k-th nearest neighbour among the others, in chunks of rows."""
  features = np.asarray(features, np.float64)
  if not 1 <= k < len(features):
    raise ValueError(f"k={k} nearest neighbours need more than k points: got {len(features)}")
  norms = np.square(features).sum(axis=1)
  radii = []
  for start in range(0, len(features), _CHUNK_ROWS):
    d = _squared_distances(features[start:start + _CHUNK_ROWS], features, norms)
    radii.append(np.partition(d, k, axis=1)[:, k])  # Index 0 is the point itself, at distance 0.
  return np.concatenate(radii)


def in_manifold(points: np.ndarray, centres: np.ndarray, radii: np.ndarray) -> np.ndarray:
  """Whether each of `points` lies in some ball of squared radius `radii[j]` around `centres[j]` (bool (N,))."""
  points, centres = np.asarray(points, np.float64), np.asarray(centres, np.float64)
  norms = np.square(centres).sum(axis=1)
  inside = [(_squared_distances(points[start:start + _CHUNK_ROWS], centres, norms) <= radii[None, :]).any(axis=1)
            for start in range(0, len(points), _CHUNK_ROWS)]
  return np.concatenate(inside)


def precision_recall(real: np.ndarray, fake: np.ndarray, k: int = 3) -> tuple[float, float]:
  """Improved precision and recall (Kynkäänniemi et al. 2019): the fraction of `fake` features inside the real
  manifold, and of `real` features inside the fake one, each manifold the union of balls around its points
  reaching their k-th nearest neighbour. Memory grows with the number of points, not its square."""
  precision = in_manifold(fake, real, knn_radii(real, k)).mean()
  recall = in_manifold(real, fake, knn_radii(fake, k)).mean()
  return float(precision), float(recall)


def class_histogram(predicted: np.ndarray, data_labels: np.ndarray, num_classes: int,
                    covered_share: float = 0.5) -> dict[str, float | np.ndarray]:
  """The classes a classifier assigns to samples (`predicted`), against the labels of the data (`data_labels`).

  'fractions': each class's share of the samples (num_classes,); 'modes_covered': how many classes hold at least
  `covered_share` times their share of the data (0.5: half; a class a few misclassified samples reach does not
  count); 'kl': KL(sample histogram ‖ data's label distribution) in nats, finite even when classes are missing
  (0 · log 0 = 0), and 0 only when the two agree.
  """
  fractions = np.bincount(np.asarray(predicted).ravel(), minlength=num_classes) / np.size(predicted)
  data = np.bincount(np.asarray(data_labels).ravel(), minlength=num_classes) / np.size(data_labels)
  if np.any(data == 0):
    raise ValueError(f"the data lack classes {np.flatnonzero(data == 0).tolist()}: its label distribution must "
                     "cover every class the samples may be given")
  return {"fractions": fractions, "modes_covered": float(np.sum(fractions >= covered_share * data)),
          "kl": float(scipy.special.rel_entr(fractions, data).sum())}
