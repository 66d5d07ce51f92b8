"""The players' losses, per example, of the discriminator's raw scores d(x) on real and on generated images, and
the gradient penalties. `aejax/variants/adversarial/fields.py` names the losses; tests/test_gan.py checks each
against its formula in NumPy."""
from collections.abc import Callable

import jax
import jax.numpy as jnp


def discriminator_loss(kind: str, real: jax.Array, fake: jax.Array) -> jax.Array:
  """D's loss per example, of its scores on a real and a generated image."""
  if kind in ("non_saturating", "minimax"):  # -log σ(d(x)) - log(1 - σ(d(G(z)))).
    return jax.nn.softplus(-real) + jax.nn.softplus(fake)
  if kind == "hinge":
    return jax.nn.relu(1.0 - real) + jax.nn.relu(1.0 + fake)
  if kind == "least_squares":  # LSGAN's a = 0, b = c = 1.
    return 0.5 * (real - 1.0) ** 2 + 0.5 * fake ** 2
  if kind == "wasserstein":
    return fake - real
  raise ValueError(f"unknown GAN loss {kind!r}")


def generator_loss(kind: str, fake: jax.Array) -> jax.Array:
  """G's loss per example, of D's score on a generated image."""
  if kind == "non_saturating":  # -log σ(d(G(z))).
    return jax.nn.softplus(-fake)
  if kind == "minimax":  # log(1 - σ(d(G(z)))), the saturating original.
    return -jax.nn.softplus(fake)
  if kind in ("hinge", "wasserstein"):
    return -fake
  if kind == "least_squares":
    return 0.5 * (fake - 1.0) ** 2
  raise ValueError(f"unknown GAN loss {kind!r}")


def _input_gradients(score: Callable[[jax.Array], jax.Array], x: jax.Array) -> jax.Array:
  """∇ₓ d(x) of each image, (B, pixels): d scores each image on its own (no batch statistics), so the gradient of
  the scores' sum in the batch holds every image's own gradient."""
  return jax.grad(lambda x: jnp.sum(score(x)))(x).reshape(len(x), -1)


def gradient_penalty(score: Callable[[jax.Array], jax.Array], real: jax.Array, fake: jax.Array,
                     key: jax.Array) -> jax.Array:
  """WGAN-GP's (‖∇ d(x̂)‖ - 1)² per example, at x̂ = εx + (1 - ε)G(z), ε ~ U(0, 1) per example."""
  eps = jax.random.uniform(key, (len(real),) + (1,) * (real.ndim - 1), real.dtype)
  grads = _input_gradients(score, eps * real + (1.0 - eps) * fake)
  return (jnp.sqrt(jnp.sum(grads ** 2, -1) + 1e-12) - 1.0) ** 2


def r1_penalty(score: Callable[[jax.Array], jax.Array], real: jax.Array) -> jax.Array:
  """R1's ‖∇ d(x)‖² per real example (weighted by γ/2 in D's loss)."""
  return jnp.sum(_input_gradients(score, real) ** 2, -1)
