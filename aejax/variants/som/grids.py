"""A SOM's grid, neighbourhoods, schedules and updates: pure functions of arrays.

Units are numbered row by row, k = r * cols + c. On a rectangular grid unit (r, c) sits at (x, y) = (c, r); on a
hexagonal one odd rows are shifted right by half a unit and rows are √3/2 apart, so that each unit's six
neighbours are exactly 1 away. Grid distances are Euclidean distances between these positions, on both grids.
"""
import math

import jax
import jax.numpy as jnp
import numpy as np

_NEIGHBOUR_DISTANCE = 1.0 + 1e-4  # Units at most this far apart on the grid are neighbours (4 or 6 of them).


def positions(rows: int, cols: int, hexagonal: bool) -> np.ndarray:
  """float32 (rows * cols, 2): each unit's (x, y) on the grid."""
  r, c = np.divmod(np.arange(rows * cols), cols)
  if hexagonal:
    return np.stack([c + 0.5 * (r % 2), r * math.sqrt(3) / 2], axis=1).astype(np.float32)
  return np.stack([c, r], axis=1).astype(np.float32)


def distances_from(units: jax.Array, rows: int, cols: int, hexagonal: bool) -> jax.Array:
  """(len(units), rows * cols): the grid distance from each of `units` to every unit."""
  p = jnp.asarray(positions(rows, cols, hexagonal))
  return jnp.sqrt(jnp.sum((p[units][:, None] - p[None]) ** 2, axis=-1))


def grid_distances(rows: int, cols: int, hexagonal: bool) -> jax.Array:
  """(units, units): the grid distance between every two units."""
  return distances_from(jnp.arange(rows * cols), rows, cols, hexagonal)


def pair_distances(a: jax.Array, b: jax.Array, rows: int, cols: int, hexagonal: bool) -> jax.Array:
  """The grid distance between units a[i] and b[i], for each i."""
  p = jnp.asarray(positions(rows, cols, hexagonal))
  return jnp.sqrt(jnp.sum((p[a] - p[b]) ** 2, axis=-1))


def are_neighbours(distance: jax.Array) -> jax.Array:
  """Whether units this far apart on the grid are adjacent (distance 1: 4 units on a rectangular grid, 6 on a
  hexagonal one)."""
  return distance <= _NEIGHBOUR_DISTANCE


def neighbourhood(kind: str, distance: jax.Array, radius: jax.Array) -> jax.Array:
  """h(d) at radius σ: 'gaussian' exp(-d²/2σ²), 'bubble' 1 for d <= σ else 0, 'mexican_hat' (1 - d²/σ²) exp(-d²/2σ²)
  (negative beyond σ: it pushes the units there away)."""
  ratio = (distance / radius) ** 2
  if kind == "gaussian":
    return jnp.exp(-0.5 * ratio)
  if kind == "bubble":
    return (ratio <= 1.0).astype(distance.dtype)
  if kind == "mexican_hat":
    return (1.0 - ratio) * jnp.exp(-0.5 * ratio)
  raise ValueError(f"unknown neighbourhood {kind!r}")


def decay(kind: str, start: jax.Array, end: jax.Array, step: jax.Array, num_steps: int) -> jax.Array:
  """A value going from `start` at step 0 to `end` at `num_steps`: 'linear', 'exponential' (start (end/start)^(t/T))
  or 'inverse_time' (start / (1 + (start/end - 1) t/T))."""
  fraction = jnp.asarray(step, jnp.float32) / num_steps
  if kind == "linear":
    return start + (end - start) * fraction
  if kind == "exponential":
    return start * (end / start) ** fraction
  if kind == "inverse_time":
    return start / (1.0 + (start / end - 1.0) * fraction)
  raise ValueError(f"unknown decay {kind!r}")


def squared_distances(x: jax.Array, prototypes: jax.Array) -> jax.Array:
  """(B, units): ‖x_i - w_k‖², by ‖x‖² - 2 x·w + ‖w‖² (one matrix product), clipped at 0 against rounding."""
  cross = x @ prototypes.T
  return jnp.maximum(jnp.sum(x**2, -1, keepdims=True) - 2 * cross + jnp.sum(prototypes**2, -1), 0.0)


def best_two(x: jax.Array, prototypes: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
  """The best-matching unit of each row of `x`, the second best, and the distance to the best."""
  d2 = squared_distances(x, prototypes)
  first = jnp.argmin(d2, axis=-1)
  second = jnp.argmin(d2.at[jnp.arange(len(x)), first].set(jnp.inf), axis=-1)
  return first, second, jnp.sqrt(jnp.take_along_axis(d2, first[:, None], axis=-1)[:, 0])


def best(x: jax.Array, prototypes: jax.Array) -> tuple[jax.Array, jax.Array]:
  """The best-matching unit of each row of `x`, and its squared distance."""
  d2 = squared_distances(x, prototypes)
  first = jnp.argmin(d2, axis=-1)
  return first, jnp.take_along_axis(d2, first[:, None], axis=-1)[:, 0]


def chunks(tree: dict[str, jax.Array], chunk_size: int) -> tuple[dict[str, jax.Array], jax.Array]:
  """The arrays of `tree` (a leading axis of N each) as (n, size, ...) chunks, n = ceil(N / chunk_size) and size
  = ceil(N / n) (the fewest rows of padding), and the (n, size) mask of the rows that are not padding."""
  total = len(next(iter(tree.values())))
  n = -(-total // chunk_size)
  size = -(-total // n)

  def split(x: jax.Array) -> jax.Array:
    padded = jnp.concatenate([x, jnp.zeros((n * size - total, *x.shape[1:]), x.dtype)])
    return padded.reshape(n, size, *x.shape[1:])

  return {k: split(v) for k, v in tree.items()}, (jnp.arange(n * size) < total).reshape(n, size)


def batch_update(sums: jax.Array, counts: jax.Array, prototypes: jax.Array, distances: jax.Array, kind: str,
                 radius: jax.Array) -> jax.Array:
  """The batch SOM's move: each unit's neighbourhood-weighted mean of the samples, Σ_i h(d(bmu_i, k)) x_i /
  Σ_i h(d(bmu_i, k)), less its prototype (0 where no sample weighs on it). `sums` (units, D) and `counts` (units,)
  are the samples each unit won, summed and counted."""
  h = neighbourhood(kind, distances, radius)  # Symmetric: h[k, j] = h(d(j, k)).
  weight = h @ counts
  target = (h @ sums) / jnp.maximum(weight, 1e-12)[:, None]
  return jnp.where(weight[:, None] > 1e-12, target - prototypes, 0.0)


def u_matrix(prototypes: jax.Array, distances: jax.Array) -> jax.Array:
  """(units,): each unit's mean distance to its grid neighbours' prototypes (the U-matrix: high at cluster
  borders)."""
  neighbours = are_neighbours(distances) & (distances > 0)
  gaps = jnp.sqrt(squared_distances(prototypes, prototypes))
  return jnp.sum(jnp.where(neighbours, gaps, 0.0), -1) / jnp.sum(neighbours, -1)
