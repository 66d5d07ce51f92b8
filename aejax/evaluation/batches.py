"""Running a jitted function over many images in fixed-size batches, on the host's numpy arrays."""
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from aejax import signals


def apply(fn: Callable[[jax.Array], Any], x: np.ndarray, batch_size: int) -> Any:
  """`fn` over the rows of `x` in batches of `batch_size` (the last one padded, so one compilation serves all): its
  outputs, any pytree of arrays with a leading batch axis, joined over the batches as numpy arrays."""
  size = min(batch_size, len(x))
  parts = []
  for start in range(0, len(x), size):
    signals.raise_if_signalled()  # A signal whose exception a library dropped ends the work here.
    rows = x[start:start + size]
    out = jax.device_get(fn(jnp.asarray(pad(rows, size))))
    parts.append(jax.tree.map(lambda a, n=len(rows): np.asarray(a)[:n], out))
  return jax.tree.map(lambda *arrays: np.concatenate(arrays), *parts)


def pad(x: np.ndarray, size: int) -> np.ndarray:
  """`x` with zero rows appended up to `size` rows."""
  return np.concatenate([x, np.zeros((size - len(x), *x.shape[1:]), x.dtype)])
