"""Tests for aejax.data.datasets: offline preparation, reading, the stock TFDS folder, and config errors."""
import itertools
import pathlib
import re
import shutil
import socket
from concurrent import futures

import numpy as np
import pytest
import tensorflow_datasets as tfds

from aejax.data import datasets, tfds_builders
from aejax.data.datasets import load_split
from aejax.errors import ConfigError

# From ../shared/data/mnist/README.md.
TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
FIRST_TRAIN_LABELS = [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
FIRST_TEST_LABELS = [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]
IDX_FILES = ["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz",
             "t10k-labels-idx1-ubyte.gz"]


@pytest.fixture(scope="session")
def train(data_dir) -> tuple[np.ndarray, np.ndarray]:
  return load_split("mnist", "train", data_dir=str(data_dir), download=False)


@pytest.fixture(scope="session")
def stock_dir(mnist_manual_dir) -> pathlib.Path:
  """The stock TFDS mnist 3.0.1 (PNG, shuffled) that sits beside the IDX files."""
  path = mnist_manual_dir.parent / "tensorflow_datasets"
  if not (path / "mnist" / "3.0.1" / "dataset_info.json").exists():
    pytest.skip(f"no stock TFDS mnist at {path}")
  return path


def test_prepared_dataset_lives_under_the_builder_name(data_dir):
  assert (data_dir / "aejax_mnist" / "1.0.0" / "dataset_info.json").exists()


@pytest.mark.parametrize("name, url", [
  ("mnist", "https://storage.googleapis.com/cvdf-datasets/mnist/"),
  ("fashion_mnist", "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"),
])
def test_without_manual_dir_it_downloads(name, url, tmp_path, monkeypatch):
  requested = []

  def download(self, urls):
    requested.extend(urls.values())
    raise RuntimeError("download stopped by test")

  probed = []  # The site is tried once first, so an offline machine is told at once (see the next test).
  monkeypatch.setattr(datasets, "_connect_once", probed.append)
  monkeypatch.setattr(tfds.download.DownloadManager, "download", download)
  with pytest.raises(RuntimeError, match="download stopped by test"):
    load_split(name, "test", data_dir=str(tmp_path))
  assert probed == [url] and sorted(requested) == sorted(url + file for file in IDX_FILES)


def test_tfds_data_source_reads_it(data_dir):
  source = tfds.data_source("aejax_mnist", data_dir=str(data_dir), download=False)["test"]
  images, labels = load_split("mnist", "test", data_dir=str(data_dir), download=False, num_examples=3)
  for index in range(3):
    np.testing.assert_array_equal(source[index]["image"], images[index])
    assert source[index]["label"] == labels[index]


def test_train_split(train):
  images, labels = train
  assert images.shape == (60000, 28, 28, 1) and images.dtype == np.uint8
  assert labels.shape == (60000,) and labels.dtype == np.int32
  assert labels[:10].tolist() == FIRST_TRAIN_LABELS
  assert np.bincount(labels).tolist() == TRAIN_COUNTS
  assert images.mean() / 255 == pytest.approx(0.1307, abs=1e-4)


def test_test_split(data_dir):
  images, labels = load_split("mnist", "test", data_dir=str(data_dir), download=False)
  assert images.shape == (10000, 28, 28, 1) and images.dtype == np.uint8
  assert labels.shape == (10000,) and labels.dtype == np.int32
  assert labels[:10].tolist() == FIRST_TEST_LABELS
  assert np.bincount(labels).tolist() == TEST_COUNTS


def test_num_examples_takes_the_first(data_dir, train):
  images, labels = load_split("mnist", "train", data_dir=str(data_dir), download=False, num_examples=100)
  np.testing.assert_array_equal(images, train[0][:100])
  np.testing.assert_array_equal(labels, train[1][:100])


def test_num_examples_beyond_the_split_gives_all(data_dir):
  _, labels = load_split("mnist", "test", data_dir=str(data_dir), download=False, num_examples=10**6)
  assert len(labels) == 10000


def test_honours_tfds_data_dir(data_dir, monkeypatch):
  monkeypatch.setenv("TFDS_DATA_DIR", str(data_dir))
  _, labels = load_split("mnist", "test", download=False, num_examples=10)
  assert labels.tolist() == FIRST_TEST_LABELS


def test_stock_dir_holds_the_same_test_set(data_dir, stock_dir):
  images, labels = load_split("mnist", "test", data_dir=str(stock_dir), download=False)
  assert images.shape == (10000, 28, 28, 1) and images.dtype == np.uint8 and labels.dtype == np.int32
  assert np.bincount(labels).tolist() == TEST_COUNTS
  assert labels[:10].tolist() != FIRST_TEST_LABELS  # TFDS's shuffled order, so this really read the stock files.
  ours = load_split("mnist", "test", data_dir=str(data_dir), download=False)
  assert _examples(images, labels) == _examples(*ours)


def test_stock_dir_train_labels(stock_dir):
  images, labels = load_split("mnist", "train", data_dir=str(stock_dir), download=False, num_examples=500)
  assert images.shape == (500, 28, 28, 1)
  assert set(labels.tolist()) == set(range(10))


def test_prefers_aejax_over_stock(data_dir, stock_dir, tmp_path):
  (tmp_path / "mnist").symlink_to(stock_dir / "mnist")
  (tmp_path / "aejax_mnist").symlink_to(data_dir / "aejax_mnist")
  _, labels = load_split("mnist", "test", data_dir=str(tmp_path), download=False, num_examples=10)
  assert labels.tolist() == FIRST_TEST_LABELS


@pytest.fixture()
def quick_preparation(monkeypatch):
  """Preparing writes only the first 100 examples of each split (the files are still all checked and read)."""
  generate = tfds_builders.AejaxMnist._generate_examples  # pylint: disable=protected-access
  monkeypatch.setattr(tfds_builders.AejaxMnist, "_generate_examples",
                      lambda self, *paths: itertools.islice(generate(self, *paths), 100))
  return generate


def test_preparing_says_one_line_and_leaves_only_the_dataset(tmp_path, mnist_manual_dir, quick_preparation, capfd):
  root = tmp_path / "tfds"
  (root / ".aejax_mnist-killed" / "aejax_mnist").mkdir(parents=True)  # Left by a preparation killed earlier.
  capfd.readouterr()
  _, labels = load_split("mnist", "test", data_dir=str(root), manual_dir=str(mnist_manual_dir))
  out, err = capfd.readouterr()
  assert out == ""
  assert re.fullmatch(rf"aejax: prepared MNIST in {re.escape(str(root))}/aejax_mnist/1\.0\.0 from "
                      rf"{re.escape(str(mnist_manual_dir))} in \d+\.\d s\n", err), err
  assert labels[:10].tolist() == FIRST_TEST_LABELS and len(labels) == 100
  assert [p.name for p in root.iterdir()] == ["aejax_mnist"]
  load_split("mnist", "test", data_dir=str(root), manual_dir=str(mnist_manual_dir))
  assert capfd.readouterr() == ("", "")  # Once prepared, reading says nothing.


def test_a_failed_preparation_leaves_the_data_dir_as_it_was(tmp_path, mnist_manual_dir, quick_preparation,
                                                            monkeypatch):
  def fail_midway(self, *paths):
    yield from itertools.islice(quick_preparation(self, *paths), 10)
    raise RuntimeError("preparation failed by test")

  monkeypatch.setattr(tfds_builders.AejaxMnist, "_generate_examples", fail_midway)
  root = tmp_path / "tfds"
  (root / "downloads").mkdir(parents=True)  # Another dataset's, which TFDS also uses.
  with pytest.raises(RuntimeError, match="preparation failed by test"):
    load_split("mnist", "test", data_dir=str(root), manual_dir=str(mnist_manual_dir))
  assert [p.name for p in root.iterdir()] == ["downloads"] and not any((root / "downloads").iterdir())


def test_an_offline_preparation_leaves_nothing(tmp_path, monkeypatch):
  def offline(url):
    raise datasets._Unreachable("gaierror: no network in this test")  # pylint: disable=protected-access

  monkeypatch.setattr(datasets, "_connect_once", offline)
  root = tmp_path / "tfds"
  root.mkdir()
  _raises("data.name='fashion_mnist': http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/ could not be "
          "reached", name="fashion_mnist", download=True, data_dir=str(root))
  _raises("data.name='mnist': https://storage.googleapis.com/cvdf-datasets/mnist/ could not be reached",
          download=True, data_dir=str(tmp_path / "new" / "tfds"))
  assert not any(root.iterdir()) and not (tmp_path / "new").exists()


def _examples(images: np.ndarray, labels: np.ndarray) -> set[tuple[bytes, int]]:
  """The examples as a set, to compare datasets stored in different orders."""
  return set(zip(map(bytes, images.reshape(len(images), -1)), labels.tolist()))


def _raises(start: str, **kwargs) -> None:
  """Checks that load_split (mnist train, no download, unless overridden) raises a one-line ConfigError so starting."""
  kwargs = {"name": "mnist", "split": "train", "download": False} | kwargs
  with pytest.raises(ConfigError) as info:
    load_split(**kwargs)
  message = str(info.value)
  assert message.startswith(start), message
  assert "\n" not in message


def test_runs_started_together_prepare_the_dataset_once(tmp_path, mnist_manual_dir, monkeypatch):
  prepare, calls = tfds_builders.AejaxMnist.download_and_prepare, []

  def counted(self, *args, **kwargs):
    calls.append(self)
    return prepare(self, *args, **kwargs)

  monkeypatch.setattr(tfds_builders.AejaxMnist, "download_and_prepare", counted)
  read = lambda _: load_split("mnist", "test", data_dir=str(tmp_path), manual_dir=str(mnist_manual_dir))  # noqa: E731
  with futures.ThreadPoolExecutor(2) as pool:
    (images_a, labels_a), (images_b, labels_b) = pool.map(read, range(2))
  assert len(calls) == 1
  np.testing.assert_array_equal(images_a, images_b)
  assert np.bincount(labels_a).tolist() == np.bincount(labels_b).tolist() == TEST_COUNTS


def test_unknown_name(tmp_path):
  _raises("data.name='kmnist' is not a known dataset: use one of 'mnist', 'fashion_mnist'",
          name="kmnist", data_dir=str(tmp_path))


def test_unknown_split(tmp_path):
  _raises("split='validation' is not a split: use 'train' or 'test'", split="validation", data_dir=str(tmp_path))


def test_bad_num_examples(tmp_path):
  _raises("num_examples=0 (data.num_train or data.num_test) is not positive", num_examples=0, data_dir=str(tmp_path))


def test_manual_dir_missing(tmp_path):
  missing = tmp_path / "nowhere"
  _raises(f"data.manual_dir='{missing}' is not a folder: point it at a folder holding the four MNIST IDX",
          data_dir=str(tmp_path / "tfds"), manual_dir=str(missing))


def test_manual_dir_lacking_a_file(tmp_path, mnist_manual_dir):
  manual = tmp_path / "manual"
  manual.mkdir()
  for file in IDX_FILES[:-1]:
    (manual / file).symlink_to(mnist_manual_dir / file)
  _raises(f"data.manual_dir='{manual}' has no t10k-labels-idx1-ubyte.gz: point it at a folder holding the "
          "four MNIST IDX .gz files", data_dir=str(tmp_path / "tfds"), manual_dir=str(manual))


def _manual_copy(tmp_path: pathlib.Path, mnist_manual_dir: pathlib.Path, file: str, data: bytes) -> pathlib.Path:
  """A copy of the IDX files in `tmp_path/manual` with `file`'s bytes replaced by `data`."""
  manual = tmp_path / "manual"
  shutil.copytree(mnist_manual_dir, manual)
  (manual / file).chmod(0o644)
  (manual / file).write_bytes(data)
  return manual


@pytest.mark.parametrize("prepared", [False, True], ids=["fresh_data_dir", "prepared_data_dir"])
def test_manual_dir_with_a_truncated_file(tmp_path, mnist_manual_dir, data_dir, prepared):
  """A truncated file is named whether or not the data dir holds the dataset already (which it then would not
  need): sizes are checked on every run."""
  file = "t10k-images-idx3-ubyte.gz"
  manual = _manual_copy(tmp_path, mnist_manual_dir, file, (mnist_manual_dir / file).read_bytes()[:100_000])
  _raises(f"data.manual_dir='{manual}': {file} differs in size from the published file (100,000 bytes, not "
          "1,648,877): replace it with the original MNIST file",
          data_dir=str(data_dir if prepared else tmp_path / "tfds"), manual_dir=str(manual))


def test_manual_dir_with_a_corrupt_file_of_the_right_size(tmp_path, mnist_manual_dir):
  """A changed byte is caught by the sha256 that preparing checks, and the failed preparation leaves nothing."""
  file = "t10k-labels-idx1-ubyte.gz"
  data = bytearray((mnist_manual_dir / file).read_bytes())
  data[-1] ^= 0xFF
  manual = _manual_copy(tmp_path, mnist_manual_dir, file, bytes(data))
  _raises(f"data.manual_dir='{manual}': {file} differs in size or sha256 from the published file: replace it "
          "with the original MNIST file", data_dir=str(tmp_path / "tfds" / "mnist"), manual_dir=str(manual))
  assert not (tmp_path / "tfds").exists()


def test_data_dir_missing_without_download(tmp_path):
  missing = tmp_path / "nowhere"
  _raises(f"data.data_dir='{missing}' does not exist and download is off: ", data_dir=str(missing))


def test_data_dir_empty_without_download(tmp_path):
  _raises(f"data.data_dir='{tmp_path}' holds no prepared mnist and download is off: ", data_dir=str(tmp_path))


def test_default_data_dir_named_in_the_error(tmp_path, monkeypatch):
  monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path / "nowhere"))
  _raises(f"data.data_dir=None (TFDS default '{tmp_path / 'nowhere'}') does not exist")


def test_data_dir_is_a_file(tmp_path):
  file = tmp_path / "file"
  file.write_text("")
  _raises(f"data.data_dir='{file}' is a file: ", data_dir=str(file))


def test_data_dir_is_a_dataset_folder(data_dir):
  root = data_dir
  _raises(f"data.data_dir='{root}/aejax_mnist' is a dataset folder: point it at '{root}'",
          data_dir=str(root / "aejax_mnist"))
  _raises(f"data.data_dir='{root}/aejax_mnist/1.0.0' is a dataset version folder: point it at '{root}'",
          data_dir=str(root / "aejax_mnist" / "1.0.0"))


def test_data_dir_holds_idx_files(mnist_manual_dir):
  _raises(f"data.data_dir='{mnist_manual_dir}' holds raw IDX files: pass that folder as data.manual_dir",
          data_dir=str(mnist_manual_dir))


def test_no_network_without_manual_dir_is_one_line(tmp_path, monkeypatch):
  def offline(*args, **kwargs):
    raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")  # What an offline machine's DNS says.

  monkeypatch.setattr(socket, "getaddrinfo", offline)
  for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
    monkeypatch.delenv(name, raising=False)
  with pytest.raises(ConfigError, match=r"^data\.name=.mnist.: https://\S+ could not be reached \(gaierror: .*\): "
                     r"offline, set data\.manual_dir to a folder of the four MNIST IDX \.gz files"):
    load_split("mnist", "test", data_dir=str(tmp_path / "tfds"), num_examples=1)


def test_behind_a_proxy_the_site_is_left_to_the_download(monkeypatch):
  monkeypatch.setenv("HTTPS_PROXY", "http://proxy.cluster.example:3128")
  monkeypatch.setattr(socket, "create_connection", lambda *args, **kwargs: pytest.fail("connected directly"))
  datasets._connect_once("https://storage.googleapis.com/cvdf-datasets/mnist/")  # pylint: disable=protected-access


def test_record_chunks_cross_shards_in_order(tmp_path):
  from array_record.python import array_record_module  # pylint: disable=g-import-not-at-top
  paths, records = [], [str(i).encode() for i in range(12)]
  for shard, (start, stop) in enumerate(((0, 5), (5, 8), (8, 12), (12, 12))):
    paths.append(tmp_path / f"shard-{shard}")
    writer = array_record_module.ArrayRecordWriter(str(paths[-1]), "group_size:1")
    for record in records[start:stop]:
      writer.write(record)
    writer.close()
  lengths = [5, 3, 4, 0]  # The last shard is empty.
  chunks = list(datasets.record_chunks(paths, lengths, 10, 4))
  assert chunks == [records[0:4], records[4:5], records[5:8], records[8:10]]  # No chunk spans two shards.
  assert datasets.read_records(paths, lengths, 10) == records[:10]
  assert list(datasets.record_chunks(paths, lengths, 5, 4)) == [records[0:4], records[4:5]]  # Later shards unread.
  assert list(datasets.record_chunks(paths, lengths, 12, 3)) == [  # A shard of 3 read as one chunk of 3.
      records[0:3], records[3:5], records[5:8], records[8:11], records[11:12]]
  assert datasets.read_records(paths, lengths, 12) == records  # Every record, the empty shard read as nothing.
