"""The variational family's bounds (MIWAE, PIWAE, CIWAE), learned priors (mixture of Gaussians, VampPrior) and
posterior flows (planar, IAF), each against an independent computation; training, resume and bad input."""
import functools
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.special
import scipy.stats

from aejax import config as config_lib, evaluate, registry, sweep as sweep_lib, train
from aejax.errors import ConfigError
from aejax.nn import flows
from aejax.variants import common
from aejax.variants.variational import fields, hvae, vae

from conftest import REPO, saved_checkpoint


def _config(**flat):
  """A tiny MLP `vae` on 28x28 images with dotted `flat` fields set, checked as a run is."""
  c = fields.add_vae(config_lib.base_config())
  c.variant, c.latent_dim, c.loss, c.model.encoder_widths = "vae", 3, "bce", (16,)
  c.vae.prior_components, c.vae.flow_hidden = 4, (8,)
  c.update_from_flattened_dict(flat)
  train.check_config(c)
  return c


def _model(config, shape=(28, 28, 1), scale=2.0):
  """The model of `config` and its parameters at init times `scale` (sharper, so that terms differ clearly)."""
  variant = registry.get(config.variant)
  model = variant.build_model(config, shape)
  state = train.init_state(variant, model, config, jax.random.key(0), jnp.zeros((1, *shape)))
  return variant, model, jax.tree.map(lambda w: scale * w, state.params), state.hparams


def _images(n=6):
  return np.random.default_rng(0).random((n, 28, 28, 1)).astype(np.float32)


def _log_mean_exp(a, axis=0):
  return scipy.special.logsumexp(a, axis=axis) - np.log(a.shape[axis])


# Bounds -------------------------------------------------------------------------------------------------------------

def test_bounds_match_numpy_and_reduce_to_iwae_and_elbo_at_their_limits():
  log_w = np.random.default_rng(1).normal(-90.0, 3.0, (12, 5))  # M·K = 12 draws of 5 images.
  w32 = jnp.asarray(log_w, jnp.float32)
  elbo, iwae = log_w.mean(0), _log_mean_exp(log_w)
  miwae, ciwae = jax.jit(vae.miwae_bound, static_argnums=1), jax.jit(vae.ciwae_bound)
  for m in (1, 2, 3, 4, 12):  # Draw i of estimate j is row j·K + i.
    expected = np.mean([_log_mean_exp(log_w[j * (12 // m):(j + 1) * (12 // m)]) for j in range(m)], axis=0)
    np.testing.assert_allclose(miwae(w32, m), expected, rtol=1e-6)
  np.testing.assert_allclose(miwae(w32, 1), iwae, rtol=1e-6)  # M = 1: the IWAE.
  np.testing.assert_allclose(miwae(w32, 12), elbo, rtol=1e-6)  # K = 1: the ELBO.
  for beta in (0.0, 0.05, 0.5, 1.0):
    np.testing.assert_allclose(ciwae(w32, jnp.float32(beta)), beta * elbo + (1 - beta) * iwae, rtol=1e-6)


def _loss_and_log_weights(bound, m, k, **flat):
  c = _config(**{"vae.bound": bound, "vae.bound_estimates": m, "iwae_samples": k, **flat})
  variant, model, params, hp = _model(c)
  x, key = _images(), jax.random.key(4)
  loss, metrics = jax.jit(functools.partial(variant.loss, model, c))(params, {"image": x}, key, hp, jnp.int32(0))
  log_w = np.asarray(vae.log_weights(model, c, params, x, key, m * k), np.float64)
  return c, variant, model, params, hp, x, key, float(loss), metrics, log_w


@pytest.mark.parametrize("bound,m,k,flat", [
    ("miwae", 3, 4, {}), ("piwae", 3, 4, {}), ("ciwae", 1, 6, {"vae.ciwae_beta": 0.25})])
def test_each_bound_trains_on_its_formula_over_the_same_draws(bound, m, k, flat):
  *_, loss, metrics, log_w = _loss_and_log_weights(bound, m, k, **flat)
  if bound == "ciwae":
    expected = 0.25 * log_w.mean(0) + 0.75 * _log_mean_exp(log_w)
  else:  # MIWAE's value (PIWAE's too: the bound its encoder trains on).
    expected = _log_mean_exp(log_w.reshape(m, k, -1), axis=1).mean(0)
  assert loss == pytest.approx(-expected.mean(), rel=1e-5)
  assert float(metrics["neg_elbo"]) == pytest.approx(-log_w.mean(), rel=1e-5)
  assert float(metrics["neg_iwae_bound"]) == pytest.approx(-_log_mean_exp(log_w).mean(), rel=1e-5)


@pytest.mark.parametrize("flat", [{}, {"vae.flow": "iaf", "vae.prior": "mog"}])
def test_piwae_trains_the_encoder_on_miwae_and_the_decoder_on_the_iwae_of_all_draws(flat):
  c, variant, model, params, hp, x, key, *_ = _loss_and_log_weights("piwae", 3, 4, **flat)

  def grads_of(objective):
    return jax.grad(lambda p: -objective(vae.log_weights(model, c, p, x, key, 12)).mean())(params)["params"]

  piwae = jax.grad(lambda p: variant.loss(model, c, p, {"image": x}, key, hp, jnp.int32(0))[0])(params)["params"]
  miwae, iwae = grads_of(lambda w: vae.miwae_bound(w, 3)), grads_of(vae.iwae_bound)
  assert set(piwae) >= {"encoder", "decoder"} and (not flat or {"flow", "prior_means"} <= set(piwae))
  for name in piwae:
    expected = miwae[name] if name in ("encoder", "mean_head", "logvar_head", "flow") else iwae[name]
    for got, want in zip(jax.tree.leaves(piwae[name]), jax.tree.leaves(expected), strict=True):
      np.testing.assert_allclose(got, want, rtol=2e-4, atol=1e-6)
  assert not np.allclose(miwae["mean_head"]["kernel"], iwae["mean_head"]["kernel"], rtol=1e-2)  # They differ.


# Priors -------------------------------------------------------------------------------------------------------------

def _mixture_log_density(z, means, logvars, log_weights):
  """log Σ_k w_k Π_d N(z_d; means_kd, exp(logvars_kd)), summed directly in float64."""
  z, means, std = (np.asarray(a, np.float64) for a in (z, means, np.exp(0.5 * np.asarray(logvars, np.float64))))
  per_component = scipy.stats.norm.logpdf(z[:, None, :], means[None], std[None]).sum(-1)
  return scipy.special.logsumexp(per_component + np.asarray(log_weights, np.float64), axis=1)


@pytest.mark.parametrize("flat", [{"vae.prior": "mog"}, {"vae.prior": "vamp"}, {"vae.flow": "planar"},
                                  {"vae.flow": "iaf"}, {"vae.stochastic_layers": 2, "vae.top_latent_dim": 2}])
def test_elbo_without_a_closed_form_kl_is_the_log_weight_of_the_same_draw(flat):
  """The β-VAE loss of a learned prior or a flow estimates the KL at its draw: recon + KL = -log w of that draw."""
  c = _config(**flat)
  _, model, params, _ = _model(c)
  x, key = _images(), jax.random.key(9)
  nll, kl = vae.nll_and_kl(model, c, params, x, key)
  np.testing.assert_allclose(nll + kl, -vae.log_weights(model, c, params, x, key, 1)[0], rtol=1e-5)
  assert model.apply(params, x, method=model.encode)[0].shape == (6, 3 + 2 * ("vae.top_latent_dim" in flat))
  if "vae.flow" in flat:  # The code is the posterior mean through the flow: what the decoder is trained on.
    code, _ = model.apply(params, x, method=model.encode)
    through = model.apply(params, x, jnp.zeros((6, 3)), method=model.posterior)["z"]
    np.testing.assert_allclose(code, through, rtol=1e-6)
    base, _ = model.apply(params, x, method=model.gaussian)
    assert not np.allclose(code, base, atol=1e-3)


@pytest.mark.parametrize("prior", ["mog", "vamp"])
def test_learned_prior_density_is_the_direct_mixture_sum(prior):
  c = _config(**{"vae.prior": prior})
  _, model, params, _ = _model(c)
  z = np.random.default_rng(2).normal(0.0, 1.5, (7, 3)).astype(np.float32)
  p = params["params"]
  if prior == "mog":
    means, logvars = p["prior_means"], p["prior_logvars"]
    log_weights = scipy.special.log_softmax(np.asarray(p["prior_logits"], np.float64))
  else:  # The posterior's Gaussians at the pseudo-inputs, equally weighted.
    means, logvars = model.apply(params, jnp.clip(p["pseudo_inputs"], 0, 1), method=model.gaussian)
    log_weights = np.full(4, -np.log(4))
  got = model.apply(params, jnp.asarray(z), method=model.log_prior)
  np.testing.assert_allclose(got, _mixture_log_density(z, means, logvars, log_weights), rtol=1e-5)


def test_mixture_prior_samples_have_the_mixture_mean_and_covariance():
  c = _config(**{"vae.prior": "mog"})
  _, model, params, _ = _model(c, scale=1.0)
  params["params"]["prior_logits"] = jnp.asarray([0.0, 1.0, -1.0, 0.5])
  params["params"]["prior_logvars"] = jnp.log(jnp.asarray(np.linspace(0.2, 2.0, 12).reshape(4, 3), jnp.float32))
  z = np.asarray(model.apply(params, jax.random.key(5), 200_000, method=model.sample_prior), np.float64)
  w = scipy.special.softmax([0.0, 1.0, -1.0, 0.5])
  means, var = np.asarray(params["params"]["prior_means"], np.float64), np.linspace(0.2, 2.0, 12).reshape(4, 3)
  mean = w @ means
  second = np.einsum("k,kd,ke->de", w, means, means) + np.diag(w @ var)
  np.testing.assert_allclose(z.mean(0), mean, atol=0.015)
  np.testing.assert_allclose(np.cov(z.T), second - np.outer(mean, mean), atol=0.03)


# Flows --------------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("flow", [flows.PlanarFlow(5), flows.InverseAutoregressiveFlow(3, (16, 16))])
def test_flow_log_determinant_is_the_log_determinant_of_its_jacobian(flow):
  z, context = jax.random.normal(jax.random.key(0), (4, 5)), jax.random.normal(jax.random.key(1), (4, 6))
  params = flow.init(jax.random.key(2), z, context)
  # Maps far from the identity, yet with Jacobians that float32 and LU pivoting resolve (σ of IAF not tiny).
  params = jax.tree.map(lambda w: 30.0 * w if w.ndim == 1 else 1.5 * w, params)
  _, log_det = flow.apply(params, z, context)
  for i in range(4):
    jacobian = jax.jacobian(lambda v, i=i: flow.apply(params, v[None], context[i:i + 1])[0][0])(z[i])
    sign, expected = np.linalg.slogdet(np.asarray(jacobian, np.float64))
    assert sign != 0 and log_det[i] == pytest.approx(expected, abs=1e-4)
  assert abs(float(jnp.mean(log_det))) > 0.1  # Not the identity.


def test_planar_map_stays_invertible_whatever_u_and_w():
  rng = np.random.default_rng(3)
  for _ in range(100):
    w = rng.normal(size=4)
    u = rng.normal(size=4) - 4 * w / (w @ w)  # wᵀu near -4: f would not be invertible with u itself.
    assert float(jnp.asarray(w) @ flows.planar_u_hat(jnp.asarray(u), jnp.asarray(w))) > -1.0


def test_made_masks_connect_output_d_to_inputs_before_d_only():
  for dim, hidden in ((2, (3,)), (5, (16, 16)), (7, (4,))):
    masks = flows.made_masks(dim, hidden)
    reach = functools.reduce(lambda a, b: (a @ b > 0).astype(np.float32), masks) > 0  # (inputs, outputs): a path.
    allowed = np.tri(dim, k=-1, dtype=bool).T  # Input i reaches output d only where i < d.
    assert not np.any(reach & ~allowed)
    if min(hidden) >= dim - 1:  # Every degree present: every allowed path exists.
      np.testing.assert_array_equal(reach, allowed)


def test_posterior_density_with_a_planar_flow_integrates_to_one():
  """log q(z|x) of a 1-d code pushed through strongly non-linear planar maps, integrated over z on the image of a
  fine grid of z_0: a wrong log-determinant would not give 1."""
  c = _config(**{"latent_dim": 1, "model.encoder_widths": (8,), "vae.flow": "planar", "vae.flow_steps": 3})
  _, model, params, _ = _model(c, shape=(2, 2, 1), scale=1.0)
  for t, (w, u, b) in enumerate([(3.0, 1.5, 0.5), (2.0, -0.45, -0.3), (-1.5, 2.0, 0.0)]):  # Slopes from ~0.1 to ~5.
    params["params"]["flow"].update({f"w_{t}": jnp.asarray([w]), f"u_{t}": jnp.asarray([u]), f"b_{t}": jnp.asarray(b)})
  x = jnp.asarray(np.random.default_rng(8).random((4, 2, 2, 1)), jnp.float32)
  eps = jnp.linspace(-12.0, 12.0, 200_001)[:, None, None] * jnp.ones((1, 4, 1))
  out = model.apply(params, x, eps, method=model.posterior)
  z, log_q = np.asarray(out["z"][..., 0], np.float64), np.asarray(out["log_q"], np.float64)
  assert np.all(np.diff(z, axis=0) > 0)  # Invertible: the grid's image is still ordered.
  stretch = np.diff(z, axis=0) / np.diff(np.asarray(eps[:, :, 0], np.float64), axis=0)
  assert np.all(stretch.max(axis=0) > 5 * stretch.min(axis=0))  # Far from a linear map.
  for i in range(4):
    assert np.trapezoid(np.exp(log_q[:, i]), z[:, i]) == pytest.approx(1.0, abs=1e-4)


def _exact_nll(model, config, params, x):
  """-log ∫ p(x|z) p(z) dz per image for a 1-d code, by the trapezoid rule, the prior summed here as a mixture."""
  z = np.linspace(-15.0, 15.0, 30_001)
  logits = model.apply(params, jnp.asarray(z[:, None], jnp.float32), method=model.decode)
  log_px_z = np.stack([-np.asarray(common.decoder_nll(config, logits, jnp.broadcast_to(xi, logits.shape)), np.float64)
                       for xi in x], axis=1)
  means, logvars, log_weights = model.apply(params, method=model.prior_mixture)
  log_joint = log_px_z + _mixture_log_density(z[:, None], means, logvars, log_weights)[:, None]
  peak = log_joint.max(axis=0)
  return -(peak + np.log(np.trapezoid(np.exp(log_joint - peak), z, axis=0)))


def test_importance_weighted_nll_under_a_vamp_prior_reaches_the_exact_nll():
  """The nll suite's estimate for a VampPrior, against a quadrature over z of p(x|z) p(z) with the mixture summed
  here."""
  c = _config(**{"latent_dim": 1, "model.encoder_widths": (8,), "vae.prior": "vamp"})
  _, model, params, _ = _model(c, shape=(2, 2, 1), scale=1.5)
  x = jnp.asarray(np.unpackbits(np.arange(16, dtype=np.uint8)[:, None], axis=1)[:, 4:], jnp.float32)
  x = x.reshape(16, 2, 2, 1)
  exact = _exact_nll(model, c, params, x)
  estimate = jax.jit(functools.partial(vae.importance_weighted_nll, model, c, num_samples=20_000, chunk_size=5_000))(
      params, x, jax.random.key(6))
  neg_elbo = -np.asarray(vae.log_weights(model, c, params, x, jax.random.key(7), 2_000)).mean(0)
  assert np.mean(estimate) == pytest.approx(np.mean(exact), abs=0.01) and np.max(np.abs(estimate - exact)) < 0.05
  assert np.mean(neg_elbo - exact) > 0.05  # The ELBO's gap is real, so closeness is not by chance.


def test_two_stochastic_layers_importance_weights_reach_the_nll_of_a_double_integral():
  """h1 and h2 of one unit each: -log ∫∫ p(x|h1) p(h1|h2) p(h2) dh1 dh2 by the trapezoid rule on a grid, against the
  nll suite's estimate, which draws both layers from q and scores them with the model's own densities."""
  c = _config(**{"latent_dim": 1, "model.encoder_widths": (8,), "model.activation": "tanh",
                 "vae.stochastic_layers": 2, "vae.top_latent_dim": 1, "vae.top_widths": (8,)})
  _, model, params, _ = _model(c, shape=(2, 2, 1), scale=0.7)  # Sharper nets: q far from p, IS slow to converge.
  x = jnp.asarray(np.unpackbits(np.arange(16, dtype=np.uint8)[:, None], axis=1)[:, 4:], jnp.float32)
  x = x.reshape(16, 2, 2, 1)
  h1, h2 = np.linspace(-10.0, 10.0, 1_001), np.linspace(-8.0, 8.0, 801)
  logits = model.apply(params, jnp.asarray(np.stack([h1, np.zeros_like(h1)], 1), jnp.float32), method=model.decode)
  log_px = np.stack([-np.asarray(common.decoder_nll(c, logits, jnp.broadcast_to(xi, logits.shape)), np.float64)
                     for xi in x])  # (16, h1)
  mean, logvar = (np.asarray(a, np.float64)[:, 0] for a in model.apply(
      params, jnp.asarray(h2[:, None], jnp.float32), method=model._down))
  log_h1 = scipy.stats.norm.logpdf(h1[None, :], mean[:, None], np.exp(0.5 * logvar)[:, None])  # (h2, h1)
  log_joint = log_px[:, None, :] + log_h1[None] + scipy.stats.norm.logpdf(h2)[None, :, None]
  peak = log_joint.max(axis=(1, 2), keepdims=True)
  inner = np.trapezoid(np.exp(log_joint - peak), h1, axis=2)
  exact = -(peak[:, 0, 0] + np.log(np.trapezoid(inner, h2, axis=1)))
  estimate = jax.jit(functools.partial(vae.importance_weighted_nll, model, c, num_samples=20_000, chunk_size=5_000))(
      params, x, jax.random.key(6))
  assert np.mean(estimate) == pytest.approx(np.mean(exact), abs=0.01)
  assert np.median(np.abs(estimate - exact)) < 0.02


# The Hamiltonian VAE --------------------------------------------------------------------------------------------------

def _grad_log_density(z):
  """The gradient of a non-Gaussian log-density, Σ -z⁴/4 - z²/2 + sin(z_1 z_2)-like coupling, written out by hand."""
  coupling = jnp.cos(z[..., 0] * z[..., 1])
  return jnp.stack([-z[..., 0] ** 3 - z[..., 0] + coupling * z[..., 1],
                    -z[..., 1] ** 3 - z[..., 1] + coupling * z[..., 0]], axis=-1)


def test_leapfrog_preserves_volume_and_is_its_own_inverse_with_the_momentum_negated():
  step = jnp.asarray([0.3, 0.2])

  def move(state):
    z, rho = hvae.leapfrog(state[:2], state[2:], _grad_log_density, step)
    return jnp.concatenate([z, rho])

  start = jnp.asarray([0.7, -1.1, 0.4, 0.9])
  sign, log_det = np.linalg.slogdet(np.asarray(jax.jacobian(move)(start), np.float64))
  assert sign > 0 and abs(log_det) < 1e-5
  end = move(start)
  back = move(jnp.concatenate([end[:2], -end[2:]]))
  np.testing.assert_allclose(np.concatenate([back[:2], -back[2:]]), start, atol=1e-5)
  assert not np.allclose(end[:2], start[:2], atol=0.05)  # It did move.


def test_tempering_ends_at_one_and_scales_the_momentum_by_the_square_root_of_beta0_in_all():
  betas = np.asarray(hvae.tempering(jnp.float32(0.3), 5))
  assert betas[0] == pytest.approx(0.3) and betas[-1] == pytest.approx(1.0) and np.all(np.diff(betas) > 0)
  # Quadratic in k for 1/√β_k (the paper's scheme), recomputed here.
  k = np.arange(6) / 5
  np.testing.assert_allclose(1 / np.sqrt(betas), (1 - 1 / np.sqrt(0.3)) * k**2 + 1 / np.sqrt(0.3), rtol=1e-6)
  assert np.prod(np.sqrt(betas[:-1] / betas[1:])) == pytest.approx(np.sqrt(0.3), rel=1e-5)


def test_hamiltonian_vae_importance_weights_reach_the_exact_nll():
  """A wrong volume term (β_0^{d/2}) or momentum density would bias the estimate by a fixed amount per image."""
  c = _config(**{"latent_dim": 1, "model.encoder_widths": (8,), "vae.leapfrog_steps": 3,
                 "vae.leapfrog_step_size": 0.3, "vae.leapfrog_beta0": 0.5})
  _, model, params, _ = _model(c, shape=(2, 2, 1), scale=1.5)
  params["params"]["leapfrog_step"] = jnp.asarray([np.log(np.expm1(0.3))])  # Not scaled: the starts asked for.
  params["params"]["leapfrog_beta0"] = jnp.asarray(0.0)  # β_0 = 0.5.
  x = jnp.asarray(np.unpackbits(np.arange(16, dtype=np.uint8)[:, None], axis=1)[:, 4:], jnp.float32)
  x = x.reshape(16, 2, 2, 1)
  exact = _exact_nll(model, c, params, x)
  estimate = jax.jit(functools.partial(vae.importance_weighted_nll, model, c, num_samples=20_000, chunk_size=5_000))(
      params, x, jax.random.key(6))
  # The moved draws' weights are heavier-tailed than q_0's, so single images stray more than the mean does.
  assert np.mean(estimate) == pytest.approx(np.mean(exact), abs=0.01)
  assert np.median(np.abs(estimate - exact)) < 0.02


# Training, resume, sweeps, bad input --------------------------------------------------------------------------------

FOUR_STEPS = {"num_steps": 4, "eval_every": 2, "checkpoint_every": 2, "log_every": 1, "batch_size": 16,
              "data__num_train": 256, "data__num_test": 64, "eval_batch_size": 64, "kl_warmup_steps": 0}


def test_vamp_prior_with_iaf_and_miwae_resumes_equal_to_an_uninterrupted_run(smoke_config, tmp_path):
  fields_ = {**FOUR_STEPS, "vae__flow": "iaf", "vae__flow_steps": 2, "vae__bound": "miwae",
             "vae__bound_estimates": 2, "iwae_samples": 2, "model__encoder_widths": (32,), "eval__suites": ()}
  train.train_and_evaluate(smoke_config("vamp_vae", **fields_), tmp_path / "whole")
  train.train_and_evaluate(smoke_config("vamp_vae", **{**fields_, "num_steps": 2}), tmp_path / "resumed")
  summary = train.train_and_evaluate(smoke_config("vamp_vae", **fields_), tmp_path / "resumed")
  whole, resumed = saved_checkpoint(tmp_path / "whole", 4), saved_checkpoint(tmp_path / "resumed", 4)
  assert {"pseudo_inputs", "flow"} <= set(whole["params"]["params"])
  for x, y in zip(jax.tree.leaves(whole), jax.tree.leaves(resumed), strict=True):
    np.testing.assert_array_equal(x, y)
  assert np.isfinite(summary["test/neg_bound"]) and summary["test/loss"] == summary["test/neg_bound"]


def test_ciwae_smoke_run_of_a_hamiltonian_vae_with_a_mixture_prior_learns_and_scores_its_nll(smoke_config, tmp_path):
  config = smoke_config("ciwae", model__encoder_widths=(64,), iwae_samples=4, vae__leapfrog_steps=2, vae__prior="mog",
                        vae__prior_components=10, eval_every=60)
  summary = train.train_and_evaluate(config, tmp_path)
  rows = [r for r in map(json.loads, (tmp_path / "metrics.jsonl").read_text().splitlines()) if "train/loss" in r]
  assert rows[-1]["train/loss"] < 0.8 * rows[0]["train/loss"], rows
  report = evaluate.evaluate_run(tmp_path, ["nll"], nll_samples=8)
  assert report["nll/samples"] == 8 and report["nll/iwae_nll"] < report["nll/neg_elbo"]
  assert np.isfinite(summary["test/neg_elbo"])


@pytest.mark.parametrize("name,field", [("miwae", "vae.bound_estimates"), ("piwae", "iwae_samples"),
                                        ("ciwae", "vae.ciwae_beta"), ("vamp_vae", "vae.prior"),
                                        ("iaf_vae", "vae.flow_steps"), ("planar_vae", "vae.flow_steps"),
                                        ("hvae", "vae.leapfrog_steps"), ("iwae_two_layer", "iwae_samples")])
def test_every_member_of_each_sweep_passes_the_checks(name, field):
  members = sweep_lib.load(f"{REPO}/experiments/{name}.py")  # Each member checked as a run would be.
  assert len(members) >= 6 and all(field in m and "seed" in m for m in members.values())


@pytest.mark.parametrize("flat,message", [
    ({"vae.bound": "riwae"}, "config.vae.bound='riwae': use one of iwae, miwae, piwae, ciwae"),
    ({"vae.bound_estimates": 4}, "config.vae.bound_estimates=4: M is MIWAE's and PIWAE's"),
    ({"vae.bound": "miwae", "vae.bound_estimates": 0}, "config.vae.bound_estimates=0: use M >= 1"),
    ({"vae.bound": "ciwae", "vae.ciwae_beta": 1.5}, r"config.vae.ciwae_beta=1.5: use a weight in \[0, 1\]"),
    ({"vae.bound": "miwae", "beta": 4.0}, "config.vae.bound='miwae': the MIWAE bound has no KL weight"),
    ({"vae.prior": "vampprior"}, "config.vae.prior='vampprior': use one of normal, mog, vamp"),
    ({"vae.prior": "vamp", "vae.prior_components": 0}, "config.vae.prior_components=0: use K >= 1"),
    ({"vae.flow": "maf"}, "config.vae.flow='maf': use one of none, planar, iaf"),
    ({"vae.flow": "iaf", "vae.flow_steps": 0}, "config.vae.flow_steps=0: use at least one flow step"),
    ({"vae.flow": "iaf", "latent_dim": 1}, "config.latent_dim=1: an inverse autoregressive flow orders two"),
    ({"vae.leapfrog_steps": -1}, "config.vae.leapfrog_steps=-1: use K >= 1 leapfrog steps"),
    ({"vae.stochastic_layers": 3}, r"config.vae.stochastic_layers=3: use 1 \(one Gaussian code\) or 2"),
    ({"vae.stochastic_layers": 2, "vae.prior": "vamp"}, "config.vae.stochastic_layers=2: two stochastic layers have"),
    ({"vae.leapfrog_steps": 2, "vae.leapfrog_beta0": 1.0}, r"config.vae.leapfrog_beta0=1.0: use an initial inverse"),
    ({"vae.leapfrog_steps": 2, "vae.flow": "planar"}, "config.vae.flow='planar': the Hamiltonian VAE moves"),
    ({"vae.leapfrog_steps": 2, "beta": 2.0}, "config.vae.leapfrog_steps=2: the Hamiltonian VAE's ELBO has no KL"),
])
def test_bad_fields_are_one_line_each(flat, message):
  with pytest.raises(ConfigError, match=message):
    _config(**flat)
