"""DEC's soft assignment, target distribution and clustering loss (Xie et al. 2016, eqs. 1-3), as pure functions.

q_ij, the probability that code z_i belongs to cluster j, is a Student-t kernel of the distance to centre μ_j:
q_ij ∝ (1 + ‖z_i - μ_j‖² / α)^(-(α + 1) / 2), normalised over j (α = 1 as in the paper). The target p_ij squares
q and divides by the cluster's soft frequency f_j = Σ_i q_ij, renormalised over j: it sharpens confident assignments
and keeps large clusters from absorbing the rest. DEC minimises KL(P ‖ Q) = Σ_i Σ_j p_ij log(p_ij / q_ij) over the
codes and the centres, P held fixed between refreshes; IDEC adds the autoencoder's reconstruction loss.
"""
import jax
import jax.numpy as jnp


def soft_assignment(z: jax.Array, centres: jax.Array, alpha: float = 1.0) -> jax.Array:
  """q (N, K): each code's (N, D) Student-t probabilities of belonging to each centre (K, D)."""
  squared = jnp.sum((z[:, None, :] - centres[None, :, :]) ** 2, axis=-1)
  logits = -(alpha + 1) / 2 * jnp.log1p(squared / alpha)
  return jax.nn.softmax(logits, axis=1)


def target_distribution(q: jax.Array) -> jax.Array:
  """p (N, K): q² / f_j with f_j = Σ_i q_ij, normalised over j (computed over the rows of `q` given)."""
  weight = q**2 / jnp.sum(q, axis=0)
  return weight / jnp.sum(weight, axis=1, keepdims=True)


def clustering_loss(p: jax.Array, q: jax.Array) -> jax.Array:
  """KL(P ‖ Q) per code, averaged over the rows: Σ_j p_ij (log p_ij - log q_ij), with 0 log 0 = 0."""
  p = jax.lax.stop_gradient(p)
  return jnp.mean(jnp.sum(jnp.where(p > 0, p * (jnp.log(jnp.where(p > 0, p, 1.0)) - jnp.log(q)), 0.0), axis=1))


def changed_fraction(before: jax.Array, after: jax.Array) -> jax.Array:
  """The share of examples whose cluster (int labels) differs between `before` and `after`: DEC stops below a
  tolerance."""
  return jnp.mean(before != after)
