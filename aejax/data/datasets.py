"""The data sets of `aejax.data.catalog` as numpy arrays, prepared through tensorflow-datasets but without TensorFlow.

A prepared aejax dataset is read straight from its array_record files with protobuf: TFDS (with requests and
PIL), whose import took about 0.15 s of every run's start, is imported only to prepare a dataset or to read TFDS's
own stock copy.
"""

import contextlib
import fcntl
import importlib.util
import io
import itertools
import json
import os
import pathlib
import shutil
import socket
import sys
import tempfile
import time
import urllib.parse
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
from array_record.python import array_record_module
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

from aejax.data import catalog
from aejax.errors import ConfigError, check_folder

# The (images, labels) IDX files of each split, as named on the download sites.
IDX_FILES: Mapping[str, tuple[str, str]] = {
  "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
  "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
# The version of the aejax builders' datasets (`aejax.data.tfds_builders`), whose layout `_read_prepared` reads.
FORMAT_VERSION = "1.0.0"
_IDX_FILES = tuple(name for files in IDX_FILES.values() for name in files)
_INFO_FILE = "dataset_info.json"
# Records parsed at a time: a parsed tf.Example holds several times its record's bytes, so parsing dSprites' 737,280
# at once peaked at ~3 GB (benchmarks/README.md "dataset_load.py").
_PARSE_CHUNK = 65_536


def load_split(
  name: str,
  split: str,
  data_dir: str | None = None,
  manual_dir: str | None = None,
  download: bool = True,
  num_examples: int | None = None,
  resize: catalog.Size | None = None,
) -> tuple[np.ndarray, np.ndarray]:
  """One split's images and labels (`load_examples`' 'image' and 'label')."""
  examples = load_examples(name, split, data_dir, manual_dir, download, num_examples, resize)
  return examples["image"], examples["label"]


def load_examples(
  name: str,
  split: str,
  data_dir: str | None = None,
  manual_dir: str | None = None,
  download: bool = True,
  num_examples: int | None = None,
  resize: catalog.Size | None = None,
  packed: bool = False,
) -> dict[str, np.ndarray]:
  """Returns one split's images, 'image': uint8 (N, H, W, C) as `catalog.image_shape(name, resize)` gives, and
  labels, 'label': int32 (N,); for a data set with factors (`catalog.Dataset.factor_names`) also each example's
  factor indices, 'factors': int32 (N, number of factors). With `packed`, a binary data set's images
  (`catalog.Dataset.packed`) come as stored, 8 pixels a byte (N, ceil(H·W·C / 8)), `np.unpackbits`' order.

  Looks in `data_dir` for, in this order (times on 2 CPUs):
  1. the aejax builder's dataset (`aejax_<name>/1.0.0`, or `aejax_<name>/<config>/1.0.0` for a builder with configs:
     one per size, 'HxW', or 'rendered' and 'original'; raw bytes, the builder's order): ~1.5 s for all 70k
     examples of MNIST, ~15 s for both splits of dSprites (747k) kept packed;
  2. for data sets prepared from IDX files, the stock TFDS dataset (`<name>/3.0.1`: PNG, TFDS's shuffled order):
     ~0.15 ms an example (~10 s for 70k), nearly all of it PNG decoding; `tfds.data_source` takes ~0.3 ms.
  With neither, it prepares the aejax one there (5-8 s for MNIST, once) and says so in one line: from `manual_dir`
  (no network), else by download; a data set that a package installs (uci_digits) from that copy, with neither; a
  data set that aejax renders (dsprites) by rendering it, or from the original file in `manual_dir` when given
  (prepared apart, as its builder config 'original').

  Args:
    name: a name registered in `aejax.data.catalog`: 'mnist', 'fashion_mnist', 'uci_digits', ...
    split: 'train' or 'test'.
    data_dir: TFDS data dir; None means $TFDS_DATA_DIR, else ~/tensorflow_datasets.
    manual_dir: folder holding the four IDX .gz files, used instead of downloading them (IDX data sets); or the
      original file of a data set that aejax renders (`catalog.Dataset.manual_file`), read instead of rendering.
    download: whether preparing may download the files when `manual_dir` is None (IDX data sets only).
    num_examples: read only the first this many examples (all if None or more than the split has).
    resize: the images' (height, width), one the data set is prepared at (`catalog`); None for the native size.
    packed: keep a binary data set's images packed (no effect on others).

  Raises:
    ConfigError: a bad name, split, num_examples, resize, data_dir or manual_dir.
  """
  dataset = catalog.get(name)
  shape = catalog.image_shape(name, resize)
  if split not in IDX_FILES:
    raise ConfigError(f"split={split!r} is not a split: use 'train' or 'test'")
  if num_examples is not None and num_examples < 1:
    raise ConfigError(
      f"num_examples={num_examples!r} (data.num_train or data.num_test) is not positive: use None for the whole "
      "split, or a count >= 1"
    )
  # TFDS's default data dir (`tensorflow_datasets.core.constants`), named here to spare its import.
  root = pathlib.Path(data_dir or os.environ.get("TFDS_DATA_DIR", "~/tensorflow_datasets")).expanduser()
  shown = f"data.data_dir={data_dir!r}" if data_dir else f"data.data_dir=None (TFDS default {str(root)!r})"
  _check_data_dir(root, shown)
  from_idx = dataset.source == catalog.IDX
  if dataset.source == catalog.PACKAGE:
    manual_dir = None  # Unused (a config shared by several data sets may carry another one's).
  elif manual_dir is not None:
    (_check_manual_dir if from_idx else _check_manual_file)(manual_dir, name)
  config = dataset.builder_config(resize, manual_dir)
  prepared = root / f"aejax_{name}" / (config or "") / FORMAT_VERSION
  if not (prepared / _INFO_FILE).exists():
    stock = _stock_builder(name, root) if from_idx else None  # IDX data sets come in their native size only.
    if stock is not None:
      return _read_stock(stock, split, num_examples, shape)
    _prepare(name, config, root, prepared, shown, manual_dir, download)
  return _read_prepared(prepared, split, num_examples, shape, dataset, packed)


def _check_data_dir(root: pathlib.Path, shown: str) -> None:
  """Rejects a data_dir that is a file, a dataset's own folder (or one of its builder configs' or versions'), or a
  folder of raw IDX files."""
  if root.exists() and not root.is_dir():
    raise ConfigError(f"{shown} is a file: point it at a TFDS data folder, or None for the default")
  check_folder(root, "data.data_dir")
  configs = {config for name in catalog.image_names() for config in catalog.get(name).builder_configs()}
  if (root / _INFO_FILE).exists():
    above = root.parents[2] if root.parent.name in configs else root.parents[1]
    raise ConfigError(f"{shown} is a dataset version folder: point it at {str(above)!r}")
  if any(root.glob(f"*/{_INFO_FILE}")):
    above = root.parents[1] if root.name in configs else root.parent
    raise ConfigError(f"{shown} is a dataset folder: point it at {str(above)!r}")
  if any(any((root / config).glob(f"*/{_INFO_FILE}")) for config in configs):
    raise ConfigError(f"{shown} is a dataset folder: point it at {str(root.parent)!r}")
  if any((root / file).exists() for file in _IDX_FILES):
    raise ConfigError(
      f"{shown} holds raw IDX files: pass that folder as data.manual_dir and point data.data_dir at a folder "
      "where TFDS may write"
    )


def _check_manual_dir(manual_dir: str, name: str) -> None:
  """Rejects a manual_dir that is not a folder holding the four IDX .gz files of their published sizes.

  Sizes cost one `stat` each, so they are checked on every run, whether or not the dataset is prepared already: a
  truncated or wrong file is named at once, not when a fresh data dir needs it. Preparing checks the sha256 too.
  """
  title = catalog.get(name).title
  fix = f"point it at a folder holding the four {title} IDX .gz files"
  path = pathlib.Path(manual_dir).expanduser()
  if not path.is_dir():
    raise ConfigError(f"data.manual_dir={manual_dir!r} is not a folder: {fix}")
  published = _published_sizes(name)
  for file in _IDX_FILES:
    if not (path / file).is_file():
      raise ConfigError(f"data.manual_dir={manual_dir!r} has no {file}: {fix}")
    size = (path / file).stat().st_size
    if size != published[file]:
      raise ConfigError(f"data.manual_dir={manual_dir!r}: {file} differs in size from the published file ({size:,} "
                        f"bytes, not {published[file]:,}): replace it with the original {title} file")


def _check_manual_file(manual_dir: str, name: str) -> None:
  """Rejects a manual_dir that is not a folder holding the original file of data set `name` (one aejax renders);
  preparing checks its contents."""
  dataset = catalog.get(name)
  fix = (f"point it at a folder holding {dataset.title}'s original {dataset.manual_file}, or drop data.manual_dir to "
         f"have aejax render {name}")
  path = pathlib.Path(manual_dir).expanduser()
  if not path.is_dir():
    raise ConfigError(f"data.manual_dir={manual_dir!r} is not a folder: {fix}")
  if not (path / dataset.manual_file).is_file():
    raise ConfigError(f"data.manual_dir={manual_dir!r} has no {dataset.manual_file}: {fix}")


def _published_sizes(name: str) -> dict[str, int]:
  """The IDX files' sizes that TFDS registers for its stock builder (`url_checksums/<name>.txt`: URL, size, sha256
  and file name, tab-separated), read from the file without importing TFDS."""
  package = pathlib.Path(importlib.util.find_spec("tensorflow_datasets").origin).parent
  rows = (line.split("\t") for line in (package / "url_checksums" / f"{name}.txt").read_text().splitlines())
  return {row[3]: int(row[1]) for row in rows if len(row) == 4}


def _stock_builder(name: str, root: pathlib.Path) -> Any:
  """TFDS's stock builder of `name` if it is prepared in `root`, else None."""
  if not root.is_dir():
    return None
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top  (only without the aejax dataset)
  stock = tfds.builder(name, data_dir=root)
  return stock if stock.is_prepared() else None


def _prepare(name: str, config: str | None, root: pathlib.Path, prepared: pathlib.Path, shown: str,
             manual_dir: str | None, download: bool) -> None:
  """Prepares the aejax dataset `name` (its builder config `config`, if it has configs) as `prepared` in `root` and
  says so in one line.

  TFDS works in a folder of its own inside `root`, whose dataset is moved into place once complete: a failed
  attempt (no network, a wrong file, a signal) leaves nothing behind, and neither does a killed one once the next
  attempt starts.
  """
  dataset = catalog.get(name)
  title, from_idx = dataset.title, dataset.source == catalog.IDX
  if from_idx and manual_dir is None and not download:
    state = f"holds no prepared {name}" if root.is_dir() else "does not exist"
    raise ConfigError(
      f"{shown} {state} and download is off: point it at a prepared TFDS data folder, "
      f"set data.manual_dir to the four {title} IDX .gz files, or allow download"
    )
  start = time.perf_counter()
  with preparation_lock(root, name):
    if (prepared / _INFO_FILE).exists():  # Another process prepared it while this one waited.
      return
    # pylint: disable=g-import-not-at-top  (only to prepare)
    import tensorflow_datasets as tfds

    from aejax.data import tfds_builders
    # pylint: enable=g-import-not-at-top
    builder_class = getattr(tfds_builders, dataset.builder)
    staging_prefix = f".aejax_{name}-"
    for leftover in root.glob(f"{staging_prefix}*"):  # Of a process killed while preparing.
      shutil.rmtree(leftover, ignore_errors=True)
    with tempfile.TemporaryDirectory(prefix=staging_prefix, dir=root) as staging:
      builder = builder_class(data_dir=staging, config=config)
      tfds.display_progress_bar(False)  # Some 20 lines of bars (532,442,173 MiB/s from a local file): one line says it.
      if from_idx:
        _prepare_from_idx(builder, name, manual_dir)
      else:  # Nothing to download, and no prepared copy to look for on TFDS's servers either.
        builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=manual_dir,
                                                                                  try_download_gcs=False))
      prepared.parent.mkdir(parents=True, exist_ok=True)
      pathlib.Path(builder.data_dir).rename(prepared)
  source = manual_dir if manual_dir is not None else builder_class.URL if from_idx else builder_class.SOURCE
  print(f"aejax: prepared {title} in {prepared} from {source} in {time.perf_counter() - start:.1f} s",
        file=sys.stderr, flush=True)


def _prepare_from_idx(builder: Any, name: str, manual_dir: str | None) -> None:
  """Has `builder` (an IDX data set's) take the four files from `manual_dir`, else download them (after one
  connection to the site, so that an offline machine is told at once), then write the dataset."""
  # pylint: disable=g-import-not-at-top  (only to prepare)
  import requests
  import tensorflow_datasets as tfds
  from tensorflow_datasets.core.download.download_manager import NonMatchingChecksumError
  # pylint: enable=g-import-not-at-top
  title, url = catalog.get(name).title, type(builder).URL
  try:
    if manual_dir is None:
      _connect_once(url)
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=manual_dir))
  except (_Unreachable, requests.exceptions.ConnectionError) as e:
    raise ConfigError(
      f"data.name={name!r}: {url} could not be reached ({e}): offline, set data.manual_dir to a "
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


class _Unreachable(Exception):
  """A download site that could not be reached."""


def _connect_once(url: str, timeout_s: float = 10.0) -> None:
  """Connects once to `url`'s host (`_Unreachable` if it cannot), so that an offline machine is told at once,
  not after the minutes of retries that TFDS's downloader spends on each file. Behind a proxy (`HTTPS_PROXY`,
  ...), where only the proxy is reached, it leaves the download to try."""
  import requests  # pylint: disable=g-import-not-at-top  (only to prepare)
  if requests.utils.get_environ_proxies(url):
    return
  parts = urllib.parse.urlsplit(url)
  try:
    socket.create_connection((parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)),
                             timeout=timeout_s).close()
  except OSError as e:
    raise _Unreachable(f"{type(e).__name__}: {e}") from e


@contextlib.contextmanager
def preparation_lock(root: pathlib.Path, name: str) -> Iterator[None]:
  """Holds an OS lock on `root/.aejax_<name>.lock`, so runs started together prepare a dataset once, not racing.

  The lock file goes when the preparation ends, and so do the folders down to `root` that this attempt created if it
  failed. A process that was waiting on a lock file removed meanwhile locks the new one.
  """
  created = [folder for folder in (root, *root.parents) if not folder.exists()]
  path = root / f".aejax_{name}.lock"
  while True:
    try:
      root.mkdir(parents=True, exist_ok=True)
      fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as e:
      raise ConfigError(f"data.data_dir={str(root)!r} cannot be created ({e.strerror}): point it at a folder where "
                        "TFDS may write the prepared dataset") from e
    fcntl.flock(fd, fcntl.LOCK_EX)  # Released when the file closes, or when the process dies.
    with contextlib.suppress(FileNotFoundError):
      if os.path.samestat(os.fstat(fd), os.stat(path)):
        break
    os.close(fd)
  succeeded = False
  try:
    yield
    succeeded = True
  finally:
    path.unlink(missing_ok=True)
    os.close(fd)
    if not succeeded:
      for folder in created:  # Innermost first; one that another process has written to stays.
        with contextlib.suppress(OSError):
          folder.rmdir()


def _tf_example_class() -> type:
  """The message class of tf.Example (tensorflow/core/example/{example,feature}.proto), the records TFDS writes,
  declared here with the parts aejax reads, so that reading needs protobuf only: `features.feature[key]` holds a
  `bytes_list`, a `float_list` or an `int64_list`, each with a repeated `value`."""
  f = descriptor_pb2.FieldDescriptorProto

  def field(name: str, number: int, kind: int, message: str = "", repeated: bool = False) -> f:
    proto = f(name=name, number=number, type=kind, label=f.LABEL_REPEATED if repeated else f.LABEL_OPTIONAL)
    if message:
      proto.type_name = f".aejax.tf.{message}"
    return proto

  entry = descriptor_pb2.DescriptorProto(
    name="FeatureEntry", field=[field("key", 1, f.TYPE_STRING), field("value", 2, f.TYPE_MESSAGE, "Feature")],
    options=descriptor_pb2.MessageOptions(map_entry=True))
  messages = [
    descriptor_pb2.DescriptorProto(name="BytesList", field=[field("value", 1, f.TYPE_BYTES, repeated=True)]),
    descriptor_pb2.DescriptorProto(name="FloatList", field=[field("value", 1, f.TYPE_FLOAT, repeated=True)]),
    descriptor_pb2.DescriptorProto(name="Int64List", field=[field("value", 1, f.TYPE_INT64, repeated=True)]),
    descriptor_pb2.DescriptorProto(name="Feature", field=[field("bytes_list", 1, f.TYPE_MESSAGE, "BytesList"),
                                                          field("float_list", 2, f.TYPE_MESSAGE, "FloatList"),
                                                          field("int64_list", 3, f.TYPE_MESSAGE, "Int64List")]),
    descriptor_pb2.DescriptorProto(name="Features", nested_type=[entry],
                                   field=[field("feature", 1, f.TYPE_MESSAGE, "Features.FeatureEntry", True)]),
    descriptor_pb2.DescriptorProto(name="Example", field=[field("features", 1, f.TYPE_MESSAGE, "Features")]),
  ]
  pool = descriptor_pool.DescriptorPool()
  pool.Add(descriptor_pb2.FileDescriptorProto(name="aejax/tf_example.proto", package="aejax.tf", syntax="proto3",
                                              message_type=messages))
  return message_factory.GetMessageClass(pool.FindMessageTypeByName("aejax.tf.Example"))


_TF_EXAMPLE = _tf_example_class()


def tf_example(record: bytes) -> Any:
  """One tf.Example record, parsed (its `.features.feature` maps names to their lists of values)."""
  return _TF_EXAMPLE.FromString(record)


def read_records(paths: list[pathlib.Path], lengths: list[int], count: int) -> list[bytes]:
  """The first `count` records of the array_record shards `paths`, which hold `lengths` records each."""
  return list(itertools.chain.from_iterable(record_chunks(paths, lengths, count, count)))


def record_chunks(paths: list[pathlib.Path], lengths: list[int], count: int, chunk: int) -> Iterator[list[bytes]]:
  """`read_records`' records in lists of at most `chunk`, read as they are asked for (so that a caller parsing
  each list before the next holds one list's records and parsed messages at a time, not the whole split's)."""
  left = count
  for path, length in zip(paths, lengths, strict=True):
    if not left:
      break
    reader = array_record_module.ArrayRecordReader(os.fspath(path))
    try:
      for start in range(0, min(length, left), chunk):
        yield reader.read(start, min(start + chunk, length, left))
    finally:
      reader.close()
    left -= min(length, left)


def _read_prepared(prepared: pathlib.Path, split: str, num_examples: int | None, shape: tuple[int, int, int],
                   dataset: catalog.Dataset, packed: bool = False) -> dict[str, np.ndarray]:
  """Reads the first num_examples records of a split of an aejax dataset straight from its array_record shards
  (named in its dataset_info.json) and parses them in bulk: several times faster than `tfds.data_source`, which
  decodes each example through the generic feature code, and without TFDS's import. Packed images are unpacked to
  0 and 255 unless `packed`."""
  info = json.loads((prepared / _INFO_FILE).read_text())
  lengths = next([int(n) for n in s["shardLengths"]] for s in info["splits"] if s["name"] == split)
  paths = sorted(prepared.glob(f"{info['name']}-{split}.{info['fileFormat']}-*"))
  if len(paths) != len(lengths):
    raise ConfigError(f"{str(prepared)!r} holds {len(paths)} of the {len(lengths)} files of its {split} split: "
                      "delete that folder to prepare it again")
  count = sum(lengths) if num_examples is None else min(num_examples, sum(lengths))
  feature = "image_bits" if dataset.packed else "image"
  parts = []
  for records in record_chunks(paths, lengths, count, _PARSE_CHUNK):
    part = _parse(records, feature, len(dataset.factor_names))
    parts.append({**part, "image": np.frombuffer(bytearray().join(part["image"]), np.uint8).reshape(len(records), -1)})
  examples = {key: np.concatenate([part[key] for part in parts]) for key in parts[0]}
  images = examples["image"]
  if dataset.packed and packed:
    return {**examples, "image": images}
  return {**examples, "image": unpack(images, shape) if dataset.packed else images.reshape(count, *shape)}


def unpack(bits: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
  """Packed binary images (N, prod(shape) / 8), 8 pixels a byte, as uint8 images (N, *shape) of 0 and 255."""
  images = np.unpackbits(bits, axis=-1, count=int(np.prod(shape)))
  np.multiply(images, 255, out=images)
  return images.reshape(len(bits), *shape)


def _read_stock(builder: Any, split: str, num_examples: int | None,
                shape: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray]:
  """Reads the first num_examples records of a split of TFDS's stock dataset and decodes their PNGs."""
  from PIL import Image  # pylint: disable=g-import-not-at-top  (only for the stock dataset's PNGs)
  info = builder.info.splits[split]
  count = info.num_examples if num_examples is None else min(num_examples, info.num_examples)
  examples = _parse(read_records(info.filepaths, info.shard_lengths, count))
  images = np.stack([np.asarray(Image.open(io.BytesIO(png))) for png in examples["image"]])
  return {"image": images.reshape(count, *shape), "label": examples["label"]}


def _parse(records: list[bytes], image: str = "image", num_factors: int = 0) -> dict[str, Any]:
  """The encoded images (bytes, feature `image`), the labels (int32) and, where `num_factors`, the factor indices
  (int32 (N, num_factors)) of tf.Example records."""
  features = [tf_example(record).features.feature for record in records]
  examples = {"image": [feature[image].bytes_list.value[0] for feature in features],
              "label": np.fromiter((feature["label"].int64_list.value[0] for feature in features), np.int32,
                                   len(features))}
  if num_factors:
    factors = itertools.chain.from_iterable(feature["factors"].int64_list.value for feature in features)
    examples["factors"] = np.fromiter(factors, np.int32, len(features) * num_factors).reshape(-1, num_factors)
  return examples
