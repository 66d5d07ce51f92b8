"""β-TCVAE, the annealed-capacity β-VAE and FactorVAE: β-TCVAE's decomposition against a NumPy transcription of its
estimators, the capacity schedule and loss on known numbers, FactorVAE's permutation, discriminator and two
optimisers by behaviour, resume, the experiments' smoke runs and sweeps, and bad fields by their message."""
import functools
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.special
import scipy.stats

from aejax import config as config_lib, registry, sweep as sweep_lib, train
from aejax.errors import ConfigError
from aejax.variants.variational import capacity, factor_vae, fields, tcvae

from conftest import REPO, saved_checkpoint

ADD = {"beta_tcvae": fields.add_tcvae, "beta_vae_capacity": fields.add_capacity, "factor_vae": fields.add_factor}


def _config(variant, **flat):
  """A tiny MLP run of `variant` on 28x28 images, with dotted `flat` fields set, checked as a run is."""
  c = ADD[variant](config_lib.base_config())
  c.variant, c.latent_dim, c.loss, c.batch_size, c.data.num_train = variant, 3, "bce", 8, 1_000
  c.model.encoder_widths = (16,)
  if variant == "factor_vae":
    c.factor.d_widths = (32, 32)
  c.update_from_flattened_dict(flat)
  train.check_config(c)
  return c


def _state(config):
  variant = registry.get(config.variant)
  model = variant.build_model(config, (28, 28, 1))
  return variant, model, train.init_state(variant, model, config, jax.random.key(0), jnp.zeros((1, 28, 28, 1)))


def _images(n, seed=0):
  return (np.random.default_rng(seed).random((n, 28, 28, 1)) < 0.3).astype(np.float32)


# β-TCVAE ----------------------------------------------------------------------------------------------------------

RNG = np.random.default_rng(7)
MEAN, LOGVAR = RNG.normal(size=(6, 3)), RNG.normal(scale=0.5, size=(6, 3))
Z = MEAN + np.exp(0.5 * LOGVAR) * RNG.normal(size=(6, 3))


def _numpy_weights(m, n, stratified):
  """w_ij of q(z_i) ≈ Σ_j w_ij q(z_i|x_j), entry by entry: MWS 1/(NM); MSS 1/N for i's own image, (N - M')/(N M') for
  the next one, 1/M' for the others (M' = M - 1)."""
  w = np.zeros((m, m))
  for i in range(m):
    for j in range(m):
      if not stratified:
        w[i, j] = 1 / (n * m)
      elif j == i:
        w[i, j] = 1 / n
      elif j == (i + 1) % m:
        w[i, j] = (n - (m - 1)) / (n * (m - 1))
      else:
        w[i, j] = 1 / (m - 1)
  return w


def _numpy_decomposition(z, mean, logvar, n, stratified):
  """MI, TC and dimension-wise KL per image, in float64, from densities (not log-densities) and explicit sums."""
  m, d = z.shape
  std = np.exp(0.5 * logvar)
  density = np.array([[scipy.stats.norm.pdf(z[i], mean[j], std[j]) for j in range(m)] for i in range(m)])  # (i, j, d)
  w = _numpy_weights(m, n, stratified)
  q_z = np.array([sum(w[i, j] * np.prod(density[i, j]) for j in range(m)) for i in range(m)])
  q_marginals = np.array([[sum(w[i, j] * density[i, j, k] for j in range(m)) for k in range(d)] for i in range(m)])
  log_qz_x = np.log([np.prod(density[i, i]) for i in range(m)])
  log_pz = scipy.stats.norm.logpdf(z).sum(-1)
  log_prod = np.log(q_marginals).sum(-1)
  return {"mi": log_qz_x - np.log(q_z), "tc": np.log(q_z) - log_prod, "dim_kl": log_prod - log_pz}


@pytest.mark.parametrize("stratified", [False, True])
def test_tcvae_terms_match_a_numpy_transcription_and_sum_to_the_one_draw_kl(stratified):
  decomposition = jax.jit(tcvae.decomposition, static_argnums=(3, 4))
  got = decomposition(*(jnp.asarray(a, jnp.float32) for a in (Z, MEAN, LOGVAR)), 50, stratified)
  expected = _numpy_decomposition(Z, MEAN, LOGVAR, 50, stratified)
  for name in ("mi", "tc", "dim_kl"):
    np.testing.assert_allclose(got[name], expected[name], rtol=1e-4, atol=1e-4, err_msg=name)
  kl = scipy.stats.norm.logpdf(Z, MEAN, np.exp(0.5 * LOGVAR)).sum(-1) - scipy.stats.norm.logpdf(Z).sum(-1)
  np.testing.assert_allclose(got["mi"] + got["tc"] + got["dim_kl"], kl, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("stratified", [False, True])
def test_when_all_posteriors_coincide_mss_finds_no_mi_or_tc_and_mws_reads_log_n(stratified):
  mean, logvar = jnp.tile(jnp.asarray(MEAN[:1], jnp.float32), (6, 1)), jnp.tile(jnp.asarray(LOGVAR[:1]), (6, 1))
  z = jnp.asarray(Z, jnp.float32)
  got = jax.jit(tcvae.decomposition, static_argnums=(3, 4))(z, mean, logvar, 50, stratified)
  kl = scipy.stats.norm.logpdf(Z, MEAN[:1], np.exp(0.5 * LOGVAR[:1])).sum(-1) - scipy.stats.norm.logpdf(Z).sum(-1)
  bias = np.log(50) if not stratified else 0.0  # q(z) is each posterior: MI = TC = 0 (diagonal Gaussians).
  np.testing.assert_allclose(got["mi"], bias, atol=1e-4)
  np.testing.assert_allclose(got["tc"], 2 * bias, atol=1e-4)
  np.testing.assert_allclose(got["dim_kl"], kl - 3 * bias, rtol=1e-5, atol=1e-4)


def test_stratified_weights_sum_to_one_per_image_and_padding_weighs_nothing():
  valid = jnp.array([1, 1, 1, 1, 0, 0], jnp.float32)
  log_w = np.asarray(tcvae.log_batch_weights(valid, 50, stratified=True))
  np.testing.assert_allclose(np.exp(log_w[:4]).sum(1), 1.0, rtol=1e-6)
  np.testing.assert_allclose(np.exp(log_w[:4, :4]), _numpy_weights(4, 50, True), rtol=1e-6)
  assert np.all(np.isneginf(log_w[:, 4:]))
  alone = np.asarray(tcvae.log_batch_weights(jnp.array([1, 0, 0], jnp.float32), 50, stratified=True))
  assert np.exp(alone[0, 0]) == pytest.approx(1.0) and np.all(np.isneginf(alone[:, 1:]))  # Its own posterior is q(z).


@pytest.mark.parametrize("stratified", [False, True])
def test_padding_of_an_evaluation_batch_leaves_the_terms_of_its_images_unchanged(stratified):
  args = [jnp.asarray(a, jnp.float32) for a in (Z, MEAN, LOGVAR)]
  padded = [jnp.concatenate([a[:4], jnp.repeat(a[3:4], 2, axis=0)]) for a in args]  # As the eval loop pads.
  decomposition = jax.jit(tcvae.decomposition, static_argnums=(3, 4))
  alone = decomposition(*(a[:4] for a in args), 50, stratified)
  masked = decomposition(*padded, 50, stratified, jnp.array([1, 1, 1, 1, 0, 0], jnp.float32))
  for name in alone:
    np.testing.assert_allclose(masked[name][:4], alone[name], rtol=1e-5, atol=1e-5, err_msg=name)


def test_tcvae_loss_weighs_each_term_and_the_test_metrics_hold_them():
  c = _config("beta_tcvae", **{"beta": 3.0, "tcvae.alpha": 0.5, "tcvae.gamma": 2.0, "tcvae.sampling": "mss"})
  variant, model, state = _state(c)
  batch, key = {"image": _images(8)}, jax.random.key(3)
  loss, metrics = jax.jit(functools.partial(variant.loss, model, c))(state.params, batch, key, state.hparams,
                                                                      jnp.int32(0))
  out = jax.jit(model.apply)(state.params, batch["image"], key)  # The loss's own draw of z for this key.
  terms = _numpy_decomposition(*(np.asarray(out[k], np.float64) for k in ("z", "mean", "logvar")), 1_000, True)
  logits, x = np.asarray(out["logits"], np.float64).reshape(8, -1), batch["image"].reshape(8, -1)
  recon = -np.sum(x * -np.logaddexp(0, -logits) + (1 - x) * -np.logaddexp(0, logits), axis=1)
  expected = recon + 0.5 * terms["mi"] + 3.0 * terms["tc"] + 2.0 * terms["dim_kl"]
  assert float(loss) == pytest.approx(expected.mean(), rel=1e-4)
  for name in ("mi", "tc", "dim_kl"):
    assert float(metrics[name]) == pytest.approx(terms[name].mean(), rel=1e-3, abs=1e-3), name
  evaluate = jax.jit(functools.partial(variant.evaluate, model, c))
  per_example = evaluate(state.params, {**batch, "valid": jnp.ones(8)}, key, state.hparams)
  np.testing.assert_allclose(per_example["loss"], expected, rtol=1e-4)
  assert {"mi", "tc", "dim_kl", "kl", "neg_elbo", "recon_error"} <= set(per_example)


# Annealed capacity --------------------------------------------------------------------------------------------------

def test_capacity_grows_linearly_from_c_min_to_c_max_then_stays():
  hp = {"capacity.c_min": 1.0, "capacity.c_max": 5.0, "capacity.steps": 8.0}
  got = [float(capacity.capacity(hp, jnp.int32(step))) for step in (0, 2, 4, 8, 100)]
  assert got == pytest.approx([1.0, 2.0, 3.0, 5.0, 5.0])


@pytest.mark.parametrize("step", [0, 1_000])  # C = 0, below the KL, and C = 200 nats, above it.
def test_capacity_loss_is_recon_plus_gamma_times_the_kl_distance_to_c(step):
  c = _config("beta_vae_capacity", **{"capacity.gamma": 7.0, "capacity.c_max": 200.0, "capacity.steps": 1_000})
  variant, model, state = _state(c)
  params = jax.tree.map(lambda w: 3.0 * w, state.params)  # A KL of a few nats, well away from C at either step.
  batch, key = {"image": _images(8)}, jax.random.key(4)
  loss, metrics = jax.jit(functools.partial(variant.loss, model, c))(params, batch, key, state.hparams,
                                                                      jnp.int32(step))
  out = jax.jit(model.apply)(params, batch["image"], key)
  logits, x = np.asarray(out["logits"], np.float64).reshape(8, -1), batch["image"].reshape(8, -1)
  recon = -np.sum(x * -np.logaddexp(0, -logits) + (1 - x) * -np.logaddexp(0, logits), axis=1).mean()
  mean, var = np.asarray(out["mean"], np.float64), np.exp(np.asarray(out["logvar"], np.float64))
  kl = (0.5 * np.sum(var + mean**2 - 1 - np.log(var), axis=1)).mean()
  c_now = 200.0 * step / 1_000
  assert 0.5 < kl < 199.0  # Strictly between the two capacities, so each step tests one side of |KL - C|.
  assert float(metrics["capacity"]) == pytest.approx(c_now)
  assert float(loss) == pytest.approx(recon + 7.0 * abs(kl - c_now), rel=1e-5)


# FactorVAE ----------------------------------------------------------------------------------------------------------

def test_permuting_dimensions_keeps_each_marginal_and_breaks_their_dependence():
  u = np.random.default_rng(0).normal(size=2_000).astype(np.float32)
  z = jnp.asarray(np.stack([u, u, -u, u**2], axis=1))
  permuted = np.asarray(factor_vae.permute_dims(jax.random.key(1), z))
  np.testing.assert_array_equal(np.sort(permuted, axis=0), np.sort(np.asarray(z), axis=0))  # Same values per column.
  correlation = np.corrcoef(permuted, rowvar=False)
  assert np.abs(correlation[np.triu_indices(4, 1)]).max() < 0.1, correlation  # Before: ±1 among the first three.
  assert not np.array_equal(permuted[:, 0], permuted[:, 1])  # Each dimension has its own permutation.
  valid = jnp.asarray((np.arange(2_000) < 1_500).astype(np.float32))  # An evaluation batch: 500 rows of padding.
  within = np.asarray(factor_vae.permute_dims(jax.random.key(2), z, valid))
  np.testing.assert_array_equal(within[1_500:], np.asarray(z)[1_500:])  # The padding stays put,
  np.testing.assert_array_equal(np.sort(within[:1_500], axis=0), np.sort(np.asarray(z)[:1_500], axis=0))  # the rest
  correlation = np.corrcoef(within[:1_500], rowvar=False)  # is shuffled among its own rows.
  assert np.abs(correlation[np.triu_indices(4, 1)]).max() < 0.1, correlation


def test_factor_vae_step_adds_gamma_times_the_discriminators_log_odds_and_trains_both_players():
  c = _config("factor_vae", **{"factor.gamma": 5.0})
  variant, model, state = _state(c)
  batch, key = {"image": _images(8), "label": jnp.zeros(8, jnp.int32)}, jax.random.key(2)
  new, metrics = jax.jit(train.make_train_step(variant, model, c))(state, batch, key)
  assert float(metrics["finite"]) == 1.0
  vae_key, _ = jax.random.split(key)  # The step's draw of z for the VAE player.
  out = jax.jit(model.apply)(state.params, batch["image"], vae_key)
  logits = jax.jit(functools.partial(model.apply, method=model.discriminate))(state.params, out["z"])
  d = 1 / (1 + np.exp(-np.asarray(logits, np.float64)))
  tc = np.mean(np.log(d / (1 - d)))  # The density-ratio trick: log D/(1 - D) of codes from q(z).
  assert float(metrics["tc"]) == pytest.approx(tc, rel=1e-4, abs=1e-5)
  assert float(metrics["loss"]) == pytest.approx(float(metrics["recon"] + metrics["kl"]) + 5.0 * tc, rel=1e-5)
  for module in ("encoder", "decoder", "mean_head", "logvar_head", "discriminator"):
    before, after = (jax.tree.leaves(s.params["params"][module]) for s in (state, new))
    assert not all(np.array_equal(a, b) for a, b in zip(before, after)), module


def test_each_player_has_its_own_adam():
  # One update of gradients 1: Adam's first moment is (1 - b1)·1 and its second (1 - b2)·1 for every parameter.
  c = _config("factor_vae", **{"adam_b1": 0.8, "adam_b2": 0.99, "factor.d_adam_b1": 0.5, "factor.d_adam_b2": 0.9})
  _, _, state = _state(c)
  ones = lambda tree: jax.tree.map(jnp.ones_like, tree)  # noqa: E731

  @jax.jit
  def update_both(state):
    state = factor_vae.gan.update_player(state, "discriminator", ones(state.params["params"]["discriminator"]))
    vae_modules = {m: v for m, v in state.params["params"].items() if m != "discriminator"}
    return factor_vae.gan.update_modules(state, "generator", ones(vae_modules))

  state = update_both(state)
  for player, (b1, b2) in (("discriminator", (0.5, 0.9)), ("generator", (0.8, 0.99))):
    adam = state.opt_state.inner_states[player].inner_state[0]
    for mu, nu in zip(jax.tree.leaves(adam.mu), jax.tree.leaves(adam.nu)):
      if mu.size:
        np.testing.assert_allclose(np.unique(mu), 1 - b1, rtol=1e-6)
        np.testing.assert_allclose(np.unique(nu), 1 - b2, rtol=1e-5)


def test_the_discriminator_learns_to_tell_dependent_codes_from_their_permutation():
  c = _config("factor_vae", learning_rate=3e-3)
  _, model, state = _state(c)
  u = jax.random.normal(jax.random.key(5), (256, 1))
  z = jnp.concatenate([u, u, -u], axis=1)  # All three dimensions one: a large total correlation.
  fixed_permutation = factor_vae.permute_dims(jax.random.key(6), z)
  discriminate = jax.jit(functools.partial(model.apply, method=model.discriminate))
  score = lambda s: discriminate(s.params, jnp.concatenate([z, fixed_permutation]))  # noqa: E731

  def d_loss(s):
    scores = score(s)
    return float(factor_vae.adversarial_losses.discriminator_loss("non_saturating", scores[:256], scores[256:]).mean())

  start = d_loss(state)
  step = jax.jit(functools.partial(factor_vae.discriminator_step, model))
  for key in jax.random.split(jax.random.key(7), 60):
    state, _ = step(state, z, key)
  assert d_loss(state) < 0.5 * start, (start, d_loss(state))
  assert float(score(state)[:256].mean()) > 1.0  # Its TC estimate, mean log D/(1 - D) of the codes, now clearly > 0.


FOUR_STEPS = {"num_steps": 4, "checkpoint_every": 2, "eval_every": 2, "log_every": 2, "data__num_test": 64}
# The loop's own checks on a Dense net (seconds): the experiments' strided conv net runs once, in beta_tcvae's smoke.
DENSE = {"model__kind": "mlp", "model__encoder_widths": (64,)}


@pytest.mark.parametrize("name, fields", [
    ("factor_vae", {}),
    ("beta_vae_capacity", {"capacity__steps": 4}),  # C grows 0 -> 25 nats over the 4 steps, across the stop.
])
def test_resumed_run_equals_uninterrupted(smoke_config, tmp_path, name, fields):
  fields = {**FOUR_STEPS, **DENSE, **fields}
  train.train_and_evaluate(smoke_config(name, **fields), tmp_path / "whole")
  train.train_and_evaluate(smoke_config(name, **{**fields, "num_steps": 2}), tmp_path / "resumed")
  train.train_and_evaluate(smoke_config(name, **fields), tmp_path / "resumed")
  whole, resumed = saved_checkpoint(tmp_path / "whole", 4), saved_checkpoint(tmp_path / "resumed", 4)
  assert name != "factor_vae" or "discriminator" in whole["params"]["params"]
  for x, y in zip(jax.tree.leaves(whole), jax.tree.leaves(resumed), strict=True):
    np.testing.assert_array_equal(x, y)


# Experiments and bad input ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["beta_tcvae", "beta_vae_capacity"])
def test_smoke_runs_report_their_terms(smoke_config, tmp_path, name):
  fields = FOUR_STEPS if name == "beta_tcvae" else {**FOUR_STEPS, **DENSE}
  summary = train.train_and_evaluate(smoke_config(name, **fields), tmp_path / "run")
  names = {"beta_tcvae": ("test/mi", "test/tc", "test/dim_kl"), "beta_vae_capacity": ("test/kl", "test/neg_elbo")}
  assert all(np.isfinite(summary[k]) for k in names[name]), summary


@pytest.mark.parametrize("name,field", [("beta_tcvae", "beta"), ("factor_vae", "factor.gamma"),
                                        ("beta_vae_capacity", "capacity.c_max")])
def test_every_member_of_each_sweep_passes_the_checks(name, field):
  members = sweep_lib.load(f"{REPO}/experiments/{name}.py")  # Each member checked as a run would be.
  assert len(members) >= 12 and all(field in m and "seed" in m for m in members.values())
  assert sweep_lib.load_curves(f"{REPO}/experiments/{name}.py")[0][0] == field


@pytest.mark.parametrize("variant,flat,message", [
    ("beta_tcvae", {"tcvae.sampling": "mix"}, "config.tcvae.sampling='mix': use one of mws, mss"),
    ("beta_tcvae", {"data.num_train": None}, "config.tcvae.dataset_size=None: estimating q(z) needs the number of "
                                             "train images"),
    ("beta_tcvae", {"tcvae.sampling": "mss", "tcvae.dataset_size": 100}, "config.tcvae.dataset_size=100: stratified "
                                                                         "sampling weighs a batch of 1000"),
    ("beta_tcvae", {"tcvae.alpha": -1.0}, "config.tcvae.alpha=-1.0: use a weight >= 0"),
    ("beta_tcvae", {"iwae_samples": 5}, "config.iwae_samples=5: β-TCVAE weighs the terms of the ELBO's KL"),
    ("beta_vae_capacity", {"capacity.c_max": 1.0, "capacity.c_min": 2.0}, "config.capacity.c_max=1.0: the capacity "
                                                                          "grows from c_min=2.0"),
    ("beta_vae_capacity", {"capacity.steps": 0}, "config.capacity.steps=0: use the number of steps C takes to grow"),
    ("beta_vae_capacity", {"beta": 4.0}, "config.beta=4.0: beta_vae_capacity weighs |KL - C| by capacity.gamma"),
    ("factor_vae", {"factor.d_widths": ()}, "config.factor.d_widths=(): use one or more positive layer widths"),
    ("factor_vae", {"factor.d_adam_b2": 1.0}, "config.factor.d_adam_b2=1.0: use a decay rate in [0, 1)"),
    ("factor_vae", {"optimizer": "sgd"}, "config.optimizer='sgd': factor_vae's discriminator trains with Adam"),
    ("factor_vae", {"model.kind": "strided_conv", "model.conv_impl": "cpu"},
     "config.model.conv_impl='cpu': kind='strided_conv' runs XLA's convolution"),
])
def test_bad_fields_are_one_line_errors(variant, flat, message):
  with pytest.raises(ConfigError, match="^" + re.escape(message)) as error:
    _config(variant, **flat)
  assert "\n" not in str(error.value)


def test_a_config_without_the_section_its_variant_reads_is_named():
  c = config_lib.base_config()
  c.variant = "factor_vae"
  with pytest.raises(ConfigError, match=re.escape("config.variant='factor_vae' reads config.factor, which this config "
                                                  "lacks")):
    train.check_config(c)
