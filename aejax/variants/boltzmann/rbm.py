"""`rbm`: a restricted Boltzmann machine trained by contrastive divergence (CD-k) or persistent CD (PCD-k).

Energy E(v, h) = -v·b - h·c - vᵀWh with binary hidden units h (`latent_dim` of them) and binary visibles v
(`rbm.visible='bernoulli'`: an image's pixels in [0, 1] are their probabilities), or real-valued visibles of unit
variance, E(v, h) = ½‖v - b‖² - h·c - vᵀWh (`'gaussian'`, on pixels standardised with the train split's
statistics). The free energy F(v) = -log Σ_h exp(-E(v, h)) has a closed form (`free_energy`). The pure functions
also take linear hidden units of unit-variance Gaussian noise (`gaussian_hidden`: E(v, h) = -v·b + ½‖h - c‖² - vᵀWh,
p(h | v) = N(c + Wᵀv, I)), the code units of a DBN's top RBM (aejax/variants/boltzmann/dbn.py).

Learning is not a gradient step on a loss: the update is ⟨v hᵀ⟩_data - ⟨v hᵀ⟩_model with the model's statistics
from a k-step Gibbs chain, started at the batch (CD-k) or carried from step to step (PCD-k, the chains in the
train state's `carry`, so a resumed run continues bit for bit). That update, negated, goes through the run's optax
optimiser like a gradient: momentum and an L2 weight cost with `--config.optimizer=sgd`, the learning rate and its
schedule as for any variant.

Train metrics: `loss` = `recon_error`, the squared error of one Gibbs step's reconstruction (v → h sampled → mean
of v), summed over pixels; `free_energy` of the batch; `hidden_activation`, the mean probability of the hidden
units being on. Test metrics add `free_energy_gap`, the test images' mean free energy less that of as many train
images (Hinton's overfitting monitor: it grows as the model overfits). The exact log-likelihood needs log Z:
the `ais` suite estimates it (aejax/variants/boltzmann/ais.py).
"""
import functools
import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from aejax import images as images_lib, registry
from aejax.errors import ConfigError
from aejax.registry import Batch, Config, HParams, Params
from aejax.variants import common
from aejax.variants.boltzmann import ais, fields


class RBM(nn.Module):
  """The parameters of an RBM over flattened images: weights (V, H), visible bias (V,), hidden bias (H,)."""
  num_hidden: int
  image_shape: tuple[int, ...]
  init_scale: float = 0.01

  def setup(self):
    num_visible = math.prod(self.image_shape)
    self.weights = self.param("weights", nn.initializers.normal(self.init_scale), (num_visible, self.num_hidden))
    self.visible_bias = self.param("visible_bias", nn.initializers.zeros, (num_visible,))
    self.hidden_bias = self.param("hidden_bias", nn.initializers.zeros, (self.num_hidden,))

  def __call__(self, x: jax.Array) -> jax.Array:
    """The visible activations (logits, or Gaussian means) of the mean-field reconstruction of vectors `x`."""
    return jax.nn.sigmoid(x.reshape(len(x), -1) @ self.weights + self.hidden_bias) @ self.weights.T + self.visible_bias


class BernoulliRBM(RBM):
  """An RBM of binary visibles, with the encoder and decoder the shared evaluation suites use (a Gaussian RBM's
  visibles are standardised pixels, which those suites do not give it)."""

  def encode(self, x: jax.Array) -> jax.Array:
    """The hidden units' probabilities given images `x` (the RBM's features)."""
    return jax.nn.sigmoid(x.reshape(len(x), -1) @ self.weights + self.hidden_bias)

  def decode(self, h: jax.Array) -> jax.Array:
    """The visible units' logits given hidden states `h`, shaped as images."""
    return (h @ self.weights.T + self.visible_bias).reshape(len(h), *self.image_shape)


def unpack(params: Params) -> tuple[jax.Array, jax.Array, jax.Array]:
  """(weights, visible bias, hidden bias) of an RBM's parameters."""
  p = params["params"]
  return p["weights"], p["visible_bias"], p["hidden_bias"]


def hidden_mean(weights: jax.Array, hidden_bias: jax.Array, v: jax.Array, gaussian: bool = False) -> jax.Array:
  """E[h | v]: the binary hidden units' probabilities, or the mean c + Wᵀv of linear (Gaussian) ones."""
  activation = v @ weights + hidden_bias
  return activation if gaussian else jax.nn.sigmoid(activation)


def free_energy(weights: jax.Array, visible_bias: jax.Array, hidden_bias: jax.Array, v: jax.Array,
                gaussian: bool = False, gaussian_hidden: bool = False) -> jax.Array:
  """F(v) per example (nats), the hidden units summed (linear ones integrated) out: log p(v) = -F(v) - log Z."""
  activation = v @ weights + hidden_bias
  if gaussian_hidden:  # ∫ exp(-½‖h - c‖² + vᵀWh) dh = exp(½‖c + Wᵀv‖² - ½‖c‖²) (2π)^(H/2).
    hidden_term = (0.5 * jnp.sum(activation**2 - hidden_bias**2, axis=-1)
                   + 0.5 * hidden_bias.shape[-1] * math.log(2 * math.pi))
  else:
    hidden_term = jnp.sum(jax.nn.softplus(activation), axis=-1)
  visible_term = 0.5 * jnp.sum((v - visible_bias) ** 2, axis=-1) if gaussian else -v @ visible_bias
  return visible_term - hidden_term


def sample_hidden(weights: jax.Array, hidden_bias: jax.Array, v: jax.Array, key: jax.Array,
                  gaussian: bool = False) -> tuple[jax.Array, jax.Array]:
  """E[h | v] (p(h = 1 | v), or the mean of linear units) and a sample of h."""
  mean = hidden_mean(weights, hidden_bias, v, gaussian)
  if gaussian:
    return mean, mean + jax.random.normal(key, mean.shape, mean.dtype)
  return mean, jax.random.bernoulli(key, mean).astype(v.dtype)


def sample_visible(weights: jax.Array, visible_bias: jax.Array, h: jax.Array, key: jax.Array,
                   gaussian: bool) -> tuple[jax.Array, jax.Array]:
  """The mean of v given h (probabilities, or the Gaussian's mean) and a sample of v."""
  activation = h @ weights.T + visible_bias
  if gaussian:
    return activation, activation + jax.random.normal(key, activation.shape, activation.dtype)
  probs = jax.nn.sigmoid(activation)
  return probs, jax.random.bernoulli(key, probs).astype(h.dtype)


def gibbs_chain(weights: jax.Array, visible_bias: jax.Array, hidden_bias: jax.Array, v: jax.Array, key: jax.Array,
                steps: int, gaussian: bool, gaussian_hidden: bool = False) -> jax.Array:
  """Visible states after `steps` full Gibbs sweeps v → h → v from `v` (a `lax.fori_loop`: one compiled sweep)."""

  def sweep(i, v):
    h_key, v_key = jax.random.split(jax.random.fold_in(key, i))
    _, h = sample_hidden(weights, hidden_bias, v, h_key, gaussian_hidden)
    return sample_visible(weights, visible_bias, h, v_key, gaussian)[1]

  return jax.lax.fori_loop(0, steps, sweep, v)


def negative_phase(weights: jax.Array, visible_bias: jax.Array, hidden_bias: jax.Array, start: jax.Array,
                   start_key: jax.Array, chain_key: jax.Array, steps: int, gaussian: bool,
                   gaussian_hidden: bool = False) -> jax.Array:
  """The model's visible samples of CD-k / PCD-k: `steps` Gibbs sweeps from `start` (the batch, or the persistent
  chains), the first one's h drawn with `start_key`, the rest of the chain with `chain_key`."""
  _, h = sample_hidden(weights, hidden_bias, start, start_key, gaussian_hidden)
  v = sample_visible(weights, visible_bias, h, chain_key, gaussian)[1]
  return gibbs_chain(weights, visible_bias, hidden_bias, v, jax.random.fold_in(chain_key, 1), steps - 1, gaussian,
                     gaussian_hidden)


def visible_inputs(config: Config, batch: Batch, image_key: str = "image") -> jax.Array:
  """The batch's images as the RBM's visible vectors (B, V): as they are, or standardised for Gaussian visibles."""
  x = batch[image_key]
  if config.rbm.visible == "gaussian":
    x = (x - batch["pixel_mean"]) / batch["pixel_std"]
  return x.reshape(len(x), -1)


def as_images(config: Config, batch: Batch, v: jax.Array) -> jax.Array:
  """Visible vectors (B, V) back as images in the batch's units (Gaussian visibles unstandardised)."""
  x = v.reshape(len(v), *batch["image"].shape[1:])
  return x * batch["pixel_std"] + batch["pixel_mean"] if config.rbm.visible == "gaussian" else x


def contrastive_divergence(weights: jax.Array, visible_bias: jax.Array, hidden_bias: jax.Array, v_data: jax.Array,
                           v_model: jax.Array, gaussian_hidden: bool = False) -> dict[str, jax.Array]:
  """The CD update ⟨v hᵀ⟩_data - ⟨v hᵀ⟩_model (and the biases' ⟨v⟩, ⟨h⟩ differences), each average over its batch,
  with the hidden units' means E[h | v] in place of their samples (Hinton's guide: less noise)."""
  h_data = hidden_mean(weights, hidden_bias, v_data, gaussian_hidden)
  h_model = hidden_mean(weights, hidden_bias, v_model, gaussian_hidden)
  return {"weights": v_data.T @ h_data / len(v_data) - v_model.T @ h_model / len(v_model),
          "visible_bias": v_data.mean(0) - v_model.mean(0),
          "hidden_bias": h_data.mean(0) - h_model.mean(0)}


def sparsity_update(weights: jax.Array, hidden_bias: jax.Array, v: jax.Array, target: float) -> dict[str, jax.Array]:
  """Minus the gradient of Σ_j cross-entropy(target, q_j) in the parameters, q_j the hidden units' probabilities
  (per example, averaged over the batch): d/dx_j of the cross-entropy is q_j - target at the unit's input x_j."""
  gap = jax.nn.sigmoid(v @ weights + hidden_bias) - target
  return {"weights": -v.T @ gap / len(v), "visible_bias": jnp.zeros(weights.shape[0], v.dtype),
          "hidden_bias": -gap.mean(0)}


def build_model(config: Config, input_shape: tuple[int, ...]) -> RBM:
  """An RBM of `latent_dim` hidden units over the flattened images, with an encoder and decoder for binary pixels."""
  model = RBM if config.rbm.visible == "gaussian" else BernoulliRBM
  return model(config.latent_dim, tuple(input_shape), config.rbm.init_scale)


def hparams(config: Config) -> dict[str, float]:
  """Named by their config fields, so that bundle members may differ in them."""
  return {"rbm.sparsity_cost": config.rbm.sparsity_cost}


def carry(model: RBM, config: Config, key: jax.Array, example: jax.Array) -> dict[str, jax.Array]:
  """PCD's persistent chains, one per example of a batch (the first step starts them at its batch); nothing for CD."""
  del model, key
  return {"chains": jnp.zeros((config.batch_size, math.prod(example.shape[1:])))} if config.rbm.persistent else {}


def train_step(model: RBM, config: Config, state: Any, batch: Batch, key: jax.Array) -> tuple[Any, dict]:
  """One CD-k (or PCD-k) update through the run's optimiser."""
  del model
  weights, visible_bias, hidden_bias = unpack(state.params)
  gaussian = config.rbm.visible == "gaussian"
  v = visible_inputs(config, batch)
  recon_key, start_key, chain_key = jax.random.split(key, 3)
  # PCD's chains start at the first batch (Hinton's guide: a data vector is a good start); CD's at every batch.
  start = jnp.where(state.step == 0, v, state.carry["chains"]) if config.rbm.persistent else v
  v_model = negative_phase(weights, visible_bias, hidden_bias, start, start_key, chain_key, config.rbm.cd_steps,
                           gaussian)
  update = contrastive_divergence(weights, visible_bias, hidden_bias, v, v_model)
  sparsity = sparsity_update(weights, hidden_bias, v, config.rbm.sparsity_target)
  cost = state.hparams["rbm.sparsity_cost"]
  grads = {"params": jax.tree.map(lambda u, s: -(u + cost * s), update, sparsity)}  # Descent on minus the update.
  new_state = state.apply_gradients(grads=grads)
  if config.rbm.persistent:
    new_state = new_state.replace(carry={"chains": v_model})
  metrics = one_step_metrics(config, batch, weights, visible_bias, hidden_bias, v, recon_key)
  return new_state, {"loss": metrics["recon_error"].mean(), **{k: m.mean() for k, m in metrics.items()}}


def one_step_metrics(config: Config, batch: Batch, weights: jax.Array, visible_bias: jax.Array,
                     hidden_bias: jax.Array, v: jax.Array, key: jax.Array) -> dict[str, jax.Array]:
  """Per example: the squared error of one Gibbs step's reconstruction (h sampled given v, then the mean of v),
  in the image's units (Gaussian visibles unstandardised with `batch`'s statistics), its free energy, and its
  hidden units' mean probability."""
  gaussian = config.rbm.visible == "gaussian"
  probs, h = sample_hidden(weights, hidden_bias, v, key)
  mean, _ = sample_visible(weights, visible_bias, h, key, gaussian)
  error = as_images(config, batch, mean) - as_images(config, batch, v)
  return {"recon_error": jnp.sum(error.reshape(len(v), -1) ** 2, axis=-1),
          "free_energy": free_energy(weights, visible_bias, hidden_bias, v, gaussian),
          "hidden_activation": probs.mean(-1)}


def evaluate(model: RBM, config: Config, params: Params, batch: Batch, key: jax.Array, hp: HParams) -> dict:
  """Per test example: `one_step_metrics`, and with the loop's paired train images the free-energy gap."""
  del model, hp
  weights, visible_bias, hidden_bias = unpack(params)
  metrics = one_step_metrics(config, batch, weights, visible_bias, hidden_bias, visible_inputs(config, batch), key)
  if "train_image" in batch:
    train_v = visible_inputs(config, batch, "train_image")
    gaussian = config.rbm.visible == "gaussian"
    metrics["free_energy_gap"] = metrics["free_energy"] - free_energy(weights, visible_bias, hidden_bias, train_v,
                                                                      gaussian)
  return metrics


def filters(weights: jax.Array, image_shape: tuple[int, ...], per_row: int) -> images_lib.Grid:
  """Up to 8 rows of `per_row` hidden units' weights (as many as there are, in whole rows) as images, each scaled to
  [0, 1] on its own."""
  per_row = min(per_row, weights.shape[1])
  count = min(8 * per_row, weights.shape[1]) // per_row * per_row
  w = weights[:, :count].T.reshape(count, *image_shape)
  low = w.min(axis=tuple(range(1, w.ndim)), keepdims=True)
  high = w.max(axis=tuple(range(1, w.ndim)), keepdims=True)
  tiles = (w - low) / jnp.maximum(high - low, 1e-8)
  return images_lib.Grid(tiles.reshape(count // per_row, per_row, *image_shape), ("hidden units' weights",))


def chain_snapshots(layer: tuple[jax.Array, jax.Array, jax.Array], v: jax.Array, key: jax.Array, max_steps: int,
                    gaussian: bool, gaussian_hidden: bool = False) -> list[tuple[int, jax.Array]]:
  """(sweeps, hidden sample) of Gibbs chains from visibles `v` after 1, 10, 100, ... up to `max_steps` sweeps."""
  weights, visible_bias, hidden_bias = layer
  snapshots, done = [], 0
  for steps in [10 ** i for i in range(int(math.log10(max_steps)) + 1)]:
    chain_key, h_key = jax.random.split(jax.random.fold_in(key, steps))
    v = gibbs_chain(weights, visible_bias, hidden_bias, v, chain_key, steps - done, gaussian, gaussian_hidden)
    done = steps
    snapshots.append((steps, sample_hidden(weights, hidden_bias, v, h_key, gaussian_hidden)[1]))
  return snapshots


def sweeps(steps: int) -> str:
  """'1 sweep', '10 sweeps', ...: a picture row's label."""
  return f"{steps} sweep{'s' if steps > 1 else ''}"


def sample_pictures(config: Config, params: Params, batch: Batch, start: jax.Array, key: jax.Array,
                    label: str) -> images_lib.Grid:
  """Rows of a Gibbs chain's visible means from `start` (visible vectors) after 1, 10, 100, ... sweeps."""
  weights, visible_bias, hidden_bias = unpack(params)
  gaussian = config.rbm.visible == "gaussian"
  rows = {}
  for steps, h in chain_snapshots((weights, visible_bias, hidden_bias), start, key, config.rbm.sample_steps, gaussian):
    activation = h @ weights.T + visible_bias
    rows[f"{label}, {sweeps(steps)}"] = as_images(config, batch, activation if gaussian else jax.nn.sigmoid(activation))
  return common.image_grid(rows, n=len(start))


def images(model: RBM, config: Config, params: Params, batch: Batch, key: jax.Array, hp: HParams) -> dict:
  """Filters, reconstructions, and samples of Gibbs chains started from noise and from the test images."""
  del hp
  weights, visible_bias, hidden_bias = unpack(params)
  n = config.num_images
  v = visible_inputs(config, batch)[:n]
  noise_key, data_key, recon_key = jax.random.split(key, 3)
  if config.rbm.visible == "gaussian":
    noise = jax.random.normal(noise_key, v.shape)
  else:
    noise = jax.random.bernoulli(noise_key, 0.5, v.shape).astype(v.dtype)
  _, h = sample_hidden(weights, hidden_bias, v, recon_key)
  recon = as_images(config, batch, sample_visible(weights, visible_bias, h, recon_key,
                                                  config.rbm.visible == "gaussian")[0])
  return {"reconstruction": common.image_grid({"input": batch["image"], "one Gibbs step": recon}, n=n),
          "filters": filters(weights, tuple(batch["image"].shape[1:]), n),
          "samples_from_noise": sample_pictures(config, params, batch, noise, jax.random.fold_in(noise_key, 1),
                                                "from noise"),
          "samples_from_data": sample_pictures(config, params, batch, v, data_key, "from test images")}


def sample(model: RBM, config: Config, params: Params, key: jax.Array, labels: jax.Array) -> jax.Array:
  """As many images as `labels` (read only for their number): Gibbs chains of binary visibles started from
  Bernoulli(½) noise, after `rbm.sample_steps` sweeps the visible means given their last hidden sample (as the
  pictures' chains from noise show them)."""
  weights, visible_bias, hidden_bias = unpack(params)
  noise_key, chain_key, hidden_key = jax.random.split(key, 3)
  v = jax.random.bernoulli(noise_key, 0.5, (labels.shape[0], weights.shape[0])).astype(jnp.float32)
  v = gibbs_chain(weights, visible_bias, hidden_bias, v, chain_key, config.rbm.sample_steps, gaussian=False)
  _, h = sample_hidden(weights, hidden_bias, v, hidden_key)
  return sample_visible(weights, visible_bias, h, hidden_key, gaussian=False)[0].reshape(len(v), *model.image_shape)


def estimate_log_z(config: Config, layer: tuple[jax.Array, jax.Array, jax.Array], base_inputs: np.ndarray,
                   key: jax.Array) -> tuple[float, float, float, dict[str, float]]:
  """log Ẑ of a Bernoulli RBM `layer` by AIS (`config.eval.ais`) from the base-rate RBM of `base_inputs` (its
  training visibles, or their probabilities), the bracket log Ẑ ± 3 standard errors of its weights, and the
  figures the `ais` suites report of it."""
  weights, visible_bias, hidden_bias = (np.asarray(a) for a in layer)
  base_bias = ais.base_rate_bias(base_inputs)
  runs, betas = config.eval.ais.runs, ais.betas(config.eval.ais.schedule)
  log_z, log_weights = ais.ais_log_partition(weights, visible_bias, hidden_bias, base_bias, betas, runs, key)
  low, high = (float(x) for x in ais.log_z_spread(log_weights, ais.base_log_partition(base_bias, weights.shape[1])))
  return float(log_z), low, high, {"ais/log_z": float(log_z), "ais/log_z_low": low, "ais/log_z_high": high,
                                   "ais/runs": float(runs), "ais/betas": float(len(betas))}


def log_likelihood_figures(name: str, mean_log_p_star: float, log_z: float, low: float,
                           high: float) -> dict[str, float]:
  """`ais/{name}` = the mean of log p*(v) (unnormalised) less log Ẑ, and its bracket from log Ẑ's (the low end of
  log p from the high end of log Ẑ)."""
  return {f"ais/{name}": mean_log_p_star - log_z, f"ais/{name}_low": mean_log_p_star - high,
          f"ais/{name}_high": mean_log_p_star - low}


def ais_suite(run: Any) -> tuple[dict[str, float], dict[str, images_lib.Grid]]:
  """The `ais` suite: log Z by annealed importance sampling (`config.eval.ais`), and with it the average
  log-likelihood of the test images and of `eval.num_train` train images, in nats, each with its bracket."""
  check_ais_fits(run.config)
  layer = unpack(run.state.params)
  train = run.train_images.reshape(len(run.train_images), -1)
  log_z, low, high, metrics = estimate_log_z(run.config, layer, train, run.key("ais"))
  for name, x in (("test", run.test_images), ("train", run.train_images)):
    mean_log_p_star = -float(np.mean(_free_energies(*layer, x.reshape(len(x), -1))))
    metrics.update(log_likelihood_figures(f"{name}_log_likelihood", mean_log_p_star, log_z, low, high))
  return metrics, {}


def check_ais_fits(config: Config) -> None:
  """A `ConfigError` unless the run's log-likelihood is that of binary images under Bernoulli visibles."""
  if config.rbm.visible != "bernoulli" or config.data.binarize == "none":
    raise ConfigError(f"suite 'ais' gives the log-likelihood of binary images under Bernoulli visibles, not of "
                      f"config.data.binarize={config.data.binarize!r} images under rbm.visible="
                      f"{config.rbm.visible!r}: train with --config.data.binarize=dynamic (or static) and "
                      "rbm.visible=bernoulli, or drop 'ais'")


def _free_energies(weights: np.ndarray, visible_bias: np.ndarray, hidden_bias: np.ndarray, v: np.ndarray,
                   batch_size: int = 10_000) -> np.ndarray:
  """F(v) of each row of `v`, in batches."""
  energy = jax.jit(functools.partial(free_energy, weights, visible_bias, hidden_bias))
  return np.concatenate([np.asarray(energy(v[i:i + batch_size])) for i in range(0, len(v), batch_size)])


def check_samples_fit(config: Config) -> None:
  """A `ConfigError` if the run names the samples suite and its pixels are not Bernoulli (an RBM's or a DBN's)."""
  if "samples" in config.eval.suites and config.rbm.visible != "bernoulli":
    raise ConfigError(f"suite 'samples' scores images in [0, 1], and rbm.visible={config.rbm.visible!r} samples "
                      "standardised pixels: train with --config.rbm.visible=bernoulli, or drop 'samples'")


def validate(config: Config) -> None:
  """The family's fields, a dense model, and what the `ais` suite needs when the run names it (an RBM reads none of
  the autoencoders' widths, activations or loss)."""
  fields.validate(config)
  if "ais" in config.eval.suites:
    check_ais_fits(config)
  check_samples_fit(config)
  if config.model.kind != "mlp":
    raise ConfigError(f"config.model.kind={config.model.kind!r}: an RBM connects every pixel to every hidden unit; "
                      "use --config.model.kind=mlp")


registry.register("rbm", registry.Variant(
    build_model=build_model, hparams=hparams, evaluate=evaluate, images=images, train_step=train_step,
    validate=validate, carry=carry, config_fields=fields.add, suites={"ais": ais_suite}, sample=sample))
