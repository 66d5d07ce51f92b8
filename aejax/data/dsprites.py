"""dSprites (Matthey et al. 2017) rendered by aejax: one 64x64 binary image of a white shape on black for each
combination of five ground-truth factors, 737,280 in all, drawn exactly as stated here.

Factors, in the original's order and index layout:

  shape          3   square, ellipse, heart (values 1, 2, 3, as in the original)
  scale          6   linspace(0.5, 1, 6)
  orientation   40   linspace(0, 2π, 40, endpoint=False), radians, counter-clockwise as displayed
  position_x    32   linspace(0, 1, 32), left to right
  position_y    32   linspace(0, 1, 32), top to bottom

Image k has the factor indices `to_factors(k)` (`np.unravel_index(k, FACTOR_SIZES)`: position_y varies fastest). The
original file (`dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz`) has a sixth factor first, color, of one value: its
row k has `latents_classes[k, 1:] == to_factors(k)`. Its orientation index k has the value 2πk/39 (linspace(0, 2π, 40)
with the endpoint, so its first and last are one angle) where aejax's has 2πk/40: 40 distinct angles. Its pixels come
from a renderer whose sizes and rasterisation are not published, so aejax's images are not its images; `data.manual_dir`
reads those instead (`aejax.data.tfds_builders.AejaxDsprites`).

How an image is drawn. Pixel (row r, column c) covers [c, c + 1) x [r, r + 1) in pixel units and is 1 if its centre
(c + 0.5, r + 0.5) lies inside the shape or on its outline, else 0 (no anti-aliasing):
- Position: position index i (value p = i / 31) puts the shape's centre on the centre of pixel 16 + i, the column
  for position_x and the row for position_y: coordinate 16.5 + 31 p. One step moves the shape by exactly one pixel, and
  no shape at any setting comes within 2 pixels of the border, so every image shows the whole shape.
- Frame: a pixel centre is taken relative to the shape's centre, (u, v) = (c - centre column, centre row - r), in
  pixels with v pointing up (integers, both being pixel centres); turned back by the orientation θ (the shape is
  turned by θ counter-clockwise about its centre); and divided by the scale s, which gives (x, y).
- Orientation index k (θ = 2πk/40) turns back by k // 10 exact quarter turns, (u, v) -> (v, -u) each, then by
  2π(k % 10)/40 with cos and sin, so that turns by multiples of 90 degrees are exact on the pixel grid: the image at
  orientation k + 10 is `np.rot90` of the image at k, its position turned with it.
- Outlines, the inside being where the left side is <= 0:
  square   max(|x|, |y|) / 10.5 - 1: side 21 pixels at scale 1 (21 pixel centres across at θ = 0), 10.5 at scale
           0.5 (11 across), sides along the axes at θ = 0;
  ellipse  (x / 14.5)² + (y / 7.25)² - 1: semi-axes 14.5 and 7.25 pixels at scale 1, long axis horizontal at θ = 0;
  heart    (X² + Y² - 1)³ - X² Y³ with X = x / 9.5, Y = y / 9.5 + 0.12: the algebraic heart, its tip down at θ = 0,
           21.6 pixels wide at scale 1, turning about the middle of its height (Y from -1 to 1.236).
  These sizes keep every pixel centre clear of every outline (tests/test_dsprites.py bounds the smallest |level|
  over all 720 shape, scale and orientation settings), so no image depends on the last bits of cos, sin or the
  scale values; and they make images differ wherever the shapes do: two settings give one image only where a
  shape's symmetry makes them one (a square turned by 90 degrees, an ellipse by 180), 420 distinct drawings of 720.

Rendering draws each (shape, scale, orientation) once on the 95 x 95 pixel offsets any position needs and takes
the 64 x 64 window of each position from it: one step of position is one pixel, so every image is a window of one
of 720 such drawings, exactly as testing its own pixel centres would give.
"""
import math

import numpy as np

FACTOR_NAMES = ("shape", "scale", "orientation", "position_x", "position_y")
FACTOR_SIZES = (3, 6, 40, 32, 32)
SHAPES = ("square", "ellipse", "heart")
NUM_IMAGES = math.prod(FACTOR_SIZES)  # 737,280.
IMAGE_SIZE = 64
# The original file of the whole set, which data.manual_dir may hold instead of rendering it.
NPZ_FILE = "dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz"

_FIRST_CENTRE = 16  # The pixel (row and column) of the shape's centre at position index 0.
_LAST_POSITION = FACTOR_SIZES[3] - 1
_REACH = IMAGE_SIZE - 1 - _FIRST_CENTRE  # 47: the largest |pixel offset| from a centre that any image holds.
_QUARTER = FACTOR_SIZES[2] // 4  # Orientations per quarter turn.
_SQUARE_HALF_SIDE = 10.5
_ELLIPSE_SEMI_AXES = (14.5, 7.25)
_HEART_UNIT = 9.5  # Pixels per unit of the heart's equation at scale 1.
_HEART_CENTRE = 0.12  # Y of the heart's centre in its equation: the middle of its height, (-1 + 1.236) / 2.


def factor_values() -> tuple[np.ndarray, ...]:
  """The value of each index of each factor (float64), in `FACTOR_NAMES` order."""
  positions = np.linspace(0, 1, FACTOR_SIZES[3])
  return (np.arange(1.0, FACTOR_SIZES[0] + 1), np.linspace(0.5, 1, FACTOR_SIZES[1]),
          np.linspace(0, 2 * np.pi, FACTOR_SIZES[2], endpoint=False), positions, positions.copy())


def values(factors: np.ndarray) -> np.ndarray:
  """The factor values (float64 (N, 5)) of factor indices (N, 5)."""
  factors = np.asarray(factors)
  return np.stack([v[factors[:, i]] for i, v in enumerate(factor_values())], axis=1)


def to_index(factors: np.ndarray) -> np.ndarray:
  """The image index (int64 (N,), 0..NUM_IMAGES - 1) of factor indices (N, 5); a ValueError for one out of range."""
  return np.ravel_multi_index(tuple(np.asarray(factors).T), FACTOR_SIZES)


def to_factors(index: np.ndarray) -> np.ndarray:
  """The factor indices (int64 (N, 5)) of image indices (N,)."""
  return np.stack(np.unravel_index(index, FACTOR_SIZES), axis=-1)


def levels(shape: np.ndarray, scale: np.ndarray, orientation: np.ndarray) -> np.ndarray:
  """Each outline's level (<= 0 inside) at the pixel offsets (v, u) in [-47, 47]² from the shape's centre
  (row, column: v down, u right), float64 (N, 95, 95), for indices `shape`, `scale`, `orientation` (N,) each."""
  result = np.empty((len(shape), 2 * _REACH + 1, 2 * _REACH + 1))
  for index, outline in enumerate((_square, _ellipse, _heart)):
    group = np.flatnonzero(shape == index)
    result[group] = outline(*_turned_back(scale[group], orientation[group]))
  return result


def _turned_back(scale: np.ndarray, orientation: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """The pixel offsets in the frame of shapes of these scale and orientation indices (N,): (x, y), (N, 95, 95) each,
  turned back by the orientation and divided by the scale."""
  offsets = np.arange(-_REACH, _REACH + 1, dtype=np.float64)
  u, v = np.broadcast_arrays(offsets[None, :], -offsets[:, None])  # Right and up, in pixels.
  quarter_turns = np.stack([(u, v), (v, -u), (-u, -v), (-v, u)])  # (4, 2, 95, 95): back by 0..3 quarter turns.
  u, v = np.moveaxis(quarter_turns[orientation // _QUARTER], 1, 0)
  angle = factor_values()[2][orientation % _QUARTER][:, None, None]
  size = factor_values()[1][scale][:, None, None]
  cos, sin = np.cos(angle), np.sin(angle)
  return (u * cos + v * sin) / size, (v * cos - u * sin) / size


def _square(x: np.ndarray, y: np.ndarray) -> np.ndarray:
  return np.maximum(np.abs(x), np.abs(y)) / _SQUARE_HALF_SIDE - 1


def _ellipse(x: np.ndarray, y: np.ndarray) -> np.ndarray:
  return (x / _ELLIPSE_SEMI_AXES[0]) ** 2 + (y / _ELLIPSE_SEMI_AXES[1]) ** 2 - 1


def _heart(x: np.ndarray, y: np.ndarray) -> np.ndarray:
  x, y = x / _HEART_UNIT, y / _HEART_UNIT + _HEART_CENTRE
  x2, radial = x * x, x * x + y * y - 1
  return radial * radial * radial - x2 * y * y * y


def drawings() -> np.ndarray:
  """Every (shape, scale, orientation)'s drawing on the pixel offsets of `levels`, uint8 (720, 95, 95) of 0 and 1,
  in index order (6.5 MB): given to `render`, many small calls need not draw them again."""
  return _draw(np.arange(math.prod(FACTOR_SIZES[:3])))


def _draw(drawing: np.ndarray) -> np.ndarray:
  """The drawings of (shape, scale, orientation) indices raveled as `drawing` (N,): uint8 (N, 95, 95) of 0 and 1."""
  return (levels(*np.unravel_index(drawing, FACTOR_SIZES[:3])) <= 0).view(np.uint8)


def render(factors: np.ndarray, all_drawings: np.ndarray | None = None) -> np.ndarray:
  """The images, uint8 (N, 64, 64) of 0 and 1 (as the original's `imgs`), of factor indices (N, 5) (`FACTOR_NAMES`
  order): any subset, in any order, without drawing the others. `all_drawings`: `drawings()`, else the drawings
  these images need are made here."""
  factors = np.asarray(factors).reshape(-1, len(FACTOR_SIZES))
  to_index(factors)  # Checks the ranges.
  drawing = np.ravel_multi_index(tuple(factors[:, :3].T), FACTOR_SIZES[:3])
  if all_drawings is None:
    needed, drawing = np.unique(drawing, return_inverse=True)
    all_drawings = _draw(needed)
  # windows[d, a, b] = all_drawings[d, a:a + 64, b:b + 64]: the image of drawing d whose centre is at pixel
  # (row, column) = (16 + 31 - a, 16 + 31 - b).
  windows = np.lib.stride_tricks.sliding_window_view(all_drawings, (IMAGE_SIZE, IMAGE_SIZE), axis=(1, 2))
  return windows[drawing.reshape(-1), _LAST_POSITION - factors[:, 4], _LAST_POSITION - factors[:, 3]]
