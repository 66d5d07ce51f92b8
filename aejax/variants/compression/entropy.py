"""The factorized entropy model of Ballé et al. (2018, appendix 6.1): a learned density per code channel, and the
likelihoods of integer (or noisy) codes under it.

Each channel c has a cumulative c(y) = sigmoid(f_K ∘ ... ∘ f_1(y)), each f_k(x) = g_k(H_k x + b_k) with
g_k(x) = x + a_k ⊙ tanh(x), H_k = softplus(Ĥ_k) ≥ 0 and a_k = tanh(â_k) ∈ (-1, 1): a composition of increasing
functions, so c is a cumulative distribution function for any parameters. The probability of the integer bin
around y is c(y + ½) - c(y - ½); in training y carries uniform noise U(-½, ½) in place of rounding, and the same
expression is the density of the noisy code (the density of y + U convolved with the box), so the rate term is
the bits the coder will spend (Ballé et al. 2017). `aejax.variants.compression.codec` codes the rounded codes with
the probabilities of `pmf` over the integers.

No library does this in JAX (tensorflow-compression and CompressAI hold the same model for TensorFlow and PyTorch);
it is a few lines of flax.
"""
from collections.abc import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

LIKELIHOOD_BOUND = 1e-9  # Likelihoods are floored here (~30 bits), as Ballé et al.'s models do, to keep log finite.


def _softplus_inverse(x: float) -> float:
  return float(np.log(np.expm1(x)))


def _uniform_centered(key: jax.Array, shape: tuple[int, ...], dtype=jnp.float32) -> jax.Array:
  return jax.random.uniform(key, shape, dtype, -0.5, 0.5)


class FactorizedDensity(nn.Module):
  """A density per channel over the real line; `logits(y)` are the logits of its cumulative at `y`."""
  channels: int
  filters: Sequence[int] = (3, 3, 3)  # The widths of the hidden layers of each channel's f.
  init_scale: float = 10.0  # The initial density is roughly uniform over ±init_scale.

  @nn.compact
  def logits(self, y: jax.Array) -> jax.Array:
    """Logits of each channel's cumulative at `y`: (..., channels) -> (..., channels)."""
    widths = (1, *self.filters, 1)
    scale = self.init_scale ** (1 / (len(widths) - 1))
    x = jnp.moveaxis(y, -1, 0).reshape(self.channels, 1, -1)  # (C, 1, N)
    for k, (d_in, d_out) in enumerate(zip(widths[:-1], widths[1:])):
      init = _softplus_inverse(1 / scale / d_out)
      matrix = self.param(f"matrix_{k}", nn.initializers.constant(init), (self.channels, d_out, d_in))
      bias = self.param(f"bias_{k}", _uniform_centered, (self.channels, d_out, 1))
      x = jnp.einsum("coi,cin->con", jax.nn.softplus(matrix), x) + bias
      if k < len(widths) - 2:
        factor = self.param(f"factor_{k}", nn.initializers.zeros, (self.channels, d_out, 1))
        x = x + jnp.tanh(factor) * jnp.tanh(x)
    return jnp.moveaxis(x.reshape(self.channels, *y.shape[:-1]), 0, -1)

  def __call__(self, y: jax.Array) -> jax.Array:
    """The likelihood of each entry of `y` (..., channels): the mass of the unit bin around it, floored at
    `LIKELIHOOD_BOUND`."""
    return bin_mass(self.logits(y - 0.5), self.logits(y + 0.5))


@jax.custom_vjp
def floor(x: jax.Array) -> jax.Array:
  """max(x, LIKELIHOOD_BOUND), whose gradient still flows where it would raise x from below the floor (as
  tensorflow-compression's lower bound): a code stuck far in a tail keeps pulling its likelihood up."""
  return jnp.maximum(x, LIKELIHOOD_BOUND)


def _floor_forward(x: jax.Array) -> tuple[jax.Array, jax.Array]:
  return floor(x), x


def _floor_backward(x: jax.Array, g: jax.Array) -> tuple[jax.Array]:
  return (jnp.where((x >= LIKELIHOOD_BOUND) | (g < 0), g, 0.0),)


floor.defvjp(_floor_forward, _floor_backward)


def bin_mass(lower: jax.Array, upper: jax.Array) -> jax.Array:
  """sigmoid(upper) - sigmoid(lower), computed on the side of the median where both sigmoids are small (in the upper
  tail both are near 1, and their difference would cancel to 0 in float32), floored at `LIKELIHOOD_BOUND`."""
  sign = jax.lax.stop_gradient(jnp.where(lower + upper > 0, -1.0, 1.0))
  return floor(jnp.abs(jax.nn.sigmoid(sign * upper) - jax.nn.sigmoid(sign * lower)))


def bits(likelihoods: jax.Array) -> jax.Array:
  """-log2 of likelihoods: the information content in bits."""
  return -jnp.log2(likelihoods)


def support(logits: Callable[[jax.Array], jax.Array], channels: int, max_code: int,
            tail_mass: float) -> tuple[jax.Array, jax.Array]:
  """The integers [low, high] (int32 scalars) that hold every channel's mass but `tail_mass` (at most half on each
  side), searched within ±max_code, of the density whose cumulative's `logits` (`FactorizedDensity.logits`) are
  given: the model clips its test-time codes to them (the codec to `numpy_support`'s, the same but for rounding)."""
  grid = jnp.arange(-max_code, max_code + 1, dtype=jnp.float32)
  edges = jnp.repeat(grid[:, None], channels, 1)
  below = jax.nn.sigmoid(logits(edges + 0.5))  # (G, C): each channel's mass up to and including each integer's bin.
  above = jax.nn.sigmoid(-logits(edges - 0.5))  # Its mass from each integer's bin up.
  first = jnp.argmax(jnp.any(below >= tail_mass / 2, axis=1))
  last = len(grid) - 1 - jnp.argmax(jnp.any(above >= tail_mass / 2, axis=1)[::-1])
  return (first - max_code).astype(jnp.int32), (last - max_code).astype(jnp.int32)


# The codec's tables, in float64 NumPy from the density's parameters: the encoder and the decoder must build the same
# tables wherever they run, and XLA's float32 sigmoid, softplus and tanh differ in their last bits between a CPU and a
# GPU.

def numpy_logits(params: dict, y: np.ndarray) -> np.ndarray:
  """`FactorizedDensity.logits` in float64 NumPy: params the density's own ('matrix_k', 'bias_k', 'factor_k'), y
  (N, channels)."""
  p = {name: np.asarray(value, np.float64) for name, value in params.items()}
  x = np.asarray(y, np.float64).T[:, None, :]  # (C, 1, N)
  k = 0
  while f"matrix_{k}" in p:
    x = np.einsum("coi,cin->con", np.logaddexp(0.0, p[f"matrix_{k}"]), x) + p[f"bias_{k}"]
    if f"factor_{k}" in p:
      x = x + np.tanh(p[f"factor_{k}"]) * np.tanh(x)
    k += 1
  return x[:, 0, :].T


def _expit(x: np.ndarray) -> np.ndarray:
  """The logistic function in float64, SciPy's: imported on the codec's first use, not by every run (0.12 s)."""
  import scipy.special  # pylint: disable=g-import-not-at-top
  return scipy.special.expit(x)


def numpy_support(params: dict, max_code: int, tail_mass: float) -> tuple[int, int]:
  """`support` in float64 NumPy (the codec's alphabet)."""
  channels = np.asarray(params["bias_0"]).shape[0]
  edges = np.repeat(np.arange(-max_code, max_code + 1, dtype=np.float64)[:, None], channels, 1)
  below = _expit(numpy_logits(params, edges + 0.5))
  above = _expit(-numpy_logits(params, edges - 0.5))
  first = int(np.argmax(np.any(below >= tail_mass / 2, axis=1)))
  last = len(edges) - 1 - int(np.argmax(np.any(above >= tail_mass / 2, axis=1)[::-1]))
  return first - max_code, last - max_code


def numpy_pmf(params: dict, low: int, high: int) -> np.ndarray:
  """Each channel's probabilities of the integers low..high, (channels, high - low + 1), float64, as `bin_mass`
  gives them (unnormalised)."""
  channels = np.asarray(params["bias_0"]).shape[0]
  edges = np.repeat(np.arange(low, high + 1, dtype=np.float64)[:, None], channels, 1)
  lower, upper = numpy_logits(params, edges - 0.5), numpy_logits(params, edges + 0.5)
  sign = np.where(lower + upper > 0, -1.0, 1.0)
  mass = np.abs(_expit(sign * upper) - _expit(sign * lower))
  return np.maximum(mass, LIKELIHOOD_BOUND).T
