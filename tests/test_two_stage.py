"""The two-stage VAE: its loss against the formula, the first stage frozen through training, its samples composed of
both decoders, and bad input."""
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from aejax import train
from aejax.errors import ConfigError
from aejax.variants.variational import two_stage

from conftest import once_per_session, saved_checkpoint

SMALL = {"data__num_train": 512, "data__num_test": 128, "batch_size": 32, "eval_batch_size": 128, "log_every": 5,
         "eval_every": 40, "checkpoint_every": 40, "num_steps": 40, "eval__suites": ()}


@pytest.fixture(scope="module")
def runs(smoke_config, tmp_path_factory):
  """A small trained VAE (the first stage) and a two-stage run on it."""

  def make(root):
    train.train_and_evaluate(smoke_config("vae", model__encoder_widths=(64,), latent_dim=4, **SMALL), root / "first")
    config = smoke_config("two_stage_vae", two_stage__first_workdir=str(root / "first"), latent_dim=4,
                          two_stage__widths=(32, 32), learning_rate=3e-3, **SMALL)
    return root, config, train.train_and_evaluate(config, root / "second")

  return once_per_session(tmp_path_factory, "two-stage", make)


def test_second_stage_learns_with_the_first_stage_frozen(runs):
  root, _, summary = runs
  rows = [json.loads(line) for line in (root / "second" / "metrics.jsonl").read_text().splitlines()]
  losses = [r["train/loss"] for r in rows if "train/loss" in r]
  assert losses[-1] < losses[0] - 1.0, losses
  first = saved_checkpoint(root / "first", 40)["params"]
  carried = saved_checkpoint(root / "second", 40)["params"]["first_stage"]
  for x, y in zip(jax.tree.leaves(first), jax.tree.leaves(carried), strict=True):
    np.testing.assert_array_equal(x, y)  # Bit for bit: no gradient, no optimiser update, no weight decay.
  assert np.isfinite(summary["test/neg_elbo"]) and summary["test/gamma"] != pytest.approx(1.0, abs=1e-3)  # Learned.


def test_loss_is_the_gaussian_nll_of_learned_variance_plus_the_kl(runs):
  root, config, _ = runs
  variant = train.check_config(config)
  model = variant.build_model(config, (28, 28, 1))
  params = saved_checkpoint(root / "second", 40)["params"]
  x = jnp.asarray(np.random.default_rng(0).random((5, 28, 28, 1)), jnp.float32)
  key = jax.random.key(3)
  t = two_stage.terms(model, config, params, x, key)
  code_key, inner = jax.random.split(key)  # The draws the terms make, replayed by hand.
  u = np.asarray(model.first.model.apply(params["first_stage"], x, code_key)["z"], np.float64)
  out = model.apply({"params": params["params"]}, jnp.asarray(u, jnp.float32), inner)
  gamma = float(np.exp(params["params"]["log_gamma"]))
  mean, logvar = np.asarray(out["mean"], np.float64), np.asarray(out["logvar"], np.float64)
  recon = 0.5 * np.sum((u - np.asarray(out["logits"], np.float64)) ** 2, 1) / gamma + 2 * np.log(2 * np.pi * gamma)
  kl = 0.5 * np.sum(np.exp(logvar) + mean**2 - 1 - logvar, 1)
  np.testing.assert_allclose(t["recon"], recon, rtol=1e-4)
  np.testing.assert_allclose(t["kl"], kl, rtol=1e-4)


@pytest.mark.parametrize("gamma", [0.25, 1e-12])  # √γ = 0.5 (not γ); γ → 0: û itself, as the paper's limit.
def test_samples_go_through_the_second_decoder_its_noise_then_the_first(runs, gamma):
  root, config, _ = runs
  variant = train.check_config(config)
  model = variant.build_model(config, (28, 28, 1))
  params = saved_checkpoint(root / "second", 40)["params"]
  params["params"]["log_gamma"] = np.log(np.float32(gamma))
  key = jax.random.key(7)
  drawn = variant.sample(model, config, params, key, jnp.zeros((6,), jnp.int32))
  code_key, noise_key = jax.random.split(key)
  v = jax.random.normal(code_key, (6, 4))
  dense = params["params"]["vae"]["decoder"]  # The second decoder, applied layer by layer here.
  h = v
  for i in range(len(dense)):
    layer = dense[f"Dense_{i}"]
    h = h @ layer["kernel"] + layer["bias"]
    h = jax.nn.relu(h) if i < len(dense) - 1 else h
  u = h + np.sqrt(gamma) * jax.random.normal(noise_key, (6, 4))  # ~ N(û, γ I).
  first = model.first.model
  expected = jax.nn.sigmoid(first.apply(params["first_stage"], u, method=first.decode))
  np.testing.assert_allclose(drawn, expected, atol=1e-5)
  assert drawn.shape == (6, 28, 28, 1)
  if gamma < 1e-6:  # Decoding û alone: Dai & Wipf's sampler once γ → 0.
    np.testing.assert_allclose(drawn, jax.nn.sigmoid(first.apply(params["first_stage"], h, method=first.decode)),
                               atol=1e-5)


def test_bad_first_stages_are_one_line_each(runs, smoke_config, tmp_path):
  root, _, _ = runs
  with pytest.raises(ConfigError, match="config.two_stage.first_workdir=None: give the --workdir of a trained VAE"):
    train.check_config(smoke_config("two_stage_vae"))
  with pytest.raises(ConfigError, match="no config.json there"):
    train.check_config(smoke_config("two_stage_vae", two_stage__first_workdir=str(tmp_path)))
  with pytest.raises(ConfigError, match="that run is a two-stage VAE"):
    train.check_config(smoke_config("two_stage_vae", two_stage__first_workdir=str(root / "second")))
