"""The disentanglement metrics on synthetic codes whose answers are known, and their estimators against
independent computations.

The ground truth is a small grid of factors (3, 4, 4) observed as themselves; three codes of it:
- clean: one unit per factor (permuted, scaled, shifted, one slightly noisy), a pure-noise unit and a constant
  (collapsed) unit;
- independent: five noise units, blind to the factors;
- mixed: factor 0 alone in a unit, factors 1 and 2 (standardised) rotated by 45° into two units, u = z1 + z2 and
  v = z1 - z2, plus the same noise and constant units. u and v tell factors 1 and 2 apart equally well, and since
  z2 and -z2 have one distribution, every metric sees the pair symmetrically: that fixes the expected figures below.
Tolerances are about 3.5 standard deviations of the estimates at these sample counts.
"""
import numpy as np
import pytest
import scipy.stats
from sklearn import metrics as sk_metrics

from aejax.errors import ConfigError
from aejax.evaluation import disentanglement as dis

SIZES = (3, 4, 4)
TRUTH = dis.GroundTruth(SIZES, lambda factors: np.asarray(factors, np.float32))
CHANCE = 1 / len(SIZES)


def _standardized(factors):
  """Factor indices with mean 0 and variance 1 under the uniform distribution of each factor."""
  sizes = np.array(SIZES)
  return (np.asarray(factors, np.float64) - (sizes - 1) / 2) / np.sqrt((sizes**2 - 1) / 12)


def clean_code(seed):
  rng = np.random.default_rng(seed)

  def encode(x):
    z = _standardized(x)
    n = len(z)
    return np.stack([2 * z[:, 2], 0.5 * z[:, 0] + 0.02 * rng.normal(size=n), rng.normal(size=n), 1 - 3 * z[:, 1],
                     np.full(n, 0.7)], axis=1)
  return encode


def independent_code(seed):
  rng = np.random.default_rng(seed)
  return lambda x: rng.normal(size=(len(x), 5))


def mixed_code(seed):
  rng = np.random.default_rng(seed)

  def encode(x):
    z = _standardized(x)
    n = len(z)
    return np.stack([z[:, 1] + z[:, 2], z[:, 0], z[:, 1] - z[:, 2], rng.normal(size=n), np.full(n, 0.7)], axis=1)
  return encode


CODES = {"clean": clean_code, "independent": independent_code, "mixed": mixed_code}
# Per factor, the accuracy of the best unit (1) minus that of the next, which at best guesses: 1 - 1/K (a little
# less, as the best of four uninformative units guesses a little better than one).
SAP_ACCURACY_MAX = np.mean([1 - 1 / k for k in SIZES])
LOG2_BASE3 = np.log(2) / np.log(3)  # A unit's importance split evenly over 2 of 3 factors.
LOG2_BASE5 = np.log(2) / np.log(5)  # A factor's importance split evenly over 2 of 5 units.

# (metric, its arguments, the figure, {code: (expected, tolerance)}), each expectation explained beside it.
CASES = {
    # A linear classifier on the mean |Δz| of 64 pairs: perfect for the clean code, chance for the blind one; on the
    # mixed code, sharing factor 0 zeroes its own unit, but sharing factor 1 or 2 shrinks u and v alike and leaves
    # the same features: 1/3 + 1/3 · 1/2 · 2 = 2/3.
    "beta_vae": (dis.beta_vae_score, dict(num_train=1000, num_eval=1500), "eval_accuracy",
                 {"clean": (1.0, 0.01), "independent": (CHANCE, 0.05), "mixed": (2 / 3, 0.05)}),
    # Sharing factor 1 or 2 halves the normalised variance of u and v alike, so both factors vote for the same unit
    # and the majority names one of them: factors 0 and one of 1, 2 are right, 2/3.
    "factor_vae": (dis.factor_vae_score, dict(num_train=1000, num_eval=1500, num_variance=2000), "eval_accuracy",
                   {"clean": (1.0, 0.0), "independent": (CHANCE, 0.05), "mixed": (2 / 3, 0.05)}),
    # A unit equal to a factor holds all its entropy, others none (up to the plug-in estimate's bias); on the
    # mixed code factors 1 and 2 have two equally informative units, a gap of 0: (1 + 0 + 0) / 3.
    "mig": (dis.mig, dict(num_samples=3000), "mig", {"clean": (1.0, 0.03), "independent": (0.0, 0.03),
                                                     "mixed": (1 / 3, 0.04)}),
    # u and v each matter to factors 1 and 2 evenly, (1 - log 2 / log 3) each, and the three informative units
    # matter equally: (1 + 2 (1 - log_3 2)) / 3. Noise spreads importance evenly: 0.
    "dci_disentanglement": (dis.dci, dict(num_train=500, num_test=500), "disentanglement",
                            {"clean": (1.0, 0.05), "independent": (0.0, 0.1),
                             "mixed": ((1 + 2 * (1 - LOG2_BASE3)) / 3, 0.06)}),
    # Factors 1 and 2 each spread evenly over 2 of the 5 units: (1 + 2 (1 - log_5 2)) / 3.
    "dci_completeness": (dis.dci, dict(num_train=500, num_test=500), "completeness",
                         {"clean": (1.0, 0.05), "independent": (0.0, 0.1),
                          "mixed": ((1 + 2 * (1 - LOG2_BASE5)) / 3, 0.06)}),
    # Trees reading every unit recover the factors of both informative codes, and guess for the blind one.
    "dci_informativeness": (dis.dci, dict(num_train=500, num_test=500), "informativeness_test",
                            {"clean": (1.0, 0.01), "independent": (np.mean([1 / k for k in SIZES]), 0.07),
                             "mixed": (1.0, 0.03)}),
    # Squared correlations: 1 for a factor's own unit; 1/2 for u and v alike with factors 1 and 2.
    "sap_r2": (dis.sap, dict(num_train=2000, num_test=2000, predictor="r2"), "sap",
               {"clean": (1.0, 0.01), "independent": (0.0, 0.03), "mixed": (1 / 3, 0.05)}),
    # Accuracies: factor 0's unit against a guess (1 - 1/3); factors 1 and 2 read equally well from u and v.
    "sap_threshold": (dis.sap, dict(num_train=2000, num_test=2000, predictor="threshold"), "sap",
                      {"clean": (SAP_ACCURACY_MAX, 0.03), "independent": (0.0, 0.03),
                       "mixed": ((1 - 1 / 3) / 3, 0.04)}),
    # The library's linear classifier reads factors of up to 4 values from centred units as well as thresholds do.
    "sap_linear_svc": (dis.sap, dict(num_train=2000, num_test=2000), "sap",
                       {"clean": (SAP_ACCURACY_MAX, 0.03), "independent": (0.0, 0.03),
                       "mixed": ((1 - 1 / 3) / 3, 0.04)}),
}


@pytest.fixture(scope="module")
def scores():
  """Each case's figure for each code, computed once (the DCI cases share their fits)."""
  cache, out = {}, {}
  for case, (metric, kwargs, key, _) in CASES.items():
    for code, make in CODES.items():
      call = (metric.__name__, tuple(sorted(kwargs.items())), code)
      if call not in cache:
        cache[call] = metric(TRUTH, make(1), 0, **kwargs)
      out[case, code] = cache[call][key]
  return out


@pytest.mark.parametrize("case", CASES)
def test_metric_known_answers(scores, case):
  expected = CASES[case][3]
  for code, (value, tolerance) in expected.items():
    assert scores[case, code] == pytest.approx(value, abs=tolerance), code
  assert scores[case, "independent"] < scores[case, "mixed"] < scores[case, "clean"] or case == "dci_informativeness"


def test_mutual_information_map_names_each_units_factor():
  matrix = dis.normalized_mutual_information(*dis.sample_codes(TRUTH, clean_code(0), 3000, np.random.default_rng(0)))
  assert matrix.shape == (5, 3)
  # Factors 0, 1, 2 sit in units 1, 3, 0: there the whole entropy, elsewhere only the estimate's small bias.
  np.testing.assert_allclose(matrix[[1, 3, 0], [0, 1, 2]], 1.0, atol=1e-9)
  others = np.ones_like(matrix, bool)
  others[[1, 3, 0], [0, 1, 2]] = False
  assert matrix[others].max() < 0.03


def test_factor_vae_prunes_collapsed_units():
  got = dis.factor_vae_score(TRUTH, clean_code(0), 0, num_train=50, num_eval=50, num_variance=500)
  assert got["num_active_units"] == 4  # The constant unit is out.
  collapsed = dis.factor_vae_score(TRUTH, lambda x: 0.01 * clean_code(0)(x), 0, num_train=50, num_eval=50,
                                   num_variance=500)
  assert collapsed == {"train_accuracy": 0.0, "eval_accuracy": 0.0, "num_active_units": 0.0}


@pytest.mark.parametrize("metric", [dis.beta_vae_score, dis.factor_vae_score, dis.mig, dis.dci, dis.sap])
def test_metrics_reproduce_from_a_seed_or_a_generator(metric):
  kwargs = {dis.beta_vae_score: dict(num_train=60, num_eval=60, group_size=8),
            dis.factor_vae_score: dict(num_train=60, num_eval=60, group_size=8, num_variance=200),
            dis.mig: dict(num_samples=300), dis.dci: dict(num_train=100, num_test=100),
            dis.sap: dict(num_train=100, num_test=100)}[metric]
  first = metric(TRUTH, independent_code(0), 5, **kwargs)
  assert metric(TRUTH, independent_code(0), np.random.default_rng(5), **kwargs) == first
  assert metric(TRUTH, independent_code(0), 6, **kwargs) != first


def test_sap_linear_svc_cannot_read_factors_of_many_values():
  # A unit equal to a factor of 32 values (dSprites' positions), centred and scaled to variance 1: the library's
  # one-vs-rest LinearSVC cannot single out middle values from one unit, while thresholds read it exactly.
  rng = np.random.default_rng(0)
  train, test = rng.integers(32, size=(2000, 1)), rng.integers(32, size=(2000, 1))
  unit = lambda f: (f - 15.5) / np.sqrt((32**2 - 1) / 12)
  svc = dis.sap_score_matrix(unit(train), train, unit(test), test, "linear_svc")
  thresholds = dis.sap_score_matrix(unit(train), train, unit(test), test, "threshold")
  assert svc[0, 0] < 0.2
  assert thresholds[0, 0] == 1.0


# Estimators against independent computations.


def _dependent_labels(rng, num=2000):
  """Integer labels (num, 4) and (num, 3) with some columns dependent on others, some independent."""
  y = rng.integers(0, [3, 4, 6], size=(num, 3))
  x = np.stack([y[:, 0] + rng.integers(2, size=num), (y[:, 1] * 3 + y[:, 2]) % 7, rng.integers(5, size=num),
                np.full(num, 2)], axis=1)
  return x, y


def test_mutual_information_and_entropy_match_sklearn():
  x, y = _dependent_labels(np.random.default_rng(0))
  got = dis.discrete_mutual_information(x, y)
  want = np.array([[sk_metrics.mutual_info_score(y[:, f], x[:, d]) for f in range(3)] for d in range(4)])
  np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)
  entropy = dis.discrete_entropy(y)
  np.testing.assert_allclose(entropy, [sk_metrics.mutual_info_score(column, column) for column in y.T], rtol=1e-9)
  np.testing.assert_allclose(entropy, [scipy.stats.entropy(np.bincount(column)) for column in y.T], rtol=1e-9)


def test_histogram_discretization_matches_numpy_histogram_edges():
  rng = np.random.default_rng(1)
  codes = np.concatenate([rng.normal(size=(1000, 2)), rng.exponential(size=(1000, 1))], axis=1)
  codes[:3] = codes.min(axis=0)  # The ends of the range fall in the first and last bins.
  codes[3:6] = codes.max(axis=0)
  got = dis.histogram_discretize(codes, 20)
  want = np.stack([np.digitize(c, np.histogram(c, 20)[1][1:-1]) for c in codes.T], axis=1)
  np.testing.assert_array_equal(got, want)
  assert got.min() == 0 and got.max() == 19


def test_normalized_mutual_information_matches_sklearn_on_the_same_bins():
  rng = np.random.default_rng(2)
  factors = rng.integers(0, SIZES, size=(3000, 3))
  codes = np.concatenate([_standardized(factors) + 0.3 * rng.normal(size=(3000, 3)), rng.normal(size=(3000, 2))],
                         axis=1)
  got = dis.normalized_mutual_information(codes, factors, 20)
  bins = np.stack([np.digitize(c, np.histogram(c, 20)[1][1:-1]) for c in codes.T], axis=1)
  want = np.array([[sk_metrics.mutual_info_score(factors[:, f], bins[:, d])
                    / sk_metrics.mutual_info_score(factors[:, f], factors[:, f]) for f in range(3)]
                   for d in range(5)])
  np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)
  top = np.sort(want, axis=0)
  assert dis.mutual_information_gap(got) == pytest.approx(np.mean(top[-1] - top[-2]))


def test_mutual_information_gap_of_a_matrix():
  assert dis.mutual_information_gap(np.array([[1.0, 0.2], [0.5, 0.9], [0.0, 0.0]])) == pytest.approx((0.5 + 0.7) / 2)


@pytest.mark.parametrize("importance, disentanglement, completeness", [
    (np.diag([5.0] * 5), 1.0, 1.0),
    (np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]]), 1.0, 1.0),  # An unused unit changes neither.
    (np.zeros((4, 4)), 0.0, 0.0),
    (np.ones((4, 4)), 0.0, 0.0),
    # Each factor read by two units: each unit still serves one factor, each factor is spread over 2 of 10 units.
    (np.vstack([np.diag([5.0] * 5)] * 2), 1.0, 1 - np.log(2) / np.log(10)),
    # Each unit serves two factors of 10, each factor one unit.
    (np.hstack([np.diag([5.0] * 5)] * 2), 1 - np.log(2) / np.log(10), 1.0),
    # Rows weighted by their share: a pure unit of weight 3 and one split evenly over 2 factors of weight 1.
    # Columns: factor 0 of weight 3.5 split 6:1, factor 1 of weight 0.5 on one unit.
    (np.array([[3.0, 0.0], [0.5, 0.5]]), 0.75, 3.5 / 4 * (1 - scipy.stats.entropy([6, 1], base=2)) + 0.5 / 4),
])
def test_dci_of_importance_matrices(importance, disentanglement, completeness):
  assert dis.dci_disentanglement(importance) == pytest.approx(disentanglement, abs=1e-9)
  assert dis.dci_completeness(importance) == pytest.approx(completeness, abs=1e-9)


def test_encode_is_called_on_equal_batches():
  shapes = []

  def encode(x):
    shapes.append(x.shape)
    return np.asarray(x) * 2

  factors = np.random.default_rng(0).integers(0, SIZES, size=(10, 3))
  np.testing.assert_array_equal(dis.encode_factors(TRUTH, encode, factors, batch_size=4), factors * 2)
  assert shapes == [(4, 3)] * 3


# Bad input.


def test_require_factors_messages():
  with pytest.raises(ConfigError, match=r"^config.data.name='mnist' has no ground-truth factors, .*: use a data set "
                     r"generated by known factors \(such as dSprites\), or drop 'disentanglement' from "
                     r"config.eval.suites$"):
    dis.require_factors(None, "mnist")
  with pytest.raises(ConfigError, match=r"^data set 'toy': factor sizes \(3, 1\) include a factor with fewer than 2"):
    dis.require_factors((3, 1), "toy")
  assert dis.require_factors([3, 6, 40, 32, 32], "dsprites") == (3, 6, 40, 32, 32)


@pytest.mark.parametrize("metric, name", [(dis.mig, "MIG"), (dis.sap, "SAP"),
                                          (dis.factor_vae_score, "the FactorVAE score")])
def test_a_code_smaller_than_the_factors_is_refused(metric, name):
  two_units = lambda x: _standardized(x)[:, :2]
  with pytest.raises(ConfigError) as error:
    metric(TRUTH, two_units, 0)
  assert str(error.value) == (f"config.latent_dim=2: {name} ranks code units against each of the 3 ground-truth "
                              "factors and needs at least 3 units: use --config.latent_dim=3 or more")


def test_unknown_sap_predictor_is_refused_before_sampling():
  def encode(x):
    raise AssertionError("nothing is encoded for a bad predictor")
  with pytest.raises(ConfigError, match=r"^SAP predictor='tree' is not known: use one of 'linear_svc', 'threshold'"):
    dis.sap(TRUTH, encode, 0, predictor="tree")
