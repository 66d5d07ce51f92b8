"""`sparse_ae`: the L1 and KL terms against numpy, KL training reaching the target activation, bad fields."""
import functools
import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from aejax import config as config_lib
from aejax import registry, train
from aejax.data import input_pipeline
from aejax.errors import ConfigError
from aejax.nn import losses
from aejax.variants.autoencoders import sparse

from conftest import REPO


def test_penalty_terms_by_hand():
  # Σ_j KL(0.5 ‖ ρ̂_j) for ρ̂ = (0.25, 0.5): 0.5·ln(0.5/0.25) + 0.5·ln(0.5/0.75) + 0 = 0.5·ln(4/3).
  assert float(losses.bernoulli_kl(0.5, jnp.array([0.25, 0.5]))) == pytest.approx(0.5 * math.log(4 / 3), rel=1e-6)
  np.testing.assert_allclose(losses.mean_absolute(jnp.array([[1.0, -2.0, 3.0, 0.0], [0.0, 0.0, 0.0, -4.0]])),
                             [1.5, 1.0])


def _numpy_penalty(sparsity: str, h: np.ndarray, rho: float) -> float:
  """L1: mean |h| over batch and units; KL: Σ_j of cross-entropy H(ρ, ρ̂_j) minus entropy H(ρ)."""
  if sparsity == "l1":
    return float(np.mean(np.abs(h)))
  rho_hat = h.mean(axis=0)
  cross_entropy = -(rho * np.log(rho_hat) + (1 - rho) * np.log(1 - rho_hat))
  entropy = -(rho * np.log(rho) + (1 - rho) * np.log(1 - rho))
  return float(np.sum(cross_entropy - entropy))


@pytest.mark.parametrize("sparsity,code_activation", [("l1", "tanh"), ("kl", "sigmoid")])
def test_loss_and_metrics_match_numpy(sparsity, code_activation):
  c = config_lib.base_config()
  c.variant, c.latent_dim, c.model.encoder_widths = "sparse_ae", 6, (16,)
  c.model.code_activation, c.sparsity, c.sparsity_weight, c.sparsity_target = code_activation, sparsity, 2.5, 0.2
  variant = registry.get("sparse_ae")
  variant.validate(c)
  x = np.random.default_rng(0).random((5, 28, 28, 1)).astype(np.float32)
  model = variant.build_model(c, (28, 28, 1))
  state = train.init_state(variant, model, c, jax.random.key(0), x)
  params, hp = state.params, state.hparams
  loss, metrics = jax.jit(functools.partial(variant.loss, model, c))(params, {"image": x}, jax.random.key(1), hp,
                                                                      jnp.int32(0))
  per_example = jax.jit(functools.partial(variant.evaluate, model, c))(params, {"image": x}, jax.random.key(1), hp)

  out = model.apply(params, x)
  h = np.asarray(out["code"], np.float64)
  recon = np.sum((1 / (1 + np.exp(-np.asarray(out["logits"], np.float64))) - x) ** 2, axis=(1, 2, 3))
  penalty = _numpy_penalty(sparsity, h, 0.2)
  assert float(metrics["sparsity_penalty"]) == pytest.approx(penalty, rel=1e-4)
  assert float(loss) == pytest.approx(recon.mean() + 2.5 * penalty, rel=1e-5)
  assert all(v.shape == (5,) for v in per_example.values())
  np.testing.assert_allclose(per_example["recon_error"], recon, rtol=1e-5)
  np.testing.assert_allclose(per_example["loss"].mean(), recon.mean() + 2.5 * penalty, rtol=1e-5)
  np.testing.assert_allclose(per_example["mean_activation"], h.mean(axis=1), rtol=1e-5)
  np.testing.assert_allclose(per_example["near_zero_fraction"], np.mean(np.abs(h) < 0.01, axis=1))
  assert float(metrics["mean_activation"]) == pytest.approx(h.mean(), rel=1e-5)


@pytest.mark.parametrize("kind", ["mlp", "conv"])
def test_test_metrics_cover_partial_batches_and_spatial_codes(kind):
  # 10 test images in evaluation batches of 4: the last batch holds 2 images and 2 rows of padding, which the
  # KL's batch mean ρ̂ must skip. A conv net's spatial code (B, 7, 7, C) counts each position × channel as a unit.
  c = config_lib.base_config()
  c.variant, c.latent_dim, c.model.encoder_widths = "sparse_ae", 6, (16,)
  c.model.kind, c.model.spatial_code, c.model.code_channels, c.model.conv_features = kind, kind == "conv", 3, (4, 8)
  c.model.code_activation, c.sparsity, c.sparsity_weight, c.sparsity_target = "sigmoid", "kl", 2.5, 0.2
  c.eval_batch_size = 4
  variant = registry.get("sparse_ae")
  rng = np.random.default_rng(0)
  images = rng.integers(0, 256, (10, 28, 28, 1), np.uint8)
  images[8], images[9] = 0, 255  # Padding repeats image 9, far from image 8: a ρ̂ that counted it would be off.
  split = input_pipeline.Split(jnp.asarray(images), jnp.zeros(10, jnp.int32))
  model = variant.build_model(c, (28, 28, 1))
  state = train.init_state(variant, model, c, jax.random.key(0), jnp.zeros((1, 28, 28, 1)))
  metrics = train.make_evaluate(variant, model, c, split, state)(state, jax.random.key(1))

  x = np.asarray(split.images, np.float32) / 255.0
  out = model.apply(state.params, x)
  h = np.asarray(out["code"], np.float64).reshape(10, -1)
  recon = np.sum((1 / (1 + np.exp(-np.asarray(out["logits"], np.float64))) - x) ** 2, axis=(1, 2, 3))
  penalty = sum(len(b) * _numpy_penalty("kl", b, 0.2) for b in (h[:4], h[4:8], h[8:])) / 10
  assert metrics["sparsity_penalty"] == pytest.approx(penalty, rel=1e-4)
  assert metrics["loss"] == pytest.approx(recon.mean() + 2.5 * penalty, rel=1e-5)
  assert metrics["mean_activation"] == pytest.approx(h.mean(), rel=1e-5)
  assert metrics["near_zero_fraction"] == pytest.approx(np.mean(h < 0.01), abs=1e-6)


def test_kl_training_brings_the_test_mean_activation_to_the_target(smoke_config, tmp_path):
  # A small net, a bigger batch (the KL acts on batch means) and more images than the smoke run, scored on the
  # whole test split (its first 512 images alone sit ~0.007 higher): the training batches reach ρ within ~100
  # steps, and the test mean lands within ~0.005 of it (0.047 to 0.052 over seeds 0-2).
  config = smoke_config("sparse_ae", sparsity_weight=30.0, sparsity_target=0.05, model__encoder_widths=(128,),
                        learning_rate=3e-3, lr_schedule="constant", batch_size=128, num_steps=300,
                        eval_every=300, checkpoint_every=300, log_every=50, data__num_train=20_000,
                        data__num_test=10_000)
  summary = train.train_and_evaluate(config, tmp_path)
  assert summary["test/mean_activation"] == pytest.approx(0.05, abs=0.02)
  assert 0 < summary["test/near_zero_fraction"] < 1
  rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
  train_rows = [r for r in rows if "train/loss" in r]
  for key in ("recon", "sparsity_penalty", "mean_activation", "near_zero_fraction"):
    assert f"train/{key}" in train_rows[0] and f"test/{key}" in summary
  assert train_rows[0]["train/mean_activation"] > 0.06 > train_rows[-1]["train/mean_activation"]


@pytest.mark.parametrize("fields,message", [
    pytest.param({"sparsity": "l2"}, "config.sparsity='l2': use one of l1, kl", id="sparsity"),
    pytest.param({"sparsity_weight": -1.0}, "config.sparsity_weight=-1.0: the penalty weight λ must be >= 0",
                 id="negative_weight"),
    pytest.param({"sparsity_target": 0.0},
                 r"config.sparsity_target=0.0: the target mean activation ρ must lie in \(0, 1\)", id="target_zero"),
    pytest.param({"sparsity_target": 1.5}, r"config.sparsity_target=1.5: .* in \(0, 1\)", id="target_above_one"),
    pytest.param({"model.code_activation": "relu"}, "config.model.code_activation='relu': sparsity='kl' needs code "
                 "units in .* --config.model.code_activation=sigmoid", id="kl_without_sigmoid"),
])
def test_bad_fields_stop_the_run_before_any_work(fields, message, tmp_path):
  config = config_lib.from_file(f"{REPO}/experiments/sparse_ae.py:smoke")
  config.update_from_flattened_dict(fields)
  with pytest.raises(ConfigError, match=message):
    train.train_and_evaluate(config, tmp_path / "run")
  assert not (tmp_path / "run").exists()


def test_l1_with_any_code_activation_is_accepted():
  config = config_lib.from_file(f"{REPO}/experiments/sparse_ae.py")
  config.sparsity, config.model.code_activation = "l1", "relu"
  sparse.validate(config)
