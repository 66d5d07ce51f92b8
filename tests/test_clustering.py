"""DEC's soft assignment and target distribution against their formulas in NumPy, the clustering loss against
KL(P ‖ Q), and its gradient sharpening assignments on a toy mixture."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from aejax.variants.clustering import assignments


@pytest.mark.parametrize("alpha", [1.0, 3.0])
def test_soft_assignment_and_target_match_their_formulas(alpha):
  rng = np.random.default_rng(0)
  z, centres = rng.normal(size=(20, 5)), rng.normal(size=(4, 5))
  kernel = np.array([[(1 + np.sum((zi - mu) ** 2) / alpha) ** (-(alpha + 1) / 2) for mu in centres] for zi in z])
  q = kernel / kernel.sum(axis=1, keepdims=True)
  got = np.asarray(assignments.soft_assignment(jnp.asarray(z, jnp.float32), jnp.asarray(centres, jnp.float32), alpha))
  np.testing.assert_allclose(got, q, rtol=1e-5)
  f = q.sum(axis=0)
  p = np.array([[q[i, j] ** 2 / f[j] for j in range(4)] for i in range(20)])
  p /= p.sum(axis=1, keepdims=True)
  np.testing.assert_allclose(assignments.target_distribution(jnp.asarray(q)), p, rtol=1e-5)
  kl = np.mean(np.sum(p * np.log(p / q), axis=1))
  np.testing.assert_allclose(assignments.clustering_loss(jnp.asarray(p), jnp.asarray(q)), kl, rtol=1e-4)


def test_the_target_is_sharper_than_q_and_the_loss_gradient_sharpens_assignments():
  """Three well-separated Gaussian clusters, centres started between them: steps down the KL gradient (P held
  fixed, refreshed every 10 steps, as DEC does) make the assignments more confident and keep them correct."""
  rng = np.random.default_rng(1)
  truth = np.repeat(np.arange(3), 50)
  means = np.array([[4.0, 0.0], [-4.0, 0.0], [0.0, 5.0]])
  z = jnp.asarray(means[truth] + rng.normal(size=(150, 2)), jnp.float32)
  centres = jnp.asarray(means * 0.5 + rng.normal(size=(3, 2)) * 0.3, jnp.float32)

  def loss(centres, p):
    return assignments.clustering_loss(p, assignments.soft_assignment(z, centres))

  q0 = assignments.soft_assignment(z, centres)
  p = assignments.target_distribution(q0)
  assert float(jnp.mean(jnp.max(p, axis=1))) > float(jnp.mean(jnp.max(q0, axis=1)))
  grad = jax.jit(jax.grad(loss))
  for step in range(100):
    if step % 10 == 0:
      p = assignments.target_distribution(assignments.soft_assignment(z, centres))
    centres = centres - 0.5 * grad(centres, p)
  q = assignments.soft_assignment(z, centres)
  assert float(jnp.mean(jnp.max(q, axis=1))) > float(jnp.mean(jnp.max(q0, axis=1))) + 0.1
  assert np.all(np.argmax(np.asarray(q), axis=1) == np.argmax(np.asarray(q0), axis=1))
  assert np.mean(np.argmax(np.asarray(q), axis=1) == truth) > 0.95  # The centres started near their clusters.
  assert float(assignments.changed_fraction(q0, q)) == 0.0
  assert float(assignments.changed_fraction(q0, q0[::-1])) > 0.5
