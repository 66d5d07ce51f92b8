"""`vqvae` (van den Oord et al. 2017): an autoencoder whose code is a grid of discrete symbols, each the index of the
nearest of `vq.num_codes` (K) learned vectors of size `vq.code_dim` (D), the codebook.

The encoder's output z_e is a spatial map (h, w, D) (`model.kind='conv'` with `model.spatial_code`, the paper's
setting: `model.code_channels` = D) or a vector of `latent_dim` units read as latent_dim / D groups of D. Each D-vector
is replaced by its nearest code e (squared Euclidean distance), and the decoder reads z_q = z_e + sg(e - z_e): the
value of e, the gradient of z_e (straight-through), so the reconstruction's gradient reaches the encoder.

loss = -log p(x|z_q) + ‖sg(z_e) - e‖² + β ‖z_e - sg(e)‖², per image, each norm summed over the code's positions and
dimensions (the reconstruction in nats, summed over pixels, as every aejax loss); β = `vq.beta_commit` (the paper:
0.25), a hyper-parameter of the state, so that bundle members may differ in it. The middle, codebook term moves each
used code toward the mean of the encoder outputs assigned to it; the last, commitment term keeps the encoder near
its codes. With `vq.ema` the codebook term is dropped and each code is instead the moving average of its assigned
outputs (the paper's appendix; Razavi et al. 2019): per step, with n_k the batch's count of code k and s_k the sum of
its assigned outputs, N_k <- γ N_k + (1 - γ) n_k, m_k <- γ m_k + (1 - γ) s_k, and e_k = m_k / Ñ_k, where
Ñ_k = (N_k + ε) / (Σ_j N_j + K ε) · Σ_j N_j (Laplace smoothing, so an unused code is never divided by zero);
γ = `vq.decay`, ε = `vq.epsilon`.

Where the state lives: the codebook is a parameter, params['params']['codebook'], which evaluation, pictures and the
shared suites read like any other. With EMA, N and m are params['vq_ema'] ('cluster_size', 'embed_sum'), initialised
beside the codebook (N = 1, m = the initial codebook, so that m / Ñ is that codebook) and, as the codebook, kept out of
the optimiser (`optimizer`: its update for them is zero, no Adam moments); the train step sets them. In the
parameters, they are checkpointed, restored and stacked for bundles with the codebook they define, as the SOM's
hit counts are. The step of each code's last use (for the running count of dead codes) is bookkeeping of the
training, not of the model: the train state's `carry`.

Train metrics: `loss`, `recon`, `codebook` (‖sg(z_e) - e‖², in the loss unless EMA), `commitment` (β ‖z_e - sg(e)‖²),
`perplexity` (exp of the entropy of the batch's code histogram: K when all codes are used evenly, 1 for one code),
`unused_codes` (codes the batch did not use) and `dead_codes` (codes unused in the last `vq.dead_after` steps).
Test metrics per image: `loss`, `recon`, `recon_error` (squared error of the reconstruction), `codebook`,
`commitment`; `perplexity` and `unused_codes` of each evaluation batch's histogram (its images only), averaged over
the batches weighted by their images. Pictures: inputs and reconstructions, and the code map (each position's index
/ (K - 1) as grey levels).

No `sample`: drawing a VQ-VAE's images needs a prior learned over its code maps (the paper's PixelCNN), which aejax
does not have; a uniform prior over the codes draws noise, not digits.
"""
from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from aejax import registry
from aejax.nn import losses, models
from aejax.registry import Batch, Config, HParams, Params
from aejax.variants import common
from aejax.variants.variational import fields


def nearest(codebook: jax.Array, z: jax.Array) -> jax.Array:
  """The index (...) of the code (row of `codebook` (K, D)) nearest to each vector of `z` (..., D): the argmin of
  ‖e‖² - 2 z·e, the squared distance less ‖z‖², which is the same for every code."""
  return jnp.argmin(jnp.sum(jnp.square(codebook), axis=-1) - 2 * z @ codebook.T, axis=-1)


def straight_through(z_e: jax.Array, codes: jax.Array) -> jax.Array:
  """The value of `codes`, the gradient of `z_e`: what the decoder reads."""
  return z_e + jax.lax.stop_gradient(codes - z_e)


class VQVAE(models.AutoEncoder, kw_only=True):
  """The autoencoder (spatial code for `latent_dim` None) with a codebook of `num_codes` vectors of `code_dim`.

  `encode` gives the quantised code and `decode` reads it, so that the shared suites reconstruct as the VQ-VAE does;
  `ema` only says whether `init` adds the EMA statistics."""
  num_codes: int
  code_dim: int
  ema: bool = False

  def setup(self):
    super().setup()
    # Each code's entries uniform of variance 1 / D: E‖e‖² = 1.
    self.codebook = self.param("codebook", nn.initializers.lecun_uniform(in_axis=-1, out_axis=-2),
                               (self.num_codes, self.code_dim))

  def encoder_output(self, x: jax.Array) -> jax.Array:
    """z_e: (B, h, w, D) for a spatial code, (B, latent_dim / D, D) for a vector."""
    h = super().encode(x)
    return h if self.latent_dim is None else h.reshape(len(h), -1, self.code_dim)

  def encode(self, x: jax.Array) -> jax.Array:
    """The quantised code: each vector of z_e replaced by its nearest code."""
    z_e = self.encoder_output(x)
    return self.codebook[nearest(self.codebook, z_e)]

  def decode(self, z: jax.Array) -> jax.Array:
    return self.decoder(z if self.latent_dim is None else z.reshape(len(z), -1))

  def __call__(self, x: jax.Array) -> dict[str, jax.Array]:
    """z_e, the indices of its codes, the codes e (differentiable in the codebook) and the decoder's logits of the
    straight-through code."""
    z_e = self.encoder_output(x)
    indices = nearest(self.codebook, z_e)
    codes = self.codebook[indices]
    return {"z_e": z_e, "indices": indices, "codes": codes, "logits": self.decode(straight_through(z_e, codes))}


def build_model(config: Config, input_shape: tuple[int, ...]) -> VQVAE:
  encoder, decoder = models.build_backbone(config, input_shape)
  latent_dim = None if config.model.spatial_code else config.latent_dim
  return VQVAE(encoder, decoder, latent_dim, config.model.code_activation, num_codes=config.vq.num_codes,
               code_dim=config.vq.code_dim, ema=config.vq.ema)


def init(model: VQVAE, key: jax.Array, x: jax.Array) -> Params:
  """The parameters, with EMA the statistics N = 1 and m = the codebook beside them (then m / Ñ is the codebook)."""
  params = model.init(key, x)
  if not model.ema:
    return params
  codebook = params["params"]["codebook"]
  return {**params, "vq_ema": {"cluster_size": jnp.ones(len(codebook)), "embed_sum": codebook}}


def hparams(config: Config) -> dict[str, float]:
  return {"vq.beta_commit": float(config.vq.beta_commit)}


def carry(model: VQVAE, config: Config, key: jax.Array, example: jax.Array) -> dict[str, jax.Array]:
  """The number of steps done when each code was last used (0: not yet)."""
  del model, key, example
  return {"last_used": jnp.zeros(config.vq.num_codes, jnp.int32)}


def optimizer(config: Config, make: Callable[[Config], optax.GradientTransformation]) -> optax.GradientTransformation:
  """The run's optimiser; with EMA, nothing for the codebook and its statistics, which the train step sets."""
  if not config.vq.ema:
    return make(config)

  def labels(params: Params) -> Params:
    return jax.tree_util.tree_map_with_path(
        lambda path, _: "ema" if path[0].key != "params" or path[1].key == "codebook" else "gradient", params)

  return optax.transforms.partition({"gradient": make(config), "ema": optax.set_to_zero()}, labels)


def forward(model: VQVAE, config: Config, params: Params, x: jax.Array,
            hp: HParams) -> tuple[dict[str, jax.Array], dict[str, jax.Array]]:
  """The model's outputs for images `x`, and per image its loss and terms: 'recon' (-log p(x|z_q)), 'codebook'
  ‖sg(z_e) - e‖² (in the loss unless EMA) and 'commitment' β ‖z_e - sg(e)‖²."""
  out = model.apply(params, x)
  z_e, codes = out["z_e"], out["codes"]
  terms = {"recon": common.decoder_nll(config, out["logits"], x),
           "codebook": losses.squared_error(jax.lax.stop_gradient(z_e), codes),
           "commitment": hp["vq.beta_commit"] * losses.squared_error(z_e, jax.lax.stop_gradient(codes))}
  loss = terms["recon"] + terms["commitment"] + (0.0 if config.vq.ema else terms["codebook"])
  return out, {"loss": loss, **terms}


def code_counts(indices: jax.Array, num_codes: int, weights: jax.Array | None = None) -> jax.Array:
  """How often each code occurs in `indices` (B, ...), each image's positions counted with its `weights` (B,)."""
  if weights is not None:
    weights = jnp.broadcast_to(weights.reshape(-1, *[1] * (indices.ndim - 1)), indices.shape).reshape(-1)
  return jnp.bincount(indices.reshape(-1), weights, length=num_codes)


def usage(counts: jax.Array) -> dict[str, jax.Array]:
  """'perplexity', exp of the entropy of the code histogram `counts` (K,), and 'unused_codes', its zeros."""
  entropy = jnp.sum(jax.scipy.special.entr(counts / jnp.sum(counts)))
  return {"perplexity": jnp.exp(entropy), "unused_codes": jnp.sum(counts == 0).astype(jnp.float32)}


def ema_update(params: Params, z_e: jax.Array, indices: jax.Array, decay: float, epsilon: float) -> Params:
  """`params` with the EMA statistics moved by the batch's assignments of outputs `z_e` (..., D) to codes `indices`
  (...), and the codebook set to their Laplace-smoothed ratio (the module's docstring has the formulas)."""
  stats = params["vq_ema"]
  num_codes, dim = stats["embed_sum"].shape
  flat, ids = z_e.reshape(-1, dim), indices.reshape(-1)
  size = decay * stats["cluster_size"] + (1 - decay) * code_counts(ids, num_codes)
  embed_sum = decay * stats["embed_sum"] + (1 - decay) * jax.ops.segment_sum(flat, ids, num_codes)
  total = jnp.sum(size)
  smoothed = (size + epsilon) / (total + num_codes * epsilon) * total
  return {**params, "params": {**params["params"], "codebook": embed_sum / smoothed[:, None]},
          "vq_ema": {"cluster_size": size, "embed_sum": embed_sum}}


def train_step(model: VQVAE, config: Config, state: Any, batch: Batch, key: jax.Array) -> tuple[Any, dict]:
  """One optimiser step on the loss; with EMA then the codebook's update from the step's assignments (kept as it
  was if the encoder's outputs are not finite: the step is then skipped or stops the run); and the codes' last use."""
  del key
  vq = config.vq

  def objective(params):
    out, per_image = forward(model, config, params, batch["image"], state.hparams)
    return per_image["loss"].mean(), (out, per_image)

  (_, (out, per_image)), grads = jax.value_and_grad(objective, has_aux=True)(state.params)
  state = state.apply_gradients(grads=grads)
  if vq.ema:
    moved = ema_update(state.params, out["z_e"], out["indices"], vq.decay, vq.epsilon)
    finite = jnp.all(jnp.isfinite(out["z_e"]))
    state = state.replace(params=jax.tree.map(lambda new, old: jnp.where(finite, new, old), moved, state.params))
  counts = code_counts(out["indices"], vq.num_codes)
  last_used = jnp.where(counts > 0, state.step, state.carry["last_used"])
  dead = jnp.sum(state.step - last_used >= vq.dead_after).astype(jnp.float32)
  metrics = {**{k: v.mean() for k, v in per_image.items()}, **usage(counts), "dead_codes": dead}
  return state.replace(carry={"last_used": last_used}), metrics


def evaluate(model: VQVAE, config: Config, params: Params, batch: Batch, key: jax.Array, hp: HParams) -> dict:
  """Per test image: its loss, terms and squared error; the batch's code usage (its images only) beside each."""
  del key
  x = batch["image"]
  out, per_image = forward(model, config, params, x, hp)
  batch_usage = usage(code_counts(out["indices"], config.vq.num_codes, batch.get("valid")))
  return {**per_image, "recon_error": losses.squared_error(jax.nn.sigmoid(out["logits"]), x),
          **{k: jnp.full(len(x), v) for k, v in batch_usage.items()}}


def images(model: VQVAE, config: Config, params: Params, batch: Batch, key: jax.Array, hp: HParams) -> dict:
  """Inputs above their reconstructions; the code map of the same images, index / (K - 1) as grey levels."""
  del key, hp
  x, n = batch["image"], config.num_images
  out = model.apply(params, x)
  indices = out["indices"] if model.latent_dim is None else out["indices"][:, None]  # A vector as a 1-row map.
  code_map = indices[..., None] / (config.vq.num_codes - 1)
  return {"reconstruction": common.image_grid({"input": x, "reconstruction": jax.nn.sigmoid(out["logits"])}, n=n),
          "code_map": common.image_grid({"code index / (K - 1)": code_map}, n=n)}


registry.register("vqvae", registry.Variant(
    build_model=build_model, hparams=hparams, evaluate=evaluate, images=images, init=init, train_step=train_step,
    validate=fields.validate_vq, carry=carry, config_fields=fields.add_vq, optimizer=optimizer))
