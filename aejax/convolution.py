"""The conv nets' layers as functions: 'SAME' convolutions chosen per backend, 2x max-pooling, 2x upsampling.

On the CPU, XLA hands a plain 2-D convolution to YNNPACK, which runs this net's convolutions several
times slower than XLA's other CPU convolution (Eigen), above all their kernel gradients. The 'cpu'
implementation computes the same convolution in forms that XLA:CPU gives to Eigen:

- output and input gradient: YNNPACK declines a convolution whose output is wider than its input, so
  the output is computed one column wider and cropped, and the input's tangent is padded by one column,
  so that its transpose, the input gradient, is the wider one;
- kernel gradient: YNNPACK takes only 2-D convolutions, so the kernel's tangent is a 1-D convolution
  along the width with the kernel's rows stacked as input channels, whose transpose XLA runs with Eigen;
  where a side has few channels (the first and last layers) a matrix product over patches is cheaper.

A `jax.custom_jvp` ties these together, so forward and reverse mode (to any order) both work. Every
implementation computes the same function of the same `nn.Conv` parameters: checkpoints move between
backends. GPUs and TPUs keep XLA's convolution ('auto').
"""
import functools
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
from jax import lax
from jax.custom_derivatives import SymbolicZero

_NHWC = ("NHWC", "HWIO", "NHWC")
# Up to this many input or output channels, a kernel gradient is cheaper as a product over patches.
_NARROW_CHANNELS = 8


def _conv(x: jax.Array, kernel: jax.Array, padding: Sequence[tuple[int, int]], precision) -> jax.Array:
  return lax.conv_general_dilated(x, kernel, (1, 1), padding, dimension_numbers=_NHWC, precision=precision)


def _same_padding(kernel: jax.Array) -> list[tuple[int, int]]:
  return [(k // 2, k // 2) for k in kernel.shape[:2]]


def _wide_output_conv(x: jax.Array, kernel: jax.Array, precision) -> jax.Array:
  """The 'SAME' convolution, computed one output column wider (then cropped) so that XLA:CPU uses Eigen."""
  (top, bottom), (left, right) = _same_padding(kernel)
  y = _conv(x, kernel, [(top, bottom), (left, right + 1)], precision)
  return y[:, :, :x.shape[2]]


def _wide_input_conv(x: jax.Array, kernel: jax.Array, precision) -> jax.Array:
  """The 'SAME' convolution of `x` padded by one zero column, so that its transpose's output is the wider."""
  (top, bottom), (left, right) = _same_padding(kernel)
  padded = jnp.pad(x, ((0, 0), (0, 0), (1, 0), (0, 0)))
  return _conv(padded, kernel, [(top, bottom), (left - 1, right)], precision)


def _row_stacked_conv(x: jax.Array, kernel: jax.Array, precision) -> jax.Array:
  """The 'SAME' convolution as a 1-D one along the width, the kernel's rows stacked as input channels."""
  kh, kw, cin, cout = kernel.shape
  b, h, w, _ = x.shape
  padded = jnp.pad(x, ((0, 0), (kh // 2, kh // 2), (0, 0), (0, 0)))
  rows = jnp.concatenate([padded[:, i:i + h] for i in range(kh)], axis=-1).reshape(b * h, w, kh * cin)
  y = lax.conv_general_dilated(rows, kernel.transpose(1, 0, 2, 3).reshape(kw, kh * cin, cout), (1,),
                               [(kw // 2, kw // 2)], dimension_numbers=("NWC", "WIO", "NWC"), precision=precision)
  return y.reshape(b, h, w, cout)


def _shifted(x: jax.Array, kh: int, kw: int) -> jax.Array:
  """(B, H, W, kh, kw, C): the zero-padded `x` as each 'SAME' kernel tap (i, j) sees it."""
  _, h, w, _ = x.shape
  padded = jnp.pad(x, ((0, 0), (kh // 2, kh // 2), (kw // 2, kw // 2), (0, 0)))
  return jnp.stack([jnp.stack([padded[:, i:i + h, j:j + w] for j in range(kw)], axis=3) for i in range(kh)],
                   axis=3)


def _patches_conv(x: jax.Array, kernel: jax.Array, precision) -> jax.Array:
  """The 'SAME' convolution as one matrix product, over the patches of the input or of the output.

  Input patches (B, H, W, kh*kw*in) times the kernel as a (kh*kw*in, out) matrix when the input is the
  narrower side; else `x` times every tap's (in, out) matrix, each product shifted into place and summed.
  """
  kh, kw, cin, cout = kernel.shape
  if cin <= cout:
    patches = _shifted(x, kh, kw).reshape(*x.shape[:3], kh * kw * cin)
    return jnp.dot(patches, kernel.reshape(kh * kw * cin, cout), precision=precision)
  taps = jnp.dot(x, kernel.transpose(2, 0, 1, 3).reshape(cin, kh * kw * cout), precision=precision)
  taps = taps.reshape(*x.shape[:3], kh, kw, cout)
  _, h, w, _ = x.shape
  padded = jnp.pad(taps, ((0, 0), (kh // 2, kh // 2), (kw // 2, kw // 2), (0, 0), (0, 0), (0, 0)))
  return sum(padded[:, i:i + h, j:j + w, i, j] for i in range(kh) for j in range(kw))


@functools.partial(jax.custom_jvp, nondiff_argnums=(2,))
def _cpu_conv(x: jax.Array, kernel: jax.Array, precision) -> jax.Array:
  return _wide_output_conv(x, kernel, precision)


def _cpu_conv_jvp(precision, primals, tangents):
  # Linear in each tangent; reverse mode transposes these terms into the input and kernel gradients.
  x, kernel = primals
  x_dot, kernel_dot = tangents
  y = _wide_output_conv(x, kernel, precision)
  terms = []
  if not isinstance(x_dot, SymbolicZero):
    terms.append(_wide_input_conv(x_dot, kernel, precision))
  if not isinstance(kernel_dot, SymbolicZero):
    narrow = min(kernel.shape[2:]) <= _NARROW_CHANNELS
    terms.append((_patches_conv if narrow else _row_stacked_conv)(x, kernel_dot, precision))
  return y, sum(terms) if terms else jnp.zeros_like(y)


_cpu_conv.defjvp(_cpu_conv_jvp, symbolic_zeros=True)


def cpu_conv(lhs: jax.Array, rhs: jax.Array, window_strides: Sequence[int], padding, lhs_dilation=None,
             rhs_dilation=None, dimension_numbers=None, feature_group_count: int = 1, precision=None,
             preferred_element_type=None) -> jax.Array:
  """`lax.conv_general_dilated` in the forms XLA:CPU runs fastest (see the module docstring).

  Takes `lax.conv_general_dilated`'s arguments, as `nn.Conv` passes them, and supports what the conv nets
  use: NHWC inputs, HWIO kernels of odd sides, stride 1, 'SAME' padding, no dilation or groups.
  """
  ones = (1,) * (lhs.ndim - 2)
  supported = (lhs.ndim == 4 and tuple(window_strides) == ones and padding == "SAME" and feature_group_count == 1
               and tuple(lhs_dilation or ones) == ones and tuple(rhs_dilation or ones) == ones
               and lax.conv_dimension_numbers(lhs.shape, rhs.shape, dimension_numbers)
               == lax.conv_dimension_numbers(lhs.shape, rhs.shape, _NHWC)
               and all(k % 2 for k in rhs.shape[:2]) and preferred_element_type is None)
  if not supported:
    raise ValueError("cpu_conv supports NHWC/HWIO, odd kernel sides, stride 1, 'SAME' padding, no dilation or "
                     f"groups; got strides={window_strides}, padding={padding!r}, kernel {rhs.shape}")
  return _cpu_conv(lhs, rhs, precision)


def auto_conv(lhs: jax.Array, rhs: jax.Array, *args, **kwargs) -> jax.Array:
  """`cpu_conv` when tracing for the CPU, XLA's `lax.conv_general_dilated` for any other backend."""
  conv = cpu_conv if jax.default_backend() == "cpu" else lax.conv_general_dilated
  return conv(lhs, rhs, *args, **kwargs)


def conv_general_dilated(impl: str) -> Callable[..., jax.Array]:
  """The `nn.Conv(conv_general_dilated=...)` function for `config.model.conv_impl`."""
  return {"auto": auto_conv, "xla": lax.conv_general_dilated, "cpu": cpu_conv}[impl]


def max_pool_2x2(x: jax.Array) -> jax.Array:
  """2x2 max-pooling with stride 2 of (B, H, W, C), H and W even, as the max of four strided slices.

  Elementwise maxima cost XLA:CPU a fraction of `nn.max_pool`'s reduce-window and its select-and-scatter
  gradient; where a window's maxima tie, the gradient is shared between them instead of going to one.
  """
  return jnp.maximum(jnp.maximum(x[:, 0::2, 0::2], x[:, 0::2, 1::2]), jnp.maximum(x[:, 1::2, 0::2], x[:, 1::2, 1::2]))


def upsample_2x(x: jax.Array) -> jax.Array:
  """Nearest-neighbour 2x upsampling of (B, H, W, C): each pixel becomes a 2x2 block."""
  b, h, w, c = x.shape
  return jnp.broadcast_to(x[:, :, None, :, None], (b, h, 2, w, 2, c)).reshape(b, 2 * h, 2 * w, c)
