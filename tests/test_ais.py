"""RBM partition functions (aejax/variants/boltzmann/ais.py): each against sums over states written here in NumPy."""
import itertools
import math

import jax
import numpy as np
import pytest

from aejax.errors import ConfigError
from aejax.variants.boltzmann import ais


def _rbm(rng: np.random.Generator, num_visible: int, num_hidden: int, scale: float = 1.0):
  weights = rng.normal(0, scale, (num_visible, num_hidden)).astype(np.float32)
  return weights, rng.normal(0, 1, num_visible).astype(np.float32), rng.normal(0, 1, num_hidden).astype(np.float32)


def _states(n: int) -> np.ndarray:
  """All 2^n binary vectors of length n, (2^n, n), in float64."""
  return np.array(list(itertools.product([0, 1], repeat=n)), np.float64)


def _neg_energy(weights, visible_bias, hidden_bias, v, h) -> np.ndarray:
  """-E(v, h) = v·b + h·c + vᵀWh for every pair of rows of v (N, V) and h (M, H): (N, M), in float64."""
  weights, visible_bias, hidden_bias = (np.asarray(a, np.float64) for a in (weights, visible_bias, hidden_bias))
  return (v @ visible_bias)[:, None] + (h @ hidden_bias)[None, :] + v @ weights @ h.T


def _log_sum_exp(a: np.ndarray, axis=None) -> np.ndarray:
  top = np.max(a, axis=axis, keepdims=True)
  return np.squeeze(top + np.log(np.sum(np.exp(a - top), axis=axis, keepdims=True)), axis=axis)


def test_free_energy_sums_exp_minus_energy_over_the_hidden_states():
  rng = np.random.default_rng(0)
  rbm = _rbm(rng, 6, 4)
  v = (rng.random((5, 6)) < 0.5).astype(np.float32)
  expected = -_log_sum_exp(_neg_energy(*rbm, v.astype(np.float64), _states(4)), axis=1)
  np.testing.assert_allclose(ais.free_energy(*rbm, v), expected, rtol=1e-5)


def test_log_partition_exact_sums_every_visible_and_hidden_state():
  rbm = _rbm(np.random.default_rng(1), 8, 5)
  expected = _log_sum_exp(_neg_energy(*rbm, _states(8), _states(5)))
  np.testing.assert_allclose(ais.log_partition_exact(*rbm), expected, rtol=1e-6)


def test_log_partition_exact_in_several_chunks_matches_summing_the_other_side():
  """2^19 hidden states of 16 visibles exceed one chunk; the check sums the 2^16 visible states instead."""
  weights, visible_bias, hidden_bias = rbm = _rbm(np.random.default_rng(2), 16, 19, scale=0.3)
  assert 2**19 * 16 > ais._EXACT_CHUNK_ELEMENTS
  v = _states(16)
  per_v = v @ visible_bias + np.logaddexp(0, hidden_bias + v @ weights.astype(np.float64)).sum(axis=1)
  np.testing.assert_allclose(ais.log_partition_exact(*rbm), _log_sum_exp(per_v), rtol=1e-6)


def test_log_partition_exact_refuses_more_than_20_hidden_units():
  with pytest.raises(ValueError, match=r"allows H <= 20, got H=21: estimate log Z with ais_log_partition"):
    ais.log_partition_exact(*_rbm(np.random.default_rng(0), 3, 21))


def test_log_likelihood_is_normalised_over_all_visible_states():
  rbm = _rbm(np.random.default_rng(3), 8, 5)
  log_p = ais.log_likelihood(*rbm, ais.log_partition_exact(*rbm), _states(8).astype(np.float32))
  assert log_p.shape == (2**8,)
  np.testing.assert_allclose(np.exp(np.asarray(log_p, np.float64)).sum(), 1.0, rtol=1e-5)


def test_base_rate_bias_is_the_logit_of_the_smoothed_pixel_means():
  images = np.zeros((4, 2, 2))
  images[:, 0, 1] = 1  # Always on.
  images[:2, 1, 0] = 1  # On half the time; pixels (0, 0) and (1, 1) never.
  p = (np.array([0, 1, 0.5, 0]) + 0.1) / 1.2
  np.testing.assert_allclose(ais.base_rate_bias(images, eps=0.1), np.log(p / (1 - p)), rtol=1e-6)
  message = r"eps=0: a pixel constant over the data would get an infinite bias; use eps > 0"
  with pytest.raises(ConfigError, match=message):
    ais.base_rate_bias(images, eps=0)


def test_base_log_partition_sums_the_states_of_the_base_rate_rbm():
  visible_bias = np.random.default_rng(4).normal(0, 2, 6).astype(np.float32)
  expected = _log_sum_exp(_neg_energy(np.zeros((6, 3)), visible_bias, np.zeros(3), _states(6), _states(3)))
  np.testing.assert_allclose(ais.base_log_partition(visible_bias, 3), expected, rtol=1e-6)


def test_default_betas_step_by_1e3_then_1e4_then_1e5_and_end_at_1():
  betas = ais.default_betas()
  assert len(betas) == 14_501 and betas[0] == 0.0 and betas[-1] == 1.0
  steps = np.diff(betas)
  np.testing.assert_allclose(steps[:500], 1e-3, rtol=1e-6)
  np.testing.assert_allclose(steps[500:4500], 1e-4, rtol=1e-6)
  np.testing.assert_allclose(steps[4500:], 1e-5, rtol=1e-6)
  assert betas[500] == 0.5 and betas[4500] == 0.9


@pytest.mark.parametrize("num_steps, steps_below_half, steps_below_0_9", [(3, 1, 2), (10, 1, 4), (2900, 100, 900)])
def test_schedule_keeps_the_three_segments_shares(num_steps, steps_below_half, steps_below_0_9):
  """Shares of 500, 4,000 and 10,000 of 14,500 steps, rounded, at least one step each."""
  betas = ais.check_betas(ais.schedule(num_steps))
  assert len(betas) == num_steps + 1 and np.all(np.diff(betas) > 0)
  assert np.sum(betas[:-1] < 0.5) == steps_below_half and np.sum(betas[:-1] < 0.9) == steps_below_0_9


@pytest.mark.parametrize("betas, message", [
    ([0.1, 1.0], r"must start at 0 \(the base-rate model\), got betas\[0\]=0.1: prepend 0.0"),
    ([0.0, 0.5, 0.4, 1.0], r"must be non-decreasing, got betas\[2\]=0.4 < betas\[1\]=0.5: sort them"),
    ([0.0, 0.5], r"must end at 1 \(the target RBM\), got betas\[-1\]=0.5: append 1.0"),
    ([0.0], r"at least 2 values from 0 to 1, got shape \(1,\): use e.g. .*default_betas\(\)"),
    ([0.0, float("nan"), 1.0], r"must be finite, betas\[1\] is not"),
])
def test_check_betas_names_what_to_fix(betas, message):
  with pytest.raises(ConfigError, match=message):
    ais.check_betas(betas)


def test_schedule_refuses_fewer_steps_than_segments():
  with pytest.raises(ConfigError, match=r"num_steps=2 is too few for its 3 segments: use num_steps >= 3"):
    ais.schedule(2)


def test_ais_refuses_zero_runs():
  with pytest.raises(ConfigError, match=r"num_runs=0: use num_runs >= 1"):
    ais.ais_log_partition(*_rbm(np.random.default_rng(0), 3, 2), np.zeros(3, np.float32), [0.0, 1.0], 0,
                          jax.random.key(0))


def test_ais_from_the_base_rate_model_to_itself_has_zero_log_weights():
  rng = np.random.default_rng(5)
  base = ais.base_rate_bias(rng.random((50, 20)) < rng.uniform(0, 1, 20))
  log_z, log_weights = ais.ais_log_partition(np.zeros((20, 7), np.float32), base, np.zeros(7, np.float32), base,
                                             ais.schedule(50), 16, jax.random.key(0))
  np.testing.assert_array_equal(log_weights, np.zeros(16))
  np.testing.assert_allclose(log_z, np.logaddexp(0, base.astype(np.float64)).sum() + 7 * math.log(2), rtol=1e-6)


def test_ais_matches_the_exact_log_partition_of_a_random_rbm():
  """100 runs over `schedule(3000)` on a 100-15 RBM with N(0, 0.5²) weights (c + vᵀW of a few units, as in trained
  RBMs) and visible biases around a base rate. Over keys 0-3 the estimate was within 0.02 nat of the exact value
  and log_z_spread's bracket about ±0.1 nat wide, so 0.1 nat leaves room while a sampler that draws the hiddens
  at β = 1 instead of β missed by 0.9 nat; the paper's 14,500 steps would take 5x as long."""
  rng = np.random.default_rng(6)
  base = ais.base_rate_bias(rng.random((1000, 100)) < rng.uniform(0, 0.5, 100))
  weights = rng.normal(0, 0.5, (100, 15)).astype(np.float32)
  visible_bias = base + rng.normal(0, 0.5, 100).astype(np.float32)
  hidden_bias = rng.normal(0, 1, 15).astype(np.float32)
  exact = float(ais.log_partition_exact(weights, visible_bias, hidden_bias))
  log_z, log_weights = ais.ais_log_partition(weights, visible_bias, hidden_bias, base, ais.schedule(3000), 100,
                                             jax.random.key(0))
  assert log_weights.shape == (100,)
  assert abs(float(log_z) - exact) < 0.1
  lower, upper = ais.log_z_spread(log_weights, ais.base_log_partition(base, 15))
  assert lower < exact < upper


def test_ais_with_betas_0_and_1_is_importance_sampling_from_the_base_model():
  """No intermediate distribution, no Gibbs step: plain importance sampling, consistent with many runs."""
  rbm = _rbm(np.random.default_rng(7), 8, 3, scale=0.5)
  base = rbm[1] + 0.3
  log_z, _ = ais.ais_log_partition(*rbm, base, [0.0, 1.0], 20_000, jax.random.key(0))
  np.testing.assert_allclose(log_z, ais.log_partition_exact(*rbm), atol=0.02)


def test_ais_sums_the_14500_increments_of_default_betas_to_float32_precision():
  """With W = 0 and the target's visible biases equal to the base's, log p*_β(v) does not depend on v, so each
  log-weight is Σ_j softplus(c_j) - H·log 2 whatever the samples: a sum of 14,500 float32 increments to ~1,394
  nats. A plain float32 sum ended 0.17 nat off; float32's precision there is ~1e-4."""
  rng = np.random.default_rng(8)
  base = rng.normal(0, 1, 10).astype(np.float32)
  hidden_bias = rng.normal(0, 10, 500).astype(np.float32)
  _, log_weights = ais.ais_log_partition(np.zeros((10, 500), np.float32), base, hidden_bias, base,
                                         ais.default_betas(), 4, jax.random.key(0))
  expected = np.logaddexp(0, hidden_bias.astype(np.float64)).sum() - 500 * math.log(2)
  np.testing.assert_allclose(log_weights, np.full(4, expected), atol=1e-3)


def test_log_z_spread_is_log_of_mean_weight_plus_minus_3_standard_errors():
  weights = np.array([1.0, 2.0, 3.0, 4.0])
  half_width = 3 * np.std(weights, ddof=1) / 2
  lower, upper = ais.log_z_spread(np.log(weights).astype(np.float32) + 600, 10.0)  # exp(600) overflows float32.
  np.testing.assert_allclose([lower, upper], np.log([2.5 - half_width, 2.5 + half_width]) + 610, rtol=1e-6)


def test_log_z_spread_lower_end_is_minus_infinity_when_one_run_dominates():
  lower, upper = ais.log_z_spread(np.array([0.0] + [-50.0] * 9, np.float32))
  assert lower == -np.inf
  np.testing.assert_allclose(upper, np.log(0.1 + 3 * np.std([1.0] + [0.0] * 9, ddof=1) / np.sqrt(10)), rtol=1e-5)
  with pytest.raises(ConfigError, match=r"at least 2 AIS runs, got 1: use num_runs >= 2"):
    ais.log_z_spread(np.zeros(1, np.float32))
