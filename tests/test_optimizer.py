"""`train.make_optimizer`: schedules, Adam/AdamW/SGD and clipping read off their updates, against the formulas."""
import math

import jax.numpy as jnp
import numpy as np
import pytest

from aejax import config as config_lib, train


def _updates(steps: int, grad, params=None, **fields) -> list[np.ndarray]:
  """The first `steps` updates of the optimiser `fields` configure, for a constant gradient `grad`."""
  c = config_lib.base_config()
  c.update_from_flattened_dict(fields)
  config_lib.validate(c)
  tx = train.make_optimizer(c)
  grad = jnp.asarray(grad, jnp.float32)
  params = jnp.zeros_like(grad) if params is None else jnp.asarray(params, jnp.float32)
  state, out = tx.init(params), []
  for _ in range(steps):
    update, state = tx.update(grad, state, params)
    out.append(np.asarray(update))
  return out


@pytest.mark.parametrize("schedule", ["cosine", "constant"])
def test_learning_rate_warms_up_linearly_then_follows_the_schedule(schedule):
  # Adam's update for a constant gradient is -lr_t (m̂ / √v̂ = 1), so each update reads out the learning rate.
  lr, warmup, total = 0.1, 4, 20
  updates = _updates(total, [1.0], learning_rate=lr, warmup_steps=warmup, num_steps=total, lr_schedule=schedule)
  for t, update in enumerate(updates):
    if t < warmup:
      expected = lr * t / warmup
    elif schedule == "cosine":
      expected = lr * 0.5 * (1 + math.cos(math.pi * (t - warmup) / (total - warmup)))
    else:
      expected = lr
    assert -update[0] == pytest.approx(expected, rel=1e-4, abs=1e-8), t


def test_gradients_are_clipped_to_the_global_norm():
  # SGD's first update is -lr·g (its momentum trace starts at zero); g of norm 200 is scaled to norm 2.
  (update,) = _updates(1, [100.0, -100.0, 100.0, 100.0], optimizer="sgd", learning_rate=0.5, warmup_steps=0,
                       lr_schedule="constant", grad_clip_norm=2.0)
  np.testing.assert_allclose(update, [-0.5, 0.5, -0.5, -0.5], rtol=1e-6)
  (update,) = _updates(1, [0.3, -0.4], optimizer="sgd", learning_rate=0.5, warmup_steps=0, lr_schedule="constant",
                       grad_clip_norm=2.0)  # Norm 0.5: left alone.
  np.testing.assert_allclose(update, [-0.15, 0.2], rtol=1e-6)


def test_sgd_has_momentum_and_adamw_decays_weights():
  first, second = _updates(2, [1.0], optimizer="sgd", learning_rate=0.5, warmup_steps=0, lr_schedule="constant")
  assert (first[0], second[0]) == pytest.approx((-0.5, -0.5 * 1.9))  # Trace g, then 0.9·g + g.
  # With a zero gradient Adam's part is zero, so AdamW's update is the decay alone: -lr·λ·w.
  (update,) = _updates(1, [0.0, 0.0], params=[2.0, -4.0], optimizer="adamw", weight_decay=0.1,
                       learning_rate=0.5, warmup_steps=0, lr_schedule="constant")
  np.testing.assert_allclose(update, [-0.1, 0.2], rtol=1e-6)
  (update,) = _updates(1, [0.0, 0.0], params=[2.0, -4.0], optimizer="adam", learning_rate=0.5, warmup_steps=0,
                       lr_schedule="constant")
  np.testing.assert_allclose(update, [0.0, 0.0])
