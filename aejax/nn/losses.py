"""Loss terms, each returned per example: summed over pixels (or latent units), never over the batch.

The batch mean is taken by the variant, so every figure aejax reports is "per image" in the
units of one example (squared error summed over its 784 pixels, nats for likelihoods).
"""
import math

import jax
import jax.numpy as jnp
import optax


def _sum_per_example(x: jax.Array) -> jax.Array:
  return x.reshape(x.shape[0], -1).sum(axis=-1)


def squared_error(prediction: jax.Array, target: jax.Array) -> jax.Array:
  """Squared error summed over all non-batch axes."""
  return _sum_per_example(jnp.square(prediction - target))


def binary_cross_entropy(logits: jax.Array, target: jax.Array) -> jax.Array:
  """Binary cross-entropy from logits, summed per example; stable at targets 0 and 1 and large logits."""
  return _sum_per_example(optax.sigmoid_binary_cross_entropy(logits, target))


def gaussian_nll(mean: jax.Array, target: jax.Array, std: float | jax.Array) -> jax.Array:
  """Negative log-density in nats of `target` under N(mean, std^2), summed per example."""
  dims = math.prod(target.shape[1:])
  return 0.5 * squared_error(mean, target) / std**2 + dims * (jnp.log(std) + 0.5 * jnp.log(2 * jnp.pi))


def gaussian_kl(mean: jax.Array, logvar: jax.Array) -> jax.Array:
  """KL(N(mean, exp(logvar)) || N(0, I)) in closed form, summed over latent units."""
  return _sum_per_example(0.5 * (jnp.exp(logvar) + jnp.square(mean) - 1.0 - logvar))


def mean_absolute(h: jax.Array) -> jax.Array:
  """Mean of |h| over all non-batch axes, per example: the L1 sparsity term (a mean, so λ suits any code size)."""
  return jnp.abs(h).reshape(h.shape[0], -1).mean(axis=-1)


def bernoulli_kl(target: float | jax.Array, mean_activation: jax.Array, eps: float = 1e-6) -> jax.Array:
  """Σ_j KL(Bernoulli(ρ) ‖ Bernoulli(ρ̂_j)) over units j, for ρ = `target` and ρ̂ = `mean_activation` (units,).

  A term of the whole batch (ρ̂_j is a batch mean), not of one example. ρ̂ is clipped to [eps, 1 - eps] so
  that a saturated unit costs a large finite amount instead of infinity.
  """
  rho_hat = jnp.clip(mean_activation, eps, 1.0 - eps)
  return jnp.sum(target * jnp.log(target / rho_hat) + (1.0 - target) * jnp.log((1.0 - target) / (1.0 - rho_hat)))
