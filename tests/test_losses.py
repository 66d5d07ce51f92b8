"""Each loss term against an independent computation."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from aejax.data import corruption
from aejax.nn import losses
from aejax.variants.variational import vae


def test_squared_error_sums_pixels_per_example():
  x = np.random.default_rng(0).random((3, 28, 28, 1)).astype(np.float32)
  y = np.zeros_like(x)
  np.testing.assert_allclose(losses.squared_error(x, y), [np.sum(x[i] ** 2) for i in range(3)], rtol=1e-5)


def test_bce_matches_the_log_formula_for_moderate_logits():
  rng = np.random.default_rng(1)
  logits = rng.normal(size=(4, 10)).astype(np.float32)
  target = rng.random((4, 10)).astype(np.float32)
  p = 1 / (1 + np.exp(-logits.astype(np.float64)))
  expected = -(target * np.log(p) + (1 - target) * np.log(1 - p)).sum(axis=1)
  np.testing.assert_allclose(losses.binary_cross_entropy(logits, target), expected, rtol=1e-5)


@pytest.mark.parametrize("target", [0.0, 1.0])
def test_bce_is_stable_at_targets_zero_and_one(target):
  logits = jnp.array([[-200.0, -30.0, 0.0, 30.0, 200.0]])
  x = jnp.full_like(logits, target)
  value = losses.binary_cross_entropy(logits, x)
  grad = jax.grad(lambda l: losses.binary_cross_entropy(l, x).sum())(logits)
  assert np.isfinite(value).all() and np.isfinite(grad).all()
  # The confidently right logit costs ~0 nats, the confidently wrong one ~200 nats: no log(0) clipping.
  right, wrong = (-200.0, 200.0) if target == 0.0 else (200.0, -200.0)
  single = lambda l: float(losses.binary_cross_entropy(jnp.array([[l]]), jnp.array([[target]]))[0])
  assert single(right) < 1e-30 + 1e-6
  assert single(wrong) == pytest.approx(200.0, rel=1e-6)


def test_gaussian_kl_closed_form_matches_monte_carlo():
  mean = jnp.array([[0.5, -1.0, 2.0, 0.0]])
  logvar = jnp.array([[0.0, -1.5, 0.7, 1.2]])
  z = mean + jnp.exp(0.5 * logvar) * jax.random.normal(jax.random.key(0), (400_000, 4))
  log_q = jax.scipy.stats.norm.logpdf(z, mean, jnp.exp(0.5 * logvar)).sum(-1)
  log_p = jax.scipy.stats.norm.logpdf(z).sum(-1)
  monte_carlo = float(jnp.mean(log_q - log_p))
  assert float(losses.gaussian_kl(mean, logvar)[0]) == pytest.approx(monte_carlo, rel=0.01)


def test_gaussian_nll_is_the_log_density():
  rng = np.random.default_rng(2)
  mean, x = rng.random((2, 5, 7)).astype(np.float32)
  expected = -jax.scipy.stats.norm.logpdf(x, mean, 0.3).reshape(5, -1).sum(-1)
  np.testing.assert_allclose(losses.gaussian_nll(mean, x, 0.3), expected, rtol=1e-5)


def test_kl_warmup_ramps_beta_linearly():
  hp = {"beta": jnp.float32(4.0), "kl_warmup_steps": jnp.float32(100.0)}
  assert float(vae.kl_weight(hp, jnp.int32(49))) == pytest.approx(2.0)
  assert float(vae.kl_weight(hp, jnp.int32(1000))) == pytest.approx(4.0)
  assert float(vae.kl_weight({**hp, "kl_warmup_steps": jnp.float32(0.0)}, jnp.int32(0))) == pytest.approx(4.0)


def test_gaussian_noise_is_scaled_and_clipped():
  x = jnp.full((200_000,), 0.5)
  noisy = corruption.gaussian_noise(jax.random.key(0), x, 0.1)
  assert float(noisy.min()) >= 0.0 and float(noisy.max()) <= 1.0
  assert float(jnp.std(noisy)) == pytest.approx(0.1, rel=0.02)
  clipped = corruption.gaussian_noise(jax.random.key(0), x, 5.0)
  assert float(jnp.mean((clipped == 0.0) | (clipped == 1.0))) > 0.9


@pytest.mark.parametrize("peak", [10.0, 255.0])
def test_poisson_noise_keeps_the_mean_with_variance_x_over_the_peak(peak):
  """Shot noise at `peak` photons for a pixel of 1: mean x and variance x / peak (closed form) over 200,000 draws
  per level; the counts are whole photons; level 0 is no noise."""
  x = jnp.repeat(jnp.array([0.05, 0.3, 1.0]), 200_000)
  noisy = corruption.poisson_noise(jax.random.key(0), x, 1.0 / peak).reshape(3, -1)
  levels = np.array([0.05, 0.3, 1.0])
  np.testing.assert_allclose(noisy.mean(axis=1), levels, rtol=0.01)
  np.testing.assert_allclose(noisy.var(axis=1), levels / peak, rtol=0.03)
  np.testing.assert_allclose(noisy * peak, np.round(noisy * peak), atol=1e-3)
  np.testing.assert_array_equal(corruption.poisson_noise(jax.random.key(0), x, 0.0), x)


def test_masking_drops_the_requested_fraction():
  x = jnp.ones((100_000,))
  masked = corruption.masking_noise(jax.random.key(0), x, 0.3)
  assert float(jnp.mean(masked == 0.0)) == pytest.approx(0.3, abs=0.01)
  assert set(np.unique(masked).tolist()) <= {0.0, 1.0}
