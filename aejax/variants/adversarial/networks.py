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

from aejax.nn import convolution


class BatchNorm(nn.Module):
  """Batch normalisation by the statistics of the batch at hand, in training and in sampling alike; for a
  conditional generator class-conditional (de Vries et al. 2017, as in Miyato & Koyama 2018's generator): each
  class's own scale and shift, so that the class survives the normalisation even of a batch of one class (a class
  joined to the noise alone is a constant such a batch's mean removes).

  flax's `nn.BatchNorm` also keeps running averages for inference; a generator has no inference mode worth them:
  averages collected for the raw weights do not fit their moving average (`gan.ema_decay`), and samples drawn in
  batches of hundreds normalise as in training. So no state, and samples are drawn in batches (`sample`).
  """
  num_classes: int = 0
  epsilon: float = 1e-5

  @nn.compact
  def __call__(self, x: jax.Array, labels: jax.Array | None = None) -> jax.Array:
    axes = tuple(range(x.ndim - 1))
    mean, var = jnp.mean(x, axes), jnp.var(x, axes)
    shape = (len(x),) + (1,) * (x.ndim - 2) + (x.shape[-1],)
    if self.num_classes:
      scale = 1.0 + nn.Embed(self.num_classes, x.shape[-1], embedding_init=nn.initializers.zeros)(labels)
      bias = nn.Embed(self.num_classes, x.shape[-1], embedding_init=nn.initializers.zeros)(labels)
      scale, bias = scale.reshape(shape), bias.reshape(shape)
    else:
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
  def __call__(self, z: jax.Array, labels: jax.Array | None = None, train: bool = False) -> jax.Array:
    del train  # Trains and samples alike.
    y = Embed(self.num_classes, z.shape[-1])(labels)
    h = z if y is None else jnp.concatenate([z, y], -1)
    for width in self.widths:
      h = nn.relu(nn.Dense(width)(h))
    return jnp.tanh(nn.Dense(math.prod(self.image_shape))(h)).reshape(-1, *self.image_shape)


class ConvGenerator(nn.Module):
  """DCGAN's generator (Radford et al. 2016) scaled to small images: noise to a (H/2^L, W/2^L, `features[-1]`) map by a
  Dense layer, then L stride-2 4×4 transposed convolutions, each doubling the size, through `features` reversed to
  the image's channels; batch norm (class-conditional for a conditional model) and ReLU after every layer but the
  last, tanh at the end."""
  features: Sequence[int]
  image_shape: tuple[int, ...]
  num_classes: int = 0

  @nn.compact
  def __call__(self, z: jax.Array, labels: jax.Array | None = None, train: bool = False) -> jax.Array:
    del train  # Trains and samples alike (batch statistics in both: `BatchNorm`).
    height, width, channels = self.image_shape
    scale = 2 ** len(self.features)
    y = Embed(self.num_classes, z.shape[-1])(labels)
    h = z if y is None else jnp.concatenate([z, y], -1)
    h = nn.Dense(height // scale * width // scale * self.features[-1])(h)
    h = nn.relu(BatchNorm(self.num_classes)(h, labels)).reshape(-1, height // scale, width // scale, self.features[-1])
    outputs = (*reversed(self.features[:-1]), channels)
    for i, features in enumerate(outputs):
      h = nn.ConvTranspose(features, (4, 4), strides=(2, 2), padding="SAME")(h)
      h = jnp.tanh(h) if i == len(outputs) - 1 else nn.relu(BatchNorm(self.num_classes)(h, labels))
    return h


class Discriminator(nn.Module):
  """Images to one raw score each: an MLP (`conv` False: leaky-ReLU layers of `widths` over the flattened image) or
  DCGAN's discriminator (stride-2 4×4 convolutions of `widths` features, leaky ReLU, no batch norm, so that
  gradient penalties stay per image), then a linear output. Conditional: 'embedding' joins the class's embedding
  to the input (an MLP's flattened pixels; a conv net's image as one more channel, an embedding of H·W numbers),
  'projection' adds <embed(y), φ(x)> of the last features φ(x) to the output (Miyato & Koyama 2018)."""
  widths: Sequence[int]
  conv: bool
  leaky_slope: float = 0.2
  num_classes: int = 0
  conditioning: str = "projection"

  @nn.compact
  def __call__(self, x: jax.Array, labels: jax.Array | None = None) -> jax.Array:
    h = x
    if self.num_classes and self.conditioning == "embedding":
      if self.conv:
        plane = Embed(self.num_classes, math.prod(x.shape[1:3]))(labels).reshape(*x.shape[:3], 1)
        h = jnp.concatenate([x, plane], -1)
      else:
        h = jnp.concatenate([x.reshape(len(x), -1), Embed(self.num_classes, 64)(labels)], -1)
    if self.conv:
      for features in self.widths:
        h = nn.leaky_relu(nn.Conv(features, (4, 4), strides=(2, 2), padding="SAME")(h), self.leaky_slope)
    h = h.reshape(len(x), -1)
    if not self.conv:
      for width in self.widths:
        h = nn.leaky_relu(nn.Dense(width)(h), self.leaky_slope)
    out = nn.Dense(1)(h)[:, 0]
    if self.num_classes and self.conditioning == "projection":
      out = out + jnp.sum(Embed(self.num_classes, h.shape[-1])(labels) * h, -1)
    return out


class GAN(nn.Module):
  """A generator and a discriminator, applied by `generate` and `discriminate` (`__call__`, for `init`, runs both);
  `ema`: the run keeps a moving average of the generator's weights beside them; `num_classes`: the classes both
  players are conditioned on (0: unconditional)."""
  generator: nn.Module
  discriminator: nn.Module
  latent_dim: int
  ema: bool = False
  num_classes: int = 0

  def generate(self, z: jax.Array, labels: jax.Array | None = None, train: bool = False) -> jax.Array:
    return self.generator(z, labels, train)

  def discriminate(self, x: jax.Array, labels: jax.Array | None = None) -> jax.Array:
    return self.discriminator(x, labels)

  def __call__(self, x: jax.Array, labels: jax.Array | None = None) -> jax.Array:
    fake = self.generate(jnp.zeros((len(x), self.latent_dim), x.dtype), labels)
    return self.discriminate(x, labels) + self.discriminate(fake, labels)


class MappingNetwork(nn.Module):
  """StyleGAN's mapping z -> w: z normalised to unit mean square, then `layers` leaky-ReLU Dense layers."""
  layers: int
  width: int

  @nn.compact
  def __call__(self, z: jax.Array) -> jax.Array:
    w = z * jax.lax.rsqrt(jnp.mean(z ** 2, -1, keepdims=True) + 1e-8)
    for _ in range(self.layers):
      w = nn.leaky_relu(nn.Dense(self.width)(w), 0.2)
    return w


class ModulatedConv(nn.Module):
  """StyleGAN2's modulated convolution (Karras et al. 2020): the kernel's input channels scaled by the style
  s = affine(w), then each output channel demodulated to unit expected norm. Computed as the paper's equivalent
  form, the input scaled by s, one shared convolution, the output scaled by the demodulation, so that a batch of
  styles is one convolution rather than one per example."""
  features: int
  kernel_size: int = 3
  demodulate: bool = True

  @nn.compact
  def __call__(self, x: jax.Array, w: jax.Array) -> jax.Array:
    k = self.kernel_size
    kernel = self.param("kernel", nn.initializers.variance_scaling(1.0, "fan_in", "normal"),
                        (k, k, x.shape[-1], self.features))
    s = nn.Dense(x.shape[-1], bias_init=nn.initializers.ones)(w)  # Styles start at 1: the plain convolution.
    y = jax.lax.conv_general_dilated(x * s[:, None, None, :], kernel, (1, 1), "SAME",
                                     dimension_numbers=("NHWC", "HWIO", "NHWC"))
    if self.demodulate:
      y = y * jax.lax.rsqrt(jnp.einsum("bi,io->bo", s ** 2, jnp.sum(kernel ** 2, (0, 1))) + 1e-8)[:, None, None, :]
    return y


class StyleLayer(nn.Module):
  """A modulated 3×3 convolution, per-pixel noise (one draw per pixel, a learned strength per channel), a bias and
  leaky ReLU: one of the synthesis network's layers."""
  features: int

  @nn.compact
  def __call__(self, x: jax.Array, w: jax.Array) -> jax.Array:
    y = ModulatedConv(self.features)(x, w)
    noise = jax.random.normal(self.make_rng("noise"), (*y.shape[:3], 1), y.dtype)
    y = y + self.param("noise_strength", nn.initializers.zeros, (self.features,)) * noise
    return nn.leaky_relu(y + self.param("bias", nn.initializers.zeros, (self.features,)), 0.2)


class StyleGenerator(nn.Module):
  """A small style-based generator (Karras et al. 2019, 2020): a mapping network z -> w; a learned constant of
  (H/2^L, W/2^L, `features[-1]`) through a style layer, then L stages, each a 2× nearest upsampling and a style layer
  (`features` reversed, down to `features[0]`), and a 1×1 modulated convolution to the image's channels (tanh).
  Every layer reads its own copy of w; in training, with probability `mixing`, the copies from a random layer on
  are those of a second noise vector (style mixing regularisation). Per-pixel noise comes from the 'noise' rng."""
  features: Sequence[int]
  image_shape: tuple[int, ...]
  mapping_layers: int = 4
  mixing: float = 0.9

  @nn.compact
  def __call__(self, z: jax.Array, labels: jax.Array | None = None, train: bool = False) -> jax.Array:
    del labels  # Unconditional.
    height, width, channels = self.image_shape
    scale = 2 ** len(self.features)
    stages = (self.features[-1], *reversed(self.features))
    num_styles = len(stages) + 1  # The style layers and the output's.
    mapping = MappingNetwork(self.mapping_layers, z.shape[-1])
    w = jnp.broadcast_to(mapping(z), (num_styles, *z.shape[:1], z.shape[-1]))
    if train and self.mixing > 0:
      mix_key, cut_key, other_key = jax.random.split(self.make_rng("noise"), 3)
      w_other = mapping(jax.random.normal(other_key, z.shape, z.dtype))
      cut = jnp.where(jax.random.bernoulli(mix_key, self.mixing, (len(z),)),
                      jax.random.randint(cut_key, (len(z),), 1, num_styles), num_styles)
      w = jnp.where(jnp.arange(num_styles)[:, None, None] < cut[None, :, None], w, w_other[None])
    constant = self.param("constant", nn.initializers.normal(1.0), (height // scale, width // scale, stages[0]))
    h = jnp.broadcast_to(constant, (len(z), *constant.shape))
    for i, features in enumerate(stages):
      if i:
        h = convolution.upsample_2x(h)
      h = StyleLayer(features)(h, w[i])
    return jnp.tanh(ModulatedConv(channels, kernel_size=1, demodulate=False)(h, w[-1]))


class Translator(nn.Module):
  """CycleGAN's generator (Zhu et al. 2017) scaled to small images: a 3×3 convolution of `features[0]`, stride-2 4×4
  convolutions down through `features`, `residual_blocks` residual blocks, stride-2 4×4 transposed convolutions back
  up, a 3×3 convolution to `channels` and tanh; instance norm and ReLU between."""
  features: Sequence[int]
  channels: int
  residual_blocks: int = 2

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    norm_relu = lambda h: nn.relu(nn.InstanceNorm()(h))  # noqa: E731
    h = norm_relu(nn.Conv(self.features[0], (3, 3))(x))
    for features in self.features[1:]:
      h = norm_relu(nn.Conv(features, (4, 4), strides=(2, 2), padding="SAME")(h))
    for _ in range(self.residual_blocks):
      r = norm_relu(nn.Conv(h.shape[-1], (3, 3))(h))
      h = h + nn.InstanceNorm()(nn.Conv(h.shape[-1], (3, 3))(r))
    for features in reversed(self.features[:-1]):
      h = norm_relu(nn.ConvTranspose(features, (4, 4), strides=(2, 2), padding="SAME")(h))
    return jnp.tanh(nn.Conv(self.channels, (3, 3))(h))


class TranslatorPair(nn.Module):
  """CycleGAN's two translators, 'ab' (domain A to B) and 'ba'."""
  features: Sequence[int]
  channels: int
  residual_blocks: int

  def setup(self):
    self.ab = Translator(self.features, self.channels, self.residual_blocks)
    self.ba = Translator(self.features, self.channels, self.residual_blocks)

  def __call__(self, a: jax.Array, b: jax.Array) -> tuple[jax.Array, jax.Array]:
    return self.ab(a), self.ba(b)


class DiscriminatorPair(nn.Module):
  """CycleGAN's two discriminators, 'a' and 'b', each of its own domain's images (DCGAN's)."""
  features: Sequence[int]
  leaky_slope: float

  def setup(self):
    self.a = Discriminator(self.features, True, self.leaky_slope)
    self.b = Discriminator(self.features, True, self.leaky_slope)

  def __call__(self, a: jax.Array, b: jax.Array) -> tuple[jax.Array, jax.Array]:
    return self.a(a), self.b(b)


class CycleGAN(nn.Module):
  """The translators as the 'generator' player and the discriminators as the 'discriminator' player."""
  features: Sequence[int]
  channels: int
  residual_blocks: int
  leaky_slope: float

  def setup(self):
    self.generator = TranslatorPair(self.features, self.channels, self.residual_blocks)
    self.discriminator = DiscriminatorPair(self.features, self.leaky_slope)

  def translate_ab(self, x: jax.Array) -> jax.Array:
    return self.generator.ab(x)

  def translate_ba(self, x: jax.Array) -> jax.Array:
    return self.generator.ba(x)

  def discriminate_a(self, x: jax.Array, labels: jax.Array | None = None) -> jax.Array:
    del labels
    return self.discriminator.a(x)

  def discriminate_b(self, x: jax.Array, labels: jax.Array | None = None) -> jax.Array:
    del labels
    return self.discriminator.b(x)

  def __call__(self, a: jax.Array, b: jax.Array) -> tuple[jax.Array, jax.Array]:
    return self.discriminator(*reversed(self.generator(a, b)))
