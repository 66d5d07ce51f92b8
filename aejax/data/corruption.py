"""Input corruptions for denoising: the model sees the corrupted input, the loss the clean one."""
import jax
import jax.numpy as jnp


def gaussian_noise(key: jax.Array, x: jax.Array, noise_factor: float | jax.Array) -> jax.Array:
  """x + noise_factor * N(0, 1), clipped back to the pixel range [0, 1]."""
  return jnp.clip(x + noise_factor * jax.random.normal(key, x.shape, x.dtype), 0.0, 1.0)


def masking_noise(key: jax.Array, x: jax.Array, drop_fraction: float | jax.Array) -> jax.Array:
  """Sets each pixel to 0 with probability `drop_fraction`."""
  return jnp.where(jax.random.bernoulli(key, drop_fraction, x.shape), 0.0, x)


CORRUPTIONS = {"gaussian": gaussian_noise, "mask": masking_noise}


def corrupt(kind: str, key: jax.Array, x: jax.Array, level: float | jax.Array) -> jax.Array:
  """Applies the corruption named by `config.noise_type` at `config.noise_factor`."""
  return CORRUPTIONS[kind](key, x, level)
