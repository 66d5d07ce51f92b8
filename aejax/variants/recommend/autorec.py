"""`autorec`: AutoRec (Sedhain et al. 2015), an autoencoder of a row of explicit ratings that learns from the
observed entries only.

A row is an item's ratings by every user (I-AutoRec, `data.ratings.rows='items'`) or a user's of every item
(U-AutoRec). The loss is the squared error on the row's observed entries, Σ_observed (r - h(r))², averaged over
the batch's rows, plus the L2 cost λ/2 (‖W‖² + ‖V‖²) (`recommend.l2`; the paper's λ, which weighs the sum over
all N train rows, is N times this one). A held-out rating (u, i) is predicted as entry u of h(item i's
train ratings) (I-AutoRec), clipped to the rating scale. Test metrics: 'mse' and 'mae' over the held-out ratings
(exact: each row's sums over the split's mean count of targets per row); the recommend suite adds the RMSE and the
baselines.
"""
import jax
import jax.numpy as jnp

from aejax import registry
from aejax.data import catalog
from aejax.registry import Batch, Config, HParams, Params
from aejax.variants.recommend import fields, metrics, models, suite


def build_model(config: Config, input_shape: tuple[int, ...]) -> models.AutoRec:
  return models.AutoRec(config.recommend.hidden, input_shape[-1])


def hparams(config: Config) -> dict[str, float]:
  return {"recommend.l2": float(config.recommend.l2)}


def weight_cost(params: Params) -> jax.Array:
  """½ Σ ‖W‖² over the weight matrices (not the biases)."""
  return 0.5 * sum(jnp.sum(p**2) for p in jax.tree.leaves(params) if p.ndim > 1)


def loss(model: models.AutoRec, config: Config, params: Params, batch: Batch, key: jax.Array, hp: HParams,
         step: jax.Array) -> tuple[jax.Array, dict]:
  del config, key, step
  r = batch["ratings"]
  errors = metrics.rating_errors(model.apply(params, r), r)
  squared = jnp.mean(errors["squared"])
  cost = hp["recommend.l2"] * weight_cost(params)
  rmse = jnp.sqrt(jnp.sum(errors["squared"]) / jnp.maximum(jnp.sum(errors["count"]), 1.0))
  return squared + cost, {"squared_error": squared, "weight_cost": cost, "rmse": rmse}


def predict(model: models.AutoRec, config: Config, params: Params, r: jax.Array) -> jax.Array:
  """Every entry's predicted rating, clipped to the data set's scale."""
  low, high = catalog.get(config.data.name).rating_scale
  return jnp.clip(model.apply(params, r), low, high)


def evaluate(model: models.AutoRec, config: Config, params: Params, batch: Batch, key: jax.Array,
             hp: HParams) -> dict[str, jax.Array]:
  del key, hp
  errors = metrics.rating_errors(predict(model, config, params, batch["ratings"]), batch["targets"])
  per_row = batch["targets_per_row"]
  return {"loss": errors["squared"] / per_row, "mse": errors["squared"] / per_row,
          "mae": errors["absolute"] / per_row}


def images(model: models.AutoRec, config: Config, params: Params, batch: Batch, key: jax.Array, hp: HParams) -> dict:
  """None: a ratings row is no picture (the recommend suite draws its own)."""
  del model, config, params, batch, key, hp
  return {}


def validate(config: Config) -> None:
  fields.validate(config)


registry.register("autorec", registry.Variant(
    build_model=build_model, hparams=hparams, loss=loss, evaluate=evaluate, images=images, validate=validate,
    config_fields=fields.add, suites={"recommend": suite.recommend}))
