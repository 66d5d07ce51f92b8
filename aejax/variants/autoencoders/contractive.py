"""`contractive_ae`: loss = reconstruction + λ·‖∂h/∂x‖²_F, the code's Jacobian in the input (Rifai et al., 2011).

The penalty is exact, per example (summed over code units and input pixels), averaged over the batch:

- A one-layer MLP encoder, h = act(a) with a = xW + b, has the closed form Σ_j act'(a_j)² Σ_i W_ij²
  (act' = h(1 − h) for the paper's sigmoid code): one pass over W's squares; the 784-64 step costs about
  what `ae`'s does.
- Any other encoder gets its whole Jacobian from JAX, in the cheaper direction: forward mode (one JVP per
  input unit) when the input is narrower than the code, reverse mode (one VJP per code unit) otherwise. On
  MNIST, 784 pixels -> 64 code units, that is reverse mode: 64 backward passes through the encoder per
  example, which the parameter gradient differentiates once more. For the 784-500-300-150-100-64 net
  that is 241 MFLOP per sample against `ae`'s 6.6 (XLA's count), 32x the step time on this CPU
  (benchmarks/contractive_cost.py; docs/performance.md).

Both paths share the encoder's forward pass with the reconstruction.
"""
import functools
import math

import jax
import jax.numpy as jnp

from aejax import registry
from aejax.errors import ConfigError
from aejax.nn import losses, models
from aejax.registry import Batch, Config, HParams, Params
from aejax.variants import common
from aejax.variants.autoencoders import autoencoder


def hparams(config: Config) -> dict[str, float]:
  return {"contractive_weight": float(config.contractive_weight)}


def closed_form_penalty(model: models.AutoEncoder, params: Params, x: jax.Array) -> tuple[jax.Array, jax.Array]:
  """The code h (B, latent) and ‖∂h/∂x‖²_F (B,) of a one-layer encoder: Σ_j act'(a_j)² Σ_i W_ij²."""
  a = model.apply(params, x, method=model.code_preactivation)
  # The activation is elementwise, so its JVP along ones is its derivative at each unit.
  h, slope = jax.jvp(models.ACTIVATIONS[model.code_activation], (a,), (jnp.ones_like(a),))
  column_norms = jnp.sum(jnp.square(params["params"]["code"]["kernel"]), axis=0)
  return h, jnp.square(slope) @ column_norms


def penalty_path(model: models.AutoEncoder, input_shape: tuple[int, ...]) -> str:
  """How `code_and_penalty` computes the penalty: 'closed_form', 'forward' or 'reverse'.

  The closed form for a one-layer MLP encoder; otherwise the cheaper autodiff direction: forward mode (one
  JVP per input unit) if the input is narrower than the code, else reverse mode (one VJP per code unit).
  """
  if isinstance(model.encoder, models.MLPEncoder) and not model.encoder.widths:
    return "closed_form"
  return "forward" if math.prod(input_shape) < model.latent_dim else "reverse"


def jacobian_penalty(model: models.AutoEncoder, params: Params, x: jax.Array,
                     mode: str) -> tuple[jax.Array, jax.Array]:
  """The code h (B, latent) and ‖∂h/∂x‖²_F (B,) from the encoder's whole Jacobian, by `mode`-mode autodiff.

  The encoder maps each example on its own (no batch statistics), so one JVP (VJP) of the batched encoder
  with the same basis vector for every example gives that column (row) of every example's Jacobian at once.
  """
  encode = functools.partial(model.apply, params, method=model.encode)
  if mode == "forward":
    h, push = jax.linearize(encode, x)
    size = math.prod(x.shape[1:])
    basis = jnp.eye(size, dtype=x.dtype).reshape(size, 1, *x.shape[1:])
    jacobian = jax.vmap(push)(jnp.broadcast_to(basis, (size, *x.shape)))  # (input units, B, latent)
  else:
    h, pull = jax.vjp(encode, x)
    basis = jnp.eye(h.shape[-1], dtype=h.dtype)[:, None, :]
    jacobian, = jax.vmap(pull)(jnp.broadcast_to(basis, (h.shape[-1], *h.shape)))  # (latent, B, *input shape)
  return h, jnp.sum(jnp.square(jacobian).reshape(jacobian.shape[0], x.shape[0], -1), axis=(0, 2))


def code_and_penalty(model: models.AutoEncoder, params: Params, x: jax.Array) -> tuple[jax.Array, jax.Array]:
  """The code and ‖∂h/∂x‖²_F per example: the closed form for a one-layer MLP encoder, else the exact Jacobian."""
  path = penalty_path(model, x.shape[1:])
  if path == "closed_form":
    return closed_form_penalty(model, params, x)
  return jacobian_penalty(model, params, x, path)


def _logits_and_penalty(model: models.AutoEncoder, params: Params, x: jax.Array) -> tuple[jax.Array, jax.Array]:
  h, penalty = code_and_penalty(model, params, x)
  return model.apply(params, h, method=model.decode), penalty


def loss(model: models.AutoEncoder, config: Config, params: Params, batch: Batch, key: jax.Array, hp: HParams,
         step: jax.Array) -> tuple[jax.Array, dict]:
  del key, step
  x = batch["image"]
  logits, penalty = _logits_and_penalty(model, params, x)
  recon, penalty = common.reconstruction_loss(config, logits, x).mean(), penalty.mean()
  return recon + hp["contractive_weight"] * penalty, {"recon": recon, "jacobian_norm_sq": penalty}


def evaluate(model: models.AutoEncoder, config: Config, params: Params, batch: Batch, key: jax.Array,
             hp: HParams) -> dict:
  del key
  x = batch["image"]
  logits, penalty = _logits_and_penalty(model, params, x)
  return {"loss": common.reconstruction_loss(config, logits, x) + hp["contractive_weight"] * penalty,
          "recon_error": losses.squared_error(jax.nn.sigmoid(logits), x),
          "bce": losses.binary_cross_entropy(logits, x), "jacobian_norm_sq": penalty}


def validate(config: Config) -> None:
  if config.contractive_weight < 0:
    raise ConfigError(f"config.contractive_weight={config.contractive_weight!r}: the Jacobian penalty's weight must "
                      "be >= 0 (0 is the plain autoencoder), e.g. --config.contractive_weight=0.1")
  if config.model.spatial_code:
    raise ConfigError("config.model.spatial_code=True: contractive_ae penalises the Jacobian of a vector code of "
                      "latent_dim units; use --config.model.spatial_code=false (a conv encoder then ends in a "
                      "Dense code)")


registry.register("contractive_ae", registry.Variant(
    build_model=autoencoder.build_model, hparams=hparams, loss=loss, evaluate=evaluate,
    images=functools.partial(autoencoder.images, denoising=False), validate=validate))
