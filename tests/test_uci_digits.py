"""uci_digits (scikit-learn's UCI digits through aejax's TFDS builder) and the registry of data sets."""
import json
import re
import subprocess
import sys

import numpy as np
import pytest
import skimage.transform
from sklearn.datasets import load_digits

from aejax import config as config_lib
from aejax import train
from aejax.data import catalog, datasets, tfds_builders
from aejax.errors import ConfigError

from conftest import REPO, network_blocked

SIZES = [None, (28, 28), (32, 32)]


@pytest.fixture(scope="module")
def digits():
  return load_digits()


@pytest.fixture(scope="module")
def digits_dir(tmp_path_factory):
  """A TFDS data dir with uci_digits prepared at every size, with the network blocked and no download allowed."""
  root = tmp_path_factory.mktemp("tfds-digits")
  with network_blocked() as attempts:
    for resize in SIZES:
      datasets.load_split("uci_digits", "test", data_dir=str(root), download=False, num_examples=1, resize=resize)
  assert not attempts
  return root


def _both_splits(root, resize=None):
  (train_images, train_labels), (test_images, test_labels) = (
    datasets.load_split("uci_digits", split, data_dir=str(root), download=False, resize=resize)
    for split in ("train", "test"))
  return train_images, train_labels, test_images, test_labels


def test_splits_are_disjoint_cover_all_images_and_keep_the_labels(digits_dir, digits):
  train_images, train_labels, test_images, test_labels = _both_splits(digits_dir)
  assert (len(train_labels), len(test_labels)) == (1437, 360)
  assert train_images.dtype == test_images.dtype == np.uint8 and train_labels.dtype == np.int32
  assert train_images.shape[1:] == test_images.shape[1:] == (8, 8, 1)
  # The train split is scikit-learn's first 1,437 images and the test split its last 360, each once: joined, they
  # are the whole data set in its order, with its labels.
  np.testing.assert_array_equal(np.concatenate([train_labels, test_labels]), digits.target)
  expected = np.rint(digits.images * 255 / 16).astype(np.uint8)[..., None]
  np.testing.assert_array_equal(np.concatenate([train_images, test_images]), expected)
  assert np.bincount(test_labels).min() >= 33  # Every digit is in the test split.


@pytest.mark.parametrize("size", [(28, 28), (32, 32)])
def test_resized_images_are_skimage_bilinear_resizes_of_the_originals(digits_dir, digits, size):
  train_images, train_labels, test_images, test_labels = _both_splits(digits_dir, size)
  images = np.concatenate([train_images, test_images])
  assert images.shape == (1797, *size, 1)
  np.testing.assert_array_equal(np.concatenate([train_labels, test_labels]), digits.target)
  expected = np.stack([skimage.transform.resize(image / 16, size, order=1, mode="edge") for image in digits.images])
  expected = np.rint(expected * 255)[..., None]
  np.testing.assert_array_equal(images, expected)


def test_a_known_size_only_is_prepared():
  with pytest.raises(ConfigError, match=re.escape(
      "config.data.resize=(30, 30): uci_digits is prepared at (8, 8), (28, 28), (32, 32) only: use one of those, or "
      "None for its native 8x8")):
    datasets.load_split("uci_digits", "test", resize=(30, 30))
  with pytest.raises(ConfigError, match=re.escape(
      "config.data.resize=(32, 32): mnist is prepared at (28, 28) only: use one of those, or None for its native")):
    catalog.image_shape("mnist", (32, 32))
  with pytest.raises(ConfigError, match=re.escape("config.data.resize=(28,): give (height, width) in pixels")):
    catalog.image_shape("uci_digits", (28,))
  assert catalog.image_shape("mnist", (28, 28)) == catalog.image_shape("mnist") == (28, 28, 1)


def test_preparing_needs_no_files_and_says_one_line(tmp_path, mnist_manual_dir, capfd):
  """data.manual_dir (here MNIST's, as a shared config would carry) and data.download do not apply to uci_digits."""
  capfd.readouterr()
  datasets.load_split("uci_digits", "train", data_dir=str(tmp_path), manual_dir=str(mnist_manual_dir),
                      download=False, resize=(28, 28))
  out, err = capfd.readouterr()
  assert out == ""
  assert re.fullmatch(rf"aejax: prepared UCI digits in {re.escape(str(tmp_path))}/aejax_uci_digits/28x28/1\.0\.0 "
                      r"from scikit-learn's copy \(sklearn\.datasets\.load_digits\) in \d+\.\d s\n", err), err
  assert [p.name for p in tmp_path.iterdir()] == ["aejax_uci_digits"]


def test_reading_the_prepared_set_imports_neither_scikit_learn_nor_tfds(digits_dir):
  script = ("import json, sys\n"
            "from aejax.data import datasets\n"
            f"images, _ = datasets.load_split('uci_digits', 'train', data_dir={str(digits_dir)!r}, resize=(28, 28))\n"
            "print(json.dumps([list(images.shape), sorted({m.split('.')[0] for m in sys.modules})]))\n")
  result = subprocess.run([sys.executable, "-c", script], cwd=REPO, text=True, capture_output=True, timeout=120)
  assert result.returncode == 0, result.stderr
  shape, imported = json.loads(result.stdout)
  assert shape == [1437, 28, 28, 1]
  assert not set(imported) & {"sklearn", "skimage", "scipy", "tensorflow_datasets", "requests"}


def test_every_registered_dataset_has_its_builder():
  assert catalog.names()[:3] == ["mnist", "fashion_mnist", "uci_digits"]
  for name in catalog.image_names():  # Ratings data sets are read from their files (aejax.data.ratings).
    dataset = catalog.get(name)
    builder = getattr(tfds_builders, dataset.builder)
    assert builder.name == f"aejax_{name}" and builder.DATASET == name
    assert [c.name for c in builder.BUILDER_CONFIGS] == list(dataset.builder_configs())
    assert len(builder._LABEL_NAMES) == dataset.num_classes  # pylint: disable=protected-access


@pytest.mark.parametrize("load", ["load_split", "validate"])
def test_unknown_name_lists_every_registered_dataset(load, tmp_path):
  message = "data.name='kmnist' is not a known dataset: use one of 'mnist', 'fashion_mnist', 'uci_digits'"
  with pytest.raises(ConfigError, match=f"^{re.escape(message)}"):
    if load == "load_split":
      datasets.load_split("kmnist", "train", data_dir=str(tmp_path))
    else:
      config = config_lib.base_config()
      config.data.name = "kmnist"
      config_lib.validate(config)


def test_train_labels_are_checked_against_the_dataset(smoke_config, tmp_path):
  config = smoke_config("ae", data__name="uci_digits", data__train_labels=(10,))
  with pytest.raises(ConfigError, match=re.escape("config.data.train_labels=(10,): use distinct class labels in "
                                                  "0..9")):
    train.train_and_evaluate(config, tmp_path / "run")
  assert not (tmp_path / "run").exists()


def test_native_8x8_run_learns(smoke_config, digits_dir, tmp_path):
  """The model's shape comes from the data: the conv net pools 8x8 to 4x4 to 2x2 and back."""
  config = smoke_config("ae", data__name="uci_digits", data__data_dir=str(digits_dir), model__kind="conv",
                        model__conv_features=(8, 16), num_steps=40, eval_every=20, checkpoint_every=40)
  summary = train.train_and_evaluate(config, tmp_path)
  rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
  evals = [r["test/loss"] for r in rows if "test/loss" in r]
  assert len(evals) == 2 and evals[-1] < evals[0]
  assert summary["image/reconstruction"].endswith(".png")


def test_smoke_run_through_aejax_main(digits_dir, tmp_path):
  result = subprocess.run(
    [sys.executable, "-m", "aejax.main", "--config=experiments/ae.py:smoke", f"--workdir={tmp_path / 'run'}",
     "--config.data.name=uci_digits", "--config.data.resize=(28,28)", f"--config.data.data_dir={digits_dir}",
     "--config.data.download=False", "--config.num_steps=20", "--config.eval_every=20",
     f"--config.compilation_cache_dir={tmp_path / 'cache'}"],
    cwd=REPO, text=True, capture_output=True, timeout=300)
  assert result.returncode == 0, result.stderr
  assert "aejax: finished" in result.stdout
  saved = json.loads((tmp_path / "run" / "config.json").read_text())
  assert saved["data"]["name"] == "uci_digits" and saved["data"]["resize"] == [28, 28]
  summary = json.loads((tmp_path / "run" / "summary.json").read_text())
  assert summary["step"] == 20 and np.isfinite(summary["test/loss"])
  assert "aejax: prepared" not in result.stderr  # Read from the prepared data dir.


def test_data_dir_inside_a_dataset_of_builder_configs_is_named(digits_dir):
  root = digits_dir
  for inside in ("aejax_uci_digits", "aejax_uci_digits/28x28", "aejax_uci_digits/28x28/1.0.0"):
    with pytest.raises(ConfigError, match=rf"^data\.data_dir='{re.escape(str(root / inside))}' is a dataset "
                       rf"(version )?folder: point it at '{re.escape(str(root))}'$"):
      datasets.load_split("uci_digits", "test", data_dir=str(root / inside))
