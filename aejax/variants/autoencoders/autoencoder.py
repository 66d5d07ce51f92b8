"""`ae` (plain, under- or overcomplete by `latent_dim`) and `dae` (denoising): a deterministic code.

The denoising variant feeds a corrupted input (`noise_type`, `noise_factor`) and scores the
reconstruction against the clean one.
"""
import functools

import jax

from aejax import registry
from aejax.data import corruption
from aejax.errors import ConfigError
from aejax.nn import losses, models
from aejax.registry import Batch, Config, HParams, Params
from aejax.variants import common


def build_model(config: Config, input_shape: tuple[int, ...]) -> models.AutoEncoder:
  encoder, decoder = models.build_backbone(config, input_shape)
  latent_dim = None if config.model.spatial_code else config.latent_dim  # A spatial code is the encoder's output.
  return models.AutoEncoder(encoder, decoder, latent_dim, config.model.code_activation)


def hparams(config: Config) -> dict[str, float]:
  return {"noise_factor": float(config.noise_factor)}


def _model_input(config: Config, key: jax.Array, x: jax.Array, hp: HParams, denoising: bool) -> jax.Array:
  return corruption.corrupt(config.noise_type, key, x, hp["noise_factor"]) if denoising else x


def loss(model: models.AutoEncoder, config: Config, params: Params, batch: Batch, key: jax.Array, hp: HParams,
         step: jax.Array, *, denoising: bool) -> tuple[jax.Array, dict]:
  del step
  x = batch["image"]
  out = model.apply(params, _model_input(config, key, x, hp, denoising))
  recon = common.reconstruction_loss(config, out["logits"], x).mean()
  return recon, {"recon": recon}


def evaluate(model: models.AutoEncoder, config: Config, params: Params, batch: Batch, key: jax.Array, hp: HParams,
             *, denoising: bool) -> dict[str, jax.Array]:
  x = batch["image"]
  clean = model.apply(params, x)["logits"]
  metrics = {"recon_error": losses.squared_error(jax.nn.sigmoid(clean), x),
             "bce": losses.binary_cross_entropy(clean, x)}
  if denoising:
    noisy = model.apply(params, _model_input(config, key, x, hp, True))["logits"]
    metrics["loss"] = common.reconstruction_loss(config, noisy, x)
    metrics["denoise_error"] = losses.squared_error(jax.nn.sigmoid(noisy), x)
  else:
    metrics["loss"] = common.reconstruction_loss(config, clean, x)
  return metrics


def images(model: models.AutoEncoder, config: Config, params: Params, batch: Batch, key: jax.Array, hp: HParams, *,
           denoising: bool) -> dict:
  x = batch["image"]
  x_in = _model_input(config, key, x, hp, denoising)
  recon = jax.nn.sigmoid(model.apply(params, x_in)["logits"])
  rows = {"input": x, "noisy": x_in, "reconstruction": recon} if denoising else {"input": x, "reconstruction": recon}
  return {"reconstruction": common.image_grid(rows, n=config.num_images)}


def validate_dae(config: Config) -> None:
  if config.noise_factor <= 0:
    raise ConfigError(f"config.noise_factor={config.noise_factor!r}: a denoising autoencoder needs noise; "
                      "use a positive value, e.g. --config.noise_factor=0.5")


def _variant(denoising: bool) -> registry.Variant:
  bind = functools.partial
  return registry.Variant(
      build_model=build_model, hparams=hparams,
      loss=bind(loss, denoising=denoising), evaluate=bind(evaluate, denoising=denoising),
      images=bind(images, denoising=denoising),
      validate=validate_dae if denoising else registry.no_checks)


registry.register("ae", _variant(denoising=False))
registry.register("dae", _variant(denoising=True))
