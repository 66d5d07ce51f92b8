"""Images that scikit-image installs (`skimage.data`: natural photographs, medical and microscopy images; no
download), in grayscale, and their patches: the images behind the `photo_patches` and `medical_patches` data sets,
and the whole held-out images their suites score. Light (scikit-image is imported only when an image is read)."""
import pathlib

import numpy as np

from aejax.errors import ConfigError

# photo_patches: the train split's photographs, then the held-out test photo.
PHOTO_TRAIN = ("camera", "coffee", "chelsea", "rocket", "coins", "moon", "clock", "brick", "grass", "gravel")
PHOTO_TEST = "astronaut"
PHOTO_PATCH, PHOTO_STRIDE = 64, 16  # Train patches overlap (6,824 of them); the test photo's are its 64 disjoint ones.
# medical_patches: a fundus photograph, an immunohistochemistry slide and a fluorescence microscopy image for
# training; a retinal detail with microaneurysms and the Shepp–Logan CT phantom held out.
MEDICAL_TRAIN = ("retina", "immunohistochemistry", "cell")
MEDICAL_TEST = ("microaneurysms", "shepp_logan_phantom")
MEDICAL_PATCH, MEDICAL_STRIDE = 32, 16


def gray(name: str) -> np.ndarray:
  """uint8 (H, W) grayscale of `skimage.data.<name>()`, or of the image file at path `name`: an RGB image through
  ITU-R 601 luma (`skimage.color.rgb2gray`'s weights); other depths (16-bit, float in [0, 1], boolean) scaled to
  0..255 by `skimage.util.img_as_ubyte`."""
  import skimage.color  # pylint: disable=g-import-not-at-top  (only to read images)
  import skimage.data  # pylint: disable=g-import-not-at-top
  import skimage.io  # pylint: disable=g-import-not-at-top
  import skimage.util  # pylint: disable=g-import-not-at-top
  image = skimage.io.imread(name) if pathlib.Path(name).suffix else getattr(skimage.data, name)()
  if image.ndim == 3:
    image = skimage.color.rgb2gray(image[..., :3])
  if image.dtype.kind == "f":
    image = np.clip(image, 0.0, 1.0)
  return skimage.util.img_as_ubyte(image)


def patches(image: np.ndarray, size: int, stride: int) -> np.ndarray:
  """Patches (N, size, size, 1) of an (H, W) image, row by row at `stride`."""
  return np.stack([image[r:r + size, c:c + size] for r in range(0, image.shape[0] - size + 1, stride)
                   for c in range(0, image.shape[1] - size + 1, stride)])[..., None]


def test_images(names: tuple[str, ...], patch: int) -> dict[str, np.ndarray]:
  """Each named image (`gray`) as float64 (H, W) in [0, 1], by its short name; a `ConfigError` for an image that
  cannot be read or is smaller than a training patch (`patch` pixels a side)."""
  out = {}
  for name in names:
    try:
      image = gray(name)
    except (AttributeError, OSError, ValueError) as e:
      raise ConfigError(f"config.medical.test_images: {name!r} is neither an image of skimage.data nor an image file "
                        f"({type(e).__name__}): name one, e.g. 'microaneurysms', or give a path") from e
    if min(image.shape) < patch:
      raise ConfigError(f"config.medical.test_images: {name!r} is {image.shape[0]}x{image.shape[1]}, smaller than "
                        f"the {patch}x{patch} patches the network trained on: use an image at least that large")
    out[pathlib.Path(name).stem] = image.astype(np.float64) / 255
  return out
