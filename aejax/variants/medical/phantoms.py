"""Random ellipse phantoms: piecewise-constant images of overlapping ellipses, the kind of image a CT phantom is
(the Shepp–Logan phantom is ten ellipses). Learned CT reconstruction trains on such random ellipses (e.g. Adler &
Öktem 2018) for want of real ground truth; the patch denoiser mixes them into its batches (`medical.phantom_share`),
drawn on the device from the step's key, so that no image of them is stored.

Each phantom: a background level uniform in [0, 1], then `MAX_ELLIPSES` ellipses, each present with probability
1/2, adding a level uniform in [-0.5, 0.5] inside it; clipped to [0, 1]. An ellipse's centre is uniform over the
patch and a margin of half a patch around it, its semi-axes log-uniform between 1/16 and 2 patch sides (so that
edges of large ellipses cross the patch as they cross patches of a large phantom), its angle uniform.
"""
import jax
import jax.numpy as jnp

MAX_ELLIPSES = 6


def inside(height: int, width: int, centre: jax.Array, axes: jax.Array, angle: jax.Array) -> jax.Array:
  """bool (height, width): the pixels (their centres, in units of the sides: (i + 0.5) / height, (j + 0.5) / width)
  inside the ellipse of `centre` (row, col), semi-axes `axes` (along the rotated row and column axes) and `angle`
  (radians)."""
  rows, cols = jnp.meshgrid((jnp.arange(height) + 0.5) / height - centre[0], (jnp.arange(width) + 0.5) / width
                            - centre[1], indexing="ij")
  cos, sin = jnp.cos(angle), jnp.sin(angle)
  u, v = cos * rows + sin * cols, -sin * rows + cos * cols
  return (u / axes[0]) ** 2 + (v / axes[1]) ** 2 <= 1


def random_phantoms(key: jax.Array, n: int, height: int, width: int) -> jax.Array:
  """float32 (n, height, width, 1) random ellipse phantoms in [0, 1] (see the module docstring)."""
  keys = jax.random.split(key, 6)
  shape = (n, MAX_ELLIPSES)
  centres = jax.random.uniform(keys[0], (*shape, 2), minval=-0.5, maxval=1.5)
  axes = jnp.exp(jax.random.uniform(keys[1], (*shape, 2), minval=jnp.log(1 / 16), maxval=jnp.log(2.0)))
  angles = jax.random.uniform(keys[2], shape, maxval=jnp.pi)
  levels = jax.random.uniform(keys[3], shape, minval=-0.5, maxval=0.5)
  present = jax.random.bernoulli(keys[4], 0.5, shape)
  background = jax.random.uniform(keys[5], (n, 1, 1))
  masks = jax.vmap(jax.vmap(lambda c, a, t: inside(height, width, c, a, t)))(centres, axes, angles)  # (n, E, H, W)
  image = background + jnp.einsum("ne,nehw->nhw", levels * present, masks.astype(jnp.float32))
  return jnp.clip(image, 0.0, 1.0)[..., None]
