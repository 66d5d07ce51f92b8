"""`dbn_ae`: Hinton & Salakhutdinov's (2006) deep autoencoder: a DBN pre-trained greedily, unrolled, fine-tuned.

The net is an encoder of layers `(*model.encoder_widths, latent_dim)` and its mirrored decoder, all of logistic
units (`model.activation='sigmoid'`) but the code: linear (`model.code_activation='linear'`) or logistic ('sigmoid').
Encoder layer k is RBM k of a DBN (weights W_k, hidden bias c_k) and decoder layer k is its way down (W_kᵀ, visible
bias b_k). With P = `pretrain_steps`, steps [kP, (k+1)P) train RBM k exactly as the `dbn` variant does (the top
RBM's hidden units Gaussian for a linear code), with the decoder's weights tied to the encoder's: the net is then at
every step the RBM stack's mean-field up-down pass. The remaining steps fine-tune it end to end, the decoder untied,
on the reconstruction loss of its logistic outputs ('bce': the cross-entropy Hinton minimised) at `learning_rate`
times `dbn.finetune_rate_scale`. As in `stacked_ae`, the stage is a function of the step and the optimiser restarts at
each stage's first step (fine-tuning's once), so a run resumed mid-stage continues bit for bit. P = 0 trains the same
net end to end from its random, tied initialisation.

Train metrics: `stage` (k, or L while fine-tuning), `loss` (RBM k's one-step reconstruction error, then the
fine-tuning loss) and `recon_error` (RBM k's, then the images'). Test metrics as the autoencoder's: `recon_error`
(squared error per image, summed over pixels: the figure Hinton reports), `bce` and `loss`. Pictures: the
reconstructions and the first layer's filters.
"""
import math
from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from aejax import registry
from aejax.errors import ConfigError
from aejax.nn import losses
from aejax.registry import Batch, Config, HParams, Params
from aejax.variants import common
from aejax.variants.boltzmann import dbn, fields, rbm


class UnrolledAutoEncoder(nn.Module):
  """The unrolled DBN: Dense layers `encoders_k` (W_k, c_k) of logistic units up to the code (linear or logistic),
  and `decoders_k` (W_kᵀ at the start, b_k) back down to the pixels' logits."""
  dims: Sequence[int]
  output_shape: tuple[int, ...]
  init_scale: float = 0.01
  linear_code: bool = True

  def setup(self):
    init = nn.initializers.normal(self.init_scale)
    widths = [math.prod(self.output_shape), *self.dims[:-1]]
    self.encoders = [nn.Dense(d, kernel_init=init) for d in self.dims]
    self.decoders = [nn.Dense(w, kernel_init=init) for w in widths]

  def encode(self, x: jax.Array) -> jax.Array:
    """The code of images `x`: logistic layers up, the last one linear or logistic as the top RBM's units."""
    h = x.reshape(len(x), -1)
    for k, layer in enumerate(self.encoders):
      h = layer(h)
      if not (self.linear_code and k == len(self.dims) - 1):
        h = jax.nn.sigmoid(h)
    return h

  def decode(self, h: jax.Array) -> jax.Array:
    """The pixels' logits of codes `h`, shaped as images: logistic layers down, the last one's logits."""
    for k in reversed(range(len(self.dims))):
      h = self.decoders[k](h)
      if k > 0:
        h = jax.nn.sigmoid(h)
    return h.reshape(len(h), *self.output_shape)

  def __call__(self, x: jax.Array) -> dict[str, jax.Array]:
    h = self.encode(x)
    return {"code": h, "logits": self.decode(h)}


def tie(params: Params, num_layers: int) -> Params:
  """`params` with each decoder's weights the transpose of its encoder's (RBM k's way down)."""
  p = dict(params["params"])
  for k in range(num_layers):
    p[f"decoders_{k}"] = {**p[f"decoders_{k}"], "kernel": p[f"encoders_{k}"]["kernel"].T}
  return {**params, "params": p}


def rbm_layers(params: Params, num_layers: int) -> list[dbn.Layer]:
  """RBM k of the net, for each k: (W_k, b_k, c_k) = (encoder k's kernel, decoder k's bias, encoder k's bias)."""
  p = params["params"]
  return [(p[f"encoders_{k}"]["kernel"], p[f"decoders_{k}"]["bias"], p[f"encoders_{k}"]["bias"])
          for k in range(num_layers)]


def build_model(config: Config, input_shape: tuple[int, ...]) -> UnrolledAutoEncoder:
  """The autoencoder the RBM stack of `dbn.layer_dims` unrolls into."""
  return UnrolledAutoEncoder(dbn.layer_dims(config), tuple(input_shape), config.rbm.init_scale,
                             config.model.code_activation == "linear")


def init(model: UnrolledAutoEncoder, key: jax.Array, x: jax.Array) -> Params:
  """The net's random parameters, the decoder tied to the encoder (the RBMs at their start)."""
  return tie(model.init(key, x), len(model.dims))


def loss(model: UnrolledAutoEncoder, config: Config, params: Params, batch: Batch, key: jax.Array, hp: HParams,
         step: jax.Array) -> tuple[jax.Array, dict]:
  """The fine-tuning objective: the images' reconstruction loss through the net."""
  del key, hp, step
  logits = model.apply(params, batch["image"])["logits"]
  recon = common.reconstruction_loss(config, logits, batch["image"]).mean()
  return recon, {"recon": recon}


def train_step(model: UnrolledAutoEncoder, config: Config, state: Any, batch: Batch,
               key: jax.Array) -> tuple[Any, dict]:
  """One step of the current stage: RBM k's CD-k / PCD-k update (the decoder tied after it), or fine-tuning."""
  num_layers = len(model.dims)
  stage = dbn.stage_of(state.step, config.pretrain_steps, num_layers + 1)
  layers = rbm_layers(state.params, num_layers)
  x = batch["image"]

  def to_grads(k: int, update: dict[str, jax.Array]) -> Params:
    grads = jax.tree.map(jnp.zeros_like, state.params)
    p = grads["params"]
    p[f"encoders_{k}"] = {"kernel": update["weights"], "bias": update["hidden_bias"]}
    p[f"decoders_{k}"] = {**p[f"decoders_{k}"], "bias": update["visible_bias"]}
    return grads

  def pretrain(k: int):
    branch = dbn.pretrain_branch(config, state, layers, x.reshape(len(x), -1), k, to_grads)

    def run(key: jax.Array) -> tuple[jax.Array, Params, Any, dict[str, jax.Array]]:
      grads, carry, metrics = branch(key)
      return metrics["recon_error"], grads, carry, {"recon_error": metrics["recon_error"]}

    return run

  def finetune(key: jax.Array) -> tuple[jax.Array, Params, Any, dict[str, jax.Array]]:
    del key

    def objective(params: Params) -> tuple[jax.Array, jax.Array]:
      logits = model.apply(params, x)["logits"]
      return common.reconstruction_loss(config, logits, x).mean(), logits

    (value, logits), grads = jax.value_and_grad(objective, has_aux=True)(state.params)
    return value, grads, state.carry, {"recon_error": losses.squared_error(jax.nn.sigmoid(logits), x).mean()}

  value, grads, carry, metrics = jax.lax.switch(stage, [pretrain(k) for k in range(num_layers)] + [finetune], key)

  def moves(path) -> jax.Array:  # Fine-tuning moves all; RBM k its own weights and biases (the decoder is tied).
    tied = path[1].key.startswith("decoders") and path[2].key == "kernel"
    return (stage == num_layers) | ((stage == dbn.layer_index(path)) & (not tied))

  rate = jnp.where(stage == num_layers, config.dbn.finetune_rate_scale,
                   jnp.where(stage == num_layers - 1, config.dbn.top_rate_scale, 1.0))
  new_state = dbn.stage_update(state, grads, dbn.starts_stage(state.step, config.pretrain_steps, num_layers + 1),
                               moves, rate)
  tied = tie(new_state.params, num_layers)
  params = jax.tree.map(lambda t, p: jnp.where(stage < num_layers, t, p), tied, new_state.params)
  return new_state.replace(params=params, carry=carry), {"loss": value, "stage": stage.astype(jnp.float32),
                                                         **metrics}


def evaluate(model: UnrolledAutoEncoder, config: Config, params: Params, batch: Batch, key: jax.Array,
             hp: HParams) -> dict:
  """Per test example, the autoencoder's metrics (those of the fine-tuned net, at every stage)."""
  del key, hp
  x = batch["image"]
  logits = model.apply(params, x)["logits"]
  return {"recon_error": losses.squared_error(jax.nn.sigmoid(logits), x),
          "bce": losses.binary_cross_entropy(logits, x),
          "loss": common.reconstruction_loss(config, logits, x)}


def images(model: UnrolledAutoEncoder, config: Config, params: Params, batch: Batch, key: jax.Array,
           hp: HParams) -> dict:
  """The inputs and their reconstructions; the first layer's filters."""
  del key, hp
  x, n = batch["image"], config.num_images
  kernel = params["params"]["encoders_0"]["kernel"]
  return {"reconstruction": common.image_grid({"input": x, "reconstruction": jax.nn.sigmoid(
              model.apply(params, x)["logits"])}, n=n),
          "filters": rbm.filters(kernel, tuple(x.shape[1:]), n)}


def validate(config: Config) -> None:
  """The DBN's checks (pre-training may be off: P = 0), and binary visibles: the outputs are logistic."""
  dbn.validate_stack(config, "dbn_ae", 0)
  if config.rbm.visible != "bernoulli":
    raise ConfigError(f"config.rbm.visible={config.rbm.visible!r}: dbn_ae's outputs are logistic, its first RBM's "
                      "visibles binary; use --config.rbm.visible=bernoulli (and no data.standardize)")


registry.register("dbn_ae", registry.Variant(
    build_model=build_model, hparams=rbm.hparams, loss=loss, evaluate=evaluate, images=images, init=init,
    train_step=train_step, validate=validate, carry=dbn.carry, config_fields=fields.add))
