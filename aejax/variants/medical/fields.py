"""The medical family's config section (`config.medical`), its defaults and checks.

Light on purpose (no JAX): experiment files and the launchers import it. The shared fields keep their meaning:
`noise_type` ('gaussian': σ = level; 'poisson': 1 / the photons of a pixel of 1) and `noise_factor`, here the
largest level: each training example gets a level drawn uniformly from [0, noise_factor] (a blind denoiser, one
network for every level), and the suite scores the levels of `eval.noise_factors`.
"""
from ml_collections import config_dict

from aejax.data import catalog, photos
from aejax.errors import require

NOISE_TYPES = ("gaussian", "poisson")


def add(c: config_dict.ConfigDict) -> config_dict.ConfigDict:
  """`c` with the family's section added, at its defaults."""
  s = c.medical = config_dict.ConfigDict()
  s.features = 48  # The channels of every hidden layer.
  s.levels = 2  # Stride-2 convolutions down (and transposed ones back up); each level has two 3x3 convolutions.
  s.residual = True  # The network outputs the noise to take away from its input (DnCNN's residual learning).
  s.skips = False  # Each decoder level also reads the encoder's features of its resolution (U-Net).
  # The share of each training batch replaced by random ellipse phantoms drawn on the device (`phantoms`): the
  # piecewise-constant kind of image CT phantoms are, which the photographs and slides of medical_patches are not.
  s.phantom_share = 0.0
  # The suite's whole held-out images: names of `skimage.data` images or paths of image files (grayscale), each at
  # least one patch (the data set's image size) on each side.
  s.test_images = ("microaneurysms", "shepp_logan_phantom")
  s.bm3d = True  # Also score BM3D where the `bm3d` package is installed (pip install bm3d; seconds an image).
  return c


def phantom_count(share: float, batch_size: int) -> int:
  """How many patches of a training batch are random phantoms: `share` of them, to the nearest (halves up)."""
  return int(share * batch_size + 0.5)


def validate(c: config_dict.ConfigDict) -> None:
  """Checks `config.medical` and the noise fields; a `ConfigError` on the first bad field."""
  s = c.medical
  require(c.noise_type in NOISE_TYPES, "config.noise_type", c.noise_type,
          f"the patch denoiser learns additive or photon noise: use one of {', '.join(NOISE_TYPES)}")
  require(c.noise_factor > 0, "config.noise_factor", c.noise_factor,
          "the largest noise level trained on must be positive, e.g. 0.2 (gaussian σ) or 0.1 (poisson, 1/peak)")
  require(all(0 < level <= c.noise_factor for level in c.eval.noise_factors), "config.eval.noise_factors",
          tuple(c.eval.noise_factors), f"score levels the network was trained on: in (0, noise_factor = "
          f"{c.noise_factor:g}]")
  require(isinstance(s.features, int) and s.features >= 1, "config.medical.features", s.features,
          "use a positive number of channels, e.g. 48")
  require(isinstance(s.levels, int) and s.levels >= 0, "config.medical.levels", s.levels, "use 0 or more, e.g. 2")
  require(0 <= s.phantom_share <= 1, "config.medical.phantom_share", s.phantom_share,
          "use a share of the batch in [0, 1], e.g. 0.25")
  require(s.phantom_share == 0 or phantom_count(s.phantom_share, c.batch_size) >= 1, "config.medical.phantom_share",
          s.phantom_share, f"it gives no phantom in a batch of {c.batch_size}: use 0, or at least "
          f"{0.5 / c.batch_size:g}")
  height, width, _ = catalog.image_shape(c.data.name, c.data.resize)
  require(height % 2**s.levels == 0 and width % 2**s.levels == 0, "config.medical.levels", s.levels,
          f"{c.data.name}'s {height}x{width} patches do not halve {s.levels} times: use fewer levels")
  require(len(s.test_images) >= 1, "config.medical.test_images", tuple(s.test_images),
          "name one or more images, e.g. '(\"microaneurysms\",)'")
  if "medical_denoise" in c.eval.suites:  # Read now, so that a bad image is named before training, not after.
    photos.test_images(tuple(s.test_images), height)
