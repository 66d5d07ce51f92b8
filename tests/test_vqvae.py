"""VQ-VAE: the quantiser, the straight-through and codebook gradients and the EMA update against NumPy, the usage
statistics on a hand-counted histogram, training and resume through the real loop, the sweep, and bad fields by
their message."""
import functools
import json
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from aejax import config as config_lib, sweep as sweep_lib, train
from aejax.errors import ConfigError
from aejax.variants.variational import fields, vqvae

from conftest import REPO, saved_checkpoint


# A spatial code of the conv encoder: one 2x2 pooling, a 14x14 map of D = 4.
SPATIAL = {"model.kind": "conv", "model.spatial_code": True, "model.conv_features": (4,), "model.code_channels": 4}


def _tiny(**flat):
  """A tiny MLP VQ-VAE (a vector code of 8 units read as 2 groups of D = 4, 6 codes) with dotted `flat` fields set,
  checked as a run is: its config, variant, model and initial state."""
  c = fields.add_vq(config_lib.base_config())
  c.variant, c.latent_dim, c.loss, c.batch_size, c.data.num_train = "vqvae", 8, "bce", 16, 1_000
  c.model.encoder_widths = (16,)
  c.vq.num_codes, c.vq.code_dim = 6, 4
  c.update_from_flattened_dict(flat)
  variant = train.check_config(c)
  model = variant.build_model(c, (28, 28, 1))
  return c, variant, model, train.init_state(variant, model, c, jax.random.key(0), jnp.zeros((1, 28, 28, 1)))


def _binary_images(n, seed=0):
  """`n` random binary 28x28 images, a third of their pixels on."""
  return jnp.asarray(np.random.default_rng(seed).random((n, 28, 28, 1)) < 1 / 3, jnp.float32)


def _numpy_nearest(codebook, z):
  """Argmin over codes of the full squared distances, in float64."""
  z, codebook = np.asarray(z, np.float64), np.asarray(codebook, np.float64)
  return np.argmin(((z[..., None, :] - codebook) ** 2).sum(-1), axis=-1)


def _encoder_output(model, params, x):
  return np.asarray(jax.jit(functools.partial(model.apply, method=model.encoder_output))(params, x), np.float64)


def _loss_grads(model, config, params, x, hp):
  """The gradients of the batch's mean loss."""
  return jax.jit(jax.grad(lambda p: vqvae.forward(model, config, p, x, hp)[1]["loss"].mean()))(params)


# The quantiser and its gradients ----------------------------------------------------------------------------------

def test_quantiser_picks_the_nearest_code_and_the_pictures_show_the_code_map():
  rng = np.random.default_rng(0)
  codebook, z = rng.normal(size=(7, 3)).astype(np.float32), rng.normal(size=(5, 4, 3)).astype(np.float32)
  np.testing.assert_array_equal(vqvae.nearest(jnp.asarray(codebook), jnp.asarray(z)), _numpy_nearest(codebook, z))
  c, variant, model, state = _tiny(**SPATIAL)
  x = _binary_images(4)

  @jax.jit
  def outputs(params):
    code = model.apply(params, x, method=model.encode)  # What the shared suites decode.
    pictures = variant.images(model, c, params, {"image": x}, jax.random.key(0), state.hparams)
    return model.apply(params, x), code, model.apply(params, code, method=model.decode), pictures

  out, code, decoded, pictures = outputs(state.params)
  codebook = np.asarray(state.params["params"]["codebook"])
  assert out["z_e"].shape == (4, 14, 14, 4)
  np.testing.assert_array_equal(out["indices"], _numpy_nearest(codebook, _encoder_output(model, state.params, x)))
  np.testing.assert_array_equal(code, codebook[np.asarray(out["indices"])])
  np.testing.assert_allclose(decoded, out["logits"], rtol=1e-5, atol=1e-5)  # The VQ-VAE's own reconstruction.
  np.testing.assert_allclose(pictures["code_map"].rows[0, ..., 0], np.asarray(out["indices"]) / 5, rtol=1e-6)


def test_straight_through_gradient_reaches_the_encoder():
  z_e, codes = jnp.asarray([[0.3, -1.0]]), jnp.asarray([[1.0, 2.0]])
  value, vjp = jax.vjp(vqvae.straight_through, z_e, codes)
  np.testing.assert_allclose(value, codes)
  cotangent = jnp.asarray([[0.5, -2.0]])
  np.testing.assert_allclose(vjp(cotangent)[0], cotangent)  # The decoder's gradient passes to z_e unchanged,
  np.testing.assert_array_equal(vjp(cotangent)[1], 0.0)  # and none to the codes.
  c, _, model, state = _tiny(**{"vq.ema": True, "vq.beta_commit": 0.0})  # loss = the reconstruction alone.
  grads = _loss_grads(model, c, state.params, _binary_images(8), state.hparams)
  for module in ("encoder", "code"):
    assert all(np.abs(g).max() > 0 for g in jax.tree.leaves(grads["params"][module])), module
  np.testing.assert_array_equal(grads["params"]["codebook"], 0.0)


def test_codebook_term_moves_each_used_code_toward_the_mean_of_its_assigned_outputs():
  c, _, model, state = _tiny(**{"vq.beta_commit": 3.0})  # The commitment term's gradient stops at the codes.
  x = _binary_images(8, seed=1)
  grads = _loss_grads(model, c, state.params, x, state.hparams)
  codebook = np.asarray(state.params["params"]["codebook"], np.float64)
  z_e = _encoder_output(model, state.params, x).reshape(-1, 4)
  indices = _numpy_nearest(codebook, z_e)
  expected = np.zeros_like(codebook)  # d/de_k of (1/B) Σ_images Σ_{j → k} ‖z_j - e_k‖² = (2/B) n_k (e_k - mean_k).
  for k in np.unique(indices):
    assigned = z_e[indices == k]
    expected[k] = 2 / len(x) * len(assigned) * (codebook[k] - assigned.mean(0))
  np.testing.assert_allclose(grads["params"]["codebook"], expected, rtol=1e-4, atol=1e-6)
  unused = np.setdiff1d(np.arange(6), indices)
  np.testing.assert_array_equal(np.asarray(grads["params"]["codebook"])[unused], 0.0)


def test_ema_steps_match_a_numpy_transcription_and_the_optimiser_leaves_the_codebook_alone():
  c, variant, model, state = _tiny(**{"vq.ema": True, "vq.decay": 0.9, "vq.epsilon": 1e-3, "vq.dead_after": 1})
  step = jax.jit(train.make_train_step(variant, model, c))
  size, embed_sum = np.ones(6), np.asarray(state.params["params"]["codebook"], np.float64)  # N = 1, m = e_0.
  np.testing.assert_array_equal(state.params["vq_ema"]["embed_sum"], state.params["params"]["codebook"])
  for t in range(2):
    x = _binary_images(16, seed=t)
    z_e = _encoder_output(model, state.params, x).reshape(-1, 4)
    indices = _numpy_nearest(state.params["params"]["codebook"], z_e)
    counts = np.bincount(indices, minlength=6)
    sums = np.stack([z_e[indices == k].sum(0) for k in range(6)])
    size, embed_sum = 0.9 * size + 0.1 * counts, 0.9 * embed_sum + 0.1 * sums
    smoothed = (size + 1e-3) / (size.sum() + 6 * 1e-3) * size.sum()
    state, metrics = step(state, {"image": x, "label": jnp.zeros(16, jnp.int32)}, jax.random.key(t))
    np.testing.assert_allclose(state.params["vq_ema"]["cluster_size"], size, rtol=1e-5)
    np.testing.assert_allclose(state.params["vq_ema"]["embed_sum"], embed_sum, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(state.params["params"]["codebook"], embed_sum / smoothed[:, None], rtol=1e-4, atol=1e-6)
    assert float(metrics["unused_codes"]) == float(metrics["dead_codes"]) == np.sum(counts == 0)  # dead_after = 1.
    np.testing.assert_array_equal(state.carry["last_used"][counts > 0], t + 1)
  assert float(metrics["loss"]) == pytest.approx(float(metrics["recon"] + metrics["commitment"]), rel=1e-6)


def test_perplexity_and_unused_codes_of_a_hand_counted_histogram():
  usage = jax.jit(lambda indices, weights: vqvae.usage(vqvae.code_counts(indices, 5, weights)))
  indices = jnp.asarray([[0, 0], [1, 3]])  # Counts (2, 1, 0, 1, 0): p = (1/2, 1/4, 1/4) on three codes.
  stats = usage(indices, jnp.ones(2))
  assert float(stats["perplexity"]) == pytest.approx(2 ** 1.5, rel=1e-6)  # exp(½ ln 2 + 2 · ¼ ln 4) = 2^1.5.
  assert float(stats["unused_codes"]) == 2
  padded = usage(indices, jnp.asarray([1.0, 0.0]))  # The second image is padding: counts (2, 0, 0, 0, 0).
  assert (float(padded["perplexity"]), float(padded["unused_codes"])) == (pytest.approx(1.0), 4)


# Through the loop -------------------------------------------------------------------------------------------------

# The loop's checks on a Dense net with a vector code (seconds): the conv code's pictures are checked above.
RUN = {"num_steps": 20, "checkpoint_every": 10, "eval_every": 10, "log_every": 5, "data__num_test": 64,
       "vq__ema": True, "learning_rate": 3e-3, "model__kind": "mlp", "model__spatial_code": False,
       "model__encoder_widths": (64,), "latent_dim": 16}


@pytest.fixture(scope="module")
def whole_run(smoke_config, tmp_path_factory):
  """The smoke config's VQ-VAE on a Dense net with EMA, 20 steps in one go: its workdir and summary."""
  workdir = tmp_path_factory.mktemp("vqvae") / "whole"
  return workdir, train.train_and_evaluate(smoke_config("vqvae", **RUN), workdir)


def test_training_lowers_the_loss_and_logs_the_codebooks_use(whole_run):
  workdir, summary = whole_run
  rows = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
  losses = [r["train/loss"] for r in rows if "train/loss" in r]
  assert losses[-1] < 0.8 * losses[0], losses
  assert all(k in rows[0] for k in ("train/perplexity", "train/unused_codes", "train/dead_codes", "train/codebook"))
  assert 1.0 <= summary["test/perplexity"] <= 64 and 0 <= summary["test/unused_codes"] < 64
  assert summary["test/recon_error"] > 0 and summary["image/code_map"].endswith(".png")


def test_resumed_run_with_ema_equals_uninterrupted(whole_run, smoke_config):
  workdir, _ = whole_run
  resumed = workdir.parent / "resumed"
  train.train_and_evaluate(smoke_config("vqvae", **{**RUN, "num_steps": 10}), resumed)
  train.train_and_evaluate(smoke_config("vqvae", **RUN), resumed)
  whole, again = saved_checkpoint(workdir, 20), saved_checkpoint(resumed, 20)
  assert "vq_ema" in whole["params"] and "last_used" in whole["carry"]
  for x, y in zip(jax.tree.leaves(whole), jax.tree.leaves(again), strict=True):
    np.testing.assert_array_equal(x, y)


# Experiment and bad input -----------------------------------------------------------------------------------------

def test_every_member_of_the_sweep_passes_the_checks():
  members = sweep_lib.load(f"{REPO}/experiments/vqvae.py")  # Each member checked as a run would be.
  assert len(members) == 15 and all("vq.beta_commit" in m and "seed" in m for m in members.values())
  assert sweep_lib.load_curves(f"{REPO}/experiments/vqvae.py")[0][0] == "vq.beta_commit"


@pytest.mark.parametrize("flat,message", [
    ({"vq.num_codes": 1}, "config.vq.num_codes=1: use a codebook of at least 2 codes"),
    ({"vq.code_dim": 3}, "config.vq.code_dim=3: a vector code of latent_dim=8 units is quantised in groups"),
    ({"model.kind": "conv", "model.spatial_code": True, "model.code_channels": 8},
     "config.vq.code_dim=4: the encoder's spatial code has model.code_channels=8 channels"),
    ({"vq.decay": 1.0}, "config.vq.decay=1.0: use a decay in (0, 1)"),
    ({"vq.beta_commit": -1.0}, "config.vq.beta_commit=-1.0: use a weight >= 0"),
    ({"iwae_samples": 5}, "config.iwae_samples=5: the VQ-VAE has no importance-weighted bound"),
])
def test_bad_fields_are_one_line_errors(flat, message):
  with pytest.raises(ConfigError, match="^" + re.escape(message)) as error:
    _tiny(**flat)
  assert "\n" not in str(error.value)
