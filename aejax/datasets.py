"""MNIST and Fashion-MNIST as numpy arrays, through tensorflow-datasets but without TensorFlow."""

import contextlib
import fcntl
import io
import os
import pathlib
import socket
import urllib.parse
from collections.abc import Iterator

import numpy as np
import requests
import tensorflow_datasets as tfds
from array_record.python import array_record_module
from PIL import Image
from tensorflow_datasets.core import constants
from tensorflow_datasets.core.download.download_manager import NonMatchingChecksumError
from tensorflow_datasets.proto import tf_example_pb2

from aejax import tfds_builders
from aejax.errors import ConfigError, check_folder

# Each name's fast aejax builder and the title used in messages; the stock TFDS builder has the same name.
_DATASETS: dict[str, tuple[type[tfds.core.GeneratorBasedBuilder], str]] = {
  "mnist": (tfds_builders.AejaxMnist, "MNIST"),
  "fashion_mnist": (tfds_builders.AejaxFashionMnist, "Fashion-MNIST"),
}
_IDX_FILES = tuple(name for files in tfds_builders.IDX_FILES.values() for name in files)


def load_split(
  name: str,
  split: str,
  data_dir: str | None = None,
  manual_dir: str | None = None,
  download: bool = True,
  num_examples: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
  """Returns one split's images, uint8 (N, 28, 28, 1), and labels, int32 (N,).

  Looks in `data_dir` for, in this order (times on 2 CPUs):
  1. the aejax builder's dataset (`aejax_<name>/1.0.0`: raw bytes, IDX order): ~1.5 s for all 70k examples;
  2. the stock TFDS dataset (`<name>/3.0.1`: PNG, TFDS's shuffled order): ~0.15 ms an example (~10 s for 70k),
     nearly all of it PNG decoding; `tfds.data_source` takes ~0.3 ms.
  With neither, it prepares the aejax one there (5-8 s, once) from `manual_dir` (no network), else by download.

  Args:
    name: 'mnist' or 'fashion_mnist'.
    split: 'train' or 'test'.
    data_dir: TFDS data dir; None means $TFDS_DATA_DIR, else ~/tensorflow_datasets.
    manual_dir: folder holding the four IDX .gz files, used instead of downloading them.
    download: whether preparing may download the files when `manual_dir` is None.
    num_examples: read only the first this many examples (all if None or more than the split has).

  Raises:
    ConfigError: a bad name, split, num_examples, data_dir or manual_dir.
  """
  if name not in _DATASETS:
    raise ConfigError(f"data.name={name!r} is not a known dataset: use one of {', '.join(map(repr, _DATASETS))}")
  if split not in tfds_builders.IDX_FILES:
    raise ConfigError(f"split={split!r} is not a split: use 'train' or 'test'")
  if num_examples is not None and num_examples < 1:
    raise ConfigError(
      f"num_examples={num_examples!r} (data.num_train or data.num_test) is not positive: use None for the whole "
      "split, or a count >= 1"
    )
  root = pathlib.Path(data_dir or constants.get_default_data_dir()).expanduser()
  shown = f"data.data_dir={data_dir!r}" if data_dir else f"data.data_dir=None (TFDS default {str(root)!r})"
  _check_data_dir(root, shown)
  if manual_dir is not None:
    _check_manual_dir(manual_dir, name)
  return _read(_prepared_builder(name, root, shown, manual_dir, download), split, num_examples)


def _check_data_dir(root: pathlib.Path, shown: str) -> None:
  """Rejects a data_dir that is a file, a dataset's own folder, or a folder of raw IDX files."""
  if root.exists() and not root.is_dir():
    raise ConfigError(f"{shown} is a file: point it at a TFDS data folder, or None for the default")
  check_folder(root, "data.data_dir")
  if (root / "dataset_info.json").exists():
    raise ConfigError(f"{shown} is a dataset version folder: point it at {str(root.parents[1])!r}")
  if any(root.glob("*/dataset_info.json")):
    raise ConfigError(f"{shown} is a dataset folder: point it at {str(root.parent)!r}")
  if any((root / file).exists() for file in _IDX_FILES):
    raise ConfigError(
      f"{shown} holds raw IDX files: pass that folder as data.manual_dir and point data.data_dir at a folder "
      "where TFDS may write"
    )


def _check_manual_dir(manual_dir: str, name: str) -> None:
  """Rejects a manual_dir that is not a folder holding the four IDX .gz files."""
  fix = f"point it at a folder holding the four {_DATASETS[name][1]} IDX .gz files"
  path = pathlib.Path(manual_dir).expanduser()
  if not path.is_dir():
    raise ConfigError(f"data.manual_dir={manual_dir!r} is not a folder: {fix}")
  for file in _IDX_FILES:
    if not (path / file).is_file():
      raise ConfigError(f"data.manual_dir={manual_dir!r} has no {file}: {fix}")


def _prepared_builder(
  name: str, root: pathlib.Path, shown: str, manual_dir: str | None, download: bool
) -> tfds.core.DatasetBuilder:
  """Returns the fastest builder already prepared in root, else prepares the aejax one there."""
  aejax_class, title = _DATASETS[name]
  aejax = aejax_class(data_dir=root)
  if aejax.is_prepared():
    return aejax
  if root.is_dir():
    stock = tfds.builder(name, data_dir=root)
    if stock.is_prepared():
      return stock
  if manual_dir is None and not download:
    state = f"holds no prepared {name}" if root.is_dir() else "does not exist"
    raise ConfigError(
      f"{shown} {state} and download is off: point it at a prepared TFDS data folder, "
      f"set data.manual_dir to the four {title} IDX .gz files, or allow download"
    )
  with _preparation_lock(root, name):
    aejax = aejax_class(data_dir=root)  # Afresh: another process may have prepared it while this one waited.
    if aejax.is_prepared():
      return aejax
    try:
      if manual_dir is None:
        _connect_once(aejax_class.URL)
      aejax.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=manual_dir))
    except (_Unreachable, requests.exceptions.ConnectionError) as e:
      raise ConfigError(
        f"data.name={name!r}: {aejax_class.URL} could not be reached ({e}): offline, set data.manual_dir to a "
        f"folder of the four {title} IDX .gz files, or data.data_dir to a TFDS data folder where it is prepared"
      ) from e
    except NonMatchingChecksumError as e:
      if manual_dir is None:
        raise
      bad = next((file for file in _IDX_FILES if file in str(e)), "an IDX file")
      raise ConfigError(
        f"data.manual_dir={manual_dir!r}: {bad} differs in size or sha256 from the published file: "
        f"replace it with the original {title} file"
      ) from e
  return aejax


class _Unreachable(Exception):
  """A download site that could not be reached."""


def _connect_once(url: str, timeout_s: float = 10.0) -> None:
  """Connects once to `url`'s host (`_Unreachable` if it cannot), so that an offline machine is told at once,
  not after the minutes of retries that TFDS's downloader spends on each file. Behind a proxy (`HTTPS_PROXY`,
  ...), where only the proxy is reached, it leaves the download to try."""
  if requests.utils.get_environ_proxies(url):
    return
  parts = urllib.parse.urlsplit(url)
  try:
    socket.create_connection((parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)),
                             timeout=timeout_s).close()
  except OSError as e:
    raise _Unreachable(f"{type(e).__name__}: {e}") from e


@contextlib.contextmanager
def _preparation_lock(root: pathlib.Path, name: str) -> Iterator[None]:
  """Holds an OS lock on `root/.aejax_<name>.lock`, so runs started together prepare a dataset once, not racing."""
  try:
    root.mkdir(parents=True, exist_ok=True)
  except OSError as e:
    raise ConfigError(f"data.data_dir={str(root)!r} cannot be created ({e.strerror}): point it at a folder where "
                      "TFDS may write the prepared dataset") from e
  with open(root / f".aejax_{name}.lock", "w") as lock_file:
    fcntl.flock(lock_file, fcntl.LOCK_EX)  # Released when the file closes, or when the process dies.
    yield


def _read(builder: tfds.core.DatasetBuilder, split: str, num_examples: int | None) -> tuple[np.ndarray, np.ndarray]:
  """Reads the first num_examples records of a split straight from its array_record shards and parses them in bulk.

  Several times faster than `tfds.data_source`, which decodes each example through the generic feature code.
  """
  info = builder.info.splits[split]
  count = info.num_examples if num_examples is None else min(num_examples, info.num_examples)
  records = []
  for path, length in zip(info.filepaths, info.shard_lengths, strict=True):
    if len(records) == count:
      break
    reader = array_record_module.ArrayRecordReader(os.fspath(path))
    records += reader.read(0, min(length, count - len(records)))
    reader.close()
  features = [tf_example_pb2.Example.FromString(record).features.feature for record in records]
  labels = np.fromiter((feature["label"].int64_list.value[0] for feature in features), np.int32, count)
  encoded = [feature["image"].bytes_list.value[0] for feature in features]
  if isinstance(builder.info.features["image"], tfds.features.Image):  # The stock builders' PNGs.
    images = np.stack([np.asarray(Image.open(io.BytesIO(png))) for png in encoded])
  else:
    images = np.frombuffer(bytearray().join(encoded), np.uint8)
  return images.reshape(count, *tfds_builders.IMAGE_SHAPE), labels
