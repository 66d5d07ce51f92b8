"""`rbm`: the CD update and a train step against NumPy, the free energy and the exact log-likelihood gradient by
enumeration, the sparsity term against `jax.grad`, training and PCD's resume by behaviour, bundles, bad input."""
import itertools
import json
import re
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from aejax import bundle, config as config_lib, registry, train
from aejax.data import input_pipeline
from aejax.errors import ConfigError
from aejax.variants.boltzmann import fields as fields_lib, rbm

from conftest import REPO, once_per_session, saved_checkpoint

SHAPE = (2, 3, 1)  # Six visible units, as images.
NAMES = ("weights", "visible_bias", "hidden_bias")


def _config(**fields):
  """A tiny RBM trained by plain SGD (no momentum, no weight cost) at learning rate 1, unless `fields` say else."""
  c = fields_lib.add(config_lib.base_config())
  c.variant, c.latent_dim, c.batch_size = "rbm", 3, 8
  c.optimizer, c.momentum, c.weight_decay, c.learning_rate = "sgd", 0.0, 0.0, 1.0
  c.update_from_flattened_dict(fields)
  return c


def _params(num_visible, num_hidden, seed=0, scale=1.0):
  rng = np.random.default_rng(seed)
  return {"weights": scale * rng.normal(size=(num_visible, num_hidden)).astype(np.float32),
          "visible_bias": 0.5 * rng.normal(size=num_visible).astype(np.float32),
          "hidden_bias": 0.5 * rng.normal(size=num_hidden).astype(np.float32)}


def _setup(config, params):
  """The variant, its jitted train step, and a fresh state holding `params`."""
  variant = registry.get("rbm")
  variant.validate(config)
  model = variant.build_model(config, SHAPE)
  state = train.init_state(variant, model, config, jax.random.key(0), jnp.zeros((1, *SHAPE)))
  state = state.replace(params={"params": {k: jnp.asarray(v) for k, v in params.items()}})
  return variant, jax.jit(train.make_train_step(variant, model, config)), state


def _sigmoid(x):
  return 1 / (1 + np.exp(-x))


def _numpy_cd(p, v_data, v_model):
  """⟨v hᵀ⟩_data - ⟨v hᵀ⟩_model example by example (outer products), h the hidden probabilities given each v."""
  def moments(v):
    h = _sigmoid(v @ p["weights"] + p["hidden_bias"])
    return (np.mean([np.outer(v_n, h_n) for v_n, h_n in zip(v, h)], axis=0), v.mean(0), h.mean(0))
  return {k: d - m for k, d, m in zip(NAMES, moments(v_data), moments(v_model))}


def _binary(rng, n, v=6):
  return (rng.random((n, v)) < 0.5).astype(np.float32)


def _flat(tree):
  return np.concatenate([np.ravel(tree[k]) for k in NAMES])


def test_contrastive_divergence_is_data_minus_model_moments():
  p = _params(6, 4)
  rng = np.random.default_rng(1)
  v_data, v_model = _binary(rng, 10), _binary(rng, 10)
  update = rbm.contrastive_divergence(*(jnp.asarray(p[k]) for k in NAMES), v_data, v_model)
  for k, expected in _numpy_cd(p, v_data, v_model).items():
    np.testing.assert_allclose(update[k], expected, rtol=1e-5, atol=1e-6, err_msg=k)


@pytest.mark.parametrize("cd_steps,sparsity_cost", [(1, 0.0), (3, 0.0), (1, 0.5)])
def test_pcd_step_moves_parameters_by_the_rate_times_the_update_of_its_chains(cd_steps, sparsity_cost):
  """Plain SGD at rate 0.1: Δθ = 0.1 (CD update + cost · sparsity update), the update computed in NumPy from the
  batch and the chains' new states (the negative samples the step drew), which it keeps for the next step."""
  config = _config(**{"learning_rate": 0.1, "rbm.persistent": True, "rbm.cd_steps": cd_steps,
                      "rbm.sparsity_cost": sparsity_cost})
  p = _params(6, 3)
  _, step, state = _setup(config, p)
  rng = np.random.default_rng(2)
  v = _binary(rng, 8)
  chains = np.asarray(state.carry["chains"])
  new, metrics = step(state, {"image": jnp.asarray(v.reshape(8, *SHAPE))}, jax.random.key(3))
  v_model = np.asarray(new.carry["chains"])
  assert set(np.unique(v_model)) <= {0.0, 1.0} and not np.array_equal(v_model, chains)
  q = _sigmoid(v @ p["weights"] + p["hidden_bias"])
  sparsity = {"weights": -v.T @ (q - 0.05) / 8, "visible_bias": np.zeros(6), "hidden_bias": -(q - 0.05).mean(0)}
  cd = _numpy_cd(p, v, v_model)
  for k in NAMES:
    moved = np.asarray(new.params["params"][k]) - p[k]
    np.testing.assert_allclose(moved, 0.1 * (cd[k] + sparsity_cost * sparsity[k]), rtol=1e-4, atol=1e-6, err_msg=k)
  assert float(metrics["finite"]) == 1


def test_cd_step_is_the_pcd_step_with_its_chains_at_the_batch():
  """CD-k starts each negative chain at its example: the same step as PCD-k whose chains stand at the batch, and as
  PCD-k's first step, which starts its chains there whatever they hold; later PCD steps run from the chains."""
  p = _params(6, 3)
  v = _binary(np.random.default_rng(4), 8)
  batch, key = {"image": jnp.asarray(v.reshape(8, *SHAPE))}, jax.random.key(5)
  for k in (2,):
    _, cd_step, cd_state = _setup(_config(**{"rbm.cd_steps": k}), p)
    _, pcd_step, pcd_state = _setup(_config(**{"rbm.cd_steps": k, "rbm.persistent": True}), p)
    assert cd_state.carry == {}
    cd, _ = cd_step(cd_state, batch, key)
    noise = jnp.asarray(1.0 - v)  # Every chain as far from its example as it can be.
    pcd, _ = pcd_step(pcd_state.replace(step=1, carry={"chains": jnp.asarray(v)}), batch, key)
    first, _ = pcd_step(pcd_state.replace(carry={"chains": noise}), batch, key)
    for name in NAMES:
      np.testing.assert_allclose(cd.params["params"][name], pcd.params["params"][name], rtol=1e-6, atol=1e-7)
      np.testing.assert_allclose(cd.params["params"][name], first.params["params"][name], rtol=1e-6, atol=1e-7)
    # With 3 hidden units two starts can give the same draws under one key: over five keys they must not all agree.
    moved = [pcd_step(state.replace(step=1, carry={"chains": chains}), batch, jax.random.key(seed))[0]
             for seed in range(5) for state, chains in ((pcd_state, jnp.asarray(v)), (pcd_state, noise))]
    assert any(not np.allclose(a.params["params"]["weights"], b.params["params"]["weights"])
               for a, b in zip(moved[::2], moved[1::2]))


def _all_states(n):
  return np.array(list(itertools.product([0.0, 1.0], repeat=n)))


def _energy(p, v, h, gaussian):
  """E(v, h) for every pair of rows of `v` (N, V) and `h` (M, H): (N, M)."""
  visible = (0.5 * np.sum((v - p["visible_bias"]) ** 2, -1) if gaussian else -v @ p["visible_bias"])[:, None]
  return visible - (h @ p["hidden_bias"])[None, :] - v @ p["weights"] @ h.T


@pytest.mark.parametrize("gaussian", [False, True])
def test_free_energy_sums_the_hidden_states_out(gaussian):
  p = _params(6, 4, scale=0.7)
  rng = np.random.default_rng(6)
  v = rng.normal(size=(9, 6)) if gaussian else rng.random((9, 6))
  minus_e = -_energy({k: p[k].astype(np.float64) for k in NAMES}, v, _all_states(4), gaussian)
  peak = minus_e.max(1, keepdims=True)
  expected = -(peak[:, 0] + np.log(np.exp(minus_e - peak).sum(1)))  # -log Σ_h exp(-E(v, h)), 2^4 states.
  got = rbm.free_energy(*(jnp.asarray(p[k]) for k in NAMES), jnp.asarray(v, jnp.float32), gaussian)
  np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


def _exact_gradient(p, data):
  """d mean log p(data) / dθ of a Bernoulli RBM: data moments less the model's, every (v, h) enumerated."""
  v, h = _all_states(len(p["visible_bias"])), _all_states(len(p["hidden_bias"]))
  joint = np.exp(-_energy(p, v, h, False))
  joint /= joint.sum()
  model = {"weights": v.T @ joint @ h, "visible_bias": joint.sum(1) @ v, "hidden_bias": joint.sum(0) @ h}
  q = _sigmoid(data @ p["weights"] + p["hidden_bias"])
  data_moments = {"weights": data.T @ q / len(data), "visible_bias": data.mean(0), "hidden_bias": q.mean(0)}
  return {k: data_moments[k] - model[k] for k in NAMES}, data_moments


def _cosine(a, b):
  return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))


def test_pcd_update_follows_the_exact_log_likelihood_gradient():
  """A 6-3 RBM: all 64 × 8 states enumerated give the exact gradient; the train step's update, averaged over 40
  steps of 2,000 persistent chains of 5 Gibbs sweeps each at fixed parameters, points the same way."""
  p = {k: v.astype(np.float64) for k, v in _params(6, 3, seed=7).items()}
  patterns = _binary(np.random.default_rng(8), 10)
  data = np.repeat(patterns, 200, axis=0)  # The data set itself, so the data moments are exact.
  exact, data_moments = _exact_gradient(p, data)
  config = _config(**{"batch_size": len(data), "rbm.persistent": True, "rbm.cd_steps": 5})
  _, step, state = _setup(config, {k: v.astype(np.float32) for k, v in p.items()})
  params, batch, updates = state.params, {"image": jnp.asarray(data.reshape(len(data), *SHAPE), jnp.float32)}, []
  for i in range(44):  # The first 4 steps (20 sweeps from noise) are burn-in.
    new, _ = step(state, batch, jax.random.key(i))
    if i >= 4:  # Rate 1, plain SGD: the parameters moved by the update itself.
      updates.append(_flat(jax.tree.map(lambda a, b: np.asarray(a, np.float64) - b, new.params, params)["params"]))
    state = new.replace(params=params)
  mean_update = np.mean(updates, axis=0)
  cosine = _cosine(mean_update, _flat(exact))
  assert cosine > 0.99, cosine
  error = np.linalg.norm(mean_update - _flat(exact)) / np.linalg.norm(_flat(exact))
  assert error < 0.05, error
  # The model's moments are no small part of the gradient: an update without them would be off by more than 100 %.
  assert np.linalg.norm(_flat(data_moments) - _flat(exact)) > np.linalg.norm(_flat(exact))


def test_sparsity_update_is_minus_the_gradient_of_the_cross_entropy():
  p = _params(6, 4)
  v = np.random.default_rng(9).random((7, 6)).astype(np.float32)

  def cross_entropy(params):
    q = jax.nn.sigmoid(v @ params["weights"] + params["hidden_bias"])
    return jnp.mean(jnp.sum(-0.1 * jnp.log(q) - 0.9 * jnp.log(1 - q), axis=-1))

  grad = jax.grad(cross_entropy)({k: jnp.asarray(p[k]) for k in NAMES})
  update = rbm.sparsity_update(jnp.asarray(p["weights"]), jnp.asarray(p["hidden_bias"]), v, 0.1)
  for k in NAMES:
    np.testing.assert_allclose(update[k], -grad[k], rtol=1e-5, atol=1e-6, err_msg=k)


def _rows(workdir):
  return [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]


def _initial_recon_error(config):
  """The test split's one-step reconstruction error of the run's freshly initialised RBM."""
  variant = registry.get("rbm")
  _, test_split = input_pipeline.load(config.data)
  model = variant.build_model(config, (28, 28, 1))
  state = train.init_state(variant, model, config, jax.random.key(config.seed), jnp.zeros((1, 28, 28, 1)))
  return train.make_evaluate(variant, model, config, test_split, state)(state, jax.random.key(0))["recon_error"]


FAST = dict(eval__suites=(), rbm__sample_steps=1, num_images=2)  # Pictures of one sweep, AIS off.
# PCD runs of 40 steps, checkpointed at 20 and 40.
PCD = dict(FAST, rbm__persistent=True, num_steps=40, log_every=20, eval_every=40, checkpoint_every=20)


@pytest.mark.parametrize("fields,fraction", [
    (FAST, 0.5),
    (dict(FAST, rbm__visible="gaussian", data__standardize=True, data__binarize="none"), 0.8)],
    ids=["bernoulli", "gaussian"])
def test_smoke_run_lowers_the_reconstruction_error(smoke_config, tmp_path, fields, fraction):
  """60 steps of experiments/rbm.py:smoke, its pictures of one Gibbs sweep and its AIS suite off (tested on its own)."""
  config = smoke_config("rbm", **fields)
  summary = train.train_and_evaluate(config, tmp_path)
  losses = [r["train/loss"] for r in _rows(tmp_path) if "train/loss" in r]
  initial = _initial_recon_error(config)
  assert summary["test/recon_error"] < fraction * initial, (summary["test/recon_error"], initial)
  assert losses[-1] < losses[0], losses


def test_gaussian_reconstruction_error_is_in_the_images_units():
  """Images 2x with twice the pixel std standardise to the same visibles, so the same draws: 4x the error."""
  config = _config(**{"rbm.visible": "gaussian", "data.standardize": True})
  p = {k: jnp.asarray(v) for k, v in _params(6, 3).items()}
  x = jnp.asarray(np.random.default_rng(10).random((5, *SHAPE)), jnp.float32)
  errors = []
  for scale in (1.0, 2.0):
    batch = {"image": scale * x, "pixel_mean": jnp.zeros(SHAPE), "pixel_std": jnp.full(SHAPE, scale)}
    metrics = rbm.one_step_metrics(config, batch, p["weights"], p["visible_bias"], p["hidden_bias"],
                                   rbm.visible_inputs(config, batch), jax.random.key(11))
    errors.append(np.asarray(metrics["recon_error"]))
  np.testing.assert_allclose(errors[1], 4 * errors[0], rtol=1e-5)


@pytest.fixture(scope="module")
def pcd_run(smoke_config, tmp_path_factory):
  """The workdir of an uninterrupted PCD run of 40 steps."""

  def make(folder):
    train.train_and_evaluate(smoke_config("rbm", **PCD), folder / "whole")
    return folder / "whole"

  return once_per_session(tmp_path_factory, "rbm-pcd", make)


def test_pcd_resumed_run_equals_uninterrupted_parameters_and_chains(pcd_run, smoke_config, tmp_path):
  train.train_and_evaluate(smoke_config("rbm", **{**PCD, "num_steps": 20}), tmp_path)
  train.train_and_evaluate(smoke_config("rbm", **PCD), tmp_path)
  whole, resumed = saved_checkpoint(pcd_run, 40), saved_checkpoint(tmp_path, 40)
  assert whole["carry"]["chains"].shape == (64, 784)
  for x, y in zip(jax.tree.leaves(whole), jax.tree.leaves(resumed), strict=True):
    np.testing.assert_array_equal(x, y)
  # The chains came back from the step-20 checkpoint: a fresh start's chains are others.
  config = smoke_config("rbm", **PCD)
  variant = registry.get("rbm")
  init_key = train.make_keys(jnp.asarray(config.seed), False)[0]
  fresh = train.create_state(variant, variant.build_model(config, (28, 28, 1)), config, init_key,
                             jnp.zeros((1, 28, 28, 1)))
  saved = saved_checkpoint(tmp_path, 20)["carry"]["chains"]
  assert saved.shape == fresh.carry["chains"].shape and not np.array_equal(saved, fresh.carry["chains"])


# Two PCD members that differ in every per-member field (sparsity cost, learning rate, seed); the first is
# `pcd_run`'s config.
MEMBERS = [{}, {"rbm.sparsity_cost": 0.5, "learning_rate": 0.02, "seed": 1}]


def test_bundle_members_end_as_if_trained_alone(pcd_run, smoke_config, tmp_path):
  def config(member):
    c = smoke_config("rbm", **PCD)
    c.update_from_flattened_dict(member)
    return c

  workdirs = [tmp_path / f"member{k}" for k in range(len(MEMBERS))]
  summaries = bundle.train_bundle([config(m) for m in MEMBERS], workdirs)
  alone = [pcd_run] + [tmp_path / f"alone{k}" for k in range(1, len(MEMBERS))]
  for k, member in enumerate(MEMBERS):
    if k:
      train.train_and_evaluate(config(member), alone[k])
    for x, y in zip(jax.tree.leaves(saved_checkpoint(alone[k], 40)),
                    jax.tree.leaves(saved_checkpoint(workdirs[k], 40)), strict=True):
      np.testing.assert_allclose(x, y, rtol=1e-4, atol=1e-6)
    row = [r for r in _rows(alone[k]) if "test/recon_error" in r][-1]
    assert summaries[k]["test/recon_error"] == pytest.approx(row["test/recon_error"], rel=1e-4)
  weights = [saved_checkpoint(w, 40)["params"]["params"]["weights"] for w in workdirs]
  assert not np.allclose(weights[0], weights[1], rtol=1e-2)


def _check(**fields):
  c = config_lib.from_file(f"{REPO}/experiments/rbm.py:smoke")
  c.eval.suites = ()
  c.update_from_flattened_dict(fields)
  return train.check_config(c)


@pytest.mark.parametrize("fields,message", [
    ({"rbm.cd_steps": 0}, "config.rbm.cd_steps=0: the negative phase needs at least one Gibbs step: use k >= 1"),
    ({"rbm.visible": "gaussian", "data.binarize": "none"},
     "config.data.standardize=False: a Gaussian–Bernoulli RBM models visibles of zero mean and unit variance"),
    ({"rbm.visible": "gaussian", "data.standardize": True},
     "config.data.binarize='dynamic': Gaussian visibles are real-valued: use --config.data.binarize=none"),
    ({"data.standardize": True}, "config.data.standardize=True: Bernoulli visibles are probabilities in [0, 1]"),
    ({"eval.ais.schedule": ((0.5, 1e-2), (0.9, 1e-3))},
     "config.eval.ais.schedule=((0.5, 0.01), (0.9, 0.001)): the schedule ends at β = 0.9, not at the model (β = 1)"),
    ({"eval.ais.schedule": (1.0, 1e-2)},  # '((1.0, 1e-2))' on a command line: the segment without its comma.
     "config.eval.ais.schedule=(1.0, 0.01): give (end, step) segments from β = 0"),
    ({"eval.ais.schedule": ((1.0, "fine"),)}, "config.eval.ais.schedule=((1.0, 'fine'),): give (end, step) segments"),
    ({"momentum": 0.5, "optimizer": "adam"}, "config.momentum=0.5: only optimizer='sgd' reads it ('adam' has its own)"),
])
def test_bad_rbm_fields_are_one_line_errors(fields, message):
  with pytest.raises(ConfigError, match="^" + re.escape(message)):
    _check(**fields)


def test_pixel_statistics_for_a_model_that_does_not_read_them_are_one_line():
  c = config_lib.base_config()
  c.data.standardize = True
  with pytest.raises(ConfigError, match=re.escape("config.data.standardize=True: only models of Gaussian pixels read "
                                                  "the pixel statistics")):
    config_lib.validate(c)


def test_a_config_without_the_rbm_sections_says_which_sections_and_how_to_add_them():
  c = config_lib.base_config()
  c.variant = "rbm"
  with pytest.raises(ConfigError, match=re.escape(
      "config.variant='rbm' reads config.dbn, config.eval.ais, config.rbm, which this config lacks: add its family's "
      "fields to the config file (e.g. c = aejax.variants.boltzmann.fields.add(c))")):
    train.check_config(c)


def test_bad_k_on_the_command_line_is_one_line_before_any_work(data_dir, mnist_manual_dir, tmp_path):
  result = subprocess.run(
      [sys.executable, "-m", "aejax.main", "--config=experiments/rbm.py:smoke", f"--workdir={tmp_path / 'run'}",
       f"--config.data.data_dir={data_dir}", f"--config.data.manual_dir={mnist_manual_dir}",
       "--config.rbm.cd_steps=0"], cwd=REPO, text=True, capture_output=True, timeout=300)
  assert result.returncode == 1
  lines = result.stderr.strip().splitlines()
  assert lines == ["aejax: error: config.rbm.cd_steps=0: the negative phase needs at least one Gibbs step: use k >= "
                   "1, e.g. --config.rbm.cd_steps=1 (CD-1)"], result.stderr
  assert not (tmp_path / "run").exists()
