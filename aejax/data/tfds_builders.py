"""TFDS builders for the data sets of `aejax.data.catalog`, which need no TensorFlow.

Each stores its images as raw uint8 bytes in array_record, in a fixed order, and registers as `aejax_<name>`, so
the stock names stay free. TFDS's stock `mnist` and `fashion_mnist` builders store PNG images, which need
TensorFlow to encode and cost ~0.1 ms an image to decode; aejax's read the four IDX `.gz` files with gzip+numpy and
keep the IDX order. `aejax_uci_digits` reads scikit-learn's installed copy of the UCI digits (no download).

Given `tfds.download.DownloadConfig(manual_dir=...)` holding the four files,
TFDS takes them from there (checking the sizes and sha256 that TFDS registers
for its stock builders) and makes no network call; otherwise it downloads them.
They print nothing: `aejax.data.datasets` says in one line what it prepared.

`aejax.data.datasets` reads what they write without importing TFDS, so their layout
is versioned there (`datasets.FORMAT_VERSION`).
"""

import dataclasses
import gzip
import os
from collections.abc import Iterator

import numpy as np
import tensorflow_datasets as tfds

from aejax.data import catalog
from aejax.data.datasets import FORMAT_VERSION, IDX_FILES

_DIGITS = tuple(str(digit) for digit in range(10))


def _stock_url_infos(stock_name: str) -> dict[str, tfds.download.checksums.UrlInfo]:
  """Loads the sizes and sha256 of the IDX files that TFDS registers for its stock builder."""
  return tfds.download.checksums.load_url_infos(tfds.core.tfds_path("url_checksums", f"{stock_name}.txt"))


class _RawImageBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
  """Raw uint8 images of the shape `catalog` gives `DATASET` (at the builder config's size, if any) and labels, in
  the order `_generate_examples` yields them."""

  VERSION = tfds.core.Version(FORMAT_VERSION)
  RELEASE_NOTES = {"1.0.0": "Raw uint8 images in a fixed order, written without TensorFlow."}

  DATASET: str  # Its name in `aejax.data.catalog`.
  _DESCRIPTION: str
  _HOMEPAGE: str
  _LABEL_NAMES: tuple[str, ...]

  def __init__(self, *, file_format: str = "array_record", **kwargs) -> None:
    """Defaults to array_record: TFDS writes its default, tfrecord, only through TensorFlow."""
    super().__init__(file_format=file_format, **kwargs)

  def _log_download_bytes(self) -> None:
    """Says nothing (TFDS prints "Downloading and preparing dataset Unknown size ...")."""

  def _log_download_done(self) -> None:
    """Says nothing (TFDS prints "Dataset ... downloaded and prepared to ...")."""

  @property
  def image_shape(self) -> tuple[int, int, int]:
    size = getattr(self.builder_config, "size", None)
    return catalog.image_shape(self.DATASET, size)

  def _info(self) -> tfds.core.DatasetInfo:
    return tfds.core.DatasetInfo(
      builder=self,
      description=self._DESCRIPTION,
      features=tfds.features.FeaturesDict({
        # Raw bytes: one bytes_list entry instead of 784 int64s, ~3x faster to prepare and smaller.
        "image": tfds.features.Tensor(shape=self.image_shape, dtype=np.uint8, encoding="bytes"),
        "label": tfds.features.ClassLabel(names=self._LABEL_NAMES),
      }),
      supervised_keys=("image", "label"),
      homepage=self._HOMEPAGE,
      disable_shuffling=True,  # Keep the order.
    )


class _IdxBuilder(_RawImageBuilder, skip_registration=True):
  """Four IDX `.gz` files -> raw uint8 images (28, 28, 1) and labels, in IDX order."""

  URL: str  # The folder on the download site that holds the four files.
  # Subclasses set `url_infos` (size, sha256, file name by URL): with them TFDS takes the files from
  # `manual_dir` when they are there, and checks every file it uses.

  def _split_generators(self, dl_manager: tfds.download.DownloadManager) -> dict[str, Iterator]:
    paths = dl_manager.download({name: self.URL + name for files in IDX_FILES.values() for name in files})
    return {
      split: self._generate_examples(paths[images], paths[labels]) for split, (images, labels) in IDX_FILES.items()
    }

  def _generate_examples(self, images_path: os.PathLike, labels_path: os.PathLike) -> Iterator[tuple[int, dict]]:
    with gzip.open(images_path, "rb") as f:
      images = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, *self.image_shape)
    with gzip.open(labels_path, "rb") as f:
      labels = np.frombuffer(f.read(), np.uint8, offset=8)
    for index, (image, label) in enumerate(zip(images, labels, strict=True)):
      yield index, {"image": image, "label": int(label)}


class AejaxMnist(_IdxBuilder):
  """MNIST digits, from TFDS's mirror of the original IDX files."""

  DATASET = "mnist"
  URL = "https://storage.googleapis.com/cvdf-datasets/mnist/"
  _DESCRIPTION = "The MNIST database of handwritten digits, as raw uint8 images in IDX order."
  _HOMEPAGE = "http://yann.lecun.com/exdb/mnist/"
  _LABEL_NAMES = _DIGITS
  url_infos = _stock_url_infos("mnist")


class AejaxFashionMnist(_IdxBuilder):
  """Fashion-MNIST (Zalando article images), from its S3 website."""

  DATASET = "fashion_mnist"
  URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
  _DESCRIPTION = "Fashion-MNIST, Zalando's article images, as raw uint8 images in IDX order."
  _HOMEPAGE = "https://github.com/zalandoresearch/fashion-mnist"
  _LABEL_NAMES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"
  )
  url_infos = _stock_url_infos("fashion_mnist")


@dataclasses.dataclass
class SizeConfig(tfds.core.BuilderConfig):
  """A builder config of one image size (height, width)."""
  size: catalog.Size = (0, 0)


UCI_DIGITS_TEST_SIZE = 360  # The last 360 of the 1,797 images (20 %; 33 to 37 of each digit) are the test split.
UCI_DIGITS_MAX = 16  # The UCI values are counts of ink pixels in 4x4 blocks: 0..16.


def uci_digits_images(images: np.ndarray, size: catalog.Size) -> np.ndarray:
  """UCI digits (N, 8, 8) of values 0..16 -> uint8 (N, *size, 1) of values 0..255 (v * 255 / 16, rounded).

  Other sizes are interpolated bilinearly (`skimage.transform.resize`, order 1) on [0, 1], edges extended: an
  upscaled 8x8 digit (3.5x to 28x28) keeps smooth strokes, as MNIST's anti-aliased ones are, where nearest
  neighbours would give uneven blocks of 3 and 4 pixels; and bilinear values stay within their neighbours' range,
  where bicubic ones overshoot around strokes and would need clipping.
  """
  import skimage.transform  # pylint: disable=g-import-not-at-top  (only to prepare)
  x = np.asarray(images, np.float64) / UCI_DIGITS_MAX
  if x.shape[1:] != tuple(size):
    x = skimage.transform.resize(x, (len(x), *size), order=1, mode="edge", anti_aliasing=False)
  return np.rint(x * 255).astype(np.uint8)[..., None]


class AejaxUciDigits(_RawImageBuilder):
  """The UCI handwritten digits (optdigits), from the copy scikit-learn installs: no download, no file to give.

  Split, in scikit-learn's order: the first 1,437 images are the train split, the last `UCI_DIGITS_TEST_SIZE` the
  test split. Each builder config holds one size (`catalog`'s `sizes` for 'uci_digits': '8x8' is the native one).
  """

  DATASET = "uci_digits"
  SOURCE = "scikit-learn's copy (sklearn.datasets.load_digits)"  # Named in the line that says it was prepared.
  BUILDER_CONFIGS = [SizeConfig(name=f"{h}x{w}", size=(h, w), description=f"Images of {h}x{w} pixels.")
                     for h, w in catalog.get(DATASET).sizes]
  _DESCRIPTION = ("The UCI ML handwritten digits (optdigits' test set, as scikit-learn's load_digits ships it): "
                  "8x8 counts 0..16 scaled to uint8 0..255, in their order.")
  _HOMEPAGE = "https://archive.ics.uci.edu/dataset/80/optical+recognition+of+handwritten+digits"
  _LABEL_NAMES = _DIGITS

  def _split_generators(self, dl_manager: tfds.download.DownloadManager) -> dict[str, Iterator]:
    del dl_manager  # Nothing to download.
    from sklearn.datasets import load_digits  # pylint: disable=g-import-not-at-top  (only to prepare)
    digits = load_digits()
    images, labels = uci_digits_images(digits.images, self.builder_config.size), digits.target
    train = len(labels) - UCI_DIGITS_TEST_SIZE
    return {"train": self._generate_examples(images[:train], labels[:train]),
            "test": self._generate_examples(images[train:], labels[train:])}

  def _generate_examples(self, images: np.ndarray, labels: np.ndarray) -> Iterator[tuple[int, dict]]:
    for index, (image, label) in enumerate(zip(images, labels, strict=True)):
      yield index, {"image": image, "label": int(label)}
