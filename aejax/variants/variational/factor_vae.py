"""`factor_vae` (Kim & Mnih 2018): the VAE's loss plus γ times the total correlation of its codes, estimated by a
discriminator D that tells codes z ~ q(z) from codes whose dimensions are shuffled across the batch, each on its
own (draws of Π_d q(z_d)): TC(z) = KL(q(z) ‖ Π_d q(z_d)) ≈ E[log D(z) / (1 - D(z))], D's logit.

Two players through the one train loop, as the adversarial family's: each step one update of the VAE (loss =
-log p(x|z) + β·KL + γ·D's mean logit of its codes, β = 1 with its warm-up as `vae`'s) against the current D, then
one of D on the step's codes against their permutation (its cross-entropy; the codes of the one batch, as
disentanglement_lib does, where the paper permutes a second batch's). Each player has its own Adam
(`optimizer`: the paper's 0.5 and 0.9 for D). The model is a `GaussianAutoEncoder` with the discriminator beside its
modules, so the VAE's suites and pictures see a VAE. Train metrics: `loss`, `recon`, `kl`, `neg_elbo`, `tc`, `d_loss`,
`d_accuracy`; test metrics: the VAE's, `tc` and `d_loss`, with `loss` the VAE player's objective.
"""
from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from aejax import registry
from aejax.errors import ConfigError
from aejax.nn import losses, models
from aejax.registry import Batch, Config, HParams, Params
from aejax.variants import common
from aejax.variants.adversarial import gan, losses as adversarial_losses, networks
from aejax.variants.variational import fields, vae


class FactorVAE(models.GaussianAutoEncoder):
  """The VAE (the 'generator' player: its encoder, decoder and heads) and a discriminator of codes."""
  discriminator: nn.Module | None = None

  def discriminate(self, z: jax.Array, labels: jax.Array | None = None) -> jax.Array:
    """D's logit that codes `z` (B, D) come from q(z) rather than from its dimensions' product: TC's estimate."""
    del labels
    return self.discriminator(z)

  def __call__(self, x: jax.Array, key: jax.Array) -> dict[str, jax.Array]:
    out = super().__call__(x, key)
    return {**out, "tc": self.discriminate(out["z"])}


def player_of(module: str) -> str:
  """The player that trains a top-level module of the parameters."""
  return "discriminator" if module == "discriminator" else "generator"


def build_model(config: Config, input_shape: tuple[int, ...]) -> FactorVAE:
  encoder, decoder = models.build_backbone(config, input_shape)
  discriminator = networks.Discriminator(tuple(config.factor.d_widths), False, config.factor.d_leaky_slope)
  return FactorVAE(encoder, decoder, config.latent_dim, discriminator=discriminator)


def hparams(config: Config) -> dict[str, float]:
  return {**vae.hparams(config), "factor.gamma": float(config.factor.gamma)}


def optimizer(config: Config, make: Callable[[Config], optax.GradientTransformation]) -> optax.GradientTransformation:
  """The run's optimiser for the VAE; for the discriminator the same at `factor.d_rate_scale` times the learning rate
  with Adam's decay rates `factor.d_adam_b1` and `factor.d_adam_b2`."""
  d_config = config.copy_and_resolve_references()
  d_config.learning_rate = config.learning_rate * config.factor.d_rate_scale
  d_config.adam_b1, d_config.adam_b2 = config.factor.d_adam_b1, config.factor.d_adam_b2
  return gan.players_optimizer(make(config), make(d_config), player_of)


def permute_dims(key: jax.Array, z: jax.Array, valid: jax.Array | None = None) -> jax.Array:
  """Codes `z` (B, D) with each dimension shuffled across the batch by a permutation of its own: each dimension's
  values kept, the dependence between dimensions broken. With `valid` (B,) (an evaluation batch: its examples
  first, then padding marked 0), the examples' values are shuffled among themselves and the padding stays put."""
  if valid is None:
    keys = jax.random.split(key, z.shape[1])
    return jax.vmap(jax.random.permutation, in_axes=(0, 1), out_axes=1)(keys, z)
  draws = jax.random.uniform(key, z.shape)
  order = jnp.argsort(jnp.where(valid[:, None] > 0, draws, 2.0 + jnp.arange(len(z))[:, None]), axis=0)
  return jnp.take_along_axis(z, order, axis=0)


def discriminator_step(model: FactorVAE, state: Any, z: jax.Array, key: jax.Array) -> tuple[Any, dict]:
  """One update of the discriminator: codes `z` are 'real' (from q(z)), their dimension-wise permutation 'fake'."""
  permuted = permute_dims(key, z)

  def d_objective(discriminator):
    score = gan.scorer(model, discriminator)
    d_z, d_permuted = score(z), score(permuted)
    d_loss = adversarial_losses.discriminator_loss("non_saturating", d_z, d_permuted).mean()
    return d_loss, {"d_loss": d_loss, "d_accuracy": 0.5 * (jnp.mean(d_z > 0) + jnp.mean(d_permuted < 0))}

  grads, metrics = jax.grad(d_objective, has_aux=True)(state.params["params"]["discriminator"])
  return gan.update_player(state, "discriminator", grads), metrics


def train_step(model: FactorVAE, config: Config, state: Any, batch: Batch, key: jax.Array) -> tuple[Any, dict]:
  """One update of the VAE against the current discriminator, then one of the discriminator on its codes."""
  x, hp = batch["image"], state.hparams
  vae_key, permute_key = jax.random.split(key)
  discriminator = state.params["params"]["discriminator"]

  def vae_objective(modules):
    out = model.apply({"params": {**modules, "discriminator": discriminator}}, x, vae_key)
    nll = common.decoder_nll(config, out["logits"], x).mean()
    kl = losses.gaussian_kl(out["mean"], out["logvar"]).mean()
    tc = out["tc"].mean()
    objective = nll + vae.kl_weight(hp, state.step) * kl + hp["factor.gamma"] * tc
    return objective, ({"loss": objective, "recon": nll, "kl": kl, "neg_elbo": nll + kl, "tc": tc}, out["z"])

  modules = {m: v for m, v in state.params["params"].items() if player_of(m) == "generator"}
  (_, (metrics, z)), grads = jax.value_and_grad(vae_objective, has_aux=True)(modules)
  state = gan.update_modules(state, "generator", grads)
  state, d_metrics = discriminator_step(model, state, z, permute_key)
  return state.replace(step=state.step + 1), {**metrics, **d_metrics}


def evaluate(model: FactorVAE, config: Config, params: Params, batch: Batch, key: jax.Array, hp: HParams) -> dict:
  """Per test image: the VAE's metrics, D's TC estimate of its code and D's loss against the batch's permutation."""
  metrics = vae.evaluate(model, config, params, batch, key, hp)
  out = model.apply(params, batch["image"], key)  # The draw of z that vae.evaluate scored.
  permuted = permute_dims(jax.random.fold_in(key, 1), out["z"], batch.get("valid"))  # Of the batch's images only.
  d_permuted = model.apply(params, permuted, method=model.discriminate)
  d_loss = adversarial_losses.discriminator_loss("non_saturating", out["tc"], d_permuted)
  return {**metrics, "tc": out["tc"], "d_loss": d_loss,
          "loss": metrics["recon"] + hp["beta"] * metrics["kl"] + hp["factor.gamma"] * out["tc"]}


def validate(config: Config) -> None:
  vae.validate_plain(config)
  fields.validate_factor(config)
  if config.iwae_samples > 1:
    raise ConfigError(f"config.iwae_samples={config.iwae_samples}: FactorVAE adds its penalty to the ELBO: use "
                      "--config.iwae_samples=1")


registry.register("factor_vae", registry.Variant(
    build_model=build_model, hparams=hparams, evaluate=evaluate, images=vae.images, init=vae.init,
    train_step=train_step, validate=validate, config_fields=fields.add_factor, sample=vae.sample,
    optimizer=optimizer))
