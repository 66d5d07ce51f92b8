"""Pieces the variants share: reconstruction terms and labelled image rows."""
import jax
import jax.numpy as jnp

from aejax import images
from aejax.nn import losses
from aejax.registry import Config


def reconstruction_loss(config: Config, logits: jax.Array, x: jax.Array) -> jax.Array:
  """Per-example 'bce' (from logits) or 'mse' (squared error of sigmoid(logits)), as `config.loss` says."""
  if config.loss == "bce":
    return losses.binary_cross_entropy(logits, x)
  return losses.squared_error(jax.nn.sigmoid(logits), x)


def decoder_nll(config: Config, logits: jax.Array, x: jax.Array) -> jax.Array:
  """Per-example -log p(x|z) in nats: Bernoulli for 'bce', Gaussian (std `config.decoder_std`) for 'mse'."""
  if config.loss == "bce":
    return losses.binary_cross_entropy(logits, x)
  return losses.gaussian_nll(jax.nn.sigmoid(logits), x, config.decoder_std)


def image_grid(rows: dict[str, jax.Array], n: int) -> images.Grid:
  """The first `n` images of each row, clipped to [0, 1], labelled with the row's name (in order)."""
  return images.Grid(jnp.clip(jnp.stack([r[:n] for r in rows.values()]), 0.0, 1.0), tuple(rows))
