"""WAE-MMD, InfoVAE-MMD and RAE: MMD² against its U-statistic written out, the decoder penalties against `jax.jacobian`
and the decoder's parameters, the ex-post mixture's draws against its moments, short runs through the loop, and bad
fields as one line."""
import functools
import itertools
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from aejax import config as config_lib, registry, train, writers
from aejax.errors import ConfigError
from aejax.variants.variational import fields, mmd, rae

from conftest import REPO, saved_checkpoint


_mmd2 = jax.jit(mmd.mmd2, static_argnums=(2, 3))


def _kernel(kind: str, a: np.ndarray, b: np.ndarray, scales) -> float:
  squared = float(np.sum((a - b) ** 2))
  total = 0.0
  for s in scales:
    c = 2.0 * len(a) * s
    total += c / (c + squared) if kind == "imq" else np.exp(-squared / c)
  return total


def _u_statistic(kind, x, y, scales, weights):
  """MMD²_u as Gretton et al. write it, over the codes whose weight is 1, by loops over pairs."""
  x = x[weights > 0]
  n, m = len(x), len(y)
  xx = sum(_kernel(kind, x[i], x[j], scales) for i, j in itertools.permutations(range(n), 2)) / (n * (n - 1))
  yy = sum(_kernel(kind, y[i], y[j], scales) for i, j in itertools.permutations(range(m), 2)) / (m * (m - 1))
  xy = sum(_kernel(kind, x[i], y[j], scales) for i in range(n) for j in range(m)) / (n * m)
  return xx + yy - 2 * xy


@pytest.mark.parametrize("kind,scales", [("imq", (1.0,)), ("rbf", (1.0,)), ("imq", (0.1, 1.0, 10.0))])
def test_mmd2_is_the_u_statistic_of_its_kernel(kind, scales):
  rng = np.random.default_rng(0)
  x, y = rng.normal(size=(7, 3)), rng.normal(0.5, 1.5, size=(5, 3))
  weights = np.array([1, 1, 1, 1, 1, 0, 0], np.float32)  # An evaluation batch's last two rows are padding.
  for w in (np.ones(7, np.float32), weights):
    got = _mmd2(jnp.asarray(x, jnp.float32), jnp.asarray(y, jnp.float32), kind, scales, jnp.asarray(w))
    assert float(got) == pytest.approx(_u_statistic(kind, x, y, scales, w), rel=1e-4, abs=1e-6)


@pytest.mark.parametrize("kind", ["imq", "rbf"])
def test_mmd2_is_near_zero_for_one_distribution_and_clearly_positive_for_a_shifted_one(kind):
  keys = jax.random.split(jax.random.key(0))
  x, y = jax.random.normal(keys[0], (400, 8)), jax.random.normal(keys[1], (400, 8))
  same, shifted, scaled = (float(_mmd2(a, y, kind, (1.0,))) for a in (x, x + 0.5, 1.5 * x))
  assert abs(same) < 2e-3 and shifted > 10 * abs(same) and scaled > 10 * abs(same), (same, shifted, scaled)


def _rae_config(regularizer="gp", components=3):
  c = fields.add_rae(config_lib.base_config())
  c.variant, c.latent_dim, c.model.encoder_widths = "rae", 3, (8,)
  c.rae.regularizer, c.rae.components = regularizer, components
  return c


def _rae(regularizer="gp"):
  model = rae.build_model(_rae_config(regularizer), (4, 4, 1))
  return model, jax.jit(model.init)(jax.random.key(0), jnp.zeros((1, 4, 4, 1)))


def test_gradient_penalty_is_the_squared_jacobian_norm_of_the_decoded_image():
  model, params = _rae("gp")
  z = jax.random.normal(jax.random.key(1), (5, 3))
  logits, penalty = jax.jit(functools.partial(rae.decode_with_jacobian_norm, model))(params, z)
  image = lambda v: jax.nn.sigmoid(model.apply(params, v[None], method=model.decode))[0]  # noqa: E731
  jacobians = np.asarray(jax.jit(jax.vmap(jax.jacobian(image)))(z), np.float64)  # (5, 4, 4, 1, 3), one code at a time
  np.testing.assert_allclose(penalty, np.sum(jacobians ** 2, axis=(1, 2, 3, 4)), rtol=1e-4)
  np.testing.assert_allclose(logits, jax.jit(model.apply, static_argnames="method")(params, z, method=model.decode),
                             rtol=1e-5)


def test_l2_penalty_is_the_squared_norm_of_the_decoders_parameters_only():
  model, params = _rae("l2")
  expected = sum(np.sum(np.asarray(p, np.float64) ** 2) for p in jax.tree.leaves(params["params"]["decoder"]))
  value, grads = jax.jit(jax.value_and_grad(rae.decoder_l2))(params)
  assert float(value) == pytest.approx(expected, rel=1e-5)
  for name, tree in grads["params"].items():  # 2θ on the decoder, nothing on the encoder or the code layer.
    for g, p in zip(jax.tree.leaves(tree), jax.tree.leaves(params["params"][name])):
      np.testing.assert_allclose(g, 2 * p if name == "decoder" else 0 * p, rtol=1e-6)


def test_ex_post_mixture_fits_the_codes_and_its_draws_have_its_moments():
  rng = np.random.default_rng(0)
  codes = np.concatenate([rng.normal([3, 0, 0], [1.0, 0.5, 0.2], (1_500, 3)),
                          rng.multivariate_normal([-2, 1, 0], [[1, 0.8, 0], [0.8, 1, 0], [0, 0, 0.3]], 500)])
  fitted = rae.fit_density(codes.astype(np.float32), components=2)
  w, mu, tril = (np.asarray(fitted[k], np.float64) for k in ("weights", "means", "scale_trils"))
  cov = tril @ tril.transpose(0, 2, 1)
  mean = w @ mu
  total_cov = np.einsum("k,kij->ij", w, cov + np.einsum("ki,kj->kij", mu, mu)) - np.outer(mean, mean)
  assert np.allclose(np.triu(tril, 1), 0) and w.sum() == pytest.approx(1.0, abs=1e-5)
  np.testing.assert_allclose(sorted(w), [0.25, 0.75], atol=0.02)  # The two clusters, by their share of the codes.
  np.testing.assert_allclose(mean, codes.mean(0), atol=1e-3)  # EM's fixed point keeps the data's first moments,
  np.testing.assert_allclose(total_cov, np.cov(codes.T, bias=True), atol=1e-3)  # and (up to its floor) its second.

  model = rae.build_model(_rae_config(components=2), (4, 4, 1))
  draw = jax.jit(lambda density, key: model.apply({"density": density}, key, 20_000, method=model.sample_codes))
  drawn = np.asarray(draw(fitted, jax.random.key(2)), np.float64)
  np.testing.assert_allclose(drawn.mean(0), mean, atol=0.05)
  np.testing.assert_allclose(np.cov(drawn.T), total_cov, atol=0.08)


_SHORT = dict(num_steps=20, log_every=5, eval_every=20, checkpoint_every=20, learning_rate=3e-3, data__num_train=1_024,
              data__num_test=256, model__kind="mlp", model__encoder_widths=(64,), latent_dim=4, eval__num_train=256,
              num_images=4)


_WEIGHTED = {
    "wae_mmd": lambda c, t: t["recon"] + c.mmd.lambda_ * t["mmd"],
    "info_vae": lambda c, t: t["recon"] + (1 - c.mmd.alpha) * t["kl"] + (c.mmd.alpha + c.mmd.lambda_ - 1) * t["mmd"],
    "rae": lambda c, t: t["recon"] + c.beta * t["code_norm"] + c.rae.reg_weight * t["decoder_reg"],
}


@pytest.mark.parametrize("name,fields_", [
    ("wae_mmd", {"mmd__lambda_": 20.0}),
    ("info_vae", {"mmd__kernel": "rbf", "mmd__alpha": 0.25, "mmd__lambda_": 100.0}),
    ("rae", {"rae__regularizer": "gp", "rae__density_every": 10}),
])
def test_a_short_run_learns_and_its_checkpoint_samples_images(name, fields_, smoke_config, tmp_path):
  config = smoke_config(name, **_SHORT, **fields_)
  summary = train.train_and_evaluate(config, tmp_path)
  rows = [r for r in writers.read_rows(tmp_path / "metrics.jsonl") if "train/loss" in r]
  assert rows[-1]["train/loss"] < 0.8 * rows[0]["train/loss"], rows
  for r in rows:  # The loss is its terms weighted as the variant's paper has them (InfoVAE: the objective negated).
    assert r["train/loss"] == pytest.approx(_WEIGHTED[name](config, {k[6:]: v for k, v in r.items()}), rel=1e-5)
  assert np.isfinite(summary["test/mmd" if name != "rae" else "test/decoder_reg"])
  assert {"image/reconstruction", "image/samples"} <= summary.keys()

  variant = registry.get(name)
  params = saved_checkpoint(tmp_path, 20)["params"]  # What the samples suite restores.
  model = variant.build_model(config, (28, 28, 1))
  x = jax.jit(functools.partial(variant.sample, model, config))(params, jax.random.key(0), jnp.zeros(6, jnp.int32))
  assert x.shape == (6, 28, 28, 1) and float(x.min()) >= 0 and float(x.max()) <= 1
  if name == "rae":  # Refitted to the codes before steps 0 and 10: no longer the N(0, I) it starts as.
    density = params["density"]
    assert not np.allclose(density["scale_trils"], np.eye(4)) and float(jnp.sum(density["weights"])) == (
        pytest.approx(1.0, abs=1e-5))


def test_rae_resumed_between_two_refits_of_its_density_equals_an_uninterrupted_run(smoke_config, tmp_path):
  fields_ = {**_SHORT, "rae__density_every": 10, "checkpoint_every": 5, "eval_every": 20, "lr_schedule": "constant"}
  train.train_and_evaluate(smoke_config("rae", **fields_), tmp_path / "whole")
  train.train_and_evaluate(smoke_config("rae", **{**fields_, "num_steps": 15}), tmp_path / "resumed")  # Refit at 10.
  train.train_and_evaluate(smoke_config("rae", **fields_), tmp_path / "resumed")
  whole, resumed = saved_checkpoint(tmp_path / "whole", 20), saved_checkpoint(tmp_path / "resumed", 20)
  assert "density" in whole["params"]
  for x, y in zip(jax.tree.leaves(whole), jax.tree.leaves(resumed), strict=True):
    np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("name,fields_,message", [
    ("wae_mmd", {"mmd.kernel": "laplace"}, "config.mmd.kernel='laplace': use one of imq, rbf"),
    ("wae_mmd", {"mmd.scales": ()}, "config.mmd.scales=(): use one or more positive multiples"),
    ("wae_mmd", {"model.code_activation": "sigmoid"}, "config.model.code_activation='sigmoid': the codes are matched"),
    ("info_vae", {"mmd.alpha": 1.5}, "config.mmd.alpha=1.5: InfoVAE weighs the KL by 1 - α"),
    ("info_vae", {"iwae_samples": 5}, "config.iwae_samples=5: InfoVAE trains its own objective at one draw per image"),
    ("info_vae", {"mmd.lambda_": 0.5}, "config.mmd.lambda_=0.5: InfoVAE weighs MMD² by α + λ - 1 = -0.5"),
    ("rae", {"rae.regularizer": "spectral"}, "config.rae.regularizer='spectral': use one of l2, gp"),
    ("rae", {"rae.components": 5_000}, "config.rae.components=5000: a mixture is fitted to data.num_train=2048"),
    ("rae", {"rae.density_every": 0}, "config.rae.density_every=0: use the number of steps between refits"),
    ("rae", {"model.kind": "conv", "model.spatial_code": True}, "config.model.spatial_code=True: the ex-post density"),
])
def test_bad_fields_are_one_line_errors(name, fields_, message):
  config = config_lib.from_file(f"{REPO}/experiments/{name}.py:smoke")
  config.update_from_flattened_dict(fields_)
  with pytest.raises(ConfigError, match=re.escape(message)) as error:
    registry.get(name).validate(config)
  assert "\n" not in str(error.value)
