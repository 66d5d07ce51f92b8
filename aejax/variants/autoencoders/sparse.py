"""`sparse_ae`: the `ae` model with a sparsity penalty on its code h; loss = reconstruction + λ·penalty.

- `sparsity='l1'`: penalty = mean of |h_ij| over the examples i of the batch and the code units j (a mean,
  not a sum, over units, so λ means the same at any `latent_dim`, under- or overcomplete).
- `sparsity='kl'`: penalty = Σ_j KL(ρ ‖ ρ̂_j), with ρ̂_j the batch mean of code unit j; the units must lie
  in (0, 1), so this needs `model.code_activation='sigmoid'` (checked by `validate`).

The KL is a statistic of a batch, so its test value is the mean over evaluation batches of each batch's KL and
moves a little with `eval_batch_size`. λ (`sparsity_weight`) and ρ (`sparsity_target`) are hparams. Train
metrics (batch means) and test metrics (per example) add `sparsity_penalty`, `mean_activation` (the mean of h over
the code units) and `near_zero_fraction` (the fraction of code units with |h| < 0.01; for sigmoid units simply
h < 0.01).
"""
import functools

import jax
import jax.numpy as jnp

from aejax import registry
from aejax.errors import ConfigError
from aejax.nn import losses, models
from aejax.registry import Batch, Config, HParams, Params
from aejax.variants import common
from aejax.variants.autoencoders import autoencoder

SPARSITIES = ("l1", "kl")
NEAR_ZERO = 0.01  # A code unit with |h| below this counts as off.


def hparams(config: Config) -> dict[str, float]:
  return {"sparsity_weight": float(config.sparsity_weight), "sparsity_target": float(config.sparsity_target)}


def penalty(sparsity: str, h: jax.Array, target: jax.Array, valid: jax.Array | None = None) -> jax.Array:
  """The per-example penalty (B,) whose batch mean λ multiplies, for codes h (B, units).

  'l1': mean |h| over the code units. 'kl': Σ_j KL(ρ ‖ ρ̂_j) with ρ̂_j the mean of unit j over this batch,
  a value of the batch rather than of one example, so every example carries the batch's value. `valid` (B,)
  marks the rows that are examples (an evaluation batch's padding is not): ρ̂ is their mean alone.
  """
  if sparsity == "kl":
    rho_hat = h.mean(axis=0) if valid is None else valid @ h / valid.sum()
    return jnp.broadcast_to(losses.bernoulli_kl(target, rho_hat), h.shape[:1])
  return losses.mean_absolute(h)


def code_statistics(h: jax.Array) -> dict[str, jax.Array]:
  """Per example (B,) of codes h (B, units): the mean activation and the fraction of units near zero."""
  return {"mean_activation": h.mean(axis=-1), "near_zero_fraction": (jnp.abs(h) < NEAR_ZERO).mean(axis=-1)}


def _terms(model: models.AutoEncoder, config: Config, params: Params, batch: Batch, hp: HParams):
  """The logits, the code flattened to (B, units) (a spatial code's units are its positions × channels) and
  the per-example reconstruction and penalty terms."""
  x = batch["image"]
  out = model.apply(params, x)
  h = out["code"].reshape(x.shape[0], -1)
  recon = common.reconstruction_loss(config, out["logits"], x)
  return out["logits"], h, recon, penalty(config.sparsity, h, hp["sparsity_target"], batch.get("valid"))


def loss(model: models.AutoEncoder, config: Config, params: Params, batch: Batch, key: jax.Array, hp: HParams,
         step: jax.Array) -> tuple[jax.Array, dict]:
  del key, step
  _, h, recon, pen = _terms(model, config, params, batch, hp)
  recon, pen = recon.mean(), pen.mean()
  stats = {k: v.mean() for k, v in code_statistics(h).items()}
  return recon + hp["sparsity_weight"] * pen, {"recon": recon, "sparsity_penalty": pen, **stats}


def evaluate(model: models.AutoEncoder, config: Config, params: Params, batch: Batch, key: jax.Array,
             hp: HParams) -> dict:
  del key
  logits, h, recon, pen = _terms(model, config, params, batch, hp)
  return {"loss": recon + hp["sparsity_weight"] * pen, "recon": recon, "sparsity_penalty": pen,
          "recon_error": losses.squared_error(jax.nn.sigmoid(logits), batch["image"]), **code_statistics(h)}


def validate(config: Config) -> None:
  """The sparsity kind, λ >= 0, ρ in (0, 1), and sigmoid code units for 'kl'."""
  if config.sparsity not in SPARSITIES:
    raise ConfigError(f"config.sparsity={config.sparsity!r}: use one of {', '.join(SPARSITIES)}, "
                      "e.g. --config.sparsity=kl")
  if not config.sparsity_weight >= 0:
    raise ConfigError(f"config.sparsity_weight={config.sparsity_weight!r}: the penalty weight λ must be >= 0 "
                      "(0 is the plain ae), e.g. --config.sparsity_weight=1")
  if not 0 < config.sparsity_target < 1:
    raise ConfigError(f"config.sparsity_target={config.sparsity_target!r}: the target mean activation ρ must lie "
                      "in (0, 1), e.g. --config.sparsity_target=0.05")
  if config.sparsity == "kl" and config.model.code_activation != "sigmoid":
    raise ConfigError(f"config.model.code_activation={config.model.code_activation!r}: sparsity='kl' needs code "
                      "units in (0, 1): use --config.model.code_activation=sigmoid")


registry.register("sparse_ae", registry.Variant(
    build_model=autoencoder.build_model, hparams=hparams, loss=loss, evaluate=evaluate,
    images=functools.partial(autoencoder.images, denoising=False), validate=validate))
