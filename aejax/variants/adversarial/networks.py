"""The players: generators map noise (and a class) to images in [-1, 1]; discriminators map images (and a class) to
one raw score d(x) per image, the logit of 'real' for the cross-entropy losses, a critic's value for Wasserstein's.

`GAN` holds one generator and one discriminator as its submodules 'generator' and 'discriminator', so a run's
parameters are `{'params': {'generator': ..., 'discriminator': ...}}` and each player's optimiser finds its own.
"""
import math
from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp


class BatchNorm(nn.Module):
  """Batch normalisation by the statistics of the batch at hand, in training and in sampling alike.

  flax's `nn.BatchNorm` also keeps running averages for inference; a generator has no inference mode worth them:
  averages collected for the raw weights do not fit their moving average (`gan.ema_decay`), and samples drawn in
  batches of hundreds normalise as in training. So no state, and samples are drawn in batches (`sample`).
  """
  epsilon: float = 1e-5

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    axes = tuple(range(x.ndim - 1))
    mean, var = jnp.mean(x, axes), jnp.var(x, axes)
    scale = self.param("scale", nn.initializers.ones, (x.shape[-1],))
    bias = self.param("bias", nn.initializers.zeros, (x.shape[-1],))
    return (x - mean) * jax.lax.rsqrt(var + self.epsilon) * scale + bias


class Embed(nn.Module):
  """A class's learned embedding (nothing for an unconditional model: `num_classes` 0)."""
  num_classes: int
  features: int

  @nn.compact
  def __call__(self, labels: jax.Array | None) -> jax.Array | None:
    return None if not self.num_classes else nn.Embed(self.num_classes, self.features)(labels)


class MLPGenerator(nn.Module):
  """Noise (joined by the class's embedding) through ReLU layers of `widths`, to tanh pixels."""
  widths: Sequence[int]
  image_shape: tuple[int, ...]
  num_classes: int = 0

  @nn.compact
  def __call__(self, z: jax.Array, labels: jax.Array | None = None) -> jax.Array:
    y = Embed(self.num_classes, z.shape[-1])(labels)
    h = z if y is None else jnp.concatenate([z, y], -1)
    for width in self.widths:
      h = nn.relu(nn.Dense(width)(h))
    return jnp.tanh(nn.Dense(math.prod(self.image_shape))(h)).reshape(-1, *self.image_shape)


class ConvGenerator(nn.Module):
  """DCGAN's generator (Radford et al. 2016) scaled to small images: noise to a (H/2^L, W/2^L, `features[-1]`) map by a
  Dense layer, then L stride-2 4×4 transposed convolutions, each doubling the size, through `features` reversed to
  the image's channels; batch norm and ReLU after every layer but the last, tanh at the end."""
  features: Sequence[int]
  image_shape: tuple[int, ...]
  num_classes: int = 0

  @nn.compact
  def __call__(self, z: jax.Array, labels: jax.Array | None = None) -> jax.Array:
    height, width, channels = self.image_shape
    scale = 2 ** len(self.features)
    y = Embed(self.num_classes, z.shape[-1])(labels)
    h = z if y is None else jnp.concatenate([z, y], -1)
    h = nn.Dense(height // scale * width // scale * self.features[-1])(h)
    h = nn.relu(BatchNorm()(h)).reshape(-1, height // scale, width // scale, self.features[-1])
    outputs = (*reversed(self.features[:-1]), channels)
    for i, features in enumerate(outputs):
      h = nn.ConvTranspose(features, (4, 4), strides=(2, 2), padding="SAME")(h)
      h = jnp.tanh(h) if i == len(outputs) - 1 else nn.relu(BatchNorm()(h))
    return h


class Discriminator(nn.Module):
  """Images to one raw score each: an MLP (`conv` False: leaky-ReLU layers of `widths` over the flattened image) or
  DCGAN's discriminator (stride-2 4×4 convolutions of `widths` features, leaky ReLU, no batch norm, so that
  gradient penalties stay per image), then a linear output. Conditional: 'embedding' joins the class's embedding
  to the input features, 'projection' adds <embed(y), φ(x)> to the output (Miyato & Koyama 2018)."""
  widths: Sequence[int]
  conv: bool
  leaky_slope: float = 0.2
  num_classes: int = 0
  conditioning: str = "projection"

  @nn.compact
  def __call__(self, x: jax.Array, labels: jax.Array | None = None) -> jax.Array:
    h = x
    if self.conv:
      for features in self.widths:
        h = nn.leaky_relu(nn.Conv(features, (4, 4), strides=(2, 2), padding="SAME")(h), self.leaky_slope)
    h = h.reshape(len(x), -1)
    if self.num_classes and self.conditioning == "embedding":
      h = jnp.concatenate([h, Embed(self.num_classes, 64)(labels)], -1)
    if not self.conv:
      for width in self.widths:
        h = nn.leaky_relu(nn.Dense(width)(h), self.leaky_slope)
    out = nn.Dense(1)(h)[:, 0]
    if self.num_classes and self.conditioning == "projection":
      out = out + jnp.sum(Embed(self.num_classes, h.shape[-1])(labels) * h, -1)
    return out


class GAN(nn.Module):
  """A generator and a discriminator, applied by `generate` and `discriminate` (`__call__`, for `init`, runs both);
  `ema`: the run keeps a moving average of the generator's weights beside them."""
  generator: nn.Module
  discriminator: nn.Module
  latent_dim: int
  ema: bool = False

  def generate(self, z: jax.Array, labels: jax.Array | None = None) -> jax.Array:
    return self.generator(z, labels)

  def discriminate(self, x: jax.Array, labels: jax.Array | None = None) -> jax.Array:
    return self.discriminator(x, labels)

  def __call__(self, x: jax.Array, labels: jax.Array | None = None) -> jax.Array:
    fake = self.generate(jnp.zeros((len(x), self.latent_dim), x.dtype), labels)
    return self.discriminate(x, labels) + self.discriminate(fake, labels)
