"""`mult_vae` and `mult_dae` (Liang et al. 2018): autoencoders of a user's implicit feedback with a multinomial
likelihood over the items.

A user's row of interactions x (1 where rated at or above `data.ratings.threshold`) is L2-normalised and, in
training, a `recommend.dropout` share of it dropped (the rest scaled up), then encoded. The loss is the multinomial
log-likelihood's negative, -Σ_i x_i log softmax(f(z))_i, plus for Mult-VAE β·KL(q(z|x) ‖ N(0, I)) with β growing
linearly to `beta` (β_max) over `kl_warmup_steps` (Liang et al.'s annealing), all averaged over the batch's users,
and the L2 cost λ/2 Σ‖W‖² (`recommend.l2`). Held-out users are scored from their fold-in
interactions (the code's mean, no dropout), items already seen excluded from the ranking: Recall@20, Recall@50 and
NDCG@100 per user (`metrics.ranking`).
"""
import functools

import jax
import jax.numpy as jnp

from aejax import registry
from aejax.nn import losses
from aejax.registry import Batch, Config, HParams, Params
from aejax.variants.recommend import autorec, fields, metrics, models, suite
from aejax.variants.variational import vae

def build_model(config: Config, input_shape: tuple[int, ...], *, variational: bool) -> models.MultVAE:
  return models.MultVAE(tuple(config.recommend.widths), config.latent_dim, input_shape[-1], variational)


def hparams(config: Config) -> dict[str, float]:
  return {"beta": float(config.beta), "kl_warmup_steps": float(config.kl_warmup_steps),
          "recommend.l2": float(config.recommend.l2), "recommend.dropout": float(config.recommend.dropout)}


def interactions(batch: Batch, name: str = "ratings") -> jax.Array:
  """1 where a row has an interaction, else 0."""
  return (batch[name] > 0).astype(jnp.float32)


def loss(model: models.MultVAE, config: Config, params: Params, batch: Batch, key: jax.Array, hp: HParams,
         step: jax.Array) -> tuple[jax.Array, dict]:
  del config
  x = interactions(batch)
  drop_key, code_key = jax.random.split(key)
  keep = 1.0 - hp["recommend.dropout"]
  kept = jax.random.bernoulli(drop_key, keep, x.shape)
  h = jnp.where(kept, models.normalized(x) / keep, 0.0)
  out = {}
  if model.variational:
    mean, logvar = model.apply(params, h, method=model.encode)
    z = mean + jnp.exp(0.5 * logvar) * jax.random.normal(code_key, mean.shape)
    kl = jnp.mean(losses.gaussian_kl(mean, logvar))
    beta = vae.kl_weight(hp, step)
    out.update(kl=kl, beta=beta)
  else:
    z = model.apply(params, h, method=model.encode)
  logits = model.apply(params, z, method=model.decode)
  nll = jnp.mean(-jnp.sum(jax.nn.log_softmax(logits) * x, axis=-1))
  cost = hp["recommend.l2"] * autorec.weight_cost(params)
  total = nll + cost + (out["beta"] * out["kl"] if model.variational else 0.0)
  return total, {"multinomial_nll": nll, "weight_cost": cost, **out}


def evaluate(model: models.MultVAE, config: Config, params: Params, batch: Batch, key: jax.Array,
             hp: HParams) -> dict[str, jax.Array]:
  del config, key, hp
  seen = interactions(batch)
  logits = model.apply(params, models.normalized(seen))
  top = metrics.rank_top(logits, seen, max(*metrics.RECALL_AT, metrics.NDCG_AT))
  scored = metrics.ranking(top, batch["targets"], metrics.RECALL_AT, metrics.NDCG_AT)
  return {"loss": -scored[f"ndcg@{metrics.NDCG_AT}"], **scored}


def validate(config: Config) -> None:
  fields.validate(config)


for _name, _variational in (("mult_vae", True), ("mult_dae", False)):
  registry.register(_name, registry.Variant(
      build_model=functools.partial(build_model, variational=_variational), hparams=hparams, loss=loss,
      evaluate=evaluate, images=autorec.images, validate=validate, config_fields=fields.add,
      suites={"recommend": suite.recommend}))
