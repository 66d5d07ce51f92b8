"""`dbn` and `dbn_ae`: stages that train one RBM with a fresh optimiser, the unrolled net at the switch against the
DBN, the linear (Gaussian) hidden units' math against integrals, the log-likelihood bound against enumeration, resume
mid-stage, bad input, and the experiment files' smoke runs."""
import dataclasses
import itertools
import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import orbax.checkpoint as ocp
import pytest
import scipy.integrate
import scipy.special

from aejax import config as config_lib
from aejax import registry, signals, sweep as sweep_lib, train
from aejax.errors import ConfigError
from aejax.variants.boltzmann import ais, dbn, fields, rbm
from conftest import REPO


def _config(variant="dbn", **changes):
  c = fields.add(config_lib.base_config())
  c.variant, c.model.encoder_widths, c.latent_dim = variant, (12, 8), 4
  c.model.activation = c.model.code_activation = "sigmoid"
  c.pretrain_steps, c.num_steps, c.batch_size = 3, 14, 5
  c.learning_rate = 0.05
  c.update_from_flattened_dict({field.replace("__", "."): value for field, value in changes.items()})
  return c


def _setup(config):
  variant = registry.get(config.variant)
  variant.validate(config)
  x = (np.random.default_rng(0).random((5, 4, 4, 1)) > 0.5).astype(np.float32)
  model = variant.build_model(config, (4, 4, 1))
  state = train.init_state(variant, model, config, jax.random.key(0), jnp.asarray(x))
  return variant, model, state, x


def _counts(opt_state):
  return {int(c) for _, c in optax.tree_utils.tree_get_all_with_path(opt_state, "count")}


def test_dbn_stages_train_one_rbm_each_with_a_fresh_optimiser_then_the_top_goes_on():
  config = _config()
  variant, model, state, x = _setup(config)
  step = jax.jit(train.make_train_step(variant, model, config))
  stages = [0, 0, 0, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2]
  assert [int(dbn.stage_of(jnp.asarray(s), 3, 3)) for s in range(14)] == stages
  for stage in stages:
    before = state.params["params"]
    state, metrics = step(state, {"image": x}, jax.random.key(1))
    assert float(metrics["stage"]) == stage
    # Adam's step count restarts at each RBM's first step; the top RBM keeps its optimiser past 3 x 3 steps.
    assert _counts(state.opt_state) == {int(state.step) - 3 * stage}
    for name, layer in state.params["params"].items():
      moved = [not np.array_equal(a, b) for a, b in zip(jax.tree.leaves(layer), jax.tree.leaves(before[name]))]
      assert all(moved) if name == f"rbms_{stage}" else not any(moved), (stage, name)


def test_dbn_ae_pretrains_tied_then_fine_tunes_everything_untied():
  config = _config("dbn_ae", num_steps=14)
  variant, model, state, x = _setup(config)
  step = jax.jit(train.make_train_step(variant, model, config))
  for stage in [0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3, 3, 3]:
    before = state.params["params"]
    state, metrics = step(state, {"image": x}, jax.random.key(1))
    assert float(metrics["stage"]) == stage
    assert _counts(state.opt_state) == {int(state.step) - 3 * stage}
    p = state.params["params"]
    for k in range(3):
      for name in (f"encoders_{k}", f"decoders_{k}"):
        moved = [not np.array_equal(a, b) for a, b in zip(jax.tree.leaves(p[name]), jax.tree.leaves(before[name]))]
        assert all(moved) if stage in (k, 3) else not any(moved), (stage, name)
      tied = np.array_equal(p[f"decoders_{k}"]["kernel"], p[f"encoders_{k}"]["kernel"].T)
      assert tied == (stage < 3), (stage, k)


def _as_dbn_ae(dbn_params, num_layers):
  """The DBN's parameters unrolled by hand: encoder k = (W_k, c_k), decoder k = (W_kᵀ, b_k)."""
  p = dbn_params["params"]
  out = {}
  for k in range(num_layers):
    r = p[f"rbms_{k}"]
    out[f"encoders_{k}"] = {"kernel": r["weights"], "bias": r["hidden_bias"]}
    out[f"decoders_{k}"] = {"kernel": r["weights"].T, "bias": r["visible_bias"]}
  return {"params": out}


def test_unrolled_net_at_the_switch_is_the_greedily_trained_dbn():
  """dbn_ae's pre-training is the DBN's own, step for step; at the switch its encoder is the stack's up-pass
  (logistic units, the code linear) and its decoder the tied transpose, the stack's down-pass."""
  changes = dict(model__code_activation="linear", rbm__persistent=True, dbn__top_rate_scale=0.1, optimizer="sgd",
                 weight_decay=2e-4)
  dbn_config, ae_config = _config("dbn", **changes), _config("dbn_ae", **changes)
  dbn_variant, dbn_model, dbn_state, x = _setup(dbn_config)
  ae_variant, ae_model, ae_state, _ = _setup(ae_config)
  ae_state = ae_state.replace(params=_as_dbn_ae(dbn_state.params, 3), carry=dbn_state.carry)
  dbn_step = jax.jit(train.make_train_step(dbn_variant, dbn_model, dbn_config))
  ae_step = jax.jit(train.make_train_step(ae_variant, ae_model, ae_config))
  for i in range(9):  # 3 RBMs x 3 steps: the switch.
    dbn_state, _ = dbn_step(dbn_state, {"image": x}, jax.random.key(i))
    ae_state, _ = ae_step(ae_state, {"image": x}, jax.random.key(i))
  for a, b in zip(jax.tree.leaves(_as_dbn_ae(dbn_state.params, 3)), jax.tree.leaves(ae_state.params)):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)  # The same arithmetic, as XLA fuses each program.
  assert int(dbn.stage_of(ae_state.step, 3, 4)) == 3

  sigmoid = scipy.special.expit
  h = x.reshape(5, -1).astype(np.float64)
  p = dbn_state.params["params"]
  for k in range(3):
    r = {name: np.asarray(v, np.float64) for name, v in p[f"rbms_{k}"].items()}
    h = h @ r["weights"] + r["hidden_bias"]
    h = h if k == 2 else sigmoid(h)  # The top RBM's code units are linear.
  code = ae_model.apply(ae_state.params, x, method=ae_model.encode)
  np.testing.assert_allclose(code, h, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(code, dbn_model.apply(dbn_state.params, x, method=dbn_model.encode), rtol=1e-6, atol=1e-6)
  np.testing.assert_allclose(ae_model.apply(ae_state.params, code, method=ae_model.decode),
                             dbn_model.apply(dbn_state.params, code, method=dbn_model.decode), rtol=1e-5, atol=1e-5)
  ae = ae_state.params["params"]
  for k in range(3):
    np.testing.assert_array_equal(ae[f"decoders_{k}"]["kernel"], ae[f"encoders_{k}"]["kernel"].T)


def test_linear_hidden_units_free_energy_is_the_integral_and_samples_are_unit_normal():
  rng = np.random.default_rng(1)
  weights, visible_bias, hidden_bias = rng.normal(0, 0.5, (5, 2)), rng.normal(0, 1, 5), rng.normal(0, 1, 2)
  v = (rng.random((3, 5)) > 0.5).astype(np.float64)
  for row in v:
    # F(v) = -log ∫ exp(-E(v, h)) dh, E = -v·b + ½‖h - c‖² - vᵀWh: one integral per hidden unit.
    log_integral = sum(math.log(scipy.integrate.quad(
        lambda h, j=j: math.exp(-0.5 * (h - hidden_bias[j]) ** 2 + row @ weights[:, j] * h), -40, 40)[0])
        for j in range(2))
    f = rbm.free_energy(jnp.asarray(weights, jnp.float32), jnp.asarray(visible_bias, jnp.float32),
                        jnp.asarray(hidden_bias, jnp.float32), jnp.asarray(row[None], jnp.float32),
                        gaussian_hidden=True)
    assert float(f[0]) == pytest.approx(-(row @ visible_bias) - log_integral, abs=1e-4)
  v_many = jnp.ones((20_000, 5), jnp.float32)
  mean, h = rbm.sample_hidden(jnp.asarray(weights, jnp.float32), jnp.asarray(hidden_bias, jnp.float32), v_many,
                              jax.random.key(0), gaussian=True)
  np.testing.assert_allclose(mean[0], hidden_bias + weights.sum(0), rtol=1e-5)
  np.testing.assert_allclose(h.mean(0), mean[0], atol=0.03)
  np.testing.assert_allclose(h.std(0), 1.0, atol=0.02)


def _states(n):
  return np.array(list(itertools.product([0.0, 1.0], repeat=n)))


def _log_unnormalised(weights, visible_bias, hidden_bias, v, linear_hidden):
  """log Σ_h exp(-E(v, h)) by enumerating h (binary), or in closed form for linear hidden units (checked against the
  integral above)."""
  if linear_hidden:
    a = v @ weights + hidden_bias
    return v @ visible_bias + 0.5 * np.sum(a**2 - hidden_bias**2, -1) + 0.5 * len(hidden_bias) * math.log(2 * math.pi)
  h = _states(len(hidden_bias))
  return scipy.special.logsumexp(v @ visible_bias[:, None] + (h @ hidden_bias)[None] + v @ weights @ h.T, axis=-1)


def _exact(layers, v, linear_code):
  """The 2-layer DBN's log p(v) and its variational bound, by enumerating h1 (numpy, float64)."""
  (w1, b1, c1), (w2, b2, c2) = layers
  h1 = _states(len(c1))
  log_p_h1 = _log_unnormalised(w2, b2, c2, h1, linear_code)
  log_p_h1 -= scipy.special.logsumexp(log_p_h1)
  a = h1 @ w1.T + b1  # (H1 states, V)
  log_p_v_given_h1 = v @ a.T - np.sum(np.logaddexp(0, a), -1)[None]  # (B, H1 states)
  log_joint = log_p_v_given_h1 + log_p_h1[None]
  q_logits = v @ w1 + c1
  log_q = h1 @ (-np.logaddexp(0, -q_logits)).T + (1 - h1) @ (-np.logaddexp(0, q_logits)).T  # (H1 states, B)
  bound = np.sum(np.exp(log_q.T) * (log_joint - log_q.T), -1)
  log_z = scipy.special.logsumexp(_log_unnormalised(w2, b2, c2, h1, linear_code))
  return scipy.special.logsumexp(log_joint, -1), bound, log_z


def _random_layers(rng, dims, scale):
  layers = []
  for v, h in zip(dims[:-1], dims[1:]):
    layers.append((rng.normal(0, scale, (v, h)), rng.normal(0, 1, v), rng.normal(0, 1, h)))
  return layers


def _f32(layers):
  return [tuple(jnp.asarray(a, jnp.float32) for a in layer) for layer in layers]


@pytest.mark.parametrize("linear_code", [False, True])
def test_bound_is_below_the_enumerated_log_likelihood_and_estimates_the_enumerated_bound(linear_code):
  rng = np.random.default_rng(2)
  layers = _random_layers(rng, (6, 4, 3), 1.5)
  v = (rng.random((4, 6)) > 0.5).astype(np.float64)
  log_p, bound, log_z = _exact(layers, v, linear_code)
  assert np.all(bound < log_p - 1e-3)  # The gap is KL(q(h1 | v) ‖ p(h1 | v)) > 0 for these weights.
  estimate = dbn.log_likelihood_bound(_f32(layers), jnp.asarray(v, jnp.float32), log_z, jax.random.key(0), 40_000,
                                      linear_code=linear_code)
  np.testing.assert_allclose(estimate, bound, atol=0.03)
  assert np.all(np.asarray(estimate) < log_p)


def test_bound_is_exact_when_q_is_the_posterior():
  """A second RBM that is the first one turned upside down (W2 = W1ᵀ, b2 = c1, c2 = b1) leaves p(v) that of the first
  RBM, with q(h1 | v) its exact posterior: the bound is log p(v), whatever the samples; one RBM alone is exact too."""
  rng = np.random.default_rng(3)
  (w1, b1, c1), = _random_layers(rng, (6, 4), 1.5)
  v = (rng.random((4, 6)) > 0.5).astype(np.float64)
  log_p1 = _log_unnormalised(w1, b1, c1, v, False)
  log_z1 = scipy.special.logsumexp(_log_unnormalised(w1, b1, c1, _states(6), False))
  tied = [(w1, b1, c1), (w1.T, c1, b1)]
  log_p, _, log_z = _exact(tied, v, False)
  np.testing.assert_allclose(log_p, log_p1 - log_z1, rtol=1e-10)
  estimate = dbn.log_likelihood_bound(_f32(tied), jnp.asarray(v, jnp.float32), log_z, jax.random.key(0), 3)
  np.testing.assert_allclose(estimate, log_p, atol=1e-4)
  single = dbn.log_likelihood_bound(_f32([(w1, b1, c1)]), jnp.asarray(v, jnp.float32), log_z1, jax.random.key(0), 1)
  np.testing.assert_allclose(single, log_p1 - log_z1, atol=1e-4)


def _rows(workdir):
  return [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]


def test_dbn_smoke_trains_rbm_after_rbm(smoke_config, tmp_path):
  summary = train.train_and_evaluate(smoke_config("dbn"), tmp_path)
  rows = _rows(tmp_path)
  assert [r["train/stage"] for r in rows if "train/stage" in r] == [0, 1, 2]
  evals = {r["step"]: r for r in rows if "test/recon_error" in r}
  # RBM 0 is frozen once RBM 1 trains; RBM 1 learns to reconstruct its input while it trains.
  assert evals[20]["test/layer0_recon_error"] == evals[60]["test/layer0_recon_error"]
  assert evals[40]["test/layer1_recon_error"] < 0.5 * evals[20]["test/layer1_recon_error"]
  assert {"test/layer2_free_energy_gap", "image/filters", "image/reconstruction", "image/samples"} <= set(summary)


@pytest.fixture(name="hinton_rbm_smoke")
def fixture_hinton_rbm_smoke(data_dir, mnist_manual_dir):
  def make(**fields):
    c = config_lib.from_file(f"{REPO}/experiments/hinton2006.py:rbm,smoke")
    c.data.data_dir, c.data.manual_dir = str(data_dir), str(mnist_manual_dir)
    for field, value in fields.items():
      c[field] = value
    return c
  return make


@pytest.mark.optimized
def test_hinton2006_rbm_smoke_pretrains_then_fine_tuning_improves(hinton_rbm_smoke, tmp_path):
  config = hinton_rbm_smoke(num_steps=100, eval_every=40, log_every=10)
  assert config.variant == "dbn_ae" and config.eval.suites == ("recon",)
  train.train_and_evaluate(config, tmp_path)
  rows = _rows(tmp_path)
  assert [r["train/stage"] for r in rows if "train/stage" in r] == [0, 1, 2, 3] + [4] * 6
  evals = {r["step"]: r for r in rows if "test/recon_error" in r}
  assert evals[100]["test/recon_error"] < evals[40]["test/recon_error"]


@pytest.mark.parametrize("variant", ["dbn", "dbn_ae"])
def test_resume_mid_stage_equals_uninterrupted(smoke_config, tmp_path, monkeypatch, preempt_at, variant):
  """Parameters, optimiser state and each RBM's persistent chains are bit for bit those of an uninterrupted run."""
  fields = dict(variant=variant, rbm__persistent=True, pretrain_steps=10, num_steps=40, log_every=5, eval_every=40,
                checkpoint_every=40, eval__suites=())
  train.train_and_evaluate(smoke_config("dbn", **fields), tmp_path / "whole")
  preempt_at(15)
  with pytest.raises(signals.Interrupted, match="at step 15"):
    train.train_and_evaluate(smoke_config("dbn", **fields), tmp_path / "resumed")
  monkeypatch.undo()
  train.train_and_evaluate(smoke_config("dbn", **fields), tmp_path / "resumed")
  with ocp.CheckpointManager(tmp_path / "whole" / "checkpoints") as a, \
       ocp.CheckpointManager(tmp_path / "resumed" / "checkpoints") as b:
    whole, resumed = a.restore(40), b.restore(40)
  assert sorted(whole["carry"]["chains"]) == ["layer0", "layer1", "layer2"]
  assert jax.tree.structure(whole) == jax.tree.structure(resumed)
  for x, y in zip(jax.tree.leaves(whole), jax.tree.leaves(resumed)):
    np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("variant,changes,message", [
    ("dbn", dict(model__encoder_widths=(8, 0)), r"hidden units \(8, 0, 4\) must be positive integers"),
    ("dbn", dict(model__encoder_widths=(-3,)), r"hidden units \(-3, 4\) must be positive integers"),
    ("dbn", dict(pretrain_steps=0), "pretrain_steps=0: a DBN trains each of its 3 RBMs .* use a positive count"),
    ("dbn", dict(pretrain_steps=5), "num_steps=14: training 3 RBMs for 5 steps each needs 15 steps"),
    ("dbn_ae", dict(pretrain_steps=-1), "pretrain_steps=-1: .* use 0 \\(no pre-training\\) or a count"),
    ("dbn_ae", dict(pretrain_steps=5), "needs 15 steps"),
    ("dbn", dict(model__activation="relu"), "use --config.model.activation=sigmoid"),
    ("dbn", dict(model__code_activation="tanh"), "binary \\('sigmoid'\\) or linear"),
    ("dbn", dict(model__decoder_widths=(8, 12)), "leave it unset"),
    ("dbn", dict(model__kind="conv"), "use --config.model.kind=mlp"),
    ("dbn", dict(dbn__top_rate_scale=0.0), "config.dbn.top_rate_scale=0.0: use a positive multiple"),
    ("dbn_ae", dict(rbm__visible="gaussian", data__standardize=True), "use --config.rbm.visible=bernoulli"),
    ("dbn", dict(lr_schedule="cosine"), "config.lr_schedule='cosine', warmup_steps=0: a DBN's optimiser restarts"),
    ("dbn_ae", dict(warmup_steps=10), "warmup_steps=10: .* use --config.lr_schedule=constant --config.warmup_steps=0"),
])
def test_bad_dbn_fields_are_one_line_errors(variant, changes, message):
  with pytest.raises(ConfigError, match=message) as error:
    registry.get(variant).validate(_config(variant, **changes))
  assert "\n" not in str(error.value)


def test_bad_stacks_are_refused_before_any_work():
  with pytest.raises(ConfigError, match="pretrain_steps=0"):
    train.check_config(_config(pretrain_steps=0))
  with pytest.raises(ConfigError, match="every layer width must be a positive integer"):
    train.check_config(_config(model__encoder_widths=(8, 0)))
  with pytest.raises(ConfigError, match="config argument 'dbn' is not known"):
    config_lib.from_file(f"{REPO}/experiments/hinton2006.py:dbn")


def test_experiment_files_give_valid_configs_and_sweep():
  for spec in ("dbn.py", "dbn.py:smoke", "hinton2006.py:rbm", "hinton2006.py:rbm,smoke"):
    train.check_config(config_lib.from_file(f"{REPO}/experiments/{spec}"))
  rbm_protocol = config_lib.from_file(f"{REPO}/experiments/hinton2006.py:rbm")
  assert (rbm_protocol.variant, rbm_protocol.model.code_activation, rbm_protocol.model.activation) == (
      "dbn_ae", "linear", "sigmoid")
  assert config_lib.from_file(f"{REPO}/experiments/hinton2006.py").variant == "ae"  # End to end stays the default.
  members = sweep_lib.load(f"{REPO}/experiments/dbn.py")
  assert len(members) == 4


@pytest.mark.optimized
def test_ais_suite_of_a_one_rbm_dbn_is_the_rbms_and_its_log_z_the_exact_one(smoke_config, tmp_path):
  """With one RBM the DBN's bound is log p(v) itself: its suite must give the `rbm` suite's figures for the same
  parameters, and its AIS estimate of log Z (12 hidden units: enumerable) the exact one."""
  from aejax import evaluate  # pylint: disable=g-import-not-at-top
  fields_ = {"model__encoder_widths": (), "latent_dim": 12, "pretrain_steps": 60, "eval__suites": (),
             "eval__ais__schedule": ((0.5, 1e-3), (1.0, 2e-4)), "eval__ais__runs": 100}
  train.train_and_evaluate(smoke_config("dbn", **fields_), tmp_path)
  run = evaluate.restore(tmp_path)
  dbn_metrics, _ = dbn.ais_suite(run)
  rbm_config = run.config.copy_and_resolve_references()
  rbm_config.variant = "rbm"
  rbm_state = run.state.replace(params={"params": run.state.params["params"]["rbms_0"]})
  rbm_metrics, _ = rbm.ais_suite(dataclasses.replace(run, config=rbm_config, state=rbm_state))
  assert dbn_metrics["ais/log_z"] == rbm_metrics["ais/log_z"]
  for name in ("test", "train"):
    np.testing.assert_allclose(dbn_metrics[f"ais/{name}_log_likelihood_bound"],
                               rbm_metrics[f"ais/{name}_log_likelihood"], rtol=1e-5)
  exact = float(ais.log_partition_exact(*rbm.unpack(rbm_state.params)))
  assert abs(dbn_metrics["ais/log_z"] - exact) < 0.1
  assert dbn_metrics["ais/log_z_low"] <= exact <= dbn_metrics["ais/log_z_high"]


def test_a_gaussian_dbn_gets_no_shared_suite_that_would_feed_it_unstandardised_pixels():
  from aejax.evaluation import selection  # pylint: disable=g-import-not-at-top
  config = _config(rbm__visible="gaussian", data__standardize=True, data__binarize="none")
  train.check_config(config)
  assert selection.select(config, None) == ()
  with pytest.raises(ConfigError, match="its model has no encode\\(\\), which suite 'recon' needs"):
    selection.select(config, ("recon",))
  assert selection.select(_config(data__binarize="dynamic"), None) == ("recon", "impute", "samples", "ais")
