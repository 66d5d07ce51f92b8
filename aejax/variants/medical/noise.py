"""The medical family's noise: what the patch denoiser trains on and the medical_denoise suite scores."""
import jax

from aejax.data import corruption


def corrupt(kind: str, key: jax.Array, x: jax.Array, level: jax.Array | float) -> jax.Array:
  """'gaussian' adds N(0, level²) unclipped (additive white Gaussian noise as denoising benchmarks add it, and as the
  suite's baselines assume it: `corruption.gaussian_noise` clips to [0, 1]); 'poisson' is photon-count noise at
  1 / level photons for a pixel of 1 (`corruption.poisson_noise`)."""
  if kind == "gaussian":
    return x + level * jax.random.normal(key, x.shape, x.dtype)
  return corruption.poisson_noise(key, x, level)
