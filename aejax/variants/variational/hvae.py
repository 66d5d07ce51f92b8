"""The Hamiltonian VAE's posterior (Caterini, Doucet & Sejdinovic 2018): z_0 ~ q_0(z|x) and a momentum
ρ_0 = γ/√β_0, γ ~ N(0, I), moved by K leapfrog steps of the Hamiltonian H(z, ρ) = -log p(x, z) + ½‖ρ‖², the
momentum tempered after each step, ρ_k ← √(β_{k-1}/β_k)·ρ_k, with the paper's quadratic scheme
1/√β_k = (1 - 1/√β_0)·k²/K² + 1/√β_0, so that β_K = 1.

A leapfrog step preserves volume; the tempering scales the momentum's volume by (β_{k-1}/β_k)^{d/2} per step, in all
β_0^{d/2}. The density of (z_K, ρ_K) is therefore q_0(z_0|x)·N(ρ_0; 0, β_0⁻¹ I)/β_0^{d/2} = q_0(z_0|x)·N(γ; 0, I), and
the log-weight of the extended target p(x, z)·N(ρ; 0, I) is

    log w = log p(x, z_K) + log N(ρ_K; 0, I) - log q_0(z_0|x) - log N(γ; 0, I),

an unbiased estimate of p(x) in exp, so the ELBO, the IWAE bounds and the `nll` suite use it as any other
log-weight. The step sizes ε (one per code unit) and β_0 are learned, through ε = softplus(·) and β_0 = sigmoid(·)
(parameters of `GaussianAutoEncoder`); the leapfrog's gradients of log p(x, z) are taken inside the loss, so the
train step differentiates through them (second derivatives of the decoder).
"""
from collections.abc import Callable

import jax
import jax.numpy as jnp

from aejax.nn import models
from aejax.registry import Config, Params
from aejax.variants import common


def tempering(beta0: jax.Array, steps: int) -> jax.Array:
  """β_0, ..., β_K (K + 1,) of the quadratic scheme (the module docstring); β_K = 1."""
  k = jnp.arange(steps + 1) / steps
  inv_sqrt = (1.0 - 1.0 / jnp.sqrt(beta0)) * k**2 + 1.0 / jnp.sqrt(beta0)
  return 1.0 / jnp.square(inv_sqrt)


def leapfrog(z: jax.Array, rho: jax.Array, grad_log_joint: Callable[[jax.Array], jax.Array],
             step_size: jax.Array) -> tuple[jax.Array, jax.Array]:
  """One leapfrog step of H(z, ρ) = -log p(x, z) + ½‖ρ‖²: half a momentum step, a full position step, half a
  momentum step; volume-preserving and, with ρ negated, its own inverse."""
  rho = rho + 0.5 * step_size * grad_log_joint(z)
  z = z + step_size * rho
  return z, rho + 0.5 * step_size * grad_log_joint(z)


def log_weights(model: models.GaussianAutoEncoder, config: Config, params: Params, x: jax.Array, key: jax.Array,
                num_samples: int) -> jax.Array:
  """log w (num_samples, B) of the module docstring, for `num_samples` draws per image of `x`."""
  z_key, rho_key = jax.random.split(key)
  eps = jax.random.normal(z_key, (num_samples, x.shape[0], model.latent_dim))
  gamma = jax.random.normal(rho_key, eps.shape)
  out = model.apply(params, x, eps, method=model.posterior)
  targets = jnp.broadcast_to(x, (num_samples, *x.shape))

  def log_joint(z: jax.Array) -> jax.Array:
    """log p(x, z) per draw (num_samples, B)."""
    logits = model.apply(params, z.reshape(-1, z.shape[-1]), method=model.decode)
    log_px_z = -common.decoder_nll(config, logits, targets.reshape(logits.shape)).reshape(z.shape[:-1])
    return log_px_z + model.apply(params, z, method=model.log_prior)

  grad_log_joint = jax.grad(lambda z: jnp.sum(log_joint(z)))  # Draws are independent: one sum gives each gradient.
  step_size, beta0 = model.apply(params, method=model.leapfrog_parameters)
  betas = tempering(beta0, model.leapfrog_steps)
  z, rho = out["z"], gamma / jnp.sqrt(beta0)
  for k in range(1, model.leapfrog_steps + 1):
    z, rho = leapfrog(z, rho, grad_log_joint, step_size)
    rho = rho * jnp.sqrt(betas[k - 1] / betas[k])
  return log_joint(z) + _log_standard_normal(rho) - out["log_q"] - _log_standard_normal(gamma)


def _log_standard_normal(v: jax.Array) -> jax.Array:
  return -0.5 * jnp.sum(jnp.square(v) + jnp.log(2 * jnp.pi), axis=-1)
