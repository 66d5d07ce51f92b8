"""`aae`: the adversarial autoencoder (Makhzani et al. 2016), an autoencoder whose codes a discriminator matches to
the prior N(0, I), in place of a VAE's KL term: the bridge between the adversarial family and the autoencoders.

Each step of the loop: `gan.d_steps` updates of the discriminator on codes (prior draws are 'real', the encoder's
codes of the batch 'generated'; `gan.loss` and its penalties as for the GANs), then one update of the autoencoder
on its reconstruction loss (`loss`) plus `beta` times the encoder's adversarial loss against the updated
discriminator. The autoencoder is any of the shared backbones (`model.kind`, widths), with a deterministic code,
so the shared evaluation suites (recon, anomaly, denoise, impute) and the samples suite (prior draws decoded) run
on it. Train and test metrics: `loss` (the reconstruction's), `objective` (train: the autoencoder's, the
reconstruction's plus β times `adversarial`), `adversarial`, `d_loss`, `d_real`, `d_fake`.
"""
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from aejax import registry
from aejax.errors import ConfigError
from aejax.nn import losses as nn_losses, models
from aejax.registry import Batch, Config, HParams, Params
from aejax.variants import common
from aejax.variants.adversarial import fields, gan, losses, networks


class AdversarialAutoEncoder(nn.Module):
  """An autoencoder (the 'generator' player: its encoder generates codes) and a discriminator on codes."""
  generator: models.AutoEncoder
  discriminator: networks.Discriminator

  def encode(self, x: jax.Array) -> jax.Array:
    return self.generator.encode(x)

  def decode(self, z: jax.Array) -> jax.Array:
    return self.generator.decode(z)

  def discriminate(self, z: jax.Array, labels: jax.Array | None = None) -> jax.Array:
    return self.discriminator(z, labels)

  def __call__(self, x: jax.Array) -> dict[str, jax.Array]:
    out = self.generator(x)
    return {**out, "d_fake": self.discriminate(out["code"])}


def build_model(config: Config, input_shape: tuple[int, ...]) -> AdversarialAutoEncoder:
  encoder, decoder = models.build_backbone(config, input_shape)
  autoencoder = models.AutoEncoder(encoder, decoder, config.latent_dim, config.model.code_activation)
  return AdversarialAutoEncoder(autoencoder, networks.Discriminator(tuple(config.gan.code_widths), False,
                                                                    config.gan.leaky_slope))


def hparams(config: Config) -> dict[str, float]:
  return {"beta": float(config.beta)}


def _prior(key: jax.Array, like: jax.Array) -> jax.Array:
  return jax.random.normal(key, like.shape, like.dtype)


def train_step(model: AdversarialAutoEncoder, config: Config, state: Any, batch: Batch,
               key: jax.Array) -> tuple[Any, dict]:
  """`gan.d_steps` updates of the discriminator on codes, then one of the autoencoder."""
  x = batch["image"]
  keys = jax.random.split(key, config.gan.d_steps)
  codes = model.apply({"params": {"generator": state.params["params"]["generator"]}}, x, method=model.encode)
  for d_key in keys:
    prior_key, penalty_key = jax.random.split(d_key)

    def d_objective(discriminator):
      terms = gan.discriminator_terms(config, gan.scorer(model, discriminator), _prior(prior_key, codes), codes,
                                      penalty_key)
      return terms["d_loss"].mean(), {k: v.mean() for k, v in terms.items()}

    grads, metrics = jax.grad(d_objective, has_aux=True)(state.params["params"]["discriminator"])
    state = gan.update_player(state, "discriminator", grads)
  discriminator = state.params["params"]["discriminator"]

  def ae_objective(generator):
    out = model.apply({"params": {"generator": generator}}, x, method=lambda m, x: m.generator(x))
    recon = common.reconstruction_loss(config, out["logits"], x).mean()
    d_codes = gan.scorer(model, discriminator)(out["code"])
    adversarial = losses.generator_loss(config.gan.loss, d_codes).mean()
    return recon + state.hparams["beta"] * adversarial, {"loss": recon, "adversarial": adversarial}

  (objective, ae_metrics), grads = jax.value_and_grad(ae_objective, has_aux=True)(state.params["params"]["generator"])
  state = gan.update_player(state, "generator", grads)
  return state.replace(step=state.step + 1), {**ae_metrics, "objective": objective, **metrics}


def evaluate(model: AdversarialAutoEncoder, config: Config, params: Params, batch: Batch, key: jax.Array,
             hp: HParams) -> dict[str, jax.Array]:
  """Per test example: the reconstruction's loss and errors, and the discriminator's terms on its code."""
  del hp
  x = batch["image"]
  out = model.apply(params, x)
  prior_key, penalty_key = jax.random.split(key)
  terms = gan.discriminator_terms(config, gan.scorer(model, params["params"]["discriminator"]),
                                  _prior(prior_key, out["code"]), out["code"], penalty_key)
  recon = common.reconstruction_loss(config, out["logits"], x)
  return {"loss": recon, "recon_error": nn_losses.squared_error(jax.nn.sigmoid(out["logits"]), x),
          "bce": nn_losses.binary_cross_entropy(out["logits"], x),
          "adversarial": losses.generator_loss(config.gan.loss, terms["d_fake"]), **terms}


def sample(model: AdversarialAutoEncoder, config: Config, params: Params, key: jax.Array,
           labels: jax.Array) -> jax.Array:
  """Prior draws decoded: the sigmoid of the decoder's logits."""
  z = jax.random.normal(key, (len(labels), config.latent_dim))
  return jax.nn.sigmoid(model.apply(params, z, method=model.decode))


def images(model: AdversarialAutoEncoder, config: Config, params: Params, batch: Batch, key: jax.Array,
           hp: HParams) -> dict:
  """Reconstructions, and decoded prior draws."""
  del hp
  n = config.num_images
  recon = jax.nn.sigmoid(model.apply(params, batch["image"])["logits"])
  drawn = sample(model, config, params, key, jnp.zeros(n * n, jnp.int32)).reshape(n, n, *batch["image"].shape[1:])
  return {"reconstruction": common.image_grid({"input": batch["image"], "reconstruction": recon}, n=n),
          "samples": common.image_grid({f"prior draws {r + 1}": row for r, row in enumerate(drawn)}, n=n)}


def validate(config: Config) -> None:
  """The family's fields; an unbounded vector code (the prior is N(0, I) over vectors), and no generator average
  (`aae` has none)."""
  fields.validate(config)
  if config.model.code_activation != "linear":
    raise ConfigError(f"config.model.code_activation={config.model.code_activation!r}: the codes are matched to "
                      "N(0, I), which a bounded or one-sided code cannot reach: use --config.model.code_activation="
                      "linear")
  if config.model.spatial_code:
    raise ConfigError("config.model.spatial_code=True: an adversarial autoencoder matches vector codes to N(0, I): "
                      "drop it")
  if config.gan.ema_decay > 0:
    raise ConfigError(f"config.gan.ema_decay={config.gan.ema_decay!r}: the adversarial autoencoder keeps no moving "
                      "average of its weights: drop it")


registry.register("aae", registry.Variant(
    build_model=build_model, hparams=hparams, evaluate=evaluate, images=images, train_step=train_step,
    validate=validate, config_fields=fields.add, sample=sample, optimizer=gan.optimizer))
