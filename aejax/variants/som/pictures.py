"""Pictures of a map (pure jnp, so they run inside the jitted, vmapped picture function): values per unit drawn as
cells on the grid, hexagonal rows shifted by half a cell, as `images.Grid`s."""
import jax
import jax.numpy as jnp
import numpy as np

from aejax import images

# matplotlib's tab10 colours, the class map's colour of each class 0..9.
CLASS_COLOURS = np.array([[31, 119, 180], [255, 127, 14], [44, 160, 44], [214, 39, 40], [148, 103, 189],
                          [140, 86, 75], [227, 119, 194], [127, 127, 127], [188, 189, 34], [23, 190, 207]]) / 255.0
_PICTURE_PIXELS = 240  # A map picture is about this wide before `images` scales it up.


def cell_size(rows: int, cols: int) -> int:
  """Pixels per unit: even, at least 4, the map about `_PICTURE_PIXELS` wide."""
  return max(4, _PICTURE_PIXELS // max(rows, cols) // 2 * 2)


def cell_index(rows: int, cols: int, hexagonal: bool, cell: int) -> np.ndarray:
  """int (rows * cell, cols * cell [+ cell / 2]): the unit each pixel shows, rows * cols for the background."""
  width = cols * cell + (cell // 2 if hexagonal else 0)
  y, x = np.mgrid[:rows * cell, :width]
  r = y // cell
  shifted = x - (cell // 2) * (r % 2) if hexagonal else x
  inside = (shifted >= 0) & (shifted < cols * cell)
  return np.where(inside, r * cols + np.clip(shifted, 0, cols * cell - 1) // cell, rows * cols)


def draw(values: jax.Array, rows: int, cols: int, hexagonal: bool) -> jax.Array:
  """(1, 1, H, W, C): unit values (units, C) in [0, 1] as cells on the grid, on white."""
  values = jnp.concatenate([values, jnp.ones((1, values.shape[1]), values.dtype)])
  return values[cell_index(rows, cols, hexagonal, cell_size(rows, cols))][None, None]


def shade(x: jax.Array) -> jax.Array:
  """(units, 1): 1 - x / max(x), dark where x is large (white everywhere if x is all 0)."""
  return (1.0 - x / jnp.maximum(jnp.max(x), 1e-12))[:, None]


def class_colours(hits: jax.Array) -> jax.Array:
  """(units, 3): the colour of each unit's majority class among `hits` (units, classes), white with no hits."""
  colours = jnp.asarray(CLASS_COLOURS, jnp.float32)[jnp.argmax(hits, -1)]
  return jnp.where(jnp.sum(hits, -1, keepdims=True) > 0, colours, 1.0)


def map_pictures(u: jax.Array, hits: jax.Array, rows: int, cols: int, hexagonal: bool,
                 prefix: str = "") -> dict[str, images.Grid]:
  """The U-matrix `u` (units,) (dark: far from the neighbouring prototypes), the hit map of `hits` (units, classes)
  (dark: many hits) and its class map (the majority class's tab10 colour, white: no hits), named with `prefix`."""
  return {f"{prefix}u_matrix": images.Grid(draw(shade(u), rows, cols, hexagonal),
                                           ("U-matrix (dark: far)",)),
          f"{prefix}hit_map": images.Grid(draw(shade(jnp.sum(hits, -1)), rows, cols, hexagonal),
                                          ("hits (dark: many)",)),
          f"{prefix}class_map": images.Grid(draw(class_colours(hits), rows, cols, hexagonal),
                                            ("class map (tab10)",))}


def prototype_tiles(prototypes: jax.Array, rows: int, cols: int, image_shape: tuple[int, ...],
                    hexagonal: bool) -> images.Grid:
  """The prototypes (as images in [0, 1]) tiled row by row as on the grid."""
  tiles = jnp.clip(prototypes, 0.0, 1.0).reshape(rows, cols, *image_shape)
  label = "prototypes (hexagonal: odd rows sit half a unit right)" if hexagonal else "prototypes"
  return images.Grid(tiles, (label,))
