"""Data sets by name, registered as variants are (`aejax.registry`): what aejax needs of each to check a config,
prepare the data set once through its TFDS builder and read it back.

`aejax.config` checks `config.data` here, `aejax.data.datasets` prepares and reads; neither needs more than this
module knows of a data set. It imports nothing heavy (no TFDS, no numpy): `aejax.config` imports it.
"""
import dataclasses

from aejax.errors import ConfigError

Size = tuple[int, int]  # (height, width)

# How preparing gets a data set's examples (`Dataset.source`).
IDX = "idx"  # The four IDX .gz files, from data.manual_dir or by download (`aejax.data.datasets.IDX_FILES`).
PACKAGE = "package"  # A copy that a Python package installs: no file to give, nothing to download.
# Rendered by aejax (`aejax.data.dsprites`), nothing to download; data.manual_dir, if given, is a folder holding the
# original file (`Dataset.manual_file`), read instead.
RENDER = "render"
# The builder configs of a RENDER data set: rendered by aejax, or read from the original file.
RENDERED, ORIGINAL = "rendered", "original"


@dataclasses.dataclass(frozen=True)
class Dataset:
  """A data set of labelled uint8 images (values 0..255) with a train and a test split, whose examples may also
  carry the indices of ground-truth factors of variation."""
  title: str  # Its name in messages.
  # The TFDS builder class in `aejax.data.tfds_builders` (imported only to prepare), registered as `aejax_<name>`.
  builder: str
  image_shape: tuple[int, int, int]  # Native (height, width, channels).
  num_classes: int  # Labels are 0..num_classes - 1.
  # IDX: data.manual_dir and data.download apply, and TFDS's stock builder of the same name (PNG images) is read
  # where it is prepared. PACKAGE: both flags are unused and preparing never reaches the network. RENDER: neither
  # reaches the network either; data.manual_dir may hold `manual_file`, prepared as the builder config 'original'
  # (else 'rendered').
  source: str
  # Sizes (height, width) its builder also prepares, resized from the native ones: one builder config 'HxW' for each
  # and for the native size. () for a builder without configs, which has the native size only.
  sizes: tuple[Size, ...] = ()
  # Ground-truth factors of variation: their names, and how many values each takes. Each example carries its index
  # of each ('factors': int32, one column per factor, in this order). () for a data set without them.
  factor_names: tuple[str, ...] = ()
  factor_sizes: tuple[int, ...] = ()
  # Binary images (0 or 255), stored 8 pixels a byte (np.packbits, feature 'image_bits') rather than one a byte
  # (feature 'image'): reading 184,320 dSprites images peaked at 1.0 GB of memory instead of 2.7 GB, as fast
  # (array_record compresses either to about 48 MB on disk).
  packed: bool = False
  manual_file: str = ""  # RENDER: the original file that data.manual_dir may hold.

  def shape(self, resize: Size | None) -> tuple[int, int, int]:
    """The image shape with `resize` ((height, width), None for the native size)."""
    return self.image_shape if resize is None else (*resize, self.image_shape[2])

  def builder_config(self, resize: Size | None, manual_dir: str | None = None) -> str | None:
    """The name of the builder config that prepares images of size `resize` (of a RENDER data set: from
    data.manual_dir's file or rendered), None for a builder without configs."""
    if self.source == RENDER:
      return RENDERED if manual_dir is None else ORIGINAL
    if not self.sizes:
      return None
    height, width = self.shape(resize)[:2]
    return f"{height}x{width}"

  def builder_configs(self) -> tuple[str, ...]:
    """The names of all its builder's configs (() for a builder without configs)."""
    if self.source == RENDER:
      return RENDERED, ORIGINAL
    return tuple(f"{height}x{width}" for height, width in self.sizes)


@dataclasses.dataclass(frozen=True)
class Ratings:
  """A data set of (user, item, rating) triples: the ratings matrix that the recommendation family
  (aejax/variants/recommend) trains on, split by `config.data.ratings` (`aejax.data.ratings`)."""
  title: str
  num_users: int  # Users 0..num_users - 1, in the order of their ids in the files.
  num_items: int  # Items with at least one rating, 0..num_items - 1 in the order of their ids.
  rating_scale: tuple[float, float]  # The lowest and highest rating.
  # The GroupLens release: the file in data.manual_dir that holds the ratings, read instead of TFDS's builder.
  manual_file: str
  # TFDS's stock builder and config that download the same ratings ('' for none).
  stock: str = ""


_REGISTRY: dict[str, Dataset | Ratings] = {}


def register(name: str, dataset: Dataset | Ratings) -> None:
  """Makes `dataset` available as `config.data.name = name`."""
  if name in _REGISTRY:
    raise ValueError(f"dataset {name!r} is registered twice")
  _REGISTRY[name] = dataset


def names() -> list[str]:
  """The registered names, in the order they were registered."""
  return list(_REGISTRY)


def get(name: str) -> Dataset | Ratings:
  """The data set registered as `name`, or a `ConfigError` listing the known ones."""
  if name not in _REGISTRY:
    raise ConfigError(f"data.name={name!r} is not a known dataset: use one of {', '.join(map(repr, names()))}")
  return _REGISTRY[name]


def is_ratings(name: str) -> bool:
  """Whether `name` is a ratings data set (a `ConfigError` if it is not a known one)."""
  return isinstance(get(name), Ratings)


def image_names() -> list[str]:
  """The names of the image data sets, in the order they were registered."""
  return [name for name in names() if not is_ratings(name)]


def image_shape(name: str, resize: Size | None = None) -> tuple[int, int, int]:
  """The shape (height, width, channels) of data set `name`'s images at size `resize` (None: native), or a
  `ConfigError` naming the sizes it comes in."""
  dataset = get(name)
  if isinstance(dataset, Ratings):
    raise ConfigError(f"config.data.name={name!r} is a ratings data set, which only the recommendation variants "
                      "read: use --config.variant=autorec, mult_vae or mult_dae (experiments/autorec.py, "
                      f"mult_vae.py), or an image data set ({', '.join(map(repr, image_names()))})")
  native = dataset.image_shape[:2]
  if resize is not None:
    resize = tuple(resize)
    if len(resize) != 2 or not all(isinstance(side, int) and side > 0 for side in resize):
      raise ConfigError(f"config.data.resize={resize!r}: give (height, width) in pixels, e.g. "
                        f"--config.data.resize='(28,28)', or None for the native size")
    if resize != native and resize not in dataset.sizes:
      sizes = ", ".join(f"({h}, {w})" for h, w in dict.fromkeys((native, *dataset.sizes)))
      raise ConfigError(f"config.data.resize={resize!r}: {name} is prepared at {sizes} only: use one of those, or "
                        f"None for its native {native[0]}x{native[1]}")
  return dataset.shape(resize)


register("mnist", Dataset(title="MNIST", builder="AejaxMnist", image_shape=(28, 28, 1), num_classes=10, source=IDX))
register("fashion_mnist", Dataset(title="Fashion-MNIST", builder="AejaxFashionMnist", image_shape=(28, 28, 1),
                                  num_classes=10, source=IDX))
# scikit-learn's copy of the UCI handwritten digits (`sklearn.datasets.load_digits`), 1,797 images in 8x8 and,
# resized, in MNIST's 28x28 (CycleGAN's MNIST <-> UCI digits) and 32x32 (the DCGAN and StyleGAN nets' size).
register("uci_digits", Dataset(title="UCI digits", builder="AejaxUciDigits", image_shape=(8, 8, 1), num_classes=10,
                               source=PACKAGE, sizes=((8, 8), (28, 28), (32, 32))))
# dSprites (Matthey et al. 2017), rendered by aejax (`aejax.data.dsprites`, whose factors these are) or read from the
# original file: 737,280 64x64 binary images, one for each combination of its factors, labelled by shape (square,
# ellipse, heart). 'dsprites_small' is a sub-grid of it (1,920 images, `tfds_builders.AejaxDspritesSmall`), prepared
# and read by the same code, for tests and `:smoke` configs.
_DSPRITES = {"image_shape": (64, 64, 1), "num_classes": 3, "source": RENDER, "packed": True,
             "factor_names": ("shape", "scale", "orientation", "position_x", "position_y"),
             "factor_sizes": (3, 6, 40, 32, 32), "manual_file": "dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz"}
register("dsprites", Dataset(title="dSprites", builder="AejaxDsprites", **_DSPRITES))
register("dsprites_small", Dataset(title="dSprites (small)", builder="AejaxDspritesSmall", **_DSPRITES))
# Natural photographs that scikit-image installs (`skimage.data`; no download), in grayscale, cut into 64x64 patches
# (`tfds_builders.AejaxPhotoPatches`): the train split overlapping patches (stride 16) of ten photos, the test split
# the 64 non-overlapping patches of a held-out one (the astronaut). Labelled by their photo. The compression family's
# natural images.
register("photo_patches", Dataset(title="photo patches", builder="AejaxPhotoPatches", image_shape=(64, 64, 1),
                                  num_classes=11, source=PACKAGE))
# Medical and microscopy images scikit-image installs, in grayscale, cut into 32x32 patches: the train split
# overlapping patches (stride 16) of a fundus photograph, an immunohistochemistry slide and a fluorescence microscopy
# image; the test split the disjoint patches of two held-out images, a retinal detail with microaneurysms and the
# Shepp–Logan CT phantom (`aejax.data.photos`). The medical family's patch denoiser trains on them.
register("medical_patches", Dataset(title="medical patches", builder="AejaxMedicalPatches", image_shape=(32, 32, 1),
                                    num_classes=5, source=PACKAGE))
# MovieLens (Harper & Konstan 2015), the GroupLens releases: 100K (u.data), 1M (ratings.dat) and 20M (ratings.csv,
# half-star ratings). 20M's movie ids run to 131,262, of which 26,744 are rated.
register("movielens_100k", Ratings(title="MovieLens 100K", num_users=943, num_items=1_682, rating_scale=(1.0, 5.0),
                                   manual_file="u.data", stock="movielens/100k-ratings"))
register("movielens_1m", Ratings(title="MovieLens 1M", num_users=6_040, num_items=3_706, rating_scale=(1.0, 5.0),
                                 manual_file="ratings.dat", stock="movielens/1m-ratings"))
register("movielens_20m", Ratings(title="MovieLens 20M", num_users=138_493, num_items=26_744,
                                  rating_scale=(0.5, 5.0), manual_file="ratings.csv", stock="movielens/20m-ratings"))
