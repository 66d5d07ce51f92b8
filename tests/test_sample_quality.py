"""The sample-quality metrics against independent computations and known answers."""
import numpy as np
import pytest
import scipy.linalg
import scipy.stats

from aejax.evaluation import sample_quality


def _scipy_frechet(a, b):
  """The textbook formula, with scipy's matrix square root of the covariances' product."""
  mean_a, mean_b = a.mean(0), b.mean(0)
  cov_a, cov_b = np.atleast_2d(np.cov(a, rowvar=False)), np.atleast_2d(np.cov(b, rowvar=False))
  root = scipy.linalg.sqrtm(cov_a @ cov_b).real
  return np.square(mean_a - mean_b).sum() + np.trace(cov_a + cov_b - 2 * root)


@pytest.mark.parametrize("dim", [1, 3, 8])
def test_frechet_distance_matches_scipy_sqrtm_formula(dim):
  rng = np.random.default_rng(dim)
  a = rng.normal(size=(500, dim)) @ rng.normal(size=(dim, dim))
  b = rng.normal(size=(400, dim)) @ rng.normal(size=(dim, dim)) + rng.normal(size=dim)
  got = sample_quality.frechet_distance(*sample_quality.gaussian_fit(a), *sample_quality.gaussian_fit(b))
  assert got == pytest.approx(_scipy_frechet(a, b), rel=1e-6)
  assert got > 0


def test_frechet_distance_of_known_gaussians():
  # N(0, I) against N(m, 4I) in D dimensions: ‖m‖² + D(1 + 4 - 2·2) = ‖m‖² + D.
  mean = np.array([1.0, -2.0, 0.5])
  assert sample_quality.frechet_distance(np.zeros(3), np.eye(3), mean, 4 * np.eye(3)) == pytest.approx(5.25 + 3)


def test_frechet_distance_is_zero_for_identical_sets():
  rng = np.random.default_rng(0)
  x = rng.normal(size=(300, 16)) @ rng.normal(size=(16, 16))
  fit = sample_quality.gaussian_fit(x)
  assert sample_quality.frechet_distance(*fit, *fit) == pytest.approx(0.0, abs=1e-8)
  # A singular covariance (rank 4 in 16 dimensions): the square roots of its round-off eigenvalues (~1e-12) leave
  # an error of ~1e-8 of its trace.
  low_rank = rng.normal(size=(300, 4)) @ rng.normal(size=(4, 16))
  mean, cov = sample_quality.gaussian_fit(low_rank)
  assert sample_quality.frechet_distance(mean, cov, mean, cov) == pytest.approx(0.0, abs=1e-7 * np.trace(cov))


def test_knn_radii_match_brute_force():
  rng = np.random.default_rng(1)
  x = rng.normal(size=(50, 3))
  distances = np.sqrt(np.square(x[:, None] - x[None]).sum(-1))
  expected = np.sort(distances, axis=1)[:, 3]  # Column 0 is the point itself.
  np.testing.assert_allclose(np.sqrt(sample_quality.knn_radii(x, 3)), expected, rtol=1e-6)


def test_precision_recall_is_one_for_the_data_against_itself():
  x = np.random.default_rng(2).normal(size=(2_500, 8))  # More rows than one chunk.
  assert sample_quality.precision_recall(x, x, k=3) == (1.0, 1.0)


def test_precision_recall_fall_for_a_shifted_set():
  rng = np.random.default_rng(3)
  real, fake = rng.normal(size=(1_000, 4)), rng.normal(size=(1_000, 4))
  near = sample_quality.precision_recall(real, fake)
  assert min(near) > 0.7  # Two draws of one distribution mostly cover each other.
  shifted = [sample_quality.precision_recall(real, fake + shift) for shift in (1.0, 3.0)]
  assert near[0] > shifted[0][0] > shifted[1][0] and near[1] > shifted[0][1] > shifted[1][1]
  assert max(shifted[1]) < 0.1


def test_precision_recall_see_a_dropped_mode_in_recall_only():
  rng = np.random.default_rng(4)
  centres = np.array([[0.0, 0.0], [10.0, 0.0]])
  real = centres[rng.integers(0, 2, 1_000)] + rng.normal(size=(1_000, 2))
  fake = centres[0] + rng.normal(size=(1_000, 2))  # Only the first mode.
  precision, recall = sample_quality.precision_recall(real, fake)
  assert precision > 0.9 and 0.4 < recall < 0.6


def test_class_histogram():
  data = np.repeat(np.arange(4), [10, 20, 30, 40])
  predicted = np.repeat(np.arange(4), [0, 4, 30, 66])
  out = sample_quality.class_histogram(predicted, data, num_classes=4)
  np.testing.assert_allclose(out["fractions"], [0, 0.04, 0.3, 0.66])
  assert out["modes_covered"] == 2  # Class 1 holds 4 %, less than half its 20 %.
  assert out["kl"] == pytest.approx(scipy.stats.entropy([0, 0.04, 0.3, 0.66], [0.1, 0.2, 0.3, 0.4]))
  same = sample_quality.class_histogram(data, data, num_classes=4)
  assert same["kl"] == 0 and same["modes_covered"] == 4
  with pytest.raises(ValueError, match=r"the data lack classes \[4\]"):
    sample_quality.class_histogram(predicted, data, num_classes=5)
