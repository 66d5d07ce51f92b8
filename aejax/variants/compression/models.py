"""The compressive autoencoder's networks (Ballé et al. 2017/2018's "factorized prior" model, sized by config):
strided 5x5 convolutions with generalised divisive normalisation (GDN) down to an integer code of `code_channels`,
transposed ones with its inverse back to the image, and the factorized density of the code."""
import flax.linen as nn
import jax
import jax.numpy as jnp

from aejax.variants.compression import entropy


class GDN(nn.Module):
  """Generalised divisive normalisation (Ballé et al. 2016) over channels: y_i = x_i / sqrt(β_i + Σ_j γ_ij x_j²), or
  its inverse x_i · sqrt(...) in a decoder. β and γ are kept non-negative as squares of their parameters (β above
  1e-6), starting at β = 1 and γ = 0.1 I."""
  inverse: bool = False

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    c = x.shape[-1]
    beta = self.param("beta", nn.initializers.ones, (c,))
    gamma = self.param("gamma", lambda key, shape: jnp.sqrt(0.1) * jnp.eye(shape[0]), (c, c))
    norm = jnp.sqrt(beta**2 + 1e-6 + (x**2) @ (gamma**2))
    return x * norm if self.inverse else x / norm


class CompressiveAutoEncoder(nn.Module):
  """x (B, H, W, C) in [0, 1] -> a code y (B, H/2^L, W/2^L, code_channels) -> x̂; `density` is the code's model."""
  channels: int  # The width of the hidden layers (Ballé et al.'s N).
  code_channels: int  # The code's channels (M).
  layers: int  # Stride-2 convolutions down to the code, and transposed ones back.
  image_channels: int
  filters: tuple[int, ...] = (3, 3, 3)

  def setup(self):
    down = [nn.Conv(self.channels, (5, 5), strides=(2, 2), padding="SAME") for _ in range(self.layers - 1)]
    self.analysis = down + [nn.Conv(self.code_channels, (5, 5), strides=(2, 2), padding="SAME")]
    self.analysis_gdn = [GDN() for _ in range(self.layers - 1)]
    up = [nn.ConvTranspose(self.channels, (5, 5), strides=(2, 2), padding="SAME") for _ in range(self.layers - 1)]
    self.synthesis = up + [nn.ConvTranspose(self.image_channels, (5, 5), strides=(2, 2), padding="SAME")]
    self.synthesis_gdn = [GDN(inverse=True) for _ in range(self.layers - 1)]
    self.density = entropy.FactorizedDensity(self.code_channels, self.filters)

  def encode(self, x: jax.Array) -> jax.Array:
    """The real-valued code (before quantisation)."""
    h = x - 0.5
    for conv, gdn in zip(self.analysis[:-1], self.analysis_gdn):
      h = gdn(conv(h))
    return self.analysis[-1](h)

  def decode(self, y: jax.Array) -> jax.Array:
    """The image of a code, unclipped (a codec clips it to [0, 1] and rounds it to 8 bits: `to_pixels`)."""
    h = y
    for conv, gdn in zip(self.synthesis[:-1], self.synthesis_gdn):
      h = gdn(conv(h))
    return self.synthesis[-1](h) + 0.5

  def likelihoods(self, y: jax.Array) -> jax.Array:
    return self.density(y)

  def support(self, max_code: int, tail_mass: float) -> tuple[jax.Array, jax.Array]:
    """The code's integer range [low, high]: `entropy.support`."""
    return entropy.support(self.density.logits, self.code_channels, max_code, tail_mass)

  def __call__(self, x: jax.Array) -> dict[str, jax.Array]:
    """Code, likelihoods and image of the code without noise or rounding (`init` traces every layer through it)."""
    y = self.encode(x)
    return {"code": y, "likelihoods": self.likelihoods(y), "image": self.decode(y)}


def quantize(model: CompressiveAutoEncoder, params, x: jax.Array, max_code: int, tail_mass: float) -> jax.Array:
  """The integer code of images `x` (as float32): rounded, clipped to the codec's alphabet (`entropy.support`)."""
  low, high = model.apply(params, max_code, tail_mass, method=model.support)
  return jnp.clip(jnp.round(model.apply(params, x, method=model.encode)), low, high)


def reconstruct(model: CompressiveAutoEncoder, params, code: jax.Array) -> jax.Array:
  """The 8-bit image (in [0, 1]) of an integer code: what the codec's decoder returns."""
  return to_pixels(model.apply(params, code, method=model.decode))


def to_pixels(x: jax.Array) -> jax.Array:
  """An image in [0, 1] as the 8-bit values a codec stores, back in [0, 1]: clip(round(255 x)) / 255."""
  return jnp.round(jnp.clip(x, 0.0, 1.0) * 255) / 255
