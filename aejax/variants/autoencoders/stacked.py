"""`stacked_ae`: a deep autoencoder trained end to end, or greedily layer by layer and then fine-tuned.

The layers are `(*model.encoder_widths, latent_dim)` (the seed's 256-128-64). With `pretrain_steps` = P > 0,
steps [kP, (k+1)P) train layer k alone as a one-hidden-layer autoencoder of its input (the layers below it
frozen, the layers above untouched), and the remaining steps fine-tune the whole stack on the image; with
P = 0 the stack is trained end to end from the start. The optimiser's state restarts at each stage, so
every stage is trained as a fresh run would be, and as the stage is a function of the step, a run resumed
from any checkpoint continues exactly where it stopped. `stack_input` says what layer k+1 learns from: layer
k's code ('codes') or layer k's input joined with its reconstruction ('concat').

Layer 0 (and in 'concat' every layer) reconstructs values in [0, 1] with the configured loss; a higher layer
of 'codes' reconstructs a code, scored by squared error. Train metrics add `stage` (k, or the number of
layers while fine-tuning); test metrics add, per layer k, `layer{k}_error` (layer k's squared error on its
own input) and `depth{k}_recon_error` (the image's squared error through layers 0..k-1).
"""
from typing import Any

import jax
import jax.numpy as jnp
import optax

from aejax import registry
from aejax.errors import ConfigError
from aejax.nn import losses, models
from aejax.registry import Batch, Config, HParams, Params
from aejax.variants import common


def layer_dims(config: Config) -> tuple[int, ...]:
  return (*config.model.encoder_widths, config.latent_dim)


def build_model(config: Config, input_shape: tuple[int, ...]) -> models.StackedAutoEncoder:
  return models.StackedAutoEncoder(layer_dims(config), input_shape, config.stack_input == "concat",
                                   config.model.activation, config.model.code_activation)


def hparams(config: Config) -> dict[str, float]:
  del config
  return {}


def layer_reconstruction(model: models.StackedAutoEncoder, params: Params, k: int,
                         x: jax.Array) -> tuple[jax.Array, jax.Array]:
  """Layer k's input for images x (a constant: the layers below are not trained by it) and its output."""
  v = jax.lax.stop_gradient(model.apply(params, k, x, method=model.layer_input))
  return v, model.apply(params, k, v, method=model.layer)["output"]


def layer_loss(model: models.StackedAutoEncoder, config: Config, params: Params, k: int,
               x: jax.Array) -> jax.Array:
  """Per-example loss of layer k reconstructing its own input: squared error for a code, else the config's."""
  v, out = layer_reconstruction(model, params, k, x)
  if k > 0 and not model.concat:
    return losses.squared_error(out, v)
  return common.reconstruction_loss(config, out, v)


def stack_loss(model: models.StackedAutoEncoder, config: Config, params: Params, x: jax.Array) -> jax.Array:
  """Per-example reconstruction loss of the image through the whole stack."""
  return common.reconstruction_loss(config, model.apply(params, x)["logits"], x)


def loss(model: models.StackedAutoEncoder, config: Config, params: Params, batch: Batch, key: jax.Array, hp: HParams,
         step: jax.Array) -> tuple[jax.Array, dict]:
  """The whole stack's reconstruction loss: the objective of fine-tuning (and of end-to-end training)."""
  del key, hp, step
  recon = stack_loss(model, config, params, batch["image"]).mean()
  return recon, {"recon": recon}


def stage_of(config: Config, step: jax.Array) -> jax.Array:
  """The stage at `step`: k < len(layers) while layer k pre-trains, len(layers) while the stack fine-tunes."""
  num_layers = len(layer_dims(config))
  if config.pretrain_steps == 0:
    return jnp.asarray(num_layers)
  return jnp.minimum(step // config.pretrain_steps, num_layers)


def _layer_index(path) -> int:
  """The layer a parameter belongs to, from its path ('encoders_2' -> 2)."""
  return int(path[1].key.rsplit("_", 1)[1])


def train_step(model: models.StackedAutoEncoder, config: Config, state: Any, batch: Batch,
               key: jax.Array) -> tuple[Any, dict[str, jax.Array]]:
  """One step of the current stage; only that stage's parameters move, and its optimiser starts afresh."""
  del key
  num_layers = len(layer_dims(config))
  x = batch["image"]
  stage = stage_of(config, state.step)

  def objective(k: int):
    if k == num_layers:
      return jax.value_and_grad(lambda params: stack_loss(model, config, params, x).mean())
    return jax.value_and_grad(lambda params: layer_loss(model, config, params, k, x).mean())

  value, grads = jax.lax.switch(stage, [objective(k) for k in range(num_layers + 1)], state.params)
  opt_state = state.opt_state
  if config.pretrain_steps > 0:  # A fresh optimiser at the start of each stage, fine-tuning included, once.
    restart = (state.step % config.pretrain_steps == 0) & (state.step // config.pretrain_steps <= num_layers)
    opt_state = jax.tree.map(lambda fresh, old: jnp.where(restart, fresh, old), state.tx.init(state.params), opt_state)
  updates, opt_state = state.tx.update(grads, opt_state, state.params)
  updates = jax.tree_util.tree_map_with_path(
      lambda path, u: jnp.where((stage == num_layers) | (stage == _layer_index(path)), u, 0.0), updates)
  new_state = state.replace(step=state.step + 1, params=optax.apply_updates(state.params, updates),
                            opt_state=opt_state)
  return new_state, {"loss": value, "stage": stage.astype(jnp.float32)}


def evaluate(model: models.StackedAutoEncoder, config: Config, params: Params, batch: Batch, key: jax.Array,
             hp: HParams) -> dict:
  del key, hp
  x = batch["image"]
  logits = model.apply(params, x)["logits"]
  metrics = {"loss": common.reconstruction_loss(config, logits, x),
             "recon_error": losses.squared_error(jax.nn.sigmoid(logits), x),
             "bce": losses.binary_cross_entropy(logits, x)}
  for k in range(len(layer_dims(config))):
    v, out = layer_reconstruction(model, params, k, x)
    metrics[f"layer{k}_error"] = losses.squared_error(out if k > 0 and not model.concat else jax.nn.sigmoid(out), v)
    depth_logits = model.apply(params, x, k + 1)["logits"]
    metrics[f"depth{k + 1}_recon_error"] = losses.squared_error(jax.nn.sigmoid(depth_logits), x)
  return metrics


def images(model: models.StackedAutoEncoder, config: Config, params: Params, batch: Batch, key: jax.Array,
           hp: HParams) -> dict:
  """The inputs, then their reconstructions through 1, 2, ... layers."""
  del key, hp
  x = batch["image"]
  depths = {f"depth {d}": jax.nn.sigmoid(model.apply(params, x, d)["logits"])
            for d in range(1, len(layer_dims(config)) + 1)}
  return {"reconstruction": common.image_grid({"input": x, **depths}, n=config.num_images)}


def validate(config: Config) -> None:
  """An MLP stack with a mirrored decoder, and room for every pre-training stage."""
  if config.model.kind != "mlp":
    raise ConfigError(f"config.model.kind={config.model.kind!r}: stacked_ae stacks dense layers; use "
                      "--config.model.kind=mlp")
  if config.model.decoder_widths is not None:
    raise ConfigError(f"config.model.decoder_widths={tuple(config.model.decoder_widths)!r}: a stacked AE's decoder "
                      "mirrors its layers; leave it unset and give the layers as encoder_widths + latent_dim")
  if config.pretrain_steps < 0:
    raise ConfigError(f"config.pretrain_steps={config.pretrain_steps!r}: use 0 (end to end only) or the number of "
                      "pre-training steps per layer, e.g. --config.pretrain_steps=2000")
  needed = config.pretrain_steps * len(layer_dims(config))
  if config.num_steps < needed:
    raise ConfigError(f"config.num_steps={config.num_steps!r}: pre-training {len(layer_dims(config))} layers for "
                      f"{config.pretrain_steps} steps each needs {needed} steps plus fine-tuning; raise num_steps "
                      "or lower pretrain_steps")


registry.register("stacked_ae", registry.Variant(
    build_model=build_model, hparams=hparams, loss=loss, evaluate=evaluate, images=images,
    train_step=train_step, validate=validate))
