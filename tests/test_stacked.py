"""`stacked_ae`: the stack against a numpy forward pass, stages that train one layer with a fresh optimiser,
greedy pre-training far better than random and improved by fine-tuning, resume across a stage boundary."""
import json

import jax
import jax.numpy as jnp
import numpy as np
import optax
import orbax.checkpoint as ocp
import pytest

from aejax import config as config_lib
from aejax import registry, signals, train
from aejax.data import input_pipeline
from aejax.errors import ConfigError


def _config(**fields):
  c = config_lib.base_config()
  c.variant, c.model.encoder_widths, c.latent_dim = "stacked_ae", (12, 8), 4
  c.model.activation = c.model.code_activation = "relu"
  c.pretrain_steps, c.num_steps, c.loss = 3, 12, "bce"
  for field, value in fields.items():
    c[field] = value
  return c


def _setup(config, batch=5):
  variant = registry.get("stacked_ae")
  variant.validate(config)
  x = np.random.default_rng(0).random((batch, 4, 4, 1)).astype(np.float32)
  model = variant.build_model(config, (4, 4, 1))
  return variant, model, train.init_state(variant, model, config, jax.random.key(0), x), x


def _dense(params, name, v):
  return v @ np.asarray(params["params"][name]["kernel"]) + np.asarray(params["params"][name]["bias"])


def test_codes_stack_is_the_deep_autoencoder_in_numpy():
  _, model, state, x = _setup(_config())
  relu = lambda v: np.maximum(v, 0)  # noqa: E731
  v = x.reshape(5, -1)
  for k in range(3):
    v = relu(_dense(state.params, f"encoders_{k}", v))
  code = v
  for k in (2, 1):
    v = relu(_dense(state.params, f"decoders_{k}", v))
  logits = _dense(state.params, "decoders_0", v)
  out = model.apply(state.params, x)
  np.testing.assert_allclose(out["code"], code, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(out["logits"].reshape(5, -1), logits, rtol=1e-5, atol=1e-6)
  assert [state.params["params"][f"decoders_{k}"]["kernel"].shape[1] for k in range(3)] == [16, 12, 8]


def test_concat_layer_input_is_the_input_joined_with_its_reconstruction():
  _, model, state, x = _setup(_config(stack_input="concat"))
  sigmoid = lambda v: 1 / (1 + np.exp(-v))  # noqa: E731
  v = x.reshape(5, -1)
  for k in range(2):
    recon = sigmoid(_dense(state.params, f"decoders_{k}", np.maximum(_dense(state.params, f"encoders_{k}", v), 0)))
    v = np.concatenate([v, recon], axis=-1)
  assert v.shape == (5, 64)
  np.testing.assert_allclose(model.apply(state.params, 2, x, method=model.layer_input), v, rtol=1e-5, atol=1e-6)
  last = _dense(state.params, "decoders_2", np.maximum(_dense(state.params, "encoders_2", v), 0))
  np.testing.assert_allclose(model.apply(state.params, x)["logits"].reshape(5, -1), last[:, :16], rtol=1e-5,
                             atol=1e-6)


@pytest.mark.parametrize("stack_input", ["codes", "concat"])
def test_each_stage_moves_only_its_layer_and_starts_a_fresh_adam_once(stack_input):
  config = _config(stack_input=stack_input, learning_rate=0.01)
  variant, model, state, x = _setup(config)
  step = jax.jit(train.make_train_step(variant, model, config))
  for stage in (0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3):
    before = state.params["params"]
    state, metrics = step(state, {"image": x}, jax.random.key(1))
    assert float(metrics["stage"]) == stage
    # Adam's step count restarts with each stage only: fine-tuning keeps one optimiser to the end.
    counts = {int(c) for _, c in optax.tree_utils.tree_get_all_with_path(state.opt_state, "count")}
    assert counts == {int(state.step) - 3 * stage}, (int(state.step), counts)
    for name, layer in state.params["params"].items():
      moved = [not np.array_equal(a, b) for a, b in zip(jax.tree.leaves(layer), jax.tree.leaves(before[name]))]
      assert all(moved) if stage in (3, int(name[-1])) else not any(moved), (stage, name)
    if int(state.step) - 1 in (3, 6):
      # The first step of a stage is a fresh Adam's: every weight with a gradient moves by the full rate.
      kernel = f"encoders_{stage}"
      delta = np.abs(np.asarray(state.params["params"][kernel]["kernel"] - before[kernel]["kernel"]))
      assert np.median(delta[delta > 0]) == pytest.approx(0.01, rel=0.05)


def _rows(workdir):
  return [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]


def test_pretraining_beats_random_and_fine_tuning_improves_it(smoke_config, tmp_path):
  config = smoke_config("stacked_ae", pretrain_steps=40, num_steps=200, eval_every=40)
  variant = registry.get("stacked_ae")
  train.train_and_evaluate(config, tmp_path)
  evals = {r["step"]: r for r in _rows(tmp_path) if "test/recon_error" in r}

  _, test_split = input_pipeline.load(config.data)
  model = variant.build_model(config, (28, 28, 1))
  state = train.init_state(variant, model, config, jax.random.key(0), jnp.zeros((1, 28, 28, 1)))
  random_error = train.make_evaluate(variant, model, config, test_split, state)(state, jax.random.key(0))["recon_error"]

  pretrained, finetuned = evals[120]["test/recon_error"], evals[200]["test/recon_error"]
  assert pretrained < 0.5 * random_error, (pretrained, random_error)
  assert finetuned < 0.85 * pretrained, (finetuned, pretrained)
  # Pre-training layer k leaves the layers below as they were.
  assert evals[80]["test/layer0_error"] == evals[120]["test/layer0_error"]
  assert evals[120]["test/layer1_error"] < evals[40]["test/layer1_error"]


def test_concat_stack_learns_stage_by_stage(smoke_config, tmp_path):
  train.train_and_evaluate(smoke_config("stacked_ae", stack_input="concat", pretrain_steps=20, num_steps=80,
                                        eval_every=20), tmp_path)
  rows = _rows(tmp_path)
  evals = {r["step"]: r for r in rows if "test/recon_error" in r}
  assert [r["train/stage"] for r in rows if "train/stage" in r] == [0, 1, 2, 3]
  assert evals[20]["test/layer0_error"] == evals[60]["test/layer0_error"]
  assert evals[80]["test/recon_error"] < evals[60]["test/recon_error"] < evals[20]["test/depth3_recon_error"]


def test_resume_across_a_stage_boundary_equals_uninterrupted(smoke_config, tmp_path, monkeypatch, preempt_at):
  fields = dict(pretrain_steps=10, num_steps=50, log_every=5, eval_every=50, checkpoint_every=50)
  train.train_and_evaluate(smoke_config("stacked_ae", **fields), tmp_path / "whole")
  preempt_at(25)
  with pytest.raises(signals.Interrupted, match="at step 25"):
    train.train_and_evaluate(smoke_config("stacked_ae", **fields), tmp_path / "resumed")
  monkeypatch.undo()
  train.train_and_evaluate(smoke_config("stacked_ae", **fields), tmp_path / "resumed")
  for run in ("whole", "resumed"):
    with ocp.CheckpointManager(tmp_path / run / "checkpoints") as manager:
      assert manager.latest_step() == 50
  with ocp.CheckpointManager(tmp_path / "whole" / "checkpoints") as a, \
       ocp.CheckpointManager(tmp_path / "resumed" / "checkpoints") as b:
    for x, y in zip(jax.tree.leaves(a.restore(50)), jax.tree.leaves(b.restore(50))):
      np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("fields,message", [
    (dict(pretrain_steps=-1), "pretrain_steps=-1: use 0"),
    (dict(pretrain_steps=5, num_steps=14), "needs 15 steps plus fine-tuning"),
])
def test_bad_stacking_fields_are_one_line_errors(fields, message):
  with pytest.raises(ConfigError, match=message):
    registry.get("stacked_ae").validate(_config(**fields))


def test_conv_kind_and_own_decoder_widths_are_refused():
  c = _config()
  c.model.kind = "conv"
  with pytest.raises(ConfigError, match="stacks dense layers; use --config.model.kind=mlp"):
    registry.get("stacked_ae").validate(c)
  c = _config()
  c.model.decoder_widths = (8, 12)
  with pytest.raises(ConfigError, match="decoder mirrors its layers"):
    registry.get("stacked_ae").validate(c)
  with pytest.raises(ConfigError, match="config.stack_input='sideways': use one of codes, concat"):
    config_lib.validate(_config(stack_input="sideways"))
