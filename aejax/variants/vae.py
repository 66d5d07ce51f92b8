"""`vae` and `beta_vae`: Gaussian code with closed-form KL; loss = -log p(x|z) + β·KL (with optional warm-up).

`beta_vae` is the same model and loss; its config sets β > 1. Test metrics always include the
negative ELBO (β = 1) in nats, whatever β trains the model.
"""
import jax
import jax.numpy as jnp

from aejax import losses, models, registry
from aejax.errors import ConfigError
from aejax.registry import Batch, Config, HParams, Params
from aejax.variants import common


def build_model(config: Config, input_shape: tuple[int, ...]) -> models.GaussianAutoEncoder:
  encoder, decoder = models.build_backbone(config, input_shape)
  return models.GaussianAutoEncoder(encoder, decoder, config.latent_dim)


def init(model: models.GaussianAutoEncoder, key: jax.Array, x: jax.Array) -> Params:
  return model.init(key, x, key)


def hparams(config: Config) -> dict[str, float]:
  return {"beta": float(config.beta), "kl_warmup_steps": float(config.kl_warmup_steps)}


def kl_weight(hp: HParams, step: jax.Array) -> jax.Array:
  """β, ramped linearly from 0 over the first `kl_warmup_steps` steps when that is positive."""
  warmup = hp["kl_warmup_steps"]
  ramp = jnp.where(warmup > 0, jnp.minimum(1.0, (step + 1) / jnp.maximum(warmup, 1.0)), 1.0)
  return hp["beta"] * ramp


def _terms(model, config: Config, params: Params, x: jax.Array, key: jax.Array) -> tuple[jax.Array, jax.Array]:
  out = model.apply(params, x, key)
  return common.decoder_nll(config, out["logits"], x), losses.gaussian_kl(out["mean"], out["logvar"])


def loss(model, config: Config, params: Params, batch: Batch, key: jax.Array, hp: HParams,
         step: jax.Array) -> tuple[jax.Array, dict]:
  nll, kl = _terms(model, config, params, batch["image"], key)
  weight = kl_weight(hp, step)
  nll, kl = nll.mean(), kl.mean()
  return nll + weight * kl, {"recon": nll, "kl": kl, "neg_elbo": nll + kl, "kl_weight": weight}


def evaluate(model, config: Config, params: Params, batch: Batch, key: jax.Array, hp: HParams) -> dict:
  x = batch["image"]
  nll, kl = _terms(model, config, params, x, key)
  mean, _ = model.apply(params, x, method=model.encode)
  logits = model.apply(params, mean, method=model.decode)
  return {"loss": nll + hp["beta"] * kl, "recon": nll, "kl": kl, "neg_elbo": nll + kl,
          "recon_error": losses.squared_error(jax.nn.sigmoid(logits), x)}


def images(model, config: Config, params: Params, batch: Batch, key: jax.Array) -> dict:
  x = batch["image"]
  mean, _ = model.apply(params, x, method=model.encode)
  recon = jax.nn.sigmoid(model.apply(params, mean, method=model.decode))
  n = config.num_images
  z = jax.random.normal(key, (n * n, config.latent_dim))
  samples = jax.nn.sigmoid(model.apply(params, z, method=model.decode))
  return {"reconstruction": common.image_rows(x, recon, n=n),
          "samples": samples.reshape(n, n, *samples.shape[1:])}


def validate(config: Config) -> None:
  if config.model.spatial_code:
    raise ConfigError("config.model.spatial_code=True: the VAE's latent is a vector (Dense mean and log-variance "
                      "heads on the conv features); use --config.model.spatial_code=False and set latent_dim")


VARIANT = registry.Variant(build_model=build_model, hparams=hparams, loss=loss, evaluate=evaluate, images=images,
                           init=init, validate=validate)
registry.register("vae", VARIANT)
registry.register("beta_vae", VARIANT)
