"""Input corruptions for denoising: the model sees the corrupted input, the loss the clean one."""
import jax
import jax.numpy as jnp


def gaussian_noise(key: jax.Array, x: jax.Array, noise_factor: float | jax.Array) -> jax.Array:
  """x + noise_factor * N(0, 1), clipped back to the pixel range [0, 1]."""
  return jnp.clip(x + noise_factor * jax.random.normal(key, x.shape, x.dtype), 0.0, 1.0)


def masking_noise(key: jax.Array, x: jax.Array, drop_fraction: float | jax.Array) -> jax.Array:
  """Sets each pixel to 0 with probability `drop_fraction`."""
  return jnp.where(jax.random.bernoulli(key, drop_fraction, x.shape), 0.0, x)


def poisson_noise(key: jax.Array, x: jax.Array, level: float | jax.Array) -> jax.Array:
  """Photon-count (shot) noise: Poisson(x · peak) / peak with peak = 1 / `level` photons at a pixel of 1, so a pixel
  keeps its mean x and gets variance x · level (`level` 0: no noise). Not clipped: a bright pixel's count may
  exceed the peak, as a detector's does."""
  level = jnp.asarray(level, x.dtype)
  peak = 1.0 / jnp.maximum(level, jnp.finfo(x.dtype).tiny)
  counts = jax.random.poisson(key, jnp.where(level > 0, x * peak, 0.0), x.shape)
  return jnp.where(level > 0, counts.astype(x.dtype) / peak, x)


CORRUPTIONS = {"gaussian": gaussian_noise, "mask": masking_noise, "poisson": poisson_noise}


def corrupt(kind: str, key: jax.Array, x: jax.Array, level: float | jax.Array) -> jax.Array:
  """Applies the corruption named by `config.noise_type` at `config.noise_factor`."""
  return CORRUPTIONS[kind](key, x, level)
