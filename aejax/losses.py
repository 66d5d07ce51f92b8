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
