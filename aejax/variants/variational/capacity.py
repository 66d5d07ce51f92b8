"""`beta_vae_capacity` (Burgess et al. 2018): the β-VAE whose KL term is pushed toward a capacity C that grows
linearly over training, loss = -log p(x|z) + γ·|KL - C(step)| with the batch-mean KL (as in the paper and
disentanglement_lib's `annealed_vae`), so the code takes on information a few nats at a time.

Its own variant, not an option of `beta_vae`: it reads its own section (`config.capacity`: γ, C's start, end and
steps) and no KL weight or warm-up. Train metrics: `recon`, `kl`, `neg_elbo`, `capacity` (C at the step). Test
metrics: the VAE's, with `loss` the negative ELBO (|KL - C| is a statistic of the batch, and C one of the step).
"""
import jax
import jax.numpy as jnp

from aejax import registry
from aejax.errors import ConfigError
from aejax.nn import models
from aejax.registry import Batch, Config, HParams, Params
from aejax.variants.variational import fields, vae


def hparams(config: Config) -> dict[str, float]:
  return {f"capacity.{k}": float(config.capacity[k]) for k in ("gamma", "c_min", "c_max", "steps")}


def capacity(hp: HParams, step: jax.Array) -> jax.Array:
  """C at `step` (0 first): `c_min`, growing linearly to `c_max` at step `steps`, then constant."""
  progress = jnp.minimum(1.0, step / hp["capacity.steps"])
  return hp["capacity.c_min"] + (hp["capacity.c_max"] - hp["capacity.c_min"]) * progress


def loss(model: models.GaussianAutoEncoder, config: Config, params: Params, batch: Batch, key: jax.Array, hp: HParams,
         step: jax.Array) -> tuple[jax.Array, dict]:
  nll, kl = (v.mean() for v in vae.nll_and_kl(model, config, params, batch["image"], key))
  c = capacity(hp, step)
  return nll + hp["capacity.gamma"] * jnp.abs(kl - c), {"recon": nll, "kl": kl, "neg_elbo": nll + kl, "capacity": c}


def evaluate(model: models.GaussianAutoEncoder, config: Config, params: Params, batch: Batch, key: jax.Array,
             hp: HParams) -> dict:
  del hp
  return vae.evaluate(model, config, params, batch, key, {"beta": jnp.float32(1.0)})  # Its loss: the negative ELBO.


def validate(config: Config) -> None:
  vae.validate_plain(config)
  fields.validate_capacity(config)
  for field, plain in (("beta", 1.0), ("kl_warmup_steps", 0), ("iwae_samples", 1)):
    if config[field] != plain:
      raise ConfigError(f"config.{field}={config[field]!r}: beta_vae_capacity weighs |KL - C| by capacity.gamma and "
                        f"grows C over capacity.steps instead: drop --config.{field}")


registry.register("beta_vae_capacity", registry.Variant(
    build_model=vae.build_plain_model, hparams=hparams, loss=loss, evaluate=evaluate, images=vae.images, init=vae.init,
    validate=validate, config_fields=fields.add_capacity, sample=vae.sample))
