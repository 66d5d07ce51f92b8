"""The compression family's config section (`config.compress`), its defaults and checks.

Light on purpose (no JAX): experiment files and the launchers import it. The loss is distortion + λ · rate: the
mean squared error per pixel of images in [0, 1] plus `lmbda` times the estimated bits per pixel of the code, so a
larger λ buys fewer bits at more distortion (CompressAI's λ' of λ'·255²·MSE + bpp is 1 / (255² λ)).
"""
from ml_collections import config_dict

from aejax.data import catalog
from aejax.errors import require


def add(c: config_dict.ConfigDict) -> config_dict.ConfigDict:
  """`c` with the family's section added, at its defaults."""
  s = c.compress = config_dict.ConfigDict()
  s.lmbda = 0.003  # λ, the price of a bit per pixel in units of mean squared error; > 0.
  s.channels = 64  # The hidden layers' channels (Ballé et al.'s N).
  s.code_channels = 32  # The code's channels (M); the code has (H / 2^layers) x (W / 2^layers) positions.
  s.layers = 2  # Stride-2 5x5 convolutions down to the code (28x28 MNIST: 7x7; 64x64 patches with 3: 8x8).
  s.filters = (3, 3, 3)  # The hidden widths of each channel's density (`entropy.FactorizedDensity`).
  # The codec's alphabet: the integers that hold all of every channel's probability but `tail_mass`, searched within
  # ±max_code; codes are clipped to it at test time (in training, noise stands in for rounding).
  s.tail_mass = 1e-9
  s.max_code = 255
  # The compression suite's baselines: Pillow's JPEG and WebP at these quality settings (and PNG, lossless).
  s.jpeg_qualities = (5, 10, 20, 30, 50, 70, 90)
  s.webp_qualities = (0, 5, 10, 20, 30, 50, 70, 90)
  return c


def validate(c: config_dict.ConfigDict) -> None:
  """Checks `config.compress` and the image size it needs; a `ConfigError` on the first bad field."""
  s = c.compress
  require(s.lmbda > 0, "config.compress.lmbda", s.lmbda,
          "λ prices the rate and must be positive: use e.g. 0.003 (larger: fewer bits, more distortion)")
  require(isinstance(s.layers, int) and s.layers >= 1, "config.compress.layers", s.layers, "use 1 or more, e.g. 2")
  for field in ("channels", "code_channels"):
    require(isinstance(s[field], int) and s[field] >= 1, f"config.compress.{field}", s[field],
            "use a positive number of channels")
  require(all(isinstance(f, int) and f >= 1 for f in s.filters), "config.compress.filters", tuple(s.filters),
          "use positive widths, e.g. '(3,3,3)'")
  require(0 < s.tail_mass < 1e-2, "config.compress.tail_mass", s.tail_mass, "use a small mass, e.g. 1e-9")
  require(isinstance(s.max_code, int) and s.max_code >= 1, "config.compress.max_code", s.max_code,
          "use a positive bound, e.g. 255")
  require(all(0 <= q <= 100 for q in (*s.jpeg_qualities, *s.webp_qualities)), "config.compress qualities",
          (tuple(s.jpeg_qualities), tuple(s.webp_qualities)), "Pillow's qualities run 0..100")
  height, width, _ = catalog.image_shape(c.data.name, c.data.resize)
  step = 2**s.layers
  require(height % step == 0 and width % step == 0, "config.compress.layers", s.layers,
          f"{c.data.name}'s {height}x{width} images do not halve {s.layers} times: use layers with 2^layers dividing "
          f"both sides (e.g. 2 for 28x28)")
