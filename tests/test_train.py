"""Training by behaviour: smoke runs learn and write their outputs, runs reproduce, resume equals uninterrupted."""
import json
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax
import orbax.checkpoint as ocp
import pytest

from aejax import bundle, config as config_lib, evaluate, images, locks, registry
from aejax import sweep as sweep_lib
from aejax import signals, train
from aejax.data import input_pipeline
from aejax.errors import ConfigError

from conftest import REPO


def _rows(workdir):
  return [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]


def _params(workdir):
  """The parameters of the latest checkpoint, read back with orbax alone."""
  with ocp.CheckpointManager(workdir / "checkpoints") as manager:
    return manager.restore(manager.latest_step())["params"]


@pytest.mark.parametrize("name", ["ae", "dae", "vae", "beta_vae"])
def test_smoke_run_learns_and_writes_checkpoint_metrics_images(name, smoke_config, tmp_path):
  config = smoke_config(name)
  summary = train.train_and_evaluate(config, tmp_path)
  rows = _rows(tmp_path)
  losses = [r["train/loss"] for r in rows if "train/loss" in r]
  assert len(losses) == config.num_steps // config.log_every
  assert losses[-1] < 0.8 * losses[0], losses
  evals = [r for r in rows if "test/loss" in r]
  assert [r["step"] for r in evals] == [30, 60]
  assert evals[-1]["test/loss"] < evals[0]["test/loss"]
  if name in ("vae", "beta_vae"):
    assert all(np.isfinite(r["test/neg_elbo"]) and r["test/kl"] > 0 for r in evals)
  assert summary["test/loss"] == pytest.approx(evals[-1]["test/loss"])
  assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir() if p.name.isdigit()) == ["30", "60"]
  pictures = sorted(p.name for p in (tmp_path / "images").iterdir())
  expected = {"reconstruction"} | ({"samples"} if "vae" in name else set())
  assert {p.split("_0")[0] for p in pictures} == expected
  assert summary["image/reconstruction"].endswith("reconstruction_0000060.png")
  assert json.loads((tmp_path / "summary.json").read_text()) == summary
  # The metrics the experiment's sweep curves plot are ones its runs write (with the suites aejax.main runs next).
  written = summary.keys() | (evaluate.evaluate_run(tmp_path, config.eval.suites).keys() if config.eval.suites
                              else set())
  for _, ys in sweep_lib.load_curves(f"{REPO}/experiments/{name}.py:smoke"):
    assert set(ys) <= written, set(ys) - written


def test_dae_picture_shows_clean_noisy_and_denoised_rows(smoke_config, tmp_path):
  from PIL import Image  # pylint: disable=g-import-not-at-top
  config = smoke_config("dae", num_steps=30)
  summary = train.train_and_evaluate(config, tmp_path)
  picture = np.asarray(Image.open(summary["image/reconstruction"]))
  top, left = images.margins(("input", "noisy", "reconstruction"), "title")
  assert picture.shape == (top + 4 * (3 * 29 - 1), left + 4 * (config.num_images * 29 - 1))  # 28-pixel digits 4x.
  assert (picture[top:, :left] < 128).any()  # The rows' labels.


def test_dae_picture_takes_the_noise_level_from_the_state_not_the_config():
  """A bundle's members share one config, their noise levels are their hparams: the noisy row must use those."""
  config = config_lib.from_file(f"{REPO}/experiments/dae.py:smoke")
  variant = registry.get("dae")
  x = jax.random.uniform(jax.random.key(0), (4, 28, 28, 1))
  model = variant.build_model(config, x.shape[1:])
  params = variant.init(model, jax.random.key(1), x)
  def noisy_row(noise_factor):
    hp = {"noise_factor": jnp.float32(noise_factor)}
    return variant.images(model, config, params, {"image": x}, jax.random.key(2), hp)["reconstruction"].rows[1]
  assert config.noise_factor == 0.5
  np.testing.assert_array_equal(noisy_row(0.0), x[:config.num_images])
  assert not np.allclose(noisy_row(0.5), x[:config.num_images], atol=0.05)


def test_rerun_with_another_model_in_the_same_workdir_is_one_line_and_keeps_the_run(smoke_config, tmp_path):
  train.train_and_evaluate(smoke_config("ae", num_steps=2, checkpoint_every=2, eval_every=2), tmp_path)
  saved = (tmp_path / "config.json").read_text()
  latent_dim = json.loads(saved)["latent_dim"]
  with pytest.raises(ConfigError, match=rf"was trained with other values \(changed: latent_dim: {latent_dim} -> 5\): "
                     r"rerun it with the values it was started with, or use a new --workdir for this config"):
    train.train_and_evaluate(smoke_config("ae", num_steps=2, checkpoint_every=2, eval_every=2, latent_dim=5), tmp_path)
  # Nor a field that only changes training (as a sweep member rerun with another β would be mislabelled).
  with pytest.raises(ConfigError, match=r"\(changed: learning_rate: 0\.001 -> 0\.01; seed: 0 -> 3\)"):
    train.train_and_evaluate(smoke_config("ae", num_steps=2, checkpoint_every=2, eval_every=2, learning_rate=0.01,
                                          seed=3), tmp_path)
  assert (tmp_path / "config.json").read_text() == saved
  # Its length, logging, evaluation, data paths and W&B may change: here it is extended.
  summary = train.train_and_evaluate(smoke_config("ae", num_steps=4, checkpoint_every=2, eval_every=4, log_every=1,
                                                  wandb__group="more", eval__num_train=100), tmp_path)
  assert summary["step"] == 4 and json.loads((tmp_path / "config.json").read_text())["num_steps"] == 4
  # A checkpoint written without a config.json (copied in by hand) of another model: still one line.
  (tmp_path / "config.json").unlink()
  with pytest.raises(ConfigError, match=r"holds checkpoints of another model: use a new --workdir"):
    train.train_and_evaluate(smoke_config("ae", num_steps=4, latent_dim=5), tmp_path)


def test_same_seed_same_parameters_other_seed_differs(smoke_config, tmp_path):
  for run, seed in (("a", 0), ("b", 0), ("c", 1)):
    train.train_and_evaluate(smoke_config("vae", seed=seed, num_steps=30), tmp_path / run)
  a, b, c = (_params(tmp_path / run) for run in "abc")
  assert all(np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))
  assert not all(np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(c)))


def test_resume_after_sigterm_equals_uninterrupted(smoke_config, tmp_path, monkeypatch, preempt_at):
  # A cosine schedule over num_steps, KL warm-up and dynamic binarisation: everything that depends on the step.
  fields = dict(lr_schedule="cosine", num_steps=60, checkpoint_every=50, kl_warmup_steps=40, data__binarize="dynamic")
  train.train_and_evaluate(smoke_config("beta_vae", **fields), tmp_path / "whole")

  preempt_at(40)
  with pytest.raises(signals.Interrupted, match="at step 40; checkpoint saved"):
    train.train_and_evaluate(smoke_config("beta_vae", **fields), tmp_path / "resumed")
  monkeypatch.undo()
  assert (tmp_path / "resumed" / "checkpoints" / "40").is_dir()  # Written on the signal, not by the schedule.

  summary = train.train_and_evaluate(smoke_config("beta_vae", **fields), tmp_path / "resumed")
  whole, resumed = _params(tmp_path / "whole"), _params(tmp_path / "resumed")
  for x, y in zip(jax.tree.leaves(whole), jax.tree.leaves(resumed)):
    np.testing.assert_array_equal(x, y)
  assert [r["step"] for r in _rows(tmp_path / "resumed")] == [r["step"] for r in _rows(tmp_path / "whole")]
  assert summary["step"] == 60

  # Rerunning the finished run trains nothing, logs nothing twice and reports the same figures.
  again = train.train_and_evaluate(smoke_config("beta_vae", **fields), tmp_path / "resumed")
  assert again == summary
  assert len(_rows(tmp_path / "resumed")) == len(_rows(tmp_path / "whole"))


def test_a_half_written_checkpoint_is_ignored_and_cleaned_up(smoke_config, tmp_path):
  train.train_and_evaluate(smoke_config("ae", num_steps=30), tmp_path)
  half_written = tmp_path / "checkpoints" / "40.orbax-checkpoint-tmp-1764259200"
  half_written.mkdir()
  (half_written / "params").write_text("truncated")  # A save that died mid-write.
  summary = train.train_and_evaluate(smoke_config("ae", num_steps=60), tmp_path)
  assert summary["step"] == 60
  assert [r["step"] for r in _rows(tmp_path) if "train/loss" in r] == [20, 30, 40, 60]
  assert not half_written.exists()


@pytest.mark.parametrize("binarize", ["none", "dynamic"])
def test_data_step_walks_each_epochs_permutation_and_binarises_dynamic_batches(binarize):
  # 12 grey images (value 128) in batches of 4: 3 steps an epoch. A stand-in train step returns its batch.
  c = config_lib.base_config()
  c.batch_size, c.data.binarize = 4, binarize
  split = input_pipeline.Split(jnp.full((12, 28, 28, 1), 128, jnp.uint8), jnp.arange(12, dtype=jnp.int32))
  data_step = jax.jit(train.make_data_step(lambda state, batch, key: (state.replace(step=state.step + 1), batch),
                                           split, c))
  state = train.TrainState.create(apply_fn=None, params={}, tx=optax.identity(), hparams={})
  perms = [np.asarray(input_pipeline.epoch_permutation(jax.random.key(0), epoch, 12)) for epoch in (0, 1)]
  assert all(sorted(p) == list(range(12)) for p in perms) and not np.array_equal(*perms)
  labels, pixels = [], []
  for perm in perms:
    for _ in range(3):
      state, batch = data_step(state, split, jnp.asarray(perm), jax.random.key(1))
      labels.append(np.asarray(batch["label"]))
      pixels.append(np.asarray(batch["image"]))
  np.testing.assert_array_equal(np.concatenate(labels), np.concatenate(perms))
  pixels = np.stack(pixels)
  if binarize == "none":
    np.testing.assert_allclose(pixels, 128 / 255, rtol=1e-6)
  else:  # Bernoulli(128/255) draws, fresh each step.
    assert set(np.unique(pixels)) == {0.0, 1.0} and pixels.mean() == pytest.approx(128 / 255, abs=0.01)
    assert not np.array_equal(pixels[0], pixels[3])  # The same images, other draws.


def test_a_workdir_in_use_by_another_process_is_one_line(smoke_config, tmp_path):
  config = smoke_config("ae", num_steps=2, checkpoint_every=2, eval_every=2)
  code = ("import pathlib, sys, time; from aejax import locks\n"
          "with locks.hold(pathlib.Path(sys.argv[1])):\n  print('held', flush=True); time.sleep(float(sys.argv[2]))")
  holder = subprocess.Popen([sys.executable, "-c", code, str(tmp_path), "120"], stdout=subprocess.PIPE, text=True)
  try:  # As a run or a launcher at work there.
    assert holder.stdout.readline() == "held\n"
    starts = (lambda: train.train_and_evaluate(config, tmp_path), lambda: bundle.train_bundle([config], [tmp_path]))
    for start in starts:
      with pytest.raises(ConfigError, match=r"in use by another process \(a run or a launcher\): wait for it to end"):
        start()
    assert not (tmp_path / "checkpoints").exists()
  finally:
    holder.kill()
    holder.wait()
  # A launcher's child inherits the launcher's descriptor of the lock, and with it the lock.
  with locks.lock(tmp_path) as fd:
    child = subprocess.run([sys.executable, "-c", code, str(tmp_path), "0"], pass_fds=(fd,), capture_output=True,
                           text=True, timeout=120)
    assert child.stdout == "held\n", child.stderr
  assert train.train_and_evaluate(config, tmp_path)["step"] == 2


def test_a_size_too_large_for_the_memory_is_one_line_before_any_work(smoke_config, tmp_path, monkeypatch):
  assert 2**30 < train.free_memory() < 2**50  # This machine's available memory, read from the OS.
  monkeypatch.setattr(train, "free_memory", lambda: 0)  # As if nothing were free.
  with pytest.raises(ConfigError, match=r"^config\.batch_size=64: training needs [\d,]+ MiB \(the train state [\d,]+ "
                     r"MiB\), more than the 0 MiB free here: use a smaller batch_size, or a smaller model "
                     r"\(latent_dim, widths\)$"):
    train.train_and_evaluate(smoke_config("ae"), tmp_path)
  assert not (tmp_path / "checkpoints").exists() or not any((tmp_path / "checkpoints").iterdir())
  assert not (tmp_path / "metrics.jsonl").exists()  # Nor was a metrics file or a W&B run started.
  config = smoke_config("ae")
  variant, split = registry.get("ae"), input_pipeline.Split(jnp.zeros((10, 28, 28, 1), jnp.uint8),
                                                             jnp.zeros(10, jnp.int32))
  model = variant.build_model(config, (28, 28, 1))
  state = train.init_state(variant, model, config, jax.random.key(0), jnp.zeros((1, 28, 28, 1)))
  with pytest.raises(ConfigError, match=r"^config\.eval_batch_size=256: training needs .* use a smaller eval_batch"):
    train.make_evaluate(variant, model, config, split, state)


@pytest.mark.parametrize("field, value", [("latent_dim", 200_000_000), ("model__encoder_widths", (200_000, 200_000))])
def test_a_model_too_large_to_initialise_is_one_line_before_any_buffer(field, value, smoke_config, tmp_path):
  # Sizes are checked from shapes before initialisation: these states (hundreds of GiB) are never allocated.
  with pytest.raises(ConfigError, match=r"^config\.batch_size=64: training needs [\d,]+ MiB \(the train state "
                     r"[\d,]+ MiB\), more than the [\d,]+ MiB free here"):
    train.train_and_evaluate(smoke_config("ae", **{field: value}), tmp_path)
