"""`rae`: the regularised autoencoder of Ghosh et al. (2020), a deterministic autoencoder whose decoder is regularised
explicitly in place of a VAE's noise on the code, and which samples from a density fitted to its codes after the fact.

loss = reconstruction (`config.loss`, summed over pixels) + β·½‖z‖² + λ·L_REG, the paper's L_REC + β·L_Z + λ·L_REG
with L_Z = ½‖z‖² (it bounds the code space), β the shared `beta` and λ = `rae.reg_weight`. L_REG, `rae.regularizer`:
- 'l2' (RAE-L2): Tikhonov regularisation, ‖θ‖² of the decoder's parameters only (weights and biases of
  `model.decoder`; the encoder and its code layer are not in it), the paper's weight decay of the decoder.
- 'gp' (RAE-GP): the gradient penalty ‖∇_z D(z)‖² at z = E(x), here per image the squared Frobenius norm of the
  Jacobian of the decoded image sigmoid(logits) in the code, exact by forward mode (one JVP per code unit, sharing
  the decoder's pass with the reconstruction). The paper writes the norm of the decoder's gradient; its authors' Keras
  code takes the gradient of ‖D(z)‖² (one vector-Jacobian product), which weighs each pixel's gradient by its value.

Ex-post density estimation: a Gaussian mixture of `rae.components` full-covariance components (10 in the paper) fitted
by EM to the codes of the whole train split; `sample` decodes its draws. The mixture lives in the model's variables,
collection 'density' (weights, means, Cholesky factors of the covariances; before the first fit N(0, I)), so the
checkpoints, resume, bundles, the pictures and the samples suite all read the one the run has; no gradient step moves
it (`optimizer`). The loop's refresh (`registry.Variant.refresh`) refits it before every `rae.density_every`-th step
(step 0 too) on the codes of the current parameters, with scikit-learn's `GaussianMixture` (k-means start, convergence
test, covariance floor) on the host through `jax.pure_callback`: EM is not written again here (a fit to MNIST's 60,000
16-d codes took 6 to 14 s of a shared 2-core CPU: refit every few thousand steps, not every one). A finished run's
density is thus that of its last refit, at most `density_every` steps before its end (the experiments decay the
learning rate to 0, so the codes barely move over those steps).
"""
import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from aejax import images as images_lib, registry
from aejax.data import input_pipeline
from aejax.nn import losses, models
from aejax.registry import Batch, Config, HParams, Params
from aejax.variants import common
from aejax.variants.variational import fields


class RegularizedAutoEncoder(models.AutoEncoder):
  """An `AutoEncoder` with the ex-post density of its codes: a Gaussian mixture of `components` components in the
  variables' 'density' collection."""
  components: int = 10

  def setup(self):
    super().setup()
    k, d = self.components, self.latent_dim
    self.weights = self.variable("density", "weights", lambda: jnp.full((k,), 1.0 / k))
    self.means = self.variable("density", "means", lambda: jnp.zeros((k, d)))
    self.scale_trils = self.variable("density", "scale_trils", lambda: jnp.broadcast_to(jnp.eye(d), (k, d, d)))

  def sample_codes(self, key: jax.Array, n: int) -> jax.Array:
    """`n` codes (n, D) drawn from the mixture: a component by its weight, then its Gaussian."""
    pick, draw = jax.random.split(key)
    k = jax.random.categorical(pick, jnp.log(self.weights.value), shape=(n,))
    eps = jax.random.normal(draw, (n, self.latent_dim))
    return self.means.value[k] + jnp.einsum("nij,nj->ni", self.scale_trils.value[k], eps)


def build_model(config: Config, input_shape: tuple[int, ...]) -> RegularizedAutoEncoder:
  encoder, decoder = models.build_backbone(config, input_shape)
  return RegularizedAutoEncoder(encoder, decoder, config.latent_dim, config.model.code_activation,
                                components=config.rae.components)


def hparams(config: Config) -> dict[str, float]:
  return {"beta": float(config.beta), "rae.reg_weight": float(config.rae.reg_weight)}


def optimizer(config: Config, make: Callable[[Config], optax.GradientTransformation]) -> optax.GradientTransformation:
  """The run's optimiser for the parameters; nothing for the density, which only the refresh sets."""

  def labels(variables: Params) -> Params:
    return {name: jax.tree.map(lambda _: "train" if name == "params" else "frozen", tree)
            for name, tree in variables.items()}

  return optax.transforms.partition({"train": make(config), "frozen": optax.set_to_zero()}, labels)


def decoder_l2(params: Params) -> jax.Array:
  """‖θ_dec‖²: the squared norm of every parameter of the decoder."""
  return sum(jnp.sum(jnp.square(p)) for p in jax.tree.leaves(params["params"]["decoder"]))


def decode_with_jacobian_norm(model: RegularizedAutoEncoder, params: Params, z: jax.Array
                              ) -> tuple[jax.Array, jax.Array]:
  """The decoder's logits at codes z (B, D), and per code the squared Frobenius norm of the Jacobian of the image
  sigmoid(logits) in z: column j of every code's Jacobian at once is one JVP along unit j (codes decode alone)."""
  logits, push = jax.linearize(functools.partial(model.apply, params, method=model.decode), z)
  basis = jnp.broadcast_to(jnp.eye(z.shape[-1], dtype=z.dtype)[:, None, :], (z.shape[-1], *z.shape))
  image = jax.nn.sigmoid(logits)
  columns = image * (1.0 - image) * jax.vmap(push)(basis)  # (D, B, H, W, C): the sigmoid's slope times the logits'.
  return logits, jnp.sum(jnp.square(columns).reshape(z.shape[-1], z.shape[0], -1), axis=(0, 2))


def terms(model: RegularizedAutoEncoder, config: Config, params: Params, x: jax.Array,
          hp: HParams) -> dict[str, jax.Array]:
  """Per image: the RAE loss and its terms, `recon`, `code_norm` (½‖z‖²) and `decoder_reg` (L_REG; for 'l2' the one
  value of the decoder), and the decoder's `logits`."""
  z = model.apply(params, x, method=model.encode)
  if config.rae.regularizer == "gp":
    logits, reg = decode_with_jacobian_norm(model, params, z)
  else:
    logits = model.apply(params, z, method=model.decode)
    reg = jnp.full((x.shape[0],), decoder_l2(params))
  recon = common.reconstruction_loss(config, logits, x)
  code_norm = 0.5 * jnp.sum(jnp.square(z), axis=-1)
  return {"loss": recon + hp["beta"] * code_norm + hp["rae.reg_weight"] * reg, "recon": recon,
          "code_norm": code_norm, "decoder_reg": reg, "logits": logits}


def loss(model: RegularizedAutoEncoder, config: Config, params: Params, batch: Batch, key: jax.Array, hp: HParams,
         step: jax.Array) -> tuple[jax.Array, dict]:
  del key, step
  means = {name: value.mean() for name, value in terms(model, config, params, batch["image"], hp).items()
           if name != "logits"}
  return means.pop("loss"), means


def evaluate(model: RegularizedAutoEncoder, config: Config, params: Params, batch: Batch, key: jax.Array,
             hp: HParams) -> dict[str, jax.Array]:
  """Per test image: the RAE `loss` and its terms, `recon_error` and `bce`."""
  del key
  x = batch["image"]
  out = terms(model, config, params, x, hp)
  logits = out.pop("logits")
  return {**out, "recon_error": losses.squared_error(jax.nn.sigmoid(logits), x),
          "bce": losses.binary_cross_entropy(logits, x)}


def fit_density(codes: np.ndarray, components: int) -> dict[str, np.ndarray]:
  """The Gaussian mixture of `components` full-covariance components that scikit-learn's EM fits to codes (N, D), as
  float32 'weights' (K,), 'means' (K, D) and 'scale_trils' (K, D, D), the covariances' Cholesky factors. Its k-means
  start draws from a fixed seed, so the fit is a function of the codes alone (a bundle member's equals its run's
  alone). Codes that are not all finite (a diverging run) give NaNs, which the loop's check of the parameters stops
  at."""
  from sklearn import mixture  # pylint: disable=g-import-not-at-top  (a second's import, for this variant only)
  k, d = components, codes.shape[-1]
  if not np.all(np.isfinite(codes)):
    return {"weights": np.full((k,), np.nan, np.float32), "means": np.full((k, d), np.nan, np.float32),
            "scale_trils": np.full((k, d, d), np.nan, np.float32)}
  gmm = mixture.GaussianMixture(k, covariance_type="full", random_state=0).fit(np.asarray(codes, np.float64))
  return {"weights": gmm.weights_.astype(np.float32), "means": gmm.means_.astype(np.float32),
          "scale_trils": np.linalg.cholesky(gmm.covariances_).astype(np.float32)}


def refresh(model: RegularizedAutoEncoder, config: Config, state: Any, split: input_pipeline.Split) -> Any:
  """`state` with its density refitted to the codes of every train image, its grey levels as evaluation sees them
  (encoded `eval_batch_size` at a time)."""
  size = min(config.eval_batch_size, split.size)
  starts = jnp.arange(0, split.size, size)

  def encode(start: jax.Array) -> jax.Array:
    rows = jnp.minimum(start + jnp.arange(size), split.size - 1)  # The last chunk repeats the last image.
    return model.apply(state.params, split.pixels(rows).astype(jnp.float32) / 255.0, method=model.encode)

  codes = jax.lax.map(encode, starts).reshape(-1, model.latent_dim)[:split.size]
  density = state.params["density"]
  shapes = jax.tree.map(lambda v: jax.ShapeDtypeStruct(v.shape, jnp.float32), density)
  fit = functools.partial(fit_density, components=model.components)
  fitted = jax.pure_callback(fit, shapes, codes, vmap_method="sequential")
  return state.replace(params={**state.params, "density": fitted})


def sample(model: RegularizedAutoEncoder, config: Config, params: Params, key: jax.Array,
           labels: jax.Array) -> jax.Array:
  """As many images as `labels` (read only for their number): the decoder's means, sigmoid(logits), at draws of the
  ex-post density."""
  del config
  z = model.apply(params, key, labels.shape[0], method=model.sample_codes)
  return jax.nn.sigmoid(model.apply(params, z, method=model.decode))


def images(model: RegularizedAutoEncoder, config: Config, params: Params, batch: Batch, key: jax.Array,
           hp: HParams) -> dict:
  """Reconstructions, and decoded draws of the ex-post density."""
  del hp
  x, n = batch["image"], config.num_images
  recon = jax.nn.sigmoid(model.apply(params, x)["logits"])
  drawn = sample(model, config, params, key, jnp.zeros((n * n,), jnp.int32))
  return {"reconstruction": common.image_grid({"input": x, "reconstruction": recon}, n=n),
          "samples": images_lib.Grid(drawn.reshape(n, n, *x.shape[1:]), ("mixture samples",))}


registry.register("rae", registry.Variant(
    build_model=build_model, hparams=hparams, loss=loss, evaluate=evaluate, images=images, sample=sample,
    validate=fields.validate_rae, config_fields=fields.add_rae, optimizer=optimizer, refresh=refresh,
    refresh_every=lambda config: config.rae.density_every))
