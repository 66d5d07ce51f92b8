"""`vae` and `beta_vae`: Gaussian code with closed-form KL; loss = -log p(x|z) + β·KL (with optional warm-up).

`beta_vae` is the same model and loss; its config sets β > 1. Test metrics always include the
negative ELBO (β = 1) in nats, whatever β trains the model. With `iwae_samples` k > 1 the model trains on
the importance-weighted bound of Burda et al. (2016) instead, log (1/k) Σ_i p(x, z_i) / q(z_i|x), which
tightens towards log p(x) as k grows; `importance_weighted_nll` is the same estimate with any k, in chunks.
"""
import math

import jax
import jax.numpy as jnp

from aejax import images as images_lib, registry
from aejax.errors import ConfigError
from aejax.nn import losses, models
from aejax.registry import Batch, Config, HParams, Params
from aejax.variants import common


def build_model(config: Config, input_shape: tuple[int, ...]) -> models.GaussianAutoEncoder:
  encoder, decoder = models.build_backbone(config, input_shape)
  return models.GaussianAutoEncoder(encoder, decoder, config.latent_dim)


def init(model: models.GaussianAutoEncoder, key: jax.Array, x: jax.Array) -> Params:
  return model.init(key, x, key)


def hparams(config: Config) -> dict[str, float]:
  return {"beta": float(config.beta), "kl_warmup_steps": float(config.kl_warmup_steps)}


def warmup(hp: HParams, step: jax.Array) -> jax.Array:
  """The KL term's ramp: linear from 0 to 1 over the first `kl_warmup_steps` steps when that is positive, else 1."""
  steps = hp["kl_warmup_steps"]
  return jnp.where(steps > 0, jnp.minimum(1.0, (step + 1) / jnp.maximum(steps, 1.0)), 1.0)


def kl_weight(hp: HParams, step: jax.Array) -> jax.Array:
  """β, ramped linearly from 0 over the first `kl_warmup_steps` steps when that is positive."""
  return hp["beta"] * warmup(hp, step)


def nll_and_kl(model: models.GaussianAutoEncoder, config: Config, params: Params, x: jax.Array,
               key: jax.Array) -> tuple[jax.Array, jax.Array]:
  """Per image: -log p(x|z) at one draw z ~ q(z|x) (of `key`), and the closed-form KL(q(z|x) ‖ p(z))."""
  out = model.apply(params, x, key)
  return common.decoder_nll(config, out["logits"], x), losses.gaussian_kl(out["mean"], out["logvar"])


def log_weights(model: models.GaussianAutoEncoder, config: Config, params: Params, x: jax.Array, key: jax.Array,
                num_samples: int) -> jax.Array:
  """log p(x, z_i) - log q(z_i|x) for `num_samples` draws z_i ~ q(z|x) per image: (num_samples, B), in nats."""
  mean, logvar = model.apply(params, x, method=model.encode)
  eps = jax.random.normal(key, (num_samples, *mean.shape), mean.dtype)
  z = mean + jnp.exp(0.5 * logvar) * eps
  logits = model.apply(params, z.reshape(-1, mean.shape[-1]), method=model.decode)
  targets = jnp.broadcast_to(x, (num_samples, *x.shape)).reshape(logits.shape)
  log_px_z = -common.decoder_nll(config, logits, targets).reshape(num_samples, -1)
  log_2pi = jnp.log(2 * jnp.pi)
  log_pz = -0.5 * jnp.sum(jnp.square(z) + log_2pi, axis=-1)
  log_qz = -0.5 * jnp.sum(jnp.square(eps) + logvar + log_2pi, axis=-1)
  return log_px_z + log_pz - log_qz


def iwae_bound(log_w: jax.Array) -> jax.Array:
  """The importance-weighted lower bound on log p(x) per image, log mean_i exp(log_w_i), from (k, B) log-weights."""
  return jax.nn.logsumexp(log_w, axis=0) - jnp.log(log_w.shape[0])


def importance_weighted_nll(model: models.GaussianAutoEncoder, config: Config, params: Params, x: jax.Array,
                            key: jax.Array, num_samples: int, chunk_size: int) -> jax.Array:
  """-log p(x) per image estimated with `num_samples` importance samples, drawn `chunk_size` at a time.

  The log-sum-exp is accumulated over chunks, so memory grows with `chunk_size`, not `num_samples`; the
  estimate is the negative IWAE bound, an upper bound on the NLL in expectation that tightens as k grows.
  """
  chunk_size = min(chunk_size, num_samples)
  num_chunks = -(-num_samples // chunk_size)

  def add_chunk(total: jax.Array, index: jax.Array) -> tuple[jax.Array, None]:
    log_w = log_weights(model, config, params, x, jax.random.fold_in(key, index), chunk_size)
    drawn = index * chunk_size + jnp.arange(chunk_size)[:, None]
    log_w = jnp.where(drawn < num_samples, log_w, -jnp.inf)  # The last chunk's draws past k do not count.
    return jnp.logaddexp(total, jax.nn.logsumexp(log_w, axis=0)), None

  start = jnp.full((x.shape[0],), -jnp.inf, jnp.float32)
  total, _ = jax.lax.scan(add_chunk, start, jnp.arange(num_chunks))
  return math.log(num_samples) - total


def loss(model: models.GaussianAutoEncoder, config: Config, params: Params, batch: Batch, key: jax.Array, hp: HParams,
         step: jax.Array) -> tuple[jax.Array, dict]:
  if config.iwae_samples > 1:
    log_w = log_weights(model, config, params, batch["image"], key, config.iwae_samples)
    neg_bound = -iwae_bound(log_w).mean()
    return neg_bound, {"neg_iwae_bound": neg_bound, "neg_elbo": -log_w.mean()}
  nll, kl = nll_and_kl(model, config, params, batch["image"], key)
  weight = kl_weight(hp, step)
  nll, kl = nll.mean(), kl.mean()
  return nll + weight * kl, {"recon": nll, "kl": kl, "neg_elbo": nll + kl, "kl_weight": weight}


def evaluate(model: models.GaussianAutoEncoder, config: Config, params: Params, batch: Batch, key: jax.Array,
             hp: HParams) -> dict:
  x = batch["image"]
  nll, kl = nll_and_kl(model, config, params, x, key)
  mean, _ = model.apply(params, x, method=model.encode)
  logits = model.apply(params, mean, method=model.decode)
  metrics = {"loss": nll + hp["beta"] * kl, "recon": nll, "kl": kl, "neg_elbo": nll + kl,
             "recon_error": losses.squared_error(jax.nn.sigmoid(logits), x)}
  if config.iwae_samples > 1:
    metrics["loss"] = metrics["neg_iwae_bound"] = -iwae_bound(
        log_weights(model, config, params, x, jax.random.fold_in(key, 1), config.iwae_samples))
  return metrics


def images(model: models.GaussianAutoEncoder, config: Config, params: Params, batch: Batch, key: jax.Array,
           hp: HParams) -> dict:
  del hp
  x = batch["image"]
  mean, _ = model.apply(params, x, method=model.encode)
  recon = jax.nn.sigmoid(model.apply(params, mean, method=model.decode))
  n = config.num_images
  z = jax.random.normal(key, (n * n, config.latent_dim))
  samples = jax.nn.sigmoid(model.apply(params, z, method=model.decode))
  return {"reconstruction": common.image_grid({"input": x, "reconstruction": recon}, n=n),
          "samples": images_lib.Grid(samples.reshape(n, n, *samples.shape[1:]), ("prior samples",))}


def sample(model: models.GaussianAutoEncoder, config: Config, params: Params, key: jax.Array,
           labels: jax.Array) -> jax.Array:
  """As many images as `labels` (an unconditional model reads only their number): the decoder's means
  (sigmoid of its logits, as the pictures show them) at draws z ~ N(0, I) of the prior."""
  z = jax.random.normal(key, (labels.shape[0], config.latent_dim))
  return jax.nn.sigmoid(model.apply(params, z, method=model.decode))


def validate(config: Config) -> None:
  if config.model.spatial_code:
    raise ConfigError("config.model.spatial_code=True: the VAE's latent is a vector (Dense mean and log-variance "
                      "heads on the conv features); use --config.model.spatial_code=False and set latent_dim")
  if config.iwae_samples > 1 and (config.beta != 1 or config.kl_warmup_steps):
    raise ConfigError(f"config.iwae_samples={config.iwae_samples}: the IWAE bound has no KL weight; use it with "
                      "--config.beta=1 --config.kl_warmup_steps=0, or --config.iwae_samples=1 for the β-VAE loss")


VARIANT = registry.Variant(build_model=build_model, hparams=hparams, loss=loss, evaluate=evaluate, images=images,
                           init=init, validate=validate, sample=sample)
registry.register("vae", VARIANT)
registry.register("beta_vae", VARIANT)
