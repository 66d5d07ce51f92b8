"""`beta_tcvae` (Chen et al. 2018): the VAE whose KL term is split into index-code mutual information, total
correlation and dimension-wise KL, each weighted on its own; loss = -log p(x|z) + α·MI + β·TC + γ·dim-wise KL.

With one draw z_i ~ q(z|x_i) per image of a batch of M, and q(z) = (1/N) Σ_n q(z|x_n) over the N train images:

    MI_i = log q(z_i|x_i) - log q(z_i),  TC_i = log q(z_i) - Σ_d log q(z_id),  dim-KL_i = Σ_d log q(z_id) - log p(z_i),

which sum to log q(z_i|x_i) - log p(z_i), the one-draw estimate of KL(q(z|x_i) ‖ p(z)). The aggregate posterior
log q(z_i) and its marginals log q(z_id) are estimated from the batch: minibatch-weighted sampling (MWS) weighs each
image's q(z_i|x_j) by 1/(NM); minibatch-stratified sampling (MSS) by 1/N for its own image, (N - M')/(N M') for one
other (the next in the batch) and 1/M' for the rest, M' = M - 1; an image alone in its batch weighs its own by 1.
The authors' code (rtqichen/beta-tcvae) fills its weight matrix with a stride of M + 1 on the flattened matrix, which
walks down columns 0 and 1 rather than each image's own and the next (its pull request #1); here each row sums to 1.

Where the posteriors of a batch coincide (as near initialisation), q(z) is each of them: MI and TC are 0. MSS's
weights sum to 1 and find that; MWS's sum to 1/N, so it reads MI as log N and TC as (D - 1)·log N, and the
dimension-wise KL as the KL less D·log N (tests/test_disentangling_vaes.py): its terms are biased where its sum
is not.

The KL warm-up (`kl_warmup_steps`) ramps the three terms together. Test metrics: the terms per image, estimated
within each evaluation batch (its padding left out), beside the VAE's (the closed-form `kl`, `neg_elbo`).
"""
import jax
import jax.numpy as jnp

from aejax import registry
from aejax.errors import ConfigError
from aejax.nn import losses, models
from aejax.registry import Batch, Config, HParams, Params
from aejax.variants import common
from aejax.variants.variational import fields, vae


def hparams(config: Config) -> dict[str, float]:
  return {**vae.hparams(config), "tcvae.alpha": float(config.tcvae.alpha), "tcvae.gamma": float(config.tcvae.gamma)}


def gaussian_log_density(z: jax.Array, mean: jax.Array, logvar: jax.Array) -> jax.Array:
  """log N(z; mean, exp(logvar)) per coordinate."""
  return -0.5 * (jnp.log(2 * jnp.pi) + logvar + jnp.square(z - mean) * jnp.exp(-logvar))


def log_batch_weights(valid: jax.Array, dataset_size: int, stratified: bool) -> jax.Array:
  """log w_ij (M, M): the weight of image j's q(z_i|x_j) in the estimate q(z_i) ≈ Σ_j w_ij q(z_i|x_j) (see the
  module docstring); -inf for a column j that is padding (`valid` 0: the examples it marks 1 come first)."""
  count = jnp.sum(valid > 0)
  n = jnp.float32(dataset_size)
  if stratified:
    others = jnp.maximum(count - 1, 1).astype(jnp.float32)
    i, j = jnp.arange(len(valid))[:, None], jnp.arange(len(valid))[None, :]
    own = jnp.where(count > 1, 1 / n, 1.0)  # Alone in its batch, an image's q(z_i) is its own posterior's.
    weights = jnp.where(i == j, own, jnp.where(j == (i + 1) % count, (n - others) / (n * others), 1 / others))
  else:
    weights = jnp.broadcast_to(1 / (n * count), (len(valid), len(valid)))
  return jnp.where(valid[None, :] > 0, jnp.log(weights), -jnp.inf)


def decomposition(z: jax.Array, mean: jax.Array, logvar: jax.Array, dataset_size: int, stratified: bool,
                  valid: jax.Array | None = None) -> dict[str, jax.Array]:
  """Per image of the batch (M,): 'mi', 'tc' and 'dim_kl' of draws `z` (M, D) from the posteriors N(mean, exp(logvar))
  of the batch's images, estimated as the module docstring says over the images `valid` marks (all by default)."""
  valid = jnp.ones(len(z)) if valid is None else valid
  pairs = gaussian_log_density(z[:, None, :], mean[None, :, :], logvar[None, :, :])  # log q(z_id|x_j): (M, M, D).
  log_w = log_batch_weights(valid, dataset_size, stratified)
  log_qz = jax.nn.logsumexp(log_w + pairs.sum(-1), axis=1)
  log_prod_marginals = jax.nn.logsumexp(log_w[:, :, None] + pairs, axis=1).sum(-1)
  log_qz_x = gaussian_log_density(z, mean, logvar).sum(-1)
  log_pz = gaussian_log_density(z, 0.0, 0.0).sum(-1)
  return {"mi": log_qz_x - log_qz, "tc": log_qz - log_prod_marginals, "dim_kl": log_prod_marginals - log_pz}


def _terms(model: models.GaussianAutoEncoder, config: Config, params: Params, x: jax.Array, key: jax.Array,
           valid: jax.Array | None = None) -> dict[str, jax.Array]:
  """Per image: -log p(x|z), the closed-form KL and its three terms estimated as the module docstring says."""
  out = model.apply(params, x, key)
  terms = decomposition(out["z"], out["mean"], out["logvar"], fields.dataset_size(config),
                        config.tcvae.sampling == "mss", valid)
  return {"recon": common.decoder_nll(config, out["logits"], x), "kl": losses.gaussian_kl(out["mean"], out["logvar"]),
          **terms}


def objective(terms: dict[str, jax.Array], hp: HParams, ramp: jax.Array) -> jax.Array:
  """-log p(x|z) + ramp·(α·MI + β·TC + γ·dim-wise KL), per image."""
  penalty = hp["tcvae.alpha"] * terms["mi"] + hp["beta"] * terms["tc"] + hp["tcvae.gamma"] * terms["dim_kl"]
  return terms["recon"] + ramp * penalty


def loss(model: models.GaussianAutoEncoder, config: Config, params: Params, batch: Batch, key: jax.Array, hp: HParams,
         step: jax.Array) -> tuple[jax.Array, dict]:
  terms = _terms(model, config, params, batch["image"], key)
  ramp = vae.warmup(hp, step)
  means = {k: v.mean() for k, v in terms.items()}
  return objective(terms, hp, ramp).mean(), {**means, "neg_elbo": means["recon"] + means["kl"], "warmup": ramp}


def evaluate(model: models.GaussianAutoEncoder, config: Config, params: Params, batch: Batch, key: jax.Array,
             hp: HParams) -> dict:
  """The VAE's test metrics, and the three terms and the objective at full weight (`loss`) per image."""
  terms = _terms(model, config, params, batch["image"], key, batch.get("valid"))
  return {**vae.evaluate(model, config, params, batch, key, hp), **terms, "loss": objective(terms, hp, 1.0)}


def validate(config: Config) -> None:
  vae.validate_plain(config)
  fields.validate_tcvae(config)
  if config.iwae_samples > 1:
    raise ConfigError(f"config.iwae_samples={config.iwae_samples}: β-TCVAE weighs the terms of the ELBO's KL, which "
                      "the IWAE bound has none of: use --config.iwae_samples=1")


registry.register("beta_tcvae", registry.Variant(
    build_model=vae.build_plain_model, hparams=hparams, loss=loss, evaluate=evaluate, images=vae.images, init=vae.init,
    validate=validate, config_fields=fields.add_tcvae, sample=vae.sample))
