"""The conv nets' layers as functions: 'SAME' convolutions chosen per backend, 2x max-pooling, 2x upsampling.

On the CPU, XLA hands convolutions to YNNPACK, which runs this net's convolutions and their kernel gradients
slower than XLA's other CPU convolution (Eigen). The 'cpu' implementation computes the same convolution in
forms that XLA:CPU runs fast, and `compiler_options` turns YNNPACK's convolutions off for the programs that
train with it:

- output and input gradient with Eigen: YNNPACK declines a convolution whose output is wider than its
  input, so the output is computed one column wider and cropped, and the input's tangent is padded by
  one column, so that its transpose, the input gradient, is the wider one;
- kernel gradient: XLA's own, which `compiler_options` keeps on Eigen too; in the whole train step that beat
  YNNPACK's kernel gradients over chunks of the batch, the best form while YNNPACK took convolutions (see
  docs/performance.md);
- one-channel layers (an image in, or logits out), where Eigen's convolution is far below its speed on
  the wider layers, as matrix products: one input channel, the input's k*k shifted copies (each one
  channel wide) times the kernel; one output channel, the input times the kernel's k*k taps, then the
  k*k one-channel results shifted and summed, which is also the form of that layer's kernel gradient.

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
from ml_collections import config_dict

_NHWC = ("NHWC", "HWIO", "NHWC")
# XLA:CPU's library calls other than YNNPACK's convolutions (its dots stay), as `jax.jit(compiler_options=...)`.
CPU_COMPILER_OPTIONS = {"xla_cpu_experimental_ynn_fusion_type": "LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT"}


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


def _taps(kernel: jax.Array) -> list[tuple[int, int]]:
  """The kernel's (row, column) offsets in the row-major order of `kernel.reshape(kh * kw, ...)`."""
  return [(dy, dx) for dy in range(kernel.shape[0]) for dx in range(kernel.shape[1])]


def _one_input_conv(x: jax.Array, kernel: jax.Array, precision) -> jax.Array:
  """The 'SAME' convolution of a one-channel `x`: its shifted copies, one per tap, times the kernel."""
  kh, kw, _, features = kernel.shape
  h, w = x.shape[1:3]
  padded = jnp.pad(x[..., 0], ((0, 0), *_same_padding(kernel)))
  patches = jnp.stack([padded[:, dy:dy + h, dx:dx + w] for dy, dx in _taps(kernel)], axis=-1)
  return jnp.dot(patches, kernel.reshape(kh * kw, features), precision=precision)


def _one_output_conv(x: jax.Array, kernel: jax.Array, precision) -> jax.Array:
  """The 'SAME' convolution to one channel: `x` times each tap, then the one-channel maps shifted and summed."""
  kh, kw, channels, _ = kernel.shape
  h, w = x.shape[1:3]
  per_tap = jnp.dot(x, kernel.reshape(kh * kw, channels).T, precision=precision)
  padded = jnp.pad(per_tap, ((0, 0), *_same_padding(kernel), (0, 0)))
  return sum(padded[:, dy:dy + h, dx:dx + w, t] for t, (dy, dx) in enumerate(_taps(kernel)))[..., None]


def _has_one_output_only(kernel: jax.Array) -> bool:
  """Whether the layer maps several channels to one, the case `_one_output_conv` computes."""
  return kernel.shape[2] > 1 and kernel.shape[3] == 1


def _forward(x: jax.Array, kernel: jax.Array, precision) -> jax.Array:
  """The convolution's value: a matrix-product form for a one-channel layer, else Eigen's convolution."""
  if kernel.shape[2] == 1:
    return _one_input_conv(x, kernel, precision)
  if _has_one_output_only(kernel):
    return _one_output_conv(x, kernel, precision)
  return _wide_output_conv(x, kernel, precision)


@functools.partial(jax.custom_jvp, nondiff_argnums=(2,))
def _cpu_conv(x: jax.Array, kernel: jax.Array, precision) -> jax.Array:
  return _forward(x, kernel, precision)


def _cpu_conv_jvp(precision, primals, tangents):
  # Linear in each tangent; reverse mode transposes these terms into the input and kernel gradients.
  x, kernel = primals
  x_dot, kernel_dot = tangents
  y = _forward(x, kernel, precision)
  terms = []
  if not isinstance(x_dot, SymbolicZero):
    terms.append(_wide_input_conv(x_dot, kernel, precision))
  if not isinstance(kernel_dot, SymbolicZero):
    terms.append(_one_output_conv(x, kernel_dot, precision) if _has_one_output_only(kernel)
                 else _conv(x, kernel_dot, _same_padding(kernel), precision))
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


def compiler_options(config: config_dict.ConfigDict) -> dict[str, str] | None:
  """The XLA options for programs that train `config`'s model on this backend: YNNPACK's convolutions off for a
  conv net on the CPU path (see the module docstring); None where there is nothing to change."""
  uses_cpu_path = config.model.kind == "conv" and config.model.conv_impl in ("auto", "cpu")
  return dict(CPU_COMPILER_OPTIONS) if uses_cpu_path and jax.default_backend() == "cpu" else None


def max_pool_2x2(x: jax.Array) -> jax.Array:
  """2x2 max-pooling with stride 2 of (B, H, W, C), H and W even, as a max over reshaped 2x2 windows.

  A reduction costs XLA:CPU a fraction of `nn.max_pool`'s reduce-window and its select-and-scatter
  gradient, and its gradient less than that of the maximum of four strided slices inside the train step;
  where a window's maxima tie, the gradient is shared between them instead of going to one.
  """
  b, h, w, c = x.shape
  return x.reshape(b, h // 2, 2, w // 2, 2, c).max(axis=(2, 4))


def upsample_2x(x: jax.Array) -> jax.Array:
  """Nearest-neighbour 2x upsampling of (B, H, W, C): each pixel becomes a 2x2 block."""
  b, h, w, c = x.shape
  return jnp.broadcast_to(x[:, :, None, :, None], (b, h, 2, w, 2, c)).reshape(b, 2 * h, 2 * w, c)
