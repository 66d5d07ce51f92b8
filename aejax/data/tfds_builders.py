"""TFDS builders for the data sets of `aejax.data.catalog`, which need no TensorFlow.

Each stores its images as raw uint8 bytes in array_record, in a fixed order, and registers as `aejax_<name>`, so
the stock names stay free. TFDS's stock `mnist` and `fashion_mnist` builders store PNG images, which need
TensorFlow to encode and cost ~0.1 ms an image to decode; aejax's read the four IDX `.gz` files with gzip+numpy and
keep the IDX order. `aejax_uci_digits` reads scikit-learn's installed copy of the UCI digits (no download).
`aejax_dsprites` renders dSprites (`aejax.data.dsprites`), or reads the original file from a manual dir.

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
import pathlib
import zipfile
from collections.abc import Iterator

import numpy as np
import tensorflow_datasets as tfds

from aejax.data import catalog, dsprites, photos
from aejax.data.datasets import FORMAT_VERSION, IDX_FILES
from aejax.errors import ConfigError

_DIGITS = tuple(str(digit) for digit in range(10))


def _stock_url_infos(stock_name: str) -> dict[str, tfds.download.checksums.UrlInfo]:
  """Loads the sizes and sha256 of the IDX files that TFDS registers for its stock builder."""
  return tfds.download.checksums.load_url_infos(tfds.core.tfds_path("url_checksums", f"{stock_name}.txt"))


class _RawImageBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
  """Raw uint8 images of the shape `catalog` gives `DATASET` (at the builder config's size, if any) and labels, in
  the order `_generate_examples` yields them; binary images 8 pixels a byte ('image_bits': np.packbits of the image
  flattened, 1 for 255) where `catalog` says `packed`; and each example's factor indices and values ('factors',
  'factor_values') for a data set with factors."""

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
    dataset = catalog.get(self.DATASET)
    # Raw bytes: one bytes_list entry instead of 784 int64s, ~3x faster to prepare and smaller.
    if dataset.packed:
      image = "image_bits", tfds.features.Tensor(shape=(np.prod(self.image_shape) // 8,), dtype=np.uint8,
                                                 encoding="bytes")
    else:
      image = "image", tfds.features.Tensor(shape=self.image_shape, dtype=np.uint8, encoding="bytes")
    features = dict([image, ("label", tfds.features.ClassLabel(names=self._LABEL_NAMES))])
    if dataset.factor_names:
      features["factors"] = tfds.features.Tensor(shape=(len(dataset.factor_names),), dtype=np.int64)
      features["factor_values"] = tfds.features.Tensor(shape=(len(dataset.factor_names),), dtype=np.float32)
    return tfds.core.DatasetInfo(
      builder=self,
      description=self._DESCRIPTION,
      features=tfds.features.FeaturesDict(features),
      supervised_keys=(image[0], "label"),
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


class _SkimagePatches(_RawImageBuilder, skip_registration=True):
  """Grayscale patches of images scikit-image installs (`aejax.data.photos`): no download, no file to give. The
  train split is `TRAIN`'s images cut at `STRIDE`, the test split `TEST`'s disjoint patches; each labelled by its
  image (in the order of `_LABEL_NAMES`)."""

  SOURCE = "scikit-image's images (skimage.data)"  # Named in the line that says it was prepared.
  _HOMEPAGE = "https://scikit-image.org/docs/stable/api/skimage.data.html"
  TRAIN: tuple[str, ...]
  TEST: tuple[str, ...]
  PATCH: int
  STRIDE: int

  def _split_generators(self, dl_manager: tfds.download.DownloadManager) -> dict[str, Iterator]:
    del dl_manager  # Nothing to download.
    def split(names: tuple[str, ...], stride: int, first_label: int):
      cut = [photos.patches(photos.gray(name), self.PATCH, stride) for name in names]
      labels = np.concatenate([np.full(len(p), first_label + k) for k, p in enumerate(cut)])
      return self._generate_examples(np.concatenate(cut), labels)
    return {"train": split(self.TRAIN, self.STRIDE, 0), "test": split(self.TEST, self.PATCH, len(self.TRAIN))}

  def _generate_examples(self, images: np.ndarray, labels: np.ndarray) -> Iterator[tuple[int, dict]]:
    for index, (image, label) in enumerate(zip(images, labels, strict=True)):
      yield index, {"image": image, "label": int(label)}


class AejaxPhotoPatches(_SkimagePatches):
  """64x64 patches of ten natural photographs (train, overlapping) and of the held-out astronaut (test)."""

  DATASET = "photo_patches"
  TRAIN, TEST = photos.PHOTO_TRAIN, (photos.PHOTO_TEST,)
  PATCH, STRIDE = photos.PHOTO_PATCH, photos.PHOTO_STRIDE
  _DESCRIPTION = ("64x64 grayscale patches of scikit-image's photographs: ten photos overlapping (train), the "
                  "astronaut's disjoint patches (test).")
  _LABEL_NAMES = (*TRAIN, *TEST)


class AejaxMedicalPatches(_SkimagePatches):
  """32x32 patches of a fundus photograph, an immunohistochemistry slide and a microscopy image (train,
  overlapping), and of a retinal detail and the Shepp–Logan phantom (test, disjoint)."""

  DATASET = "medical_patches"
  TRAIN, TEST = photos.MEDICAL_TRAIN, photos.MEDICAL_TEST
  PATCH, STRIDE = photos.MEDICAL_PATCH, photos.MEDICAL_STRIDE
  _DESCRIPTION = ("32x32 grayscale patches of scikit-image's medical images: retina, immunohistochemistry and cell "
                  "overlapping (train); microaneurysms' and the Shepp-Logan phantom's disjoint patches (test).")
  _LABEL_NAMES = (*TRAIN, *TEST)


class AejaxDsprites(_RawImageBuilder):
  """dSprites' images with their shape as label and their factors' indices and values: rendered by
  `aejax.data.dsprites` (builder config 'rendered'), or read from the original file in the manual dir ('original').

  The train split is every image of `GRID`, as disentanglement studies train (Locatello et al. 2019): their metrics
  query the generative grid itself, so nothing is held out. The test split is a fixed random `TEST_SIZE` of them
  (seed 1), for the evaluations a run makes as it trains (reconstruction error, ELBO): the same images for every run,
  and few enough to evaluate often; being train images as well, they measure fit, not generalisation. Each split is
  stored in a fixed random order (the train split's: seed 0), so that its first n examples (data.num_train,
  data.num_test) are a uniform sample of the grid, not n squares of the smallest scale.
  """

  DATASET = "dsprites"
  SOURCE = "aejax.data.dsprites (rendered)"  # Named in the line that says it was prepared.
  GRID = tuple(range(size) for size in dsprites.FACTOR_SIZES)  # The factor indices it holds: here every one.
  TEST_SIZE = 10_000
  BUILDER_CONFIGS = [
    tfds.core.BuilderConfig(name=catalog.RENDERED, description="Rendered by aejax.data.dsprites."),
    tfds.core.BuilderConfig(name=catalog.ORIGINAL, description=f"Read from the original {dsprites.NPZ_FILE}."),
  ]
  MANUAL_DOWNLOAD_INSTRUCTIONS = (f"For the builder config 'original' only: a folder holding {dsprites.NPZ_FILE} "
                                  "(https://github.com/deepmind/dsprites-dataset).")
  _DESCRIPTION = ("dSprites (Matthey et al. 2017): 64x64 binary images of a square, ellipse or heart at each "
                  "combination of 6 scales, 40 orientations and 32 x 32 positions, 8 pixels a byte ('image_bits': "
                  "np.packbits of the flattened image), labelled by shape, with the indices and values of the factors "
                  "('factors', 'factor_values': shape, scale, orientation, position_x, position_y).")
  _HOMEPAGE = "https://github.com/deepmind/dsprites-dataset"
  _LABEL_NAMES = dsprites.SHAPES

  def _split_generators(self, dl_manager: tfds.download.DownloadManager) -> dict[str, Iterator]:
    indices = np.ravel_multi_index(np.meshgrid(*self.GRID, indexing="ij"), dsprites.FACTOR_SIZES).reshape(-1)
    if self.builder_config.name == catalog.ORIGINAL:
      examples = (indices, *_dsprites_from_npz(pathlib.Path(dl_manager.manual_dir), indices))
    else:
      examples = (indices, *_dsprites_rendered(indices))
    train = np.random.default_rng(0).permutation(len(indices))
    test = np.random.default_rng(1).choice(len(indices), self.TEST_SIZE, replace=False)
    return {"train": self._generate_examples(*examples, train), "test": self._generate_examples(*examples, test)}

  def _generate_examples(self, indices: np.ndarray, bits: np.ndarray, values: np.ndarray,
                         order: np.ndarray) -> Iterator[tuple[int, dict]]:
    """The examples `order` picks, keyed by their place in it (TFDS writes them sorted by key)."""
    factors = dsprites.to_factors(indices)
    for key, i in enumerate(order):
      yield key, {"image_bits": bits[i], "label": int(factors[i, 0]), "factors": factors[i],
                  "factor_values": values[i]}


class AejaxDspritesSmall(AejaxDsprites):
  """A sub-grid of dSprites for tests and `:smoke` configs, 1,920 images: every shape, scales 0.5 and 1,
  orientations 0, 81, 162, 243 and 324 degrees (no two alike for a square or an ellipse), every 4th position."""

  DATASET = "dsprites_small"
  GRID = (range(3), range(0, 6, 5), range(0, 40, 9), range(0, 32, 4), range(0, 32, 4))
  TEST_SIZE = 480


def _dsprites_rendered(indices: np.ndarray, block: int = 2**15) -> tuple[np.ndarray, np.ndarray]:
  """The images of image indices `indices`, rendered 8 pixels a byte, and their factor values (float32)."""
  bits = np.empty((len(indices), dsprites.IMAGE_SIZE**2 // 8), np.uint8)
  for start in range(0, len(indices), block):
    images = dsprites.render(dsprites.to_factors(indices[start:start + block]))
    bits[start:start + block] = np.packbits(images.reshape(len(images), -1), axis=1)
  return bits, dsprites.values(dsprites.to_factors(indices)).astype(np.float32)


def _dsprites_from_npz(manual_dir: pathlib.Path, indices: np.ndarray,
                       block: int = 2**14) -> tuple[np.ndarray, np.ndarray]:
  """The images of image indices `indices` in the original file in `manual_dir`, 8 pixels a byte, and their factor
  values (float32), each found by its row's `latents_classes`; its 3 GB of images are read `block` rows at a time."""
  path = manual_dir / dsprites.NPZ_FILE

  def bad(why: str) -> ConfigError:
    return ConfigError(f"data.manual_dir={str(manual_dir)!r}: {dsprites.NPZ_FILE} is not dSprites' file ({why}): "
                       "replace it with the original (https://github.com/deepmind/dsprites-dataset)")

  try:
    with np.load(path) as npz:
      classes, values = npz["latents_classes"], npz["latents_values"]
  except (OSError, KeyError, ValueError, zipfile.BadZipFile) as e:
    raise bad(f"{type(e).__name__}: {e}") from e
  sizes = (1, *dsprites.FACTOR_SIZES)  # The original's factors start with color, of one value.
  if classes.ndim != 2 or classes.shape[1] != len(sizes) or values.shape != classes.shape:
    raise bad(f"latents_classes of shape {classes.shape} and latents_values of shape {values.shape}, not (N, 6)")
  if not ((classes >= 0) & (classes < sizes)).all():
    raise bad("latents_classes out of the factors' ranges")
  image_index = dsprites.to_index(classes[:, 1:])
  if len(np.unique(image_index)) != len(image_index):
    raise bad("a factor combination in two rows")
  row_of = np.full(dsprites.NUM_IMAGES, -1)
  row_of[image_index] = np.arange(len(image_index))
  rows = row_of[indices]
  if (rows < 0).any():
    raise bad(f"no image of {np.sum(rows < 0):,} of the {len(indices):,} factor combinations")
  try:
    bits = _npz_image_bits(path, len(classes), rows, block)
  except (OSError, KeyError, ValueError, zipfile.BadZipFile) as e:
    raise bad(f"imgs: {type(e).__name__}: {e}") from e
  return bits, values[rows, 1:].astype(np.float32)


def _npz_image_bits(path: pathlib.Path, count: int, rows: np.ndarray, block: int) -> np.ndarray:
  """Rows `rows` of the npz's 'imgs' (`count`, 64, 64) of 0 and 1, 8 pixels a byte, read `block` rows at a time."""
  order = np.argsort(rows)
  wanted = rows[order]
  bits = np.empty((len(rows), dsprites.IMAGE_SIZE**2 // 8), np.uint8)
  with zipfile.ZipFile(path) as archive, archive.open("imgs.npy") as f:
    version = np.lib.format.read_magic(f)
    read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
    shape, fortran_order, dtype = read_header(f)
    if shape != (count, dsprites.IMAGE_SIZE, dsprites.IMAGE_SIZE) or dtype != np.uint8 or fortran_order:
      raise ValueError(f"shape {shape} of {dtype}, not ({count}, 64, 64) of uint8")
    pixels = dsprites.IMAGE_SIZE**2
    for start in range(0, count, block):
      size = min(block, count - start)
      images = np.frombuffer(f.read(size * pixels), np.uint8).reshape(size, pixels)
      first, last = np.searchsorted(wanted, (start, start + size))
      bits[order[first:last]] = np.packbits(images[wanted[first:last] - start] != 0, axis=1)
  return bits
