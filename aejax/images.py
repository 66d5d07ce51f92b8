"""Image grids as PNG files: rows of images, scaled up, each row labelled, the whole titled with the run and step.

A variant's (jitted) picture function returns `Grid`s: arrays, and their row labels as static data; the layout
(scaling, labels, title) happens here, on the host, with Pillow's built-in font.
"""
import dataclasses
import functools
import pathlib
from collections.abc import Sequence
from typing import Any

import jax
import numpy as np
from PIL import Image, ImageDraw, ImageFont

_PAD = 1  # A white line between images (before scaling).
_TILE_PIXELS = 112  # Images are scaled up by a whole factor to about this height: MNIST's 28 pixels 4x.
_FONT_SIZE = 16
_GAP = 6  # White space around the title and the labels.


@dataclasses.dataclass(frozen=True)
class Grid:
  """Rows of images, (R, N, H, W, C) in [0, 1], and what they show: one label per row, one label for all the rows
  (such as 'prior samples'), or none. A pytree whose only leaf is `rows`: it passes through jit, vmap and
  `jax.device_get`, the labels riding along as static data."""
  rows: Any  # A jax.Array under jit, an np.ndarray on the host.
  labels: tuple[str, ...] = ()


jax.tree_util.register_dataclass(Grid, data_fields=["rows"], meta_fields=["labels"])


def tile(rows: np.ndarray) -> np.ndarray:
  """(R, N, H, W, C) images in [0, 1] -> one uint8 (R*(H+1)-1, N*(W+1)-1[, C]) picture, white lines between."""
  r, n, h, w, c = rows.shape
  canvas = np.ones((r, h + _PAD, n, w + _PAD, c), np.float32)
  canvas[:, :h, :, :w] = np.transpose(rows, (0, 2, 1, 3, 4))
  canvas = canvas.reshape(r * (h + _PAD), n * (w + _PAD), c)[:-_PAD, :-_PAD]
  canvas = np.round(np.clip(canvas, 0.0, 1.0) * 255).astype(np.uint8)
  return canvas[..., 0] if c == 1 else canvas


def scale_of(height: int) -> int:
  """The whole factor images of `height` pixels are scaled up by: 4 for MNIST, 1 for a picture already large."""
  return max(1, _TILE_PIXELS // height)


@functools.cache
def _font() -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
  return ImageFont.load_default(size=_FONT_SIZE)


def _text_size(text: str) -> tuple[int, int]:
  left, top, right, bottom = _font().getbbox(text)
  return right - left, bottom - top


def margins(labels: Sequence[str], title: str) -> tuple[int, int]:
  """(top, left): the heights of the title strip and the widths of the row labels' strip (0 without labels)."""
  top = _FONT_SIZE + 2 * _GAP if title else 0
  left = max((_text_size(label)[0] for label in labels), default=0)
  return top, (left + 2 * _GAP if left else 0)


def layout(grid: Grid, title: str = "") -> np.ndarray:
  """The picture of `grid`: its images scaled up (nearest neighbour, `scale_of`) below `title`, each row's label
  on its left (a single label is centred on all the rows); uint8 (H, W[, 3]), black on white."""
  rows = np.asarray(grid.rows)
  r, _, h = rows.shape[:3]
  if len(grid.labels) not in (0, 1, r):
    raise ValueError(f"{len(grid.labels)} labels for {r} rows: give one per row, one for all, or none")
  scale = scale_of(h)
  pixels = tile(rows).repeat(scale, axis=0).repeat(scale, axis=1)
  top, left = margins(grid.labels, title)
  width = max(left + pixels.shape[1], _text_size(title)[0] + 2 * _GAP if title else 0)
  canvas = Image.new("L" if pixels.ndim == 2 else "RGB", (width, top + pixels.shape[0]), "white")
  canvas.paste(Image.fromarray(pixels), (left, top))
  draw = ImageDraw.Draw(canvas)
  if title:
    draw.text((_GAP, top // 2), title, fill="black", font=_font(), anchor="lm")
  row_height = (h + _PAD) * scale
  bands = [(0, pixels.shape[0])] if len(grid.labels) == 1 else [(i * row_height, i * row_height + h * scale)
                                                                   for i in range(len(grid.labels))]
  for label, (start, end) in zip(grid.labels, bands):
    draw.text((left - _GAP, top + (start + end) // 2), label, fill="black", font=_font(), anchor="rm")
  return np.asarray(canvas)


def save_png(path: pathlib.Path, grid: Grid, title: str = "") -> pathlib.Path:
  """Writes the picture of `grid` (`layout`) to `path` (parents created) and returns the path."""
  path.parent.mkdir(parents=True, exist_ok=True)
  Image.fromarray(layout(grid, title)).save(path)
  return path


def pyplot() -> Any:
  """matplotlib's pyplot on its file-only backend, imported only by the suites that draw plots."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  from matplotlib import pyplot as plt  # pylint: disable=g-import-not-at-top
  return plt


def figure_picture(figure: Any) -> Grid:
  """A drawn matplotlib figure as one (1, 1, H, W, 3) picture without row labels; the figure is closed."""
  figure.canvas.draw()
  picture = np.asarray(figure.canvas.buffer_rgba())[..., :3] / 255.0
  pyplot().close(figure)
  return Grid(picture[None, None])
