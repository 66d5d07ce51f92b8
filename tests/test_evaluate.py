"""The evaluation suite end to end on smoke-trained runs, its config fields, the one-class split and the CLI."""
import json
import re
import subprocess
import sys

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest
from PIL import Image
from sklearn import decomposition

from aejax import bundle, config as config_lib, evaluate, images, registry, train, writers
from aejax.data import datasets, input_pipeline
from aejax.errors import ConfigError
from aejax.evaluation import metrics, selection, suites

from conftest import REPO

# Small runs: 30 steps on 1,024 images, evaluated on 256 test images with PCA and probes fitted on 256.
_SMALL = dict(num_steps=30, data__num_train=1_024, data__num_test=256, eval__num_train=256)


def _png_shape(path):
  return np.asarray(Image.open(path)).shape


def _grid_shape(labels, num_rows, num_images=8):
  """The shape of a picture of 28-pixel digits in `num_rows` rows, scaled 4x, below a title, beside `labels`."""
  top, left = images.margins(labels, "title")
  return top + 4 * (num_rows * 29 - 1), left + 4 * (num_images * 29 - 1)


def test_ae_recon_and_impute_agree_with_training_metrics_and_independent_pca(smoke_config, tmp_path):
  config = smoke_config("ae", **_SMALL)
  summary = train.train_and_evaluate(config, tmp_path)
  report = evaluate.evaluate_run(tmp_path)
  assert report["suites"] == ["recon", "impute"]
  assert json.loads((tmp_path / "eval.json").read_text()) == report
  assert json.loads((tmp_path / "summary.json").read_text()) == summary  # Training's summary is left as it was.
  # The training loop's own test metrics on the same checkpoint and images.
  assert report["recon/squared_error"] == pytest.approx(summary["test/recon_error"], rel=1e-4)
  assert report["recon/bce"] == pytest.approx(summary["test/bce"], rel=1e-4)
  train_images, train_labels = datasets.load_split("mnist", "train", config.data.data_dir, num_examples=256)
  test_images, test_labels = datasets.load_split("mnist", "test", config.data.data_dir, num_examples=256)
  train_images, test_images = train_images.reshape(256, -1) / 255, test_images.reshape(256, -1) / 255
  pca = decomposition.PCA(64, svd_solver="full").fit(train_images)
  pca_error = np.square(pca.inverse_transform(pca.transform(test_images)) - test_images).sum(axis=1).mean()
  assert report["recon/pca_components"] == 64
  assert report["recon/pca_squared_error"] == pytest.approx(pca_error, rel=1e-4)
  # The probes and k-means read the model's codes (taken here from the checkpoint), PCA's and the pixels.
  model = registry.get("ae").build_model(config, (28, 28, 1))
  with ocp.CheckpointManager(tmp_path / "checkpoints") as manager:
    params = manager.restore(manager.latest_step())["params"]
  encode = jax.jit(lambda x: model.apply(params, x.reshape(-1, 28, 28, 1), method=model.encode))
  features = {"code": (encode(train_images), encode(test_images)), "pixels": (train_images, test_images),
              "pca": (pca.transform(train_images), pca.transform(test_images))}
  for name, (train_features, test_features) in features.items():
    assert report[f"recon/probe_accuracy_{name}"] == pytest.approx(metrics.linear_probe_accuracy(
        np.asarray(train_features), train_labels, np.asarray(test_features), test_labels), abs=1 / 256)
    assert report[f"recon/kmeans_accuracy_{name}"] == pytest.approx(
        metrics.kmeans_accuracy(np.asarray(test_features), test_labels, config.seed), abs=0.02)
  assert report["impute/random_hidden_pixels"] == pytest.approx(0.5 * 784, rel=0.02)
  assert report["impute/block_hidden_pixels"] == 12 * 12
  full_mean_fill = np.square(train_images.mean(axis=0) - test_images).sum(axis=1).mean()
  assert report["impute/random_mean_fill_squared_error"] == pytest.approx(0.5 * full_mean_fill, rel=0.05)
  rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
  assert rows[-1]["step"] == 30 and rows[-1]["recon/squared_error"] == report["recon/squared_error"]
  assert _png_shape(report["image/eval_recon"]) == _grid_shape(("input", "reconstruction", "PCA, 64 components"), 3)
  assert _png_shape(report["image/eval_impute_block"]) == _grid_shape(("input", "block hidden", "filled"), 3)
  with pytest.raises(ConfigError, match="suite 'nll' needs a VAE, not config.variant='ae'"):
    evaluate.evaluate_run(tmp_path, ["nll"])
  with pytest.raises(ConfigError, match=r"suite 'anomaly' needs a one-class run: train with --config.data.train_"):
    evaluate.evaluate_run(tmp_path, ["anomaly"])
  with pytest.raises(ConfigError, match=r"has no config.json: point it at a run's folder"):
    evaluate.evaluate_run(tmp_path / "missing")
  config = evaluate.load_config(tmp_path)
  config.eval.block_size = 29
  with pytest.raises(ConfigError, match=r"block_size=29: the imputation block must fit in the 28x28 images; use at"):
    selection.select(config, None)
  assert selection.select(config, ["recon"]) == ("recon",)  # Only imputation places a block.


@pytest.mark.parametrize("variant,names,message", [
    ("ae", ("recon", "nll"), "suite 'nll' needs a VAE, not config.variant='ae'"),
    ("ae", ("anomaly",), "suite 'anomaly' needs a one-class run"),
    ("stacked_ae", ("recon",), "config.variant='stacked_ae': its model has no encode()"),
])
def test_suites_that_cannot_run_stop_a_run_before_training(smoke_config, tmp_path, variant, names, message):
  # aejax.main, aejax.bundle and the launchers (through the sweep) run config.eval.suites after training.
  config = smoke_config(variant, eval__suites=names)
  with pytest.raises(ConfigError, match=re.escape(message)):
    train.train_and_evaluate(config, tmp_path / "run")
  assert not (tmp_path / "run").exists()
  with pytest.raises(ConfigError, match=re.escape(message)):
    bundle.train_bundle([config], [tmp_path / "member"])
  assert not (tmp_path / "member").exists()


def test_evaluating_a_run_still_training_leaves_its_rows_and_checkpoint_in_progress(smoke_config, tmp_path):
  train.train_and_evaluate(smoke_config("ae", **_SMALL), tmp_path)
  # As if training went on: a row logged after the last checkpoint, the next checkpoint half written, and a
  # row cut short by a kill (which readers skip).
  metrics_path = tmp_path / "metrics.jsonl"
  with metrics_path.open("a") as f:
    f.write(json.dumps({"step": 31, "train/loss": 1.0}) + "\n" + '{"step": 32, "tra')
  in_progress = tmp_path / "checkpoints" / "40.orbax-checkpoint-tmp-1700000000000000"
  in_progress.mkdir()
  report = evaluate.evaluate_run(tmp_path, ["recon"])
  assert in_progress.is_dir()
  rows = writers.read_rows(metrics_path)
  assert [row["step"] for row in rows[-3:]] == [30, 31, 30]  # Training's rows kept, the evaluation's appended.
  assert rows[-1]["recon/squared_error"] == report["recon/squared_error"]


def test_evaluating_a_workdir_locked_by_its_trainer_leaves_the_trainers_files_alone(smoke_config, tmp_path):
  config = smoke_config("ae", **_SMALL)
  train.train_and_evaluate(config, tmp_path)
  rows_before = (tmp_path / "metrics.jsonl").read_text()
  holder = subprocess.Popen([sys.executable, "-c", "import pathlib, time; from aejax import locks\n"
                             f"with locks.lock(pathlib.Path({str(tmp_path)!r})):\n"
                             "  print('held', flush=True); time.sleep(120)"], stdout=subprocess.PIPE, text=True)
  try:
    assert holder.stdout.readline() == "held\n"  # As a trainer holds it.
    result = subprocess.run([sys.executable, "-m", "aejax.evaluate", f"--workdir={tmp_path}", "--suite=recon"],
                            cwd=REPO, text=True, capture_output=True, timeout=300)
  finally:
    holder.kill()
    holder.wait()
  assert result.returncode == 0, result.stderr
  assert f"aejax.evaluate: {tmp_path} is still training: its latest checkpoint is evaluated into eval.json" in (
      result.stderr)
  assert (tmp_path / "metrics.jsonl").read_text() == rows_before
  assert json.loads((tmp_path / "eval.json").read_text())["suites"] == ["recon"]


def test_one_class_dae_from_the_command_line_detects_other_digits_and_denoises(data_dir, mnist_manual_dir, tmp_path):
  # The evaluation the config names runs at the end of training (aejax.main).
  command = [sys.executable, "-m", "aejax.main", "--config=experiments/dae.py:smoke", f"--workdir={tmp_path}",
             f"--config.data.data_dir={data_dir}", f"--config.data.manual_dir={mnist_manual_dir}",
             "--config.compilation_cache_dir=", "--config.data.train_labels=(1,)",
             "--config.eval.suites=('recon','anomaly','denoise','impute')",
             *(f"--config.{field.replace('__', '.')}={value}" for field, value in _SMALL.items())]
  result = subprocess.run(command, cwd=REPO, text=True, capture_output=True, timeout=300)
  assert result.returncode == 0, result.stderr
  assert f"aejax: evaluated ({tmp_path / 'eval.json'})" in result.stdout
  report = json.loads((tmp_path / "eval.json").read_text())
  assert report["suites"] == ["recon", "anomaly", "denoise", "impute"]
  assert "recon/probe_accuracy_code" not in report  # One class: nothing to probe.
  assert report["anomaly/fraction_anomalous"] == pytest.approx(1 - 0.11, abs=0.05)  # About 1 in 9 test images is a 1.
  assert report["anomaly/auroc_squared_error"] > 0.8 and report["anomaly/auroc_bce"] > 0.8
  for factor in (0.25, 0.5, 0.75):
    assert report[f"denoise/{factor:g}/psnr_median"] > report[f"denoise/{factor:g}/psnr_noisy"]
    assert report[f"denoise/{factor:g}/ssim_median"] > report[f"denoise/{factor:g}/ssim_noisy"]
  assert report["denoise/0.25/psnr_noisy"] > report["denoise/0.5/psnr_noisy"] > report["denoise/0.75/psnr_noisy"]
  assert report["denoise/0.75/psnr_model"] > report["denoise/0.75/psnr_noisy"]
  assert _png_shape(report["image/eval_denoise_0.5"]) == _grid_shape(("clean", "noise 0.5", "model", "3x3 median"), 4)


def test_iwae_trained_vae_bound_nll_and_pictures_with_the_2d_scatter(smoke_config, tmp_path):
  summary = train.train_and_evaluate(smoke_config("vae", latent_dim=2, iwae_samples=5, **_SMALL), tmp_path)
  assert summary["test/loss"] == summary["test/neg_iwae_bound"] < summary["test/neg_elbo"]
  report = evaluate.evaluate_run(tmp_path, ["generate", "nll"], nll_samples=32)
  assert report["nll/samples"] == 32
  assert report["nll/iwae_nll"] < summary["test/neg_iwae_bound"] < report["nll/neg_elbo"]  # k = 32 is tighter than 5.
  assert _png_shape(report["image/eval_traversals"]) == _grid_shape(("z0", "z1"), 2)  # One row per latent unit.
  assert _png_shape(report["image/eval_prior_samples"]) == _grid_shape(("prior samples",), 8)
  pairs = tuple(f"test {i} to {i + 8}" for i in range(8))  # Each row from test image i to test image i + 8.
  assert _png_shape(report["image/eval_interpolations"]) == _grid_shape(pairs, 8)
  assert _png_shape(report["image/eval_latent_scatter"])[2] == 3
  with pytest.raises(ConfigError, match=r"config.iwae_samples=5: the IWAE bound has no KL weight"):
    train.train_and_evaluate(smoke_config("beta_vae", iwae_samples=5), tmp_path / "beta")


def test_one_class_vae_scores_other_digits_as_anomalous_by_elbo_and_iwae_nll(smoke_config, tmp_path):
  train.train_and_evaluate(smoke_config("vae", data__train_labels=(1,), **_SMALL), tmp_path)
  report = evaluate.evaluate_run(tmp_path, ["anomaly"])
  for score in ("squared_error", "bce", "neg_elbo", "iwae_nll"):  # Higher for digits other than 1 (chance: 0.5).
    assert report[f"anomaly/auroc_{score}"] > 0.8, score


def test_train_labels_keep_those_digits_in_order_and_leave_the_test_split_whole(smoke_config):
  config = smoke_config("ae", data__train_labels=(3, 5), data__num_train=100, data__num_test=100)
  train_split, test_split = input_pipeline.load(config.data)
  images, labels = datasets.load_split("mnist", "train", config.data.data_dir)
  kept = np.flatnonzero((labels == 3) | (labels == 5))[:100]
  np.testing.assert_array_equal(np.asarray(train_split.images), images[kept])
  np.testing.assert_array_equal(np.asarray(train_split.labels), labels[kept])
  assert len(np.unique(np.asarray(test_split.labels))) == 10


def test_binarised_test_split_is_the_same_whatever_train_images_a_run_keeps(smoke_config):
  def test_images(**fields):
    config = smoke_config("vae", **{"data__binarize": "static", "data__num_test": 200, **fields})
    return np.asarray(input_pipeline.load(config.data)[1].images)

  reference = test_images(data__num_train=100)
  assert set(np.unique(reference)) == {0, 255}
  np.testing.assert_array_equal(test_images(data__num_train=300), reference)
  np.testing.assert_array_equal(test_images(data__num_train=100, data__train_labels=(3,)), reference)
  np.testing.assert_array_equal(test_images(data__num_train=100, data__binarize="dynamic"), reference)


@pytest.mark.parametrize("field,value,message", [
    ("data.train_labels", (3, 10), "config.data.train_labels=(3, 10): use distinct class labels in 0..9"),
    ("data.train_labels", (3, 3), "config.data.train_labels=(3, 3): use distinct class labels"),
    ("eval.mask_fraction", 1.0, "config.eval.mask_fraction=1.0: use a fraction in (0, 1)"),
    ("eval.nll_samples", 0, "config.eval.nll_samples=0: use at least one sample"),
    ("iwae_samples", 0, "config.iwae_samples=0: use 1 (the ELBO) or more importance samples"),
])
def test_bad_eval_fields_fail_with_one_line(field, value, message):
  config = config_lib.base_config()
  section, _, leaf = field.rpartition(".")
  (config[section] if section else config)[leaf] = value
  with pytest.raises(ConfigError, match="^" + re.escape(message)):
    config_lib.validate(config)


def test_an_unknown_suite_in_the_config_fails_before_training_with_one_line():
  config = config_lib.base_config()
  config.eval.suites = ("recon", "fid")
  with pytest.raises(ConfigError, match=re.escape(
      "config.eval.suites=('recon', 'fid'): suite 'fid' is not known: use any of recon, anomaly, denoise, impute, "
      "generate, nll, samples, disentanglement, ais")):
    train.check_config(config)


@pytest.mark.parametrize("name,iwae_samples", [("anomaly_ae", 1), ("hinton2006", 1), ("iwae_burda2016", 1),
                                               ("iwae_burda2016", 50)])
def test_paper_and_protocol_configs_are_valid_full_and_smoke(name, iwae_samples):
  for arg in ("", ":smoke"):
    config = config_lib.from_file(f"{REPO}/experiments/{name}.py{arg}")
    config.iwae_samples = iwae_samples
    config_lib.validate(config)
    registry.get(config.variant).validate(config)


def test_command_line_reports_a_bad_suite_in_one_line(tmp_path):
  result = subprocess.run([sys.executable, "-m", "aejax.evaluate", f"--workdir={tmp_path}", "--suite=recon,fid"],
                          cwd=REPO, text=True, capture_output=True, timeout=120)
  assert result.returncode == 1
  assert result.stderr.strip() == ("aejax.evaluate: error: --suite=recon,fid: suite 'fid' is not known: use any of "
                                   "recon, anomaly, denoise, impute, generate, nll, samples, disentanglement, ais, "
                                   "clustering, compression, medical_denoise, recommend, som, translation")


class _Echo(suites.Run):
  """A stand-in model that returns the images it is shown: it fills hidden pixels with the zeros it was given."""

  def reconstruct(self, x):
    return x


class _Blank(suites.Run):
  """A stand-in model that returns black images, whatever it is shown."""

  def reconstruct(self, x):
    return np.zeros_like(x)


def _stand_in(cls, images):
  config = config_lib.base_config()
  config.eval.noise_factors = (0.25, 0.75)
  labels = np.zeros(len(images), np.int32)
  return cls(config, None, None, None, 0, images, labels, images, labels)


def test_impute_and_denoise_score_the_model_on_what_it_was_shown():
  x = np.random.default_rng(0).random((40, 28, 28, 1)).astype(np.float32)
  echo, blank = suites.impute(_stand_in(_Echo, x))[0], suites.impute(_stand_in(_Blank, x))[0]
  assert echo["impute/block_hidden_pixels"] == 144 and echo["impute/random_hidden_pixels"] == pytest.approx(392, abs=8)
  for mask in ("random", "block"):
    # Shown zeros where pixels are hidden, the echo fills them with zeros; its error there is Σ x² ≈ hidden / 3.
    assert echo[f"impute/{mask}_squared_error"] == pytest.approx(blank[f"impute/{mask}_squared_error"], rel=1e-6)
    assert echo[f"impute/{mask}_squared_error"] == pytest.approx(echo[f"impute/{mask}_hidden_pixels"] / 3, rel=0.05)

  echo = suites.denoise(_stand_in(_Echo, x))[0]
  for factor in ("0.25", "0.75"):  # The echo returns the noisy input, so it scores as the noisy input does.
    assert echo[f"denoise/{factor}/psnr_model"] == pytest.approx(echo[f"denoise/{factor}/psnr_noisy"], abs=1e-9)
  assert echo["denoise/0.25/psnr_noisy"] > echo["denoise/0.75/psnr_noisy"] + 3


def test_a_run_with_no_checkpoint_yet_is_one_line(smoke_config, tmp_path):
  (tmp_path / "config.json").write_text(smoke_config("ae").to_json())
  with pytest.raises(ConfigError, match=r"^--workdir='.*' has no checkpoint yet: train it first with python -m aejax"):
    evaluate.evaluate_run(tmp_path)
