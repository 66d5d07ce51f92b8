"""TFDS builders for MNIST and Fashion-MNIST that need no TensorFlow.

TFDS's stock `mnist` and `fashion_mnist` builders store PNG images, which need
TensorFlow to encode and cost ~0.1 ms an image to decode. These builders read
the four IDX `.gz` files with gzip+numpy and store each image as its raw 784
bytes in array_record, in the original IDX order. They register as
`aejax_mnist` and `aejax_fashion_mnist`, so the stock names stay free.

Given `tfds.download.DownloadConfig(manual_dir=...)` holding the four files,
TFDS takes them from there (checking the sizes and sha256 that TFDS registers
for its stock builders) and makes no network call; otherwise it downloads them.
They print nothing: `aejax.data.datasets` says in one line what it prepared.

`aejax.data.datasets` reads what they write without importing TFDS, so their layout
is versioned there (`datasets.FORMAT_VERSION`).
"""

import gzip
import os
from collections.abc import Iterator

import numpy as np
import tensorflow_datasets as tfds

from aejax import config as config_lib
from aejax.data.datasets import FORMAT_VERSION, IDX_FILES

IMAGE_SHAPE = config_lib.IMAGE_SHAPE


def _stock_url_infos(stock_name: str) -> dict[str, tfds.download.checksums.UrlInfo]:
  """Loads the sizes and sha256 of the IDX files that TFDS registers for its stock builder."""
  return tfds.download.checksums.load_url_infos(tfds.core.tfds_path("url_checksums", f"{stock_name}.txt"))


class _IdxBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
  """Four IDX `.gz` files -> raw uint8 images (28, 28, 1) and labels, in IDX order."""

  VERSION = tfds.core.Version(FORMAT_VERSION)
  RELEASE_NOTES = {"1.0.0": "Raw uint8 images in IDX order, written without TensorFlow."}

  URL: str  # The folder on the download site that holds the four files.
  _DESCRIPTION: str
  _HOMEPAGE: str
  _LABEL_NAMES: tuple[str, ...]
  # Subclasses set `url_infos` (size, sha256, file name by URL): with them TFDS takes the files from
  # `manual_dir` when they are there, and checks every file it uses.

  def __init__(self, *, file_format: str = "array_record", **kwargs) -> None:
    """Defaults to array_record: TFDS writes its default, tfrecord, only through TensorFlow."""
    super().__init__(file_format=file_format, **kwargs)

  def _log_download_bytes(self) -> None:
    """Says nothing (TFDS prints "Downloading and preparing dataset Unknown size ...")."""

  def _log_download_done(self) -> None:
    """Says nothing (TFDS prints "Dataset ... downloaded and prepared to ...")."""

  def _info(self) -> tfds.core.DatasetInfo:
    return tfds.core.DatasetInfo(
      builder=self,
      description=self._DESCRIPTION,
      features=tfds.features.FeaturesDict({
        # Raw bytes: one bytes_list entry instead of 784 int64s, ~3x faster to prepare and smaller.
        "image": tfds.features.Tensor(shape=IMAGE_SHAPE, dtype=np.uint8, encoding="bytes"),
        "label": tfds.features.ClassLabel(names=self._LABEL_NAMES),
      }),
      supervised_keys=("image", "label"),
      homepage=self._HOMEPAGE,
      disable_shuffling=True,  # Keep the IDX order.
    )

  def _split_generators(self, dl_manager: tfds.download.DownloadManager) -> dict[str, Iterator]:
    paths = dl_manager.download({name: self.URL + name for files in IDX_FILES.values() for name in files})
    return {
      split: self._generate_examples(paths[images], paths[labels]) for split, (images, labels) in IDX_FILES.items()
    }

  def _generate_examples(self, images_path: os.PathLike, labels_path: os.PathLike) -> Iterator[tuple[int, dict]]:
    with gzip.open(images_path, "rb") as f:
      images = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, *IMAGE_SHAPE)
    with gzip.open(labels_path, "rb") as f:
      labels = np.frombuffer(f.read(), np.uint8, offset=8)
    for index, (image, label) in enumerate(zip(images, labels, strict=True)):
      yield index, {"image": image, "label": int(label)}


class AejaxMnist(_IdxBuilder):
  """MNIST digits, from TFDS's mirror of the original IDX files."""

  URL = "https://storage.googleapis.com/cvdf-datasets/mnist/"
  _DESCRIPTION = "The MNIST database of handwritten digits, as raw uint8 images in IDX order."
  _HOMEPAGE = "http://yann.lecun.com/exdb/mnist/"
  _LABEL_NAMES = tuple(str(digit) for digit in range(10))
  url_infos = _stock_url_infos("mnist")


class AejaxFashionMnist(_IdxBuilder):
  """Fashion-MNIST (Zalando article images), from its S3 website."""

  URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
  _DESCRIPTION = "Fashion-MNIST, Zalando's article images, as raw uint8 images in IDX order."
  _HOMEPAGE = "https://github.com/zalandoresearch/fashion-mnist"
  _LABEL_NAMES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"
  )
  url_infos = _stock_url_infos("fashion_mnist")


# Each dataset name's builder, which `aejax.data.datasets` prepares as `aejax_<name>`.
BUILDERS: dict[str, type[_IdxBuilder]] = {"mnist": AejaxMnist, "fashion_mnist": AejaxFashionMnist}
