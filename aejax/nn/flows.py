"""Normalising flows for a VAE's posterior: z_0 ~ q_0(z|x) pushed through invertible maps f_T ∘ ... ∘ f_1, so that
log q(z_T|x) = log q_0(z_0|x) - Σ_t log |det ∂f_t/∂z_{t-1}|.

Each flow takes z of shape (..., B, D) (leading axes: importance samples) and the encoder's context (B, C), and
returns z_T and Σ_t log |det| of shape (..., B).

- `PlanarFlow` (Rezende & Mohamed 2015): f(z) = z + û·tanh(wᵀz + b), with û the reparametrisation of u that keeps
  wᵀû ≥ -1 so that f is invertible (their appendix A.1). Its parameters are global, shared by all images
  (non-amortised, as pythae's VAE_LinNF has them); it reads no context.
- `InverseAutoregressiveFlow` (Kingma et al. 2016): each step a MADE (Germain et al. 2015) reads z_{t-1} and the
  context h and gives m_t, s_t, where output d depends on z_{<d} only; σ_t = sigmoid(s_t) and
  z_t = σ_t ⊙ z_{t-1} + (1 - σ_t) ⊙ m_t, the paper's numerically stable form, so log |det| = Σ_d log σ_t,d.
  The order of the units is reversed between steps, so that every unit conditions on every other one.
"""
from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np


class PlanarFlow(nn.Module):
  """`steps` planar maps with global parameters (see the module docstring)."""
  steps: int

  @nn.compact
  def __call__(self, z: jax.Array, context: jax.Array) -> tuple[jax.Array, jax.Array]:
    del context
    dim = z.shape[-1]
    log_det = jnp.zeros(z.shape[:-1], z.dtype)
    init = nn.initializers.normal(0.01)
    for t in range(self.steps):
      u = self.param(f"u_{t}", init, (dim,))
      w = self.param(f"w_{t}", init, (dim,))
      b = self.param(f"b_{t}", nn.initializers.zeros, ())
      u_hat = planar_u_hat(u, w)
      activation = jnp.tanh(z @ w + b)
      psi = (1.0 - jnp.square(activation))[..., None] * w
      log_det = log_det + jnp.log(jnp.abs(1.0 + psi @ u_hat))
      z = z + activation[..., None] * u_hat
    return z, log_det


def planar_u_hat(u: jax.Array, w: jax.Array) -> jax.Array:
  """û = u + (m(wᵀu) - wᵀu)·w/‖w‖², m(a) = -1 + softplus(a): then wᵀû = m(wᵀu) > -1 and the map is invertible."""
  wu = u @ w
  return u + (jax.nn.softplus(wu) - 1.0 - wu) * w / (w @ w + 1e-12)


def made_masks(dim: int, hidden: Sequence[int]) -> list[np.ndarray]:
  """The MADE masks (inputs → hidden layers → outputs) of an autoregressive net over `dim` units in order 1..D:
  hidden unit k gets degree 1 + (k mod (D - 1)), a hidden unit sees the inputs of degree ≤ its own, an output of
  degree d sees the hidden units of degree < d. Output d then depends on inputs 1..d-1 only."""
  degrees = [np.arange(1, dim + 1)]
  degrees += [1 + np.arange(width) % max(dim - 1, 1) for width in hidden]
  masks = [(later[None, :] >= earlier[:, None]) for earlier, later in zip(degrees[:-1], degrees[1:])]
  masks.append(np.arange(1, dim + 1)[None, :] > degrees[-1][:, None])
  return [m.astype(np.float32) for m in masks]


class MaskedDense(nn.Module):
  """A Dense layer whose kernel is multiplied by a fixed 0/1 mask (in, out)."""
  mask: np.ndarray

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    kernel = self.param("kernel", nn.initializers.lecun_normal(), self.mask.shape)
    bias = self.param("bias", nn.initializers.zeros, (self.mask.shape[1],))
    return x @ (kernel * self.mask) + bias


class InverseAutoregressiveFlow(nn.Module):
  """`steps` IAF steps, each a MADE with hidden layers of `hidden` units (ELU), reading the context in its first
  hidden layer (see the module docstring)."""
  steps: int
  hidden: Sequence[int]
  forget_bias: float = 1.0  # Added to s before the sigmoid (Kingma et al.'s): at the start σ ≈ 0.73, z mostly kept.

  @nn.compact
  def __call__(self, z: jax.Array, context: jax.Array) -> tuple[jax.Array, jax.Array]:
    dim = z.shape[-1]
    masks = made_masks(dim, self.hidden)
    log_det = jnp.zeros(z.shape[:-1], z.dtype)
    for t in range(self.steps):
      h = MaskedDense(masks[0], name=f"step_{t}_in")(z) + nn.Dense(self.hidden[0], name=f"step_{t}_context")(context)
      h = nn.elu(h)
      for k, mask in enumerate(masks[1:-1]):
        h = nn.elu(MaskedDense(mask, name=f"step_{t}_hidden_{k}")(h))
      m = MaskedDense(masks[-1], name=f"step_{t}_mean")(h)
      gate = MaskedDense(masks[-1], name=f"step_{t}_scale")(h) + self.forget_bias
      sigma = jax.nn.sigmoid(gate)
      z = (sigma * z + (1.0 - sigma) * m)[..., ::-1]
      log_det = log_det + jnp.sum(jax.nn.log_sigmoid(gate), axis=-1)
    return (z[..., ::-1] if self.steps % 2 else z), log_det
