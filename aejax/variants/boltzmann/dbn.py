"""`dbn`: a deep belief net, a stack of RBMs trained greedily, one after another (Hinton, Osindero & Teh 2006).

RBM k has `(*model.encoder_widths, latent_dim)[k]` hidden units; its visibles are the hidden units of RBM k-1 (RBM 0's:
the pixels, binary or Gaussian as `rbm.visible` says). With P = `pretrain_steps`, steps [kP, (k+1)P) train RBM k
alone by CD-k / PCD-k with the `rbm` section's settings, on the hidden probabilities of RBM k-1 (the mean-field
up-pass of the batch through the frozen RBMs below); steps past L·P go on training the top RBM. The optimiser's
state restarts at each RBM's first step, so each RBM trains as a fresh run would, and as the stage is a function of
the step, a run resumed mid-stage continues bit for bit (each RBM's persistent chains are in the train state's
`carry`).

Units: the hidden units below the top are binary (`model.activation='sigmoid'`, the only choice); the top RBM's are
binary (`model.code_activation='sigmoid'`) or linear with unit-variance Gaussian noise ('linear': p(h | v) =
N(c + Wᵀv, I), the code units of Hinton & Salakhutdinov 2006), its learning rate `learning_rate` times
`dbn.top_rate_scale`.

Train metrics: `stage` (k), and the current RBM's `recon_error` (= `loss`), `free_energy` and `hidden_activation` on
its own input (RBM 0's of Gaussian pixels in standardised units: `recon_error` of the whole stack is in the images'
units). Test metrics, per RBM k on the up-pass of the test images:
`layer{k}_recon_error`, `layer{k}_free_energy`, `layer{k}_hidden_activation` and `layer{k}_free_energy_gap` (against
as many train images); and `recon_error`, the images' squared error through the whole stack, mean-field up then
down. Pictures: RBM 0's filters, reconstructions through 1, 2, ... L RBMs, and samples: the top RBM's Gibbs chain
from noise after 1, 10, 100, ... sweeps, propagated down to the pixels (mean-field). `log_likelihood_bound` is the
variational lower bound on log p(v) given the top RBM's log Z (Salakhutdinov & Murray 2008), e.g. from AIS.
"""
import math
from collections.abc import Callable, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from aejax import registry
from aejax.errors import ConfigError
from aejax.registry import Batch, Config, HParams, Params
from aejax.variants import common
from aejax.variants.boltzmann import fields, rbm

Layer = tuple[jax.Array, jax.Array, jax.Array]  # One RBM's (weights (V, H), visible bias (V,), hidden bias (H,)).


def layer_dims(config: Config) -> tuple[int, ...]:
  """The hidden units of RBMs 0..L-1."""
  return (*config.model.encoder_widths, config.latent_dim)


def units(config: Config, k: int) -> tuple[bool, bool]:
  """Whether RBM k's visibles are Gaussian (RBM 0 of `rbm.visible='gaussian'`) and its hidden units linear (the top
  RBM of `model.code_activation='linear'`)."""
  top = k == len(layer_dims(config)) - 1
  return k == 0 and config.rbm.visible == "gaussian", top and config.model.code_activation == "linear"


class DBN(nn.Module):
  """RBMs 0..L-1 over flattened images."""
  dims: Sequence[int]
  image_shape: tuple[int, ...]
  init_scale: float = 0.01
  linear_code: bool = False

  def setup(self):
    shapes = [self.image_shape, *((d,) for d in self.dims[:-1])]
    self.rbms = [rbm.RBM(d, shape, self.init_scale) for d, shape in zip(self.dims, shapes)]

  def _layers(self) -> list[Layer]:
    return [(r.weights, r.visible_bias, r.hidden_bias) for r in self.rbms]

  def __call__(self, x: jax.Array) -> jax.Array:
    """The mean-field up-down reconstruction's visible activations (logits, or Gaussian means) of vectors `x`."""
    return down_pass(self._layers(), up_pass(self._layers(), x.reshape(len(x), -1), self.linear_code)[-1])


class BernoulliDBN(DBN):
  """A DBN of binary pixels, with the encoder and decoder the shared evaluation suites use (as `rbm.BernoulliRBM`:
  Gaussian pixels are standardised, which those suites do not do)."""

  def encode(self, x: jax.Array) -> jax.Array:
    """The top RBM's hidden means given images `x` (the mean-field up-pass): the DBN's features."""
    return up_pass(self._layers(), x.reshape(len(x), -1), self.linear_code)[-1]

  def decode(self, h: jax.Array) -> jax.Array:
    """The pixels' logits given the top RBM's hidden state `h` (the mean-field down-pass), shaped as images."""
    return down_pass(self._layers(), h).reshape(len(h), *self.image_shape)


def unpack(params: Params, num_layers: int) -> list[Layer]:
  """Each RBM's (weights, visible bias, hidden bias) of the DBN's parameters."""
  return [rbm.unpack({"params": params["params"][f"rbms_{k}"]}) for k in range(num_layers)]


def up_pass(layers: Sequence[Layer], v: jax.Array, linear_code: bool = False) -> list[jax.Array]:
  """[v, E[h1 | v], E[h2 | h1], ...]: the input of each RBM of `layers` and the top's hidden means, mean-field
  (each RBM's hidden probabilities are the visibles of the next); `linear_code`: the last RBM's hidden units are
  linear."""
  states = [v]
  for k, (weights, _, hidden_bias) in enumerate(layers):
    states.append(rbm.hidden_mean(weights, hidden_bias, states[-1], linear_code and k == len(layers) - 1))
  return states


def down_pass(layers: Sequence[Layer], h: jax.Array) -> jax.Array:
  """RBM 0's visible pre-activation (logits, or Gaussian means) given the top hidden state `h` of `layers`,
  mean-field: each RBM's visible probabilities are the hidden state of the RBM below."""
  for k in reversed(range(len(layers))):
    weights, visible_bias, _ = layers[k]
    h = h @ weights.T + visible_bias
    if k > 0:
      h = jax.nn.sigmoid(h)
  return h


def visible_mean(config: Config, activation: jax.Array) -> jax.Array:
  """The pixels' means from RBM 0's visible pre-activation: probabilities, or the Gaussian's mean itself."""
  return activation if config.rbm.visible == "gaussian" else jax.nn.sigmoid(activation)


def layer_metrics(config: Config, k: int, layer: Layer, v: jax.Array, key: jax.Array) -> dict[str, jax.Array]:
  """Per example, RBM k on its input `v`: the squared error of one Gibbs step's reconstruction (h sampled, then the
  mean of v), the free energy, and the hidden units' mean activation E[h | v]."""
  weights, visible_bias, hidden_bias = layer
  gaussian, gaussian_hidden = units(config, k)
  means, h = rbm.sample_hidden(weights, hidden_bias, v, key, gaussian_hidden)
  recon, _ = rbm.sample_visible(weights, visible_bias, h, key, gaussian)
  return {"recon_error": jnp.sum((recon - v) ** 2, axis=-1),
          "free_energy": rbm.free_energy(weights, visible_bias, hidden_bias, v, gaussian, gaussian_hidden),
          "hidden_activation": means.mean(-1)}


def layer_update(config: Config, hp: HParams, k: int, layer: Layer, v: jax.Array, chains: jax.Array | None,
                 key: jax.Array) -> tuple[dict[str, jax.Array], jax.Array | None, dict[str, jax.Array]]:
  """RBM k's CD-k (PCD-k from `chains`) update on its input `v`, as the `rbm` variant's step makes it (with the
  sparsity term for binary hidden units), the chains' new states (None for CD), and its batch-mean metrics."""
  weights, visible_bias, hidden_bias = layer
  gaussian, gaussian_hidden = units(config, k)
  recon_key, start_key, chain_key = jax.random.split(key, 3)
  start = chains if config.rbm.persistent else v
  v_model = rbm.negative_phase(weights, visible_bias, hidden_bias, start, start_key, chain_key, config.rbm.cd_steps,
                               gaussian, gaussian_hidden)
  update = rbm.contrastive_divergence(weights, visible_bias, hidden_bias, v, v_model, gaussian_hidden)
  if not gaussian_hidden:
    sparsity = rbm.sparsity_update(weights, hidden_bias, v, config.rbm.sparsity_target)
    update = jax.tree.map(lambda u, s: u + hp["rbm.sparsity_cost"] * s, update, sparsity)
  metrics = {name: m.mean() for name, m in layer_metrics(config, k, layer, v, recon_key).items()}
  return update, (v_model if config.rbm.persistent else None), metrics


def stage_of(step: jax.Array, pretrain_steps: int, num_stages: int) -> jax.Array:
  """The stage at `step`: k for steps [kP, (k+1)P) while k < num_stages - 1, then the last stage to the end (from
  the start when P = 0)."""
  if pretrain_steps == 0:
    return jnp.asarray(num_stages - 1)
  return jnp.minimum(step // pretrain_steps, num_stages - 1)


def starts_stage(step: jax.Array, pretrain_steps: int, num_stages: int) -> jax.Array:
  """Whether `step` is a stage's first (where its optimiser starts afresh); never with P = 0 (one stage)."""
  if pretrain_steps == 0:
    return jnp.asarray(False)
  return (step % pretrain_steps == 0) & (step // pretrain_steps < num_stages)


def stage_update(state: Any, grads: Params, restart: jax.Array, moves: Callable[[Any], jax.Array],
                 rate: jax.Array) -> Any:
  """`state` one optimiser step on: its optimiser state fresh first where `restart`, the updates times `rate` (the
  learning rate scaled; exact for every optimiser of `train.make_optimizer`), and zero for the parameters whose path
  `moves` says stay."""
  opt_state = jax.tree.map(lambda fresh, old: jnp.where(restart, fresh, old), state.tx.init(state.params),
                           state.opt_state)
  updates, opt_state = state.tx.update(grads, opt_state, state.params)
  updates = jax.tree_util.tree_map_with_path(lambda path, u: jnp.where(moves(path), rate * u, 0.0), updates)
  return state.replace(step=state.step + 1, params=optax.apply_updates(state.params, updates), opt_state=opt_state)


def layer_index(path: tuple[Any, ...]) -> int:
  """The layer a parameter belongs to, from its path ('rbms_2', 'encoders_2' -> 2)."""
  return int(path[1].key.rsplit("_", 1)[1])


def pretrain_branch(config: Config, state: Any, layers: list[Layer], v: jax.Array, k: int,
                    to_grads: Callable[[int, dict[str, jax.Array]], Params]) -> Callable[[jax.Array], tuple]:
  """The step of stage k < L as a `lax.switch` branch `key -> (grads, carry, metrics)`: RBM k's update on the up-pass
  of `v` through RBMs 0..k-1, negated into gradients laid out by `to_grads(k, update)`, and the carried chains."""

  def branch(key: jax.Array) -> tuple[Params, Any, dict[str, jax.Array]]:
    inputs = up_pass(layers[:k], v)[-1]
    chains = None
    if config.rbm.persistent:  # RBM k's chains start at its first batch (as the `rbm` variant's do).
      chains = jnp.where(state.step == k * config.pretrain_steps, inputs, state.carry["chains"][f"layer{k}"])
    update, chains, metrics = layer_update(config, state.hparams, k, layers[k], inputs, chains, key)
    carry = {"chains": {**state.carry["chains"], f"layer{k}": chains}} if config.rbm.persistent else state.carry
    return to_grads(k, jax.tree.map(jnp.negative, update)), carry, metrics

  return branch


def build_model(config: Config, input_shape: tuple[int, ...]) -> DBN:
  """The RBM stack of `layer_dims`, with an encoder and decoder for Bernoulli pixels."""
  model = DBN if config.rbm.visible == "gaussian" else BernoulliDBN
  return model(layer_dims(config), tuple(input_shape), config.rbm.init_scale, config.model.code_activation == "linear")


def carry(model: nn.Module, config: Config, key: jax.Array, example: jax.Array) -> dict[str, Any]:
  """Each RBM's persistent chains for PCD, one per example of a batch (each RBM's first step starts them at its
  inputs); nothing for CD."""
  del model, key
  if not config.rbm.persistent:
    return {}
  widths = [math.prod(example.shape[1:]), *layer_dims(config)[:-1]]
  return {"chains": {f"layer{k}": jnp.zeros((config.batch_size, width)) for k, width in enumerate(widths)}}


def train_step(model: DBN, config: Config, state: Any, batch: Batch, key: jax.Array) -> tuple[Any, dict]:
  """One CD-k / PCD-k step of the current RBM (the stage); only its parameters move, and its optimiser starts afresh
  at its first step."""
  del model
  num_layers = len(layer_dims(config))
  stage = stage_of(state.step, config.pretrain_steps, num_layers)
  layers = unpack(state.params, num_layers)

  def to_grads(k: int, update: dict[str, jax.Array]) -> Params:
    return {"params": {name: update if name == f"rbms_{k}" else jax.tree.map(jnp.zeros_like, layer)
                       for name, layer in state.params["params"].items()}}

  v = rbm.visible_inputs(config, batch)
  grads, carry_, metrics = jax.lax.switch(
      stage, [pretrain_branch(config, state, layers, v, k, to_grads) for k in range(num_layers)], key)
  rate = jnp.where(stage == num_layers - 1, config.dbn.top_rate_scale, 1.0)
  new_state = stage_update(state, grads, starts_stage(state.step, config.pretrain_steps, num_layers),
                           lambda path: layer_index(path) == stage, rate)
  return new_state.replace(carry=carry_), {"loss": metrics["recon_error"], "stage": stage.astype(jnp.float32),
                                           **metrics}


def stack_recon_error(config: Config, params: Params, batch: Batch) -> jax.Array:
  """Per example, the squared error (pixels' units) of the mean-field up-down reconstruction through every RBM."""
  layers = unpack(params, len(layer_dims(config)))
  top = up_pass(layers, rbm.visible_inputs(config, batch), config.model.code_activation == "linear")[-1]
  recon = rbm.as_images(config, batch, visible_mean(config, down_pass(layers, top)))
  return jnp.sum((recon - batch["image"]).reshape(len(recon), -1) ** 2, axis=-1)


def evaluate(model: DBN, config: Config, params: Params, batch: Batch, key: jax.Array, hp: HParams) -> dict:
  """Per test example: each RBM's metrics on the up-pass (with the free-energy gap where train images are paired),
  and the squared error through the stack."""
  del model, hp
  num_layers = len(layer_dims(config))
  layers = unpack(params, num_layers)
  inputs = up_pass(layers, rbm.visible_inputs(config, batch))
  train_inputs = up_pass(layers, rbm.visible_inputs(config, batch, "train_image")) if "train_image" in batch else None
  metrics = {"recon_error": stack_recon_error(config, params, batch)}
  for k, layer in enumerate(layers):
    for name, value in layer_metrics(config, k, layer, inputs[k], jax.random.fold_in(key, k)).items():
      metrics[f"layer{k}_{name}"] = value
    if train_inputs is not None:
      metrics[f"layer{k}_free_energy_gap"] = metrics[f"layer{k}_free_energy"] - rbm.free_energy(
          *layer, train_inputs[k], *units(config, k))
  return metrics


def sample_pictures(config: Config, layers: list[Layer], batch: Batch, key: jax.Array, n: int) -> dict:
  """Rows of the top RBM's Gibbs chain from noise after 1, 10, 100, ... sweeps, each chain's last hidden sample
  propagated down to the pixels, mean-field."""
  weights, visible_bias, hidden_bias = layers[-1]
  gaussian, gaussian_hidden = units(config, len(layers) - 1)
  noise_key, key = jax.random.split(key)
  shape = (n, weights.shape[0])
  v = jax.random.normal(noise_key, shape) if gaussian else jax.random.bernoulli(noise_key, 0.5, shape).astype(
      jnp.float32)
  return {f"top RBM, {rbm.sweeps(steps)}": rbm.as_images(config, batch, visible_mean(config, down_pass(layers, h)))
          for steps, h in rbm.chain_snapshots(layers[-1], v, key, config.rbm.sample_steps, gaussian, gaussian_hidden)}


def sample(model: DBN, config: Config, params: Params, key: jax.Array, labels: jax.Array) -> jax.Array:
  """As many images as `labels` (read only for their number): the top RBM's Gibbs chains from noise after
  `rbm.sample_steps` sweeps, each chain's last hidden sample propagated down to the pixels' means, mean-field (the
  last row of the pictures' samples)."""
  layers = unpack(params, len(layer_dims(config)))
  gaussian, gaussian_hidden = units(config, len(layers) - 1)
  noise_key, chain_key = jax.random.split(key)
  shape = (len(labels), layers[-1][0].shape[0])
  v = jax.random.normal(noise_key, shape) if gaussian else jax.random.bernoulli(noise_key, 0.5, shape).astype(
      jnp.float32)
  _, h = rbm.chain_snapshots(layers[-1], v, chain_key, config.rbm.sample_steps, gaussian, gaussian_hidden)[-1]
  return visible_mean(config, down_pass(layers, h)).reshape(len(labels), *model.image_shape)


def images(model: DBN, config: Config, params: Params, batch: Batch, key: jax.Array, hp: HParams) -> dict:
  """RBM 0's filters, reconstructions through 1..L RBMs, and samples of the top RBM propagated down."""
  del hp
  num_layers = len(layer_dims(config))
  layers = unpack(params, num_layers)
  n = config.num_images
  inputs = up_pass(layers, rbm.visible_inputs(config, batch)[:n], config.model.code_activation == "linear")
  depths = {f"through {d} RBM{'s' if d > 1 else ''}": rbm.as_images(
      config, batch, visible_mean(config, down_pass(layers[:d], inputs[d]))) for d in range(1, num_layers + 1)}
  return {"reconstruction": common.image_grid({"input": batch["image"], **depths}, n=n),
          "filters": rbm.filters(layers[0][0], tuple(batch["image"].shape[1:]), n),
          "samples": common.image_grid(sample_pictures(config, layers, batch, key, n), n=n)}


def log_likelihood_bound(layers: Sequence[Layer], v: jax.Array, log_z: jax.Array, key: jax.Array, num_samples: int,
                         gaussian: bool = False, linear_code: bool = False) -> jax.Array:
  """Per example, an unbiased estimate of the variational lower bound on the DBN's log p(v) in nats, given log Z of
  its top RBM (Salakhutdinov & Murray 2008, section 4; for two layers their bound on a 2-layer DBN):

      log p(v) ≥ E_q[Σ_{k=1}^{L-1} log p(h_{k-1} | h_k) + log p*(h_{L-1})] + H(q) - log Z,

  h_0 = v, q(h_1, ..., h_{L-1} | v) the up-pass of samples (each RBM's posterior given the sample below: factorial),
  p(h_{k-1} | h_k) RBM k-1's conditional of its visibles, and p*(h) = exp(-F(h)) the top RBM's unnormalised
  marginal of its visibles, so log p*(h) - log Z = log p(h). The expectation, entropy included, is the mean over
  `num_samples` up-passes h ~ q of log p(v, h) - log q(h | v): the gap to log p(v) is KL(q ‖ p(h | v)), and where q
  is the exact posterior every sample gives log p(v) itself. With one RBM it is log p(v) = -F(v) - log Z exactly.
  `gaussian`: RBM 0's visibles are Gaussian; `linear_code`: the top's hidden units linear (F as `rbm.free_energy`
  defines it, which log Z must normalise).
  """
  *below, top = layers

  def one_sample(key: jax.Array) -> jax.Array:
    total, h = jnp.zeros(len(v)), v
    for k, (weights, visible_bias, hidden_bias) in enumerate(below):
      logits = h @ weights + hidden_bias
      sample = jax.random.bernoulli(jax.random.fold_in(key, k), jax.nn.sigmoid(logits)).astype(v.dtype)
      log_q = jnp.sum(sample * logits - jax.nn.softplus(logits), axis=-1)
      total += log_conditional(weights, visible_bias, sample, h, gaussian and k == 0) - log_q
      h = sample
    return total - rbm.free_energy(*top, h, gaussian and not below, linear_code)

  return jax.vmap(one_sample)(jax.random.split(key, num_samples)).mean(0) - log_z


def log_conditional(weights: jax.Array, visible_bias: jax.Array, h: jax.Array, v: jax.Array,
                    gaussian: bool) -> jax.Array:
  """log p(v | h) of an RBM per example: Bernoulli visibles of logits b + Wh, or unit-variance Gaussian ones."""
  activation = h @ weights.T + visible_bias
  if gaussian:
    return -0.5 * jnp.sum((v - activation) ** 2, axis=-1) - 0.5 * v.shape[-1] * math.log(2 * math.pi)
  return jnp.sum(v * activation - jax.nn.softplus(activation), axis=-1)


def validate_stack(config: Config, name: str, min_pretrain_steps: int) -> None:
  """The checks `dbn` and `dbn_ae` share: the family's fields, an MLP stack of logistic units, widths that chain, and
  room for every RBM's `pretrain_steps` (at least `min_pretrain_steps`)."""
  fields.validate(config)
  m = config.model
  if m.kind != "mlp":
    raise ConfigError(f"config.model.kind={m.kind!r}: {name} stacks RBMs, each connecting all its visible units to all "
                      "its hidden units; use --config.model.kind=mlp")
  if m.decoder_widths is not None:
    raise ConfigError(f"config.model.decoder_widths={tuple(m.decoder_widths)!r}: {name}'s way down is its RBMs' own "
                      "weights; leave it unset and give the layers as encoder_widths + latent_dim")
  dims = layer_dims(config)
  if not all(isinstance(d, int) and d > 0 for d in dims):
    raise ConfigError(f"config.model.encoder_widths={tuple(m.encoder_widths)!r}, latent_dim={config.latent_dim!r}: "
                      f"the RBMs' hidden units {dims} must be positive integers, each RBM's visibles the hidden units "
                      "of the one below, e.g. --config.model.encoder_widths='(500,500)' --config.latent_dim=2000")
  if m.activation != "sigmoid":
    raise ConfigError(f"config.model.activation={m.activation!r}: {name}'s hidden units are an RBM's binary, logistic "
                      "units; use --config.model.activation=sigmoid")
  if m.code_activation not in ("sigmoid", "linear"):
    raise ConfigError(f"config.model.code_activation={m.code_activation!r}: the top RBM's hidden units are binary "
                      "('sigmoid') or linear with Gaussian noise ('linear'); use one of them")
  if len(dims) == 1 and config.rbm.visible == "gaussian" and m.code_activation == "linear":
    raise ConfigError("config.model.code_activation='linear': an RBM of Gaussian visibles and linear hidden units is "
                      "an unbounded Gaussian; use 'sigmoid' hidden units, or Bernoulli visibles")
  if config.pretrain_steps < min_pretrain_steps:
    raise ConfigError(f"config.pretrain_steps={config.pretrain_steps!r}: {name} trains each of its {len(dims)} RBMs "
                      f"for pretrain_steps steps, one after another; use "
                      f"{'a positive count' if min_pretrain_steps else '0 (no pre-training) or a count'}, e.g. "
                      "--config.pretrain_steps=6000")
  needed = config.pretrain_steps * len(dims)
  if config.num_steps < needed:
    raise ConfigError(f"config.num_steps={config.num_steps!r}: training {len(dims)} RBMs for {config.pretrain_steps} "
                      f"steps each needs {needed} steps; raise num_steps or lower pretrain_steps")
  if config.pretrain_steps > 0 and (config.lr_schedule != "constant" or config.warmup_steps > 0):
    raise ConfigError(f"config.lr_schedule={config.lr_schedule!r}, warmup_steps={config.warmup_steps!r}: {name}'s "
                      "optimiser restarts at each RBM, and a schedule over num_steps would restart with it and never "
                      "decay; use --config.lr_schedule=constant --config.warmup_steps=0")


# Images per call of the bound: (samples, images, widest layer) float32s, 200 MB at 100 x 250 x 2,000 (dbn.py's top).
_BOUND_IMAGES = 250


def ais_suite(run: Any) -> tuple[dict[str, float], dict]:
  """The `ais` suite of a DBN: log Z of its top RBM by AIS (`config.eval.ais`, the base rates those of the mean-field
  up-pass of the train images), and with it the variational lower bound on log p(v) (`log_likelihood_bound`, the
  mean over `eval.ais.bound_samples` samples of q per image) of the test images and `eval.num_train` train images,
  in nats, bracketed by log Ẑ's bracket (Salakhutdinov & Murray 2008)."""
  config = run.config
  check_ais_fits(config)
  layers = unpack(run.state.params, len(layer_dims(config)))
  flat = {name: x.reshape(len(x), -1) for name, x in (("test", run.test_images), ("train", run.train_images))}
  top_inputs = np.asarray(jax.jit(lambda v: up_pass(layers[:-1], v)[-1])(flat["train"]))
  log_z, low, high, metrics = rbm.estimate_log_z(config, layers[-1], top_inputs, run.key("ais"))
  bound = jax.jit(lambda v, key: log_likelihood_bound(layers, v, 0.0, key, config.eval.ais.bound_samples))
  for name, x in flat.items():
    key = run.key(f"ais bound {name}")
    values = [bound(x[i:i + _BOUND_IMAGES], jax.random.fold_in(key, i)) for i in range(0, len(x), _BOUND_IMAGES)]
    mean_log_p_star = float(np.mean(np.concatenate([np.asarray(v) for v in values])))
    metrics.update(rbm.log_likelihood_figures(f"{name}_log_likelihood_bound", mean_log_p_star, log_z, low, high))
  return metrics, {}


def check_ais_fits(config: Config) -> None:
  """A `ConfigError` unless the `ais` suite fits the DBN: binary pixels and a top RBM of binary hidden units."""
  rbm.check_ais_fits(config)
  if config.model.code_activation != "sigmoid":
    raise ConfigError(f"config.model.code_activation={config.model.code_activation!r}: suite 'ais' estimates log Z "
                      "of a top RBM of binary hidden units; use --config.model.code_activation=sigmoid, or drop 'ais'")


def validate(config: Config) -> None:
  """The checks `dbn` and `dbn_ae` share, and those of the `ais` suite when the run names it."""
  validate_stack(config, "a DBN", 1)
  if "ais" in config.eval.suites:
    check_ais_fits(config)
  rbm.check_samples_fit(config)


registry.register("dbn", registry.Variant(
    build_model=build_model, hparams=rbm.hparams, evaluate=evaluate, images=images, train_step=train_step,
    validate=validate, carry=carry, config_fields=fields.add, suites={"ais": ais_suite}, sample=sample))
