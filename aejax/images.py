"""Image grids as PNG files."""
import pathlib

import numpy as np
from PIL import Image


def grid(rows: np.ndarray, pad: int = 1) -> np.ndarray:
  """(R, N, H, W, C) images in [0, 1] -> one uint8 (R*(H+pad), N*(W+pad)[, C]) picture."""
  r, n, h, w, c = rows.shape
  canvas = np.ones((r, h + pad, n, w + pad, c), np.float32)
  canvas[:, :h, :, :w] = np.transpose(rows, (0, 2, 1, 3, 4))
  canvas = canvas.reshape(r * (h + pad), n * (w + pad), c)[:-pad, :-pad]
  canvas = np.round(np.clip(canvas, 0.0, 1.0) * 255).astype(np.uint8)
  return canvas[..., 0] if c == 1 else canvas


def save_png(path: pathlib.Path, rows: np.ndarray) -> pathlib.Path:
  """Writes the grid of `rows` to `path` (parents created) and returns the path."""
  path.parent.mkdir(parents=True, exist_ok=True)
  Image.fromarray(grid(rows)).save(path)
  return path
