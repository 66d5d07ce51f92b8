"""`vae`/`beta_vae` losses and test metrics composed from their terms, each term computed here in numpy/scipy."""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.special
import scipy.stats

from aejax import config as config_lib, registry, train
from aejax.variants.variational import fields as vae_fields


def _setup(**fields):
  c = vae_fields.add_vae(config_lib.base_config())
  c.variant, c.latent_dim, c.model.encoder_widths = "vae", 3, (16,)
  c.update_from_flattened_dict(fields)
  variant = registry.get(c.variant)
  variant.validate(c)
  model = variant.build_model(c, (28, 28, 1))
  state = train.init_state(variant, model, c, jax.random.key(0), jnp.zeros((1, 28, 28, 1)))
  params = jax.tree.map(lambda w: 2.0 * w, state.params)  # Sharper than at init, so the terms differ clearly.
  x = np.random.default_rng(0).random((6, 28, 28, 1)).astype(np.float32)
  return c, variant, model, params, state.hparams, x


def _log_px_z(config, logits, x):
  """log p(x|z) per example: Bernoulli(sigmoid(logits)) for 'bce', N(sigmoid(logits), decoder_std²) for 'mse'."""
  logits, x = np.asarray(logits, np.float64).reshape(len(x), -1), np.asarray(x, np.float64).reshape(len(x), -1)
  if config.loss == "bce":
    return np.sum(x * -np.logaddexp(0, -logits) + (1 - x) * -np.logaddexp(0, logits), axis=1)
  return scipy.stats.norm.logpdf(x, scipy.special.expit(logits), config.decoder_std).sum(axis=1)


def _kl(mean, logvar):
  """KL(N(mean, exp(logvar)) ‖ N(0, 1)) per example, from the textbook formula."""
  mean, var = np.asarray(mean, np.float64), np.exp(np.asarray(logvar, np.float64))
  return 0.5 * np.sum(var + mean**2 - 1 - np.log(var), axis=1)


@pytest.mark.parametrize("fields,step,weight", [
    ({"variant": "beta_vae", "beta": 4.0, "kl_warmup_steps": 10}, 3, 4.0 * 0.4),  # Step 3 of 10: 4/10 of β.
    ({"beta": 1.0, "loss": "mse", "decoder_std": 0.3}, 0, 1.0),
])
def test_loss_and_test_metrics_compose_the_decoder_nll_and_the_kl(fields, step, weight):
  c, variant, model, params, hp, x = _setup(**fields)
  key = jax.random.key(3)
  loss, metrics = jax.jit(functools.partial(variant.loss, model, c))(params, {"image": x}, key, hp, jnp.int32(step))
  per_example = jax.jit(functools.partial(variant.evaluate, model, c))(params, {"image": x}, key, hp)

  out = model.apply(params, x, key)  # The loss's own draw of z for this key.
  nll, kl = -_log_px_z(c, out["logits"], x), _kl(out["mean"], out["logvar"])
  assert float(loss) == pytest.approx(nll.mean() + weight * kl.mean(), rel=1e-5)
  assert float(metrics["neg_elbo"]) == pytest.approx(nll.mean() + kl.mean(), rel=1e-5)
  assert float(metrics["kl_weight"]) == pytest.approx(weight)
  np.testing.assert_allclose(per_example["recon"], nll, rtol=1e-5)
  np.testing.assert_allclose(per_example["kl"], kl, rtol=1e-4)
  np.testing.assert_allclose(per_example["neg_elbo"], nll + kl, rtol=1e-5)  # β = 1, whatever β trains.
  np.testing.assert_allclose(per_example["loss"], nll + c.beta * kl, rtol=1e-5)  # Test loss: the full β.


def test_iwae_loss_is_the_negative_log_mean_of_the_importance_weights():
  c, variant, model, params, hp, x = _setup(iwae_samples=5)
  key = jax.random.key(4)
  loss, metrics = jax.jit(functools.partial(variant.loss, model, c))(params, {"image": x}, key, hp, jnp.int32(0))

  # The draws z_i = mean + σ·ε_i of the loss (ε from the key, as the model's code draws them), scored here.
  mean, logvar = (np.asarray(a, np.float64) for a in model.apply(params, x, method=model.encode))
  eps = np.asarray(jax.random.normal(key, (5, *mean.shape)), np.float64)
  z = mean + np.exp(0.5 * logvar) * eps
  logits = model.apply(params, jnp.asarray(z.reshape(-1, 3), jnp.float32), method=model.decode)
  log_px_z = _log_px_z(c, logits, np.broadcast_to(x, (5, *x.shape)).reshape(-1, 28, 28, 1)).reshape(5, -1)
  log_w = (log_px_z + scipy.stats.norm.logpdf(z).sum(-1)
           - scipy.stats.norm.logpdf(z, mean, np.exp(0.5 * logvar)).sum(-1))
  assert float(loss) == pytest.approx(-np.mean(scipy.special.logsumexp(log_w, axis=0) - np.log(5)), rel=1e-5)
  assert float(metrics["neg_elbo"]) == pytest.approx(-log_w.mean(), rel=1e-5)
  assert float(loss) < float(metrics["neg_elbo"]) - 1.0  # The k = 5 bound is clearly tighter here, not the ELBO.
