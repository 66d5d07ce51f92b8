"""`wae_mmd` and `info_vae`: autoencoders whose codes are matched to the prior N(0, I) by the maximum mean discrepancy
(MMD) between a batch's codes and as many draws of the prior.

MMD² is the unbiased U-statistic of Gretton et al. (2012, eq. 3): for codes x_1..x_n and prior draws y_1..y_m,
  (1 / n(n-1)) Σ_{i≠j} k(x_i, x_j) + (1 / m(m-1)) Σ_{i≠j} k(y_i, y_j) - (2 / nm) Σ_{i,j} k(x_i, y_j),
which is 0 in expectation when the two samples come from one distribution. The kernel (`mmd.kernel`) is the inverse
multiquadratic k(x, y) = C / (C + ‖x - y‖²) ('imq', Tolstikhin et al.'s) or the Gaussian exp(-‖x - y‖² / C) ('rbf'),
with C = 2·d·σ² for codes of d units: σ² = 1, the prior's variance, is Tolstikhin et al.'s choice; `mmd.scales` lists
the σ² whose kernels are summed (their released code sums seven, 0.1 to 10).

- `wae_mmd` (Tolstikhin et al. 2018, WAE-MMD): a deterministic encoder (`models.AutoEncoder`);
  loss = reconstruction (`config.loss`, summed over pixels) + λ·MMD², λ = `mmd.lambda_`.
- `info_vae` (Zhao et al. 2019, InfoVAE with the MMD divergence): a Gaussian encoder (`models.GaussianAutoEncoder`).
  The paper maximises E[log p(x|z)] - (1 - α)·KL(q(z|x) ‖ p(z)) - (α + λ - 1)·D(q(z) ‖ p(z)); the loss minimised here
  is its negative, -log p(x|z) + (1 - α)·KL + (α + λ - 1)·MMD², at one draw z ~ q(z|x) per image (MMD² of those draws
  against the prior's), α = `mmd.alpha`, λ = `mmd.lambda_`. `fields.validate_mmd` keeps both weights >= 0 (α <= 1,
  α + λ >= 1); α = 1 drops the KL (the 'MMD-VAE').

Both sample by decoding prior draws. MMD² is a statistic of a batch: the test metric `mmd` is each evaluation batch's
against as many prior draws, averaged over the batches by their number of examples.
"""
import jax
import jax.numpy as jnp

from aejax import registry
from aejax.nn import losses, models
from aejax.registry import Batch, Config, HParams, Params
from aejax.variants import common
from aejax.variants.adversarial import aae
from aejax.variants.autoencoders import autoencoder
from aejax.variants.variational import fields, vae


def kernel_matrix(kernel: str, x: jax.Array, y: jax.Array, scales: tuple[float, ...]) -> jax.Array:
  """k(x_i, y_j) (n, m) for codes x (n, D) and y (m, D): `kernel` 'imq' or 'rbf' at C = 2·D·σ², summed over the σ² of
  `scales`."""
  distances = jnp.sum(jnp.square(x[:, None, :] - y[None, :, :]), axis=-1)
  total = jnp.zeros_like(distances)
  for scale in scales:
    c = 2.0 * x.shape[-1] * scale
    total = total + (c / (c + distances) if kernel == "imq" else jnp.exp(-distances / c))
  return total


def mmd2(x: jax.Array, y: jax.Array, kernel: str, scales: tuple[float, ...],
         weights: jax.Array | None = None) -> jax.Array:
  """The unbiased U-statistic MMD² between codes x (n, D) and draws y (m, D). `weights` (n,), 1 or 0, marks the codes
  that count (an evaluation batch's padding: 0); the pairs of counted codes are averaged (none: their term is 0)."""
  w = jnp.ones(x.shape[0], x.dtype) if weights is None else weights
  pairs = w[:, None] * w[None, :] * (1.0 - jnp.eye(x.shape[0], dtype=x.dtype))
  m = y.shape[0]
  k_yy = kernel_matrix(kernel, y, y, scales)
  within_x = jnp.sum(kernel_matrix(kernel, x, x, scales) * pairs) / jnp.maximum(jnp.sum(pairs), 1.0)
  within_y = (jnp.sum(k_yy) - jnp.trace(k_yy)) / (m * (m - 1))
  across = jnp.sum(w @ kernel_matrix(kernel, x, y, scales)) / (jnp.maximum(jnp.sum(w), 1.0) * m)
  return within_x + within_y - 2.0 * across


def prior_mmd2(config: Config, codes: jax.Array, key: jax.Array, weights: jax.Array | None = None) -> jax.Array:
  """MMD² (`config.mmd`'s kernel and scales) between `codes` (B, D) and as many draws of N(0, I) of `key`."""
  prior = jax.random.normal(key, codes.shape, codes.dtype)
  return mmd2(codes, prior, config.mmd.kernel, tuple(config.mmd.scales), weights)


def wae_hparams(config: Config) -> dict[str, float]:
  return {"mmd.lambda_": float(config.mmd.lambda_)}


def info_vae_hparams(config: Config) -> dict[str, float]:
  return {"mmd.lambda_": float(config.mmd.lambda_), "mmd.alpha": float(config.mmd.alpha)}


def wae_loss(model: models.AutoEncoder, config: Config, params: Params, batch: Batch, key: jax.Array, hp: HParams,
             step: jax.Array) -> tuple[jax.Array, dict]:
  del step
  x = batch["image"]
  out = model.apply(params, x)
  recon = common.reconstruction_loss(config, out["logits"], x).mean()
  mmd = prior_mmd2(config, out["code"], key)
  return recon + hp["mmd.lambda_"] * mmd, {"recon": recon, "mmd": mmd}


def wae_evaluate(model: models.AutoEncoder, config: Config, params: Params, batch: Batch, key: jax.Array,
                 hp: HParams) -> dict[str, jax.Array]:
  """Per test image: `loss` (its reconstruction's plus λ times its batch's MMD²), `recon`, `recon_error`, `bce`,
  `mmd`."""
  x = batch["image"]
  out = model.apply(params, x)
  recon = common.reconstruction_loss(config, out["logits"], x)
  mmd = jnp.full_like(recon, prior_mmd2(config, out["code"], key, batch.get("valid")))
  return {"loss": recon + hp["mmd.lambda_"] * mmd, "recon": recon, "mmd": mmd,
          "recon_error": losses.squared_error(jax.nn.sigmoid(out["logits"]), x),
          "bce": losses.binary_cross_entropy(out["logits"], x)}


def info_vae_terms(model: models.GaussianAutoEncoder, config: Config, params: Params, x: jax.Array, key: jax.Array,
                   hp: HParams, weights: jax.Array | None = None) -> dict[str, jax.Array]:
  """Per image: -log p(x|z) at one draw z ~ q(z|x), the closed-form KL(q(z|x) ‖ N(0, I)), the batch's MMD² of the
  draws, and the InfoVAE loss they make."""
  draw_key, prior_key = jax.random.split(key)
  out = model.apply(params, x, draw_key)
  nll = common.decoder_nll(config, out["logits"], x)
  kl = losses.gaussian_kl(out["mean"], out["logvar"])
  mmd = jnp.full_like(nll, prior_mmd2(config, out["z"], prior_key, weights))
  alpha, lam = hp["mmd.alpha"], hp["mmd.lambda_"]
  return {"loss": nll + (1.0 - alpha) * kl + (alpha + lam - 1.0) * mmd, "recon": nll, "kl": kl, "mmd": mmd,
          "neg_elbo": nll + kl}


def info_vae_loss(model: models.GaussianAutoEncoder, config: Config, params: Params, batch: Batch, key: jax.Array,
                  hp: HParams, step: jax.Array) -> tuple[jax.Array, dict]:
  del step
  terms = info_vae_terms(model, config, params, batch["image"], key, hp)
  means = {name: value.mean() for name, value in terms.items()}
  return means.pop("loss"), means


def info_vae_evaluate(model: models.GaussianAutoEncoder, config: Config, params: Params, batch: Batch,
                      key: jax.Array, hp: HParams) -> dict[str, jax.Array]:
  """Per test image: the InfoVAE `loss` and its terms (`recon`, `kl`, `mmd`), `neg_elbo`, and `recon_error` of the
  posterior mean's reconstruction."""
  x = batch["image"]
  mean, _ = model.apply(params, x, method=model.encode)
  logits = model.apply(params, mean, method=model.decode)
  return {**info_vae_terms(model, config, params, x, key, hp, batch.get("valid")),
          "recon_error": losses.squared_error(jax.nn.sigmoid(logits), x)}


def validate_info_vae(config: Config) -> None:
  vae.validate_plain(config)
  fields.validate_mmd(config)


registry.register("wae_mmd", registry.Variant(
    build_model=autoencoder.build_model, hparams=wae_hparams, loss=wae_loss, evaluate=wae_evaluate,
    images=aae.images, sample=aae.sample, validate=fields.validate_mmd, config_fields=fields.add_mmd))
registry.register("info_vae", registry.Variant(
    build_model=vae.build_plain_model, hparams=info_vae_hparams, loss=info_vae_loss, evaluate=info_vae_evaluate,
    images=vae.images, init=vae.init, sample=vae.sample, validate=validate_info_vae, config_fields=fields.add_mmd))
