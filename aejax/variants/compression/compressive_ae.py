"""`compressive_ae`: an autoencoder whose code is stored in bits (Ballé et al. 2017, with the factorized prior of
2018). The code y is rounded to integers at test time; in training, uniform noise U(-½, ½) stands in for rounding so
that gradients flow, and the factorized density's likelihood of the noisy code is the rate the coder will spend.

loss = distortion + λ · rate: the mean squared error per pixel (images in [0, 1]) plus `compress.lmbda` times the
code's information content in bits per pixel. Test metrics on the rounded code (clipped to the codec's alphabet,
`entropy.support`), the image clipped and rounded to 8 bits as a codec stores it: 'bpp' (estimated from the
likelihoods; the suite also measures the streams), 'mse' and 'psnr'.
"""
import jax
import jax.numpy as jnp

from aejax import registry
from aejax.registry import Batch, Config, HParams, Params
from aejax.variants import common
from aejax.variants.compression import entropy, fields, models, suite


def build_model(config: Config, input_shape: tuple[int, ...]) -> models.CompressiveAutoEncoder:
  s = config.compress
  return models.CompressiveAutoEncoder(s.channels, s.code_channels, s.layers, input_shape[-1], tuple(s.filters))


def hparams(config: Config) -> dict[str, float]:
  return {"compress.lmbda": float(config.compress.lmbda)}


def _pixels(x: jax.Array) -> jax.Array:
  return jnp.asarray(x.shape[1] * x.shape[2], jnp.float32)


def loss(model: models.CompressiveAutoEncoder, config: Config, params: Params, batch: Batch, key: jax.Array,
         hp: HParams, step: jax.Array) -> tuple[jax.Array, dict]:
  del config, step
  x = batch["image"]
  y = model.apply(params, x, method=model.encode)
  noisy = y + jax.random.uniform(key, y.shape, minval=-0.5, maxval=0.5)
  bpp = jnp.sum(entropy.bits(model.apply(params, noisy, method=model.likelihoods))) / (len(x) * _pixels(x))
  mse = jnp.mean((model.apply(params, noisy, method=model.decode) - x) ** 2)
  return mse + hp["compress.lmbda"] * bpp, {"mse": mse, "bpp": bpp, "psnr": -10 * jnp.log10(mse)}


def evaluate(model: models.CompressiveAutoEncoder, config: Config, params: Params, batch: Batch, key: jax.Array,
             hp: HParams) -> dict[str, jax.Array]:
  del key
  x = batch["image"]
  code = models.quantize(model, params, x, config.compress.max_code, config.compress.tail_mass)
  bits = jnp.sum(entropy.bits(model.apply(params, code, method=model.likelihoods)), axis=(1, 2, 3))
  mse = jnp.mean((models.reconstruct(model, params, code) - x) ** 2, axis=(1, 2, 3))
  bpp = bits / _pixels(x)
  return {"loss": mse + hp["compress.lmbda"] * bpp, "mse": mse, "bpp": bpp,
          "psnr": -10 * jnp.log10(jnp.maximum(mse, 1e-10))}


def images(model: models.CompressiveAutoEncoder, config: Config, params: Params, batch: Batch, key: jax.Array,
           hp: HParams) -> dict:
  del key, hp
  x = batch["image"]
  code = models.quantize(model, params, x, config.compress.max_code, config.compress.tail_mass)
  decoded = models.reconstruct(model, params, code)
  return {"reconstruction": common.image_grid({"input": x, "decoded": decoded}, n=config.num_images)}


def validate(config: Config) -> None:
  fields.validate(config)


registry.register("compressive_ae", registry.Variant(
    build_model=build_model, hparams=hparams, loss=loss, evaluate=evaluate, images=images, validate=validate,
    config_fields=fields.add, suites={"compression": suite.compression}))
