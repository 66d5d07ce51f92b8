"""The samples suite end to end on a smoke VAE: its cached classifier (trained once, then reused), its figures
against an independent computation, and the runs it does not fit."""
import dataclasses
import json

import jax
import numpy as np
import pytest
import scipy.linalg

from aejax import evaluate, registry, train
from aejax.data import datasets
from aejax.errors import ConfigError
from aejax.evaluation import judge as judge_lib, sample_quality, selection, suites

# A VAE of 30 steps; a classifier of 100 steps; 200 samples against 200 reference images.
_SMALL = dict(num_steps=30, data__num_train=1_024, data__num_test=256, eval__num_train=256, eval__sample_count=200,
              eval__reference_count=200, eval__classifier_steps=100)


@pytest.fixture(scope="module")
def vae_run(smoke_config, tmp_path_factory):
  """A smoke VAE whose samples suite uses the session's classifier folder: another test (or the other pytest-xdist
  worker) may have trained the 100-step classifier already."""
  workdir = tmp_path_factory.mktemp("samples") / "vae"
  config = smoke_config("vae", **_SMALL)
  train.train_and_evaluate(config, workdir)
  return config, workdir


def test_samples_suite_trains_its_classifier_once_then_reuses_it(vae_run, capfd):
  config, workdir = vae_run
  cached = judge_lib.workdir(config)
  assert cached.name == "mnist-100steps"
  was_cached = (cached / "summary.json").exists()
  capfd.readouterr()
  report = evaluate.evaluate_run(workdir, ["samples"])
  err = capfd.readouterr().err
  trained = f"aejax: training the samples suite's digit classifier for 'mnist' once (100 steps), cached in {cached}"
  waited = f"aejax: waiting for another process to finish the classifier in {cached}"
  if was_cached:  # Not trained again (though it may wait for a worker still writing the reference features).
    assert trained not in err
  else:  # Trained here, or by another worker while this one waited.
    assert trained in err or waited in err
  summary = json.loads((cached / "summary.json").read_text())
  assert summary["step"] == 100 and report["samples/classifier_accuracy"] == summary["test/accuracy"] > 0.8
  assert (cached / "reference-200.npz").exists()
  trained_at = (cached / "summary.json").stat().st_mtime_ns

  judge_lib._restored.cache_clear()  # pylint: disable=protected-access  (as a new process: read the cached files)
  again = evaluate.evaluate_run(workdir, ["samples"])
  assert "training the samples suite's digit classifier" not in capfd.readouterr().err
  assert (cached / "summary.json").stat().st_mtime_ns == trained_at  # Not retrained.
  assert {k: v for k, v in again.items() if not k.startswith("image/")} == {
      k: v for k, v in report.items() if not k.startswith("image/")}  # The same samples, judge and reference.

  assert report["samples/count"] == 200
  assert 0 < report["samples/fid_floor"] < report["samples/fid"]  # A 30-step VAE is far from the data.
  for name in ("precision", "recall", "precision_floor", "recall_floor"):
    assert 0 <= report[f"samples/{name}"] <= 1
  fractions = [report[f"samples/class_fraction_{c}"] for c in range(10)]
  assert sum(fractions) == pytest.approx(1.0)
  assert report["samples/class_fraction_min"] == min(fractions) and report["samples/class_fraction_max"] == max(
      fractions)
  assert 1 <= report["samples/modes_covered"] <= 10 and report["samples/class_kl"] >= 0
  assert "samples/accuracy" not in report  # The VAE is unconditional.
  assert report["image/eval_samples"].endswith(".png")


@pytest.mark.filterwarnings("ignore:Matrix is singular")  # scipy's sqrtm, on 200 images' 128 features.
def test_samples_floor_is_train_against_test_in_the_classifiers_features(vae_run):
  config, workdir = vae_run
  evaluate.evaluate_run(workdir, ["samples"])  # Trains the classifier if this test runs alone.
  judge = judge_lib.load(config)
  restored = evaluate.restore(judge.workdir, judge_lib.classifier_config(config))
  model = registry.get("classifier").build_model(restored.config, (28, 28, 1))
  features = jax.jit(lambda x: model.apply(restored.state.params, x, method=model.features))
  splits = [datasets.load_split("mnist", split, config.data.data_dir, num_examples=200) for split in ("train", "test")]
  (train_x, _), (test_x, test_labels) = [(features(x.astype(np.float32) / 255), y) for x, y in splits]
  train_x, test_x = np.asarray(train_x, np.float64), np.asarray(test_x, np.float64)
  np.testing.assert_allclose(judge.test_features, test_x, rtol=1e-4, atol=1e-4)
  np.testing.assert_array_equal(judge.test_labels, test_labels)
  mean_a, mean_b = train_x.mean(0), test_x.mean(0)
  cov_a, cov_b = np.cov(train_x, rowvar=False), np.cov(test_x, rowvar=False)
  fid = np.square(mean_a - mean_b).sum() + np.trace(cov_a + cov_b - 2 * scipy.linalg.sqrtm(cov_a @ cov_b).real)
  assert judge.floor["fid"] == pytest.approx(fid, rel=1e-3)
  assert (judge.floor["precision"], judge.floor["recall"]) == pytest.approx(
      sample_quality.precision_recall(test_x, train_x), abs=1e-9)


def test_samples_suite_fits_generative_variants_only(smoke_config):
  assert "samples" in selection.select(smoke_config("vae"), None)
  assert "samples" not in selection.select(smoke_config("ae"), None)
  with pytest.raises(ConfigError, match=r"^suite 'samples' scores a generative model's samples, and "
                     r"config.variant='ae' draws none: drop it from --suite \(or config.eval.suites\), or evaluate "
                     r"a run of .*vae"):
    selection.select(smoke_config("ae"), ("samples",))
  with pytest.raises(ConfigError, match=r"config.eval.sample_count=3: precision and recall"):
    train.check_config(smoke_config("vae", eval__sample_count=3))


def test_rbm_samples_are_its_gibbs_chains_visible_means(smoke_config):
  config = smoke_config("rbm", rbm__sample_steps=5)
  variant = registry.get("rbm")
  model = variant.build_model(config, (28, 28, 1))
  params = jax.tree.map(np.zeros_like, model.init(jax.random.key(0), np.zeros((1, 28, 28, 1), np.float32)))
  bias = np.linspace(-3, 3, 784, dtype=np.float32)
  params["params"]["visible_bias"] = bias
  x = variant.sample(model, config, params, jax.random.key(1), np.zeros(6, np.int32))
  assert x.shape == (6, 28, 28, 1)
  # Without weights every chain is at its stationary distribution at once: each pixel's mean is sigmoid(its bias).
  np.testing.assert_allclose(np.asarray(x).reshape(6, 784), np.broadcast_to(1 / (1 + np.exp(-bias)), (6, 784)),
                             rtol=1e-6)
  assert "samples" in selection.select(config, None)
  gaussian = smoke_config("rbm", rbm__visible="gaussian", data__standardize=True, data__binarize="none")
  assert "samples" not in selection.select(gaussian, None)
  with pytest.raises(ConfigError, match=r"^suite 'samples' scores images in \[0, 1\], and rbm.visible='gaussian'"):
    selection.select(gaussian, ("samples",))


def test_dbn_samples_are_its_top_chains_propagated_down(smoke_config):
  config = smoke_config("dbn", rbm__sample_steps=5)
  variant = registry.get("dbn")
  model = variant.build_model(config, (28, 28, 1))
  params = jax.tree.map(np.zeros_like, model.init(jax.random.key(0), np.zeros((1, 28, 28, 1), np.float32)))
  bias = np.linspace(-3, 3, 784, dtype=np.float32)
  params["params"]["rbms_0"]["visible_bias"] = bias
  x = variant.sample(model, config, params, jax.random.key(1), np.zeros(6, np.int32))
  # Without weights the top chain's state reaches no pixel: each pixel's mean is sigmoid(RBM 0's visible bias).
  np.testing.assert_allclose(np.asarray(x).reshape(6, 784), np.broadcast_to(1 / (1 + np.exp(-bias)), (6, 784)),
                             rtol=1e-6)
  assert "samples" in selection.select(config, None)


def test_a_conditional_sampler_of_real_digits_is_accurate_and_far_closer_to_the_data(vae_run):
  config, workdir = vae_run
  images, labels = datasets.load_split("mnist", "train", config.data.data_dir, num_examples=2_000)
  per_class = min(np.bincount(labels, minlength=10))
  table = np.stack([images[labels == c][:per_class] for c in range(10)]).astype(np.float32) / 255  # (10, K, H, W, C)

  def real_digits(model, config, params, key, labels):  # Train images of the classes asked for.
    del model, config, params
    return jax.numpy.asarray(table)[labels, jax.random.randint(key, labels.shape, 0, per_class)]

  run = evaluate.restore(workdir)
  real = dataclasses.replace(run, variant=dataclasses.replace(run.variant, sample=real_digits, conditional=True))
  metrics, pictures = suites.samples(real)
  model_metrics, _ = suites.samples(run)
  assert metrics["samples/accuracy"] == pytest.approx(metrics["samples/classifier_accuracy"], abs=0.05)
  assert metrics["samples/fid"] < 0.2 * model_metrics["samples/fid"]
  assert metrics["samples/modes_covered"] == 10
  assert pictures["eval_samples"].labels == tuple(f"class {c}" for c in range(10))
  assert pictures["eval_samples"].rows.shape == (10, config.num_images, 28, 28, 1)
