"""`patch_dae`: a blind denoising autoencoder of image patches (medical and microscopy images).

A share `medical.phantom_share` of each training batch is replaced by random ellipse phantoms (`phantoms`). Each
training patch is corrupted by `noise_type` (`noise.corrupt`: Gaussian unclipped, or photon counts) at a level
drawn uniformly from [0, noise_factor] (one network for every level); the loss is the mean squared error per pixel
against the clean patch. Test metrics on the test split's
patches at noise_factor / 2: 'mse', 'psnr' of the output and 'psnr_noisy' of the input. The medical_denoise suite
scores whole held-out images at each of eval.noise_factors beside scikit-image's denoisers and BM3D.
"""
import jax
import jax.numpy as jnp

from aejax import registry
from aejax.registry import Batch, Config, HParams, Params
from aejax.variants import common
from aejax.variants.medical import fields, models, noise, phantoms, suite


def build_model(config: Config, input_shape: tuple[int, ...]) -> models.PatchDenoiser:
  m = config.medical
  return models.PatchDenoiser(features=m.features, levels=m.levels, channels=input_shape[-1], residual=m.residual,
                              skips=m.skips)


def hparams(config: Config) -> dict[str, float]:
  return {"noise_factor": float(config.noise_factor)}


def _psnr(mse: jax.Array) -> jax.Array:
  return -10 * jnp.log10(jnp.maximum(mse, 1e-10))


def with_phantoms(x: jax.Array, key: jax.Array, share: float) -> jax.Array:
  """The batch `x` with its first `phantom_count` patches replaced by random ellipse phantoms of their size (and
  channels: a phantom is gray)."""
  n = fields.phantom_count(share, len(x))
  if n == 0:
    return x
  drawn = phantoms.random_phantoms(key, n, x.shape[1], x.shape[2])
  return x.at[:n].set(jnp.broadcast_to(drawn, (n, *x.shape[1:])))


def loss(model: models.PatchDenoiser, config: Config, params: Params, batch: Batch, key: jax.Array, hp: HParams,
         step: jax.Array) -> tuple[jax.Array, dict]:
  del step
  x = batch["image"]
  level_key, noise_key, phantom_key = jax.random.split(key, 3)
  x = with_phantoms(x, phantom_key, config.medical.phantom_share)
  levels = hp["noise_factor"] * jax.random.uniform(level_key, (len(x), 1, 1, 1))
  mse = jnp.mean((model.apply(params, noise.corrupt(config.noise_type, noise_key, x, levels)) - x) ** 2)
  return mse, {"mse": mse, "psnr": _psnr(mse)}


def evaluate(model: models.PatchDenoiser, config: Config, params: Params, batch: Batch, key: jax.Array,
             hp: HParams) -> dict[str, jax.Array]:
  x = batch["image"]
  noisy = noise.corrupt(config.noise_type, key, x, hp["noise_factor"] / 2)
  mse = jnp.mean((jnp.clip(model.apply(params, noisy), 0, 1) - x) ** 2, axis=(1, 2, 3))
  return {"loss": mse, "mse": mse, "psnr": _psnr(mse),
          "psnr_noisy": _psnr(jnp.mean((noisy - x) ** 2, axis=(1, 2, 3)))}


def images(model: models.PatchDenoiser, config: Config, params: Params, batch: Batch, key: jax.Array,
           hp: HParams) -> dict:
  x = batch["image"]
  noisy = noise.corrupt(config.noise_type, key, x, hp["noise_factor"] / 2)
  rows = {"clean": x, "noisy": noisy, "denoised": model.apply(params, noisy)}
  return {"denoising": common.image_grid(rows, n=config.num_images)}


registry.register("patch_dae", registry.Variant(
    build_model=build_model, hparams=hparams, loss=loss, evaluate=evaluate, images=images,
    validate=fields.validate, config_fields=fields.add, suites={"medical_denoise": suite.medical_denoise}))
