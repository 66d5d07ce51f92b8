"""Image grids as PNG files."""
import pathlib

import numpy as np
from PIL import Image


_PAD = 1  # A white line between images.


def grid(rows: np.ndarray) -> np.ndarray:
  """(R, N, H, W, C) images in [0, 1] -> one uint8 (R*(H+1)-1, N*(W+1)-1[, C]) picture, white lines between."""
  r, n, h, w, c = rows.shape
  canvas = np.ones((r, h + _PAD, n, w + _PAD, c), np.float32)
  canvas[:, :h, :, :w] = np.transpose(rows, (0, 2, 1, 3, 4))
  canvas = canvas.reshape(r * (h + _PAD), n * (w + _PAD), c)[:-_PAD, :-_PAD]
  canvas = np.round(np.clip(canvas, 0.0, 1.0) * 255).astype(np.uint8)
  return canvas[..., 0] if c == 1 else canvas


def save_png(path: pathlib.Path, rows: np.ndarray) -> pathlib.Path:
  """Writes the grid of `rows` to `path` (parents created) and returns the path."""
  path.parent.mkdir(parents=True, exist_ok=True)
  Image.fromarray(grid(rows)).save(path)
  return path
