"""Encoders, decoders and the two model shapes (deterministic code, Gaussian code), in flax.linen.

Decoders return logits: `sigmoid(logits)` is the reconstruction in [0, 1]; BCE and the Bernoulli
likelihood use the logits directly for stability.
"""
import math
from collections.abc import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
from ml_collections import config_dict

from aejax.errors import ConfigError
from aejax.nn import convolution

Shape = tuple[int, ...]

ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "relu": nn.relu, "gelu": nn.gelu, "elu": nn.elu, "leaky_relu": nn.leaky_relu,
    "swish": nn.swish, "tanh": jnp.tanh, "sigmoid": nn.sigmoid, "linear": lambda x: x,
}


class MLPEncoder(nn.Module):
  """Flattens the image and applies Dense + activation per width."""
  widths: Sequence[int]
  activation: str = "relu"

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    x = x.reshape(x.shape[0], -1)
    for width in self.widths:
      x = ACTIVATIONS[self.activation](nn.Dense(width)(x))
    return x


class MLPDecoder(nn.Module):
  """Dense + activation per width, then a linear layer to the image's logits."""
  widths: Sequence[int]
  output_shape: Shape
  activation: str = "relu"

  @nn.compact
  def __call__(self, z: jax.Array) -> jax.Array:
    for width in self.widths:
      z = ACTIVATIONS[self.activation](nn.Dense(width)(z))
    return nn.Dense(math.prod(self.output_shape))(z).reshape(z.shape[0], *self.output_shape)


def conv3x3(features: int, conv_impl: str) -> nn.Conv:
  """A 3x3 'SAME' `nn.Conv` computed by `conv_impl` (see `aejax.nn.convolution`); same parameters for every impl."""
  return nn.Conv(features, (3, 3), padding="SAME", conv_general_dilated=convolution.conv_general_dilated(conv_impl))


class ConvEncoder(nn.Module):
  """3x3 conv + activation + 2x2 max-pool per feature count, then flatten or a spatial code.

  Flattened, the map feeds a vector code's layer; with `code_channels`, a last 3x3 conv to that many
  channels gives the spatial code (before its activation, which the model applies).
  """
  features: Sequence[int]
  activation: str = "relu"
  conv_impl: str = "auto"
  code_channels: int | None = None

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    for f in self.features:
      x = convolution.max_pool_2x2(ACTIVATIONS[self.activation](conv3x3(f, self.conv_impl)(x)))
    if self.code_channels is None:
      return x.reshape(x.shape[0], -1)
    return conv3x3(self.code_channels, self.conv_impl)(x)


class ConvDecoder(nn.Module):
  """Code to image logits: per feature count a 3x3 conv + activation and a 2x upsampling, then a 3x3 conv.

  A vector code (B, D) first goes through Dense + activation to the smallest feature map; a spatial code
  is that map. `upsample='transpose'` replaces each conv and nearest upsampling by one stride-2 3x3
  transposed conv.
  """
  features: Sequence[int]
  output_shape: Shape
  activation: str = "relu"
  upsample: str = "nearest"
  conv_impl: str = "auto"

  @nn.compact
  def __call__(self, z: jax.Array) -> jax.Array:
    height, width, channels = self.output_shape
    scale = 2 ** len(self.features)
    act = ACTIVATIONS[self.activation]
    x = z
    if z.ndim == 2:
      x = act(nn.Dense((height // scale) * (width // scale) * self.features[0])(z))
      x = x.reshape(z.shape[0], height // scale, width // scale, self.features[0])
    for f in self.features:
      if self.upsample == "transpose":
        x = act(nn.ConvTranspose(f, (3, 3), strides=(2, 2), padding="SAME")(x))
      else:
        x = convolution.upsample_2x(act(conv3x3(f, self.conv_impl)(x)))
    return conv3x3(channels, self.conv_impl)(x)


def conv4x4_stride2(features: int, transpose: bool = False) -> nn.Module:
  """A 4x4 'SAME' convolution of stride 2 (XLA's convolution), halving the map, or as a transposed one doubling it."""
  layer = nn.ConvTranspose if transpose else nn.Conv
  return layer(features, (4, 4), strides=(2, 2), padding="SAME")


class StridedConvEncoder(nn.Module):
  """Per feature count a 4x4 stride-2 conv + activation (each halves the map), flattened, then Dense + activation per
  width. With features (32, 32, 64, 64) and widths (256,), the 64x64 encoder that disentanglement papers share
  (Higgins et al. 2017, Burgess et al. 2018, Kim & Mnih 2018, Chen et al. 2018, Locatello et al. 2019)."""
  features: Sequence[int]
  widths: Sequence[int]
  activation: str = "relu"

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    act = ACTIVATIONS[self.activation]
    for f in self.features:
      x = act(conv4x4_stride2(f)(x))
    x = x.reshape(x.shape[0], -1)
    for width in self.widths:
      x = act(nn.Dense(width)(x))
    return x


class StridedConvDecoder(nn.Module):
  """`StridedConvEncoder`'s mirror: Dense + activation per width, Dense + activation to the smallest map of
  `features[0]` channels, a 4x4 stride-2 transposed conv + activation per further feature count (each doubles the
  map), and a last one to the image's channels (logits). The papers' decoder: widths (256,), features (64, 64, 32, 32):
  Dense 256, Dense 4x4x64, transposed convs 64-32-32-channels."""
  features: Sequence[int]
  widths: Sequence[int]
  output_shape: Shape
  activation: str = "relu"

  @nn.compact
  def __call__(self, z: jax.Array) -> jax.Array:
    act = ACTIVATIONS[self.activation]
    height, width, channels = self.output_shape
    scale = 2 ** len(self.features)
    for w in self.widths:
      z = act(nn.Dense(w)(z))
    x = act(nn.Dense((height // scale) * (width // scale) * self.features[0])(z))
    x = x.reshape(z.shape[0], height // scale, width // scale, self.features[0])
    for f in self.features[1:]:
      x = act(conv4x4_stride2(f, transpose=True)(x))
    return conv4x4_stride2(channels, transpose=True)(x)


class AutoEncoder(nn.Module):
  """x -> code h = act(Dense(encoder(x))) -> decoder logits; with `latent_dim` None, h = act(encoder(x)).

  None is for a spatial code: the encoder's last feature map is the code, with no Dense layer.
  """
  encoder: nn.Module
  decoder: nn.Module
  latent_dim: int | None
  code_activation: str = "linear"

  def setup(self):
    if self.latent_dim is not None:
      self.code = nn.Dense(self.latent_dim)

  def code_preactivation(self, x: jax.Array) -> jax.Array:
    """The code before its activation, for penalties written in closed form (the contractive AE's)."""
    h = self.encoder(x)
    return h if self.latent_dim is None else self.code(h)

  def encode(self, x: jax.Array) -> jax.Array:
    return ACTIVATIONS[self.code_activation](self.code_preactivation(x))

  def decode(self, h: jax.Array) -> jax.Array:
    return self.decoder(h)

  def __call__(self, x: jax.Array) -> dict[str, jax.Array]:
    h = self.encode(x)
    return {"code": h, "logits": self.decode(h)}


class GaussianAutoEncoder(nn.Module):
  """The VAE: mean and log-variance heads on a shared encoder, z_0 = mean + std * eps, then an optional flow.

  `prior`: 'normal' (N(0, I)), 'mog' (a mixture of `prior_components` Gaussians with learned means, variances and
  weights) or 'vamp' (VampPrior, Tomczak & Welling 2018: p(z) = (1/K) Σ_k q_0(z|u_k), the posterior's Gaussian at K
  learned pseudo-inputs u_k of `input_shape`, kept in [0, 1] like the images; q_0 before any flow). Both learned
  priors are Gaussian mixtures (`prior_mixture`). `flow`: None, or an `aejax.nn.flows` module applied to z_0 with
  the encoder's features as its context; `log_q` then includes its log-determinants. `leapfrog_steps` > 0 adds the
  Hamiltonian VAE's learned leapfrog step sizes and initial inverse temperature (aejax/variants/variational/hvae.py
  moves the draws with them), started at `leapfrog_step_size` and `leapfrog_beta0`.
  """
  encoder: nn.Module
  decoder: nn.Module
  latent_dim: int
  prior: str = "normal"
  prior_components: int = 1
  input_shape: Shape = ()
  flow: nn.Module | None = None
  leapfrog_steps: int = 0
  leapfrog_step_size: float = 0.01
  leapfrog_beta0: float = 0.3

  def setup(self):
    self.mean_head = nn.Dense(self.latent_dim)
    self.logvar_head = nn.Dense(self.latent_dim)
    if self.leapfrog_steps:  # Stored unconstrained: ε = softplus(·) > 0, β_0 = sigmoid(·) in (0, 1).
      raw_step = math.log(math.expm1(self.leapfrog_step_size))
      self.raw_leapfrog_step = self.param("leapfrog_step", nn.initializers.constant(raw_step), (self.latent_dim,))
      raw_beta0 = math.log(self.leapfrog_beta0 / (1 - self.leapfrog_beta0))
      self.raw_leapfrog_beta0 = self.param("leapfrog_beta0", nn.initializers.constant(raw_beta0), ())
    shape = (self.prior_components, self.latent_dim)
    if self.prior == "mog":
      self.prior_means = self.param("prior_means", nn.initializers.normal(1.0), shape)
      self.prior_logvars = self.param("prior_logvars", nn.initializers.zeros, shape)
      self.prior_logits = self.param("prior_logits", nn.initializers.zeros, (self.prior_components,))
    elif self.prior == "vamp":  # Tomczak & Welling's initialisation: N(0.05, 0.01²) pixels.
      self.pseudo_inputs = self.param(
          "pseudo_inputs", lambda key, s: 0.05 + 0.01 * jax.random.normal(key, s),
          (self.prior_components, *self.input_shape))

  def gaussian(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
    """The Gaussian posterior q_0(z|x) before any flow: its mean and log-variance (B, D)."""
    h = self.encoder(x)
    return self.mean_head(h), self.logvar_head(h)

  def encode(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
    """The code of x (the posterior mean, pushed through the flow where there is one: the point the decoder is
    trained on) and q_0's log-variance."""
    h = self.encoder(x)
    mean, logvar = self.mean_head(h), self.logvar_head(h)
    return (mean if self.flow is None else self.flow(mean, h)[0]), logvar

  def decode(self, z: jax.Array) -> jax.Array:
    return self.decoder(z)

  def posterior(self, x: jax.Array, eps: jax.Array) -> dict[str, jax.Array]:
    """Draws z of q(z|x) from standard normal `eps` (..., B, D), and log q(z|x) (..., B) including the flow's
    log-determinants; also the base Gaussian's 'mean' and 'logvar' (B, D)."""
    h = self.encoder(x)
    mean, logvar = self.mean_head(h), self.logvar_head(h)
    z = mean + jnp.exp(0.5 * logvar) * eps
    log_q = -0.5 * jnp.sum(jnp.square(eps) + logvar + jnp.log(2 * jnp.pi), axis=-1)
    if self.flow is not None:
      z, log_det = self.flow(z, h)
      log_q = log_q - log_det
    return {"z": z, "log_q": log_q, "mean": mean, "logvar": logvar}

  def leapfrog_parameters(self) -> tuple[jax.Array, jax.Array]:
    """The Hamiltonian VAE's step sizes ε (D,) and initial inverse temperature β_0."""
    return jax.nn.softplus(self.raw_leapfrog_step), jax.nn.sigmoid(self.raw_leapfrog_beta0)

  def prior_mixture(self) -> tuple[jax.Array, jax.Array, jax.Array]:
    """The prior as a Gaussian mixture: means and log-variances (K, D), log-weights (K,) that sum to one."""
    if self.prior == "mog":
      return self.prior_means, self.prior_logvars, jax.nn.log_softmax(self.prior_logits)
    if self.prior == "vamp":
      mean, logvar = self.gaussian(jnp.clip(self.pseudo_inputs, 0.0, 1.0))
      return mean, logvar, jnp.full((self.prior_components,), -math.log(self.prior_components))
    zeros = jnp.zeros((1, self.latent_dim))
    return zeros, zeros, jnp.zeros((1,))

  def log_prior(self, z: jax.Array) -> jax.Array:
    """log p(z) per code: z (..., D) -> (...)."""
    if self.prior == "normal":
      return -0.5 * jnp.sum(jnp.square(z) + jnp.log(2 * jnp.pi), axis=-1)
    means, logvars, log_weights = self.prior_mixture()
    precision = jnp.exp(-logvars)  # Σ_d (z_d - μ_kd)²/σ²_kd expanded into products, so no (..., K, D) array is made.
    distance = (jnp.square(z) @ precision.T - 2 * z @ (means * precision).T
                + jnp.sum(jnp.square(means) * precision, axis=-1))
    log_norm = jnp.sum(logvars, axis=-1) + self.latent_dim * jnp.log(2 * jnp.pi)
    return jax.nn.logsumexp(log_weights - 0.5 * (distance + log_norm), axis=-1)

  def sample_prior(self, key: jax.Array, n: int) -> jax.Array:
    """`n` codes (n, D) drawn from the prior."""
    if self.prior == "normal":
      return jax.random.normal(key, (n, self.latent_dim))
    means, logvars, log_weights = self.prior_mixture()
    pick, draw = jax.random.split(key)
    k = jax.random.categorical(pick, log_weights, shape=(n,))
    return means[k] + jnp.exp(0.5 * logvars[k]) * jax.random.normal(draw, (n, self.latent_dim))

  def __call__(self, x: jax.Array, key: jax.Array) -> dict[str, jax.Array]:
    """One draw z ~ q(z|x) per image (key's), its decoder logits, log q(z|x) and log p(z)."""
    out = self.posterior(x, jax.random.normal(key, (x.shape[0], self.latent_dim)))
    return {**out, "logits": self.decode(out["z"]), "log_p": self.log_prior(out["z"])}


class TwoLayerGaussianAutoEncoder(GaussianAutoEncoder, kw_only=True):
  """The VAE of two stochastic layers (Burda et al. 2016, 784-[200-200]-100-[100-100]-50): q(h1|x) q(h2|h1) and
  p(h2) p(h1|h2) p(x|h1), Gaussian but for p(x|h1), the middle maps MLPs of `top_widths`. Its code z is [h1, h2]
  (`latent_dim` = `bottom_dim` + the top's), so that the VAE's log-weights, bounds and suites read it as any code:
  `posterior` draws both layers, `log_prior` is log p(h2) + log p(h1|h2), `decode` reads h1."""
  bottom_dim: int
  top_widths: tuple[int, ...]
  activation: str = "tanh"
  prior: str = "two_layer"

  def setup(self):
    top = self.latent_dim - self.bottom_dim
    self.mean_head, self.logvar_head = nn.Dense(self.bottom_dim), nn.Dense(self.bottom_dim)
    self.top_encoder = MLPEncoder(self.top_widths, self.activation)
    self.top_mean, self.top_logvar = nn.Dense(top), nn.Dense(top)
    self.top_decoder = MLPEncoder(tuple(reversed(self.top_widths)), self.activation)
    self.bottom_mean, self.bottom_logvar = nn.Dense(self.bottom_dim), nn.Dense(self.bottom_dim)

  def _up(self, h1: jax.Array) -> tuple[jax.Array, jax.Array]:
    """q(h2|h1)'s mean and log-variance."""
    f = self.top_encoder(h1.reshape(-1, h1.shape[-1]))
    return self.top_mean(f).reshape(*h1.shape[:-1], -1), self.top_logvar(f).reshape(*h1.shape[:-1], -1)

  def _down(self, h2: jax.Array) -> tuple[jax.Array, jax.Array]:
    """p(h1|h2)'s mean and log-variance."""
    f = self.top_decoder(h2.reshape(-1, h2.shape[-1]))
    return (self.bottom_mean(f).reshape(*h2.shape[:-1], -1), self.bottom_logvar(f).reshape(*h2.shape[:-1], -1))

  def encode(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
    """[h1, h2] at the posterior means (h2's given h1's mean), and their log-variances."""
    mean, logvar = self.gaussian(x)
    top_mean, top_logvar = self._up(mean)
    return jnp.concatenate([mean, top_mean], -1), jnp.concatenate([logvar, top_logvar], -1)

  def posterior(self, x: jax.Array, eps: jax.Array) -> dict[str, jax.Array]:
    mean, logvar = self.gaussian(x)
    b = self.bottom_dim
    h1 = mean + jnp.exp(0.5 * logvar) * eps[..., :b]
    top_mean, top_logvar = self._up(h1)
    h2 = top_mean + jnp.exp(0.5 * top_logvar) * eps[..., b:]
    log_q = (-0.5 * jnp.sum(jnp.square(eps) + jnp.log(2 * jnp.pi), axis=-1)
             - 0.5 * jnp.sum(logvar, axis=-1) - 0.5 * jnp.sum(top_logvar, axis=-1))
    return {"z": jnp.concatenate([h1, h2], -1), "log_q": log_q, "mean": jnp.concatenate(
        [jnp.broadcast_to(mean, h1.shape), top_mean], -1), "logvar": jnp.concatenate(
            [jnp.broadcast_to(logvar, h1.shape), top_logvar], -1)}

  def log_prior(self, z: jax.Array) -> jax.Array:
    h1, h2 = z[..., :self.bottom_dim], z[..., self.bottom_dim:]
    mean, logvar = self._down(h2)
    log_h1 = -0.5 * jnp.sum(jnp.square(h1 - mean) * jnp.exp(-logvar) + logvar + jnp.log(2 * jnp.pi), axis=-1)
    return log_h1 - 0.5 * jnp.sum(jnp.square(h2) + jnp.log(2 * jnp.pi), axis=-1)

  def sample_prior(self, key: jax.Array, n: int) -> jax.Array:
    top_key, bottom_key = jax.random.split(key)
    h2 = jax.random.normal(top_key, (n, self.latent_dim - self.bottom_dim))
    mean, logvar = self._down(h2)
    return jnp.concatenate([mean + jnp.exp(0.5 * logvar) * jax.random.normal(bottom_key, mean.shape), h2], -1)

  def decode(self, z: jax.Array) -> jax.Array:
    return self.decoder(z[..., :self.bottom_dim])


class StackedAutoEncoder(nn.Module):
  """A stack of one-hidden-layer autoencoders: layer k is the pair (Dense `dims[k]`, Dense back to its input).

  Layer k's input is, for `concat=False`, layer k-1's code (the deep AE `D-dims[0]-...-dims[-1]` and its mirror
  once stacked), or, for `concat=True`, layer k-1's input joined with its reconstruction (twice as wide;
  the stack reconstructs the image from the first `D` outputs of the last layer). Layer 0's outputs, and in
  'concat' every layer's, are logits of values in [0, 1]; a higher layer of 'codes' reconstructs a code,
  so its output goes through the code's own activation.
  """
  dims: Sequence[int]
  output_shape: Shape
  concat: bool = False
  activation: str = "relu"
  code_activation: str = "relu"

  def setup(self):
    size = math.prod(self.output_shape)
    widths = [size * 2**k for k in range(len(self.dims))] if self.concat else [size, *self.dims[:-1]]
    self.encoders = [nn.Dense(d) for d in self.dims]
    self.decoders = [nn.Dense(w) for w in widths]

  def _code_activation(self, k: int) -> Callable[[jax.Array], jax.Array]:
    return ACTIVATIONS[self.code_activation if k == len(self.dims) - 1 else self.activation]

  def layer(self, k: int, x: jax.Array) -> dict[str, jax.Array]:
    """Layer k alone on its input x (B, width): its code and its output (logits, or a code for 'codes' k > 0)."""
    h = self._code_activation(k)(self.encoders[k](x))
    out = self.decoders[k](h)
    if k > 0 and not self.concat:
      out = self._code_activation(k - 1)(out)
    return {"code": h, "output": out}

  def layer_input(self, k: int, x: jax.Array) -> jax.Array:
    """The input (B, width) of layer k for images x, through layers 0..k-1."""
    v = x.reshape(x.shape[0], -1)
    for j in range(k):
      out = self.layer(j, v)
      v = jnp.concatenate([v, nn.sigmoid(out["output"])], axis=-1) if self.concat else out["code"]
    return v

  def __call__(self, x: jax.Array, depth: int | None = None) -> dict[str, jax.Array]:
    """The image logits through the first `depth` layers (all by default), and the code of the last of them."""
    depth = len(self.dims) if depth is None else depth
    if self.concat:
      out = self.layer(depth - 1, self.layer_input(depth - 1, x))
      h, logits = out["code"], out["output"][:, :math.prod(self.output_shape)]
    else:
      h = logits = self.layer_input(depth, x)
      for k in reversed(range(depth)):
        logits = self.decoders[k](logits)
        if k > 0:
          logits = self._code_activation(k - 1)(logits)
    return {"code": h, "logits": logits.reshape(x.shape[0], *self.output_shape)}


def build_backbone(config: config_dict.ConfigDict, input_shape: Shape) -> tuple[nn.Module, nn.Module]:
  """The encoder and decoder named by `config.model`, for images of `input_shape` (H, W, C).

  A conv encoder with `model.spatial_code` ends in its code; otherwise the model adds a vector code's layer.
  """
  m = config.model
  decoder_widths = m.decoder_widths if m.decoder_widths is not None else tuple(reversed(m.encoder_widths))
  if m.kind in ("conv", "strided_conv"):
    scale = 2 ** len(m.conv_features)
    if len(input_shape) != 3 or input_shape[0] % scale or input_shape[1] % scale:
      halvings = "2x poolings" if m.kind == "conv" else "stride-2 convolutions"
      raise ConfigError(
          f"config.model.conv_features={tuple(m.conv_features)!r}: {len(m.conv_features)} {halvings} need image "
          f"sides divisible by {scale}, got {input_shape}; use fewer conv layers")
  if m.kind == "strided_conv":
    return (StridedConvEncoder(tuple(m.conv_features), tuple(m.encoder_widths), m.activation),
            StridedConvDecoder(tuple(reversed(m.conv_features)), tuple(decoder_widths), input_shape, m.activation))
  if m.kind == "conv":
    code_channels = m.code_channels if m.spatial_code else None
    return (ConvEncoder(tuple(m.conv_features), m.activation, m.conv_impl, code_channels),
            ConvDecoder(tuple(reversed(m.conv_features)), input_shape, m.activation, m.upsample, m.conv_impl))
  return (MLPEncoder(tuple(m.encoder_widths), m.activation),
          MLPDecoder(tuple(decoder_widths), input_shape, m.activation))
