"""Image grids: the raw tiling, the 4x nearest-neighbour scaling, the row labels and title beside it, the grid as a
pytree through jit and vmap, and the run's name and step in the title a writer gives its pictures."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from ml_collections import config_dict
from PIL import Image

from aejax import images, train, writers

_INK = 128  # Text is black on white: a strip holding text has pixels darker than this.


def _rows(r, n, h=28, c=1, seed=0):
  return np.random.default_rng(seed).random((r, n, h, h, c)).astype(np.float32)


def test_tile_puts_white_lines_between_images():
  rows = _rows(2, 3)
  raw = images.tile(rows)
  assert raw.shape == (2 * 29 - 1, 3 * 29 - 1)
  assert (raw[28] == 255).all() and (raw[:, 28] == 255).all() and (raw[:, 57] == 255).all()
  np.testing.assert_array_equal(raw[29:57, 58:86], np.round(rows[1, 2, ..., 0] * 255).astype(np.uint8))


def test_scale_brings_small_images_up_and_leaves_large_pictures():
  assert images.scale_of(28) == 4
  assert images.scale_of(32) == 3
  assert images.scale_of(600) == 1


def test_layout_is_the_raw_grid_scaled_4x_beside_its_label_and_title_strips():
  labels = ("input", "noisy", "reconstruction")
  grid = images.Grid(_rows(3, 5), labels)
  picture = images.layout(grid, "run  ·  step 7  ·  reconstruction")
  top, left = images.margins(labels, "title")
  assert top > 0 and left > 0
  raw = images.tile(grid.rows)
  assert picture.shape == (top + 4 * raw.shape[0], left + 4 * raw.shape[1])
  np.testing.assert_array_equal(picture[top:, left:], np.kron(raw, np.ones((4, 4), np.uint8)))
  assert (picture[:top] < _INK).any()  # The title.
  for i in range(3):  # Each row's label lies beside its row.
    assert (picture[top + i * 4 * 29:top + (i * 29 + 28) * 4, :left] < _INK).any(), labels[i]
  assert (picture[top + 4 * 28:top + 4 * 29, :left] >= _INK).all()  # Nothing beside the white line between rows.


def test_one_label_is_centred_on_all_rows():
  picture = images.layout(images.Grid(_rows(4, 4), ("prior samples",)))
  top, left = images.margins(("prior samples",), "")
  assert top == 0
  inked = np.flatnonzero((picture[:, :left] < _INK).any(axis=1))
  assert inked.size and abs((inked.min() + inked.max()) / 2 - picture.shape[0] / 2) < 3


def test_unlabelled_colour_picture_has_no_label_strip_and_a_wide_title_widens_it():
  grid = images.Grid(_rows(1, 1, h=200, c=3))
  assert images.layout(grid).shape == (200, 200, 3)
  title = "a run with a long name  ·  step 1000000  ·  eval_latent_scatter"
  picture = images.layout(grid, title)
  top, _ = images.margins((), title)
  assert picture.shape[0] == top + 200 and picture.shape[1] > 200
  np.testing.assert_array_equal(picture[top:, :200], images.tile(grid.rows))


def test_labels_must_match_the_rows():
  with pytest.raises(ValueError, match="2 labels for 3 rows"):
    images.layout(images.Grid(_rows(3, 2), ("a", "b")))


def test_grid_labels_ride_through_jit_vmap_and_device_get():
  draw = jax.jit(jax.vmap(lambda x: images.Grid(jnp.stack([x, 1 - x]), ("input", "inverse"))))
  drawn = jax.device_get(draw(jnp.asarray(_rows(3, 2))))  # Three members of a bundle, two rows each.
  assert drawn.labels == ("input", "inverse") and drawn.rows.shape == (3, 2, 2, 28, 28, 1)
  second = train.member(drawn, 1)
  assert second.labels == ("input", "inverse") and isinstance(second.rows, np.ndarray)


def test_writer_titles_pictures_with_the_run_name_and_step(tmp_path):
  config = config_dict.ConfigDict({"wandb": {"mode": "disabled", "name": "beta4-seed0"}})
  (tmp_path / "run").mkdir()
  writer = writers.MetricWriter(tmp_path / "run", config, start_step=0)
  grid = images.Grid(_rows(2, 3), ("input", "reconstruction"))
  path = writer.write_images(7, {"reconstruction": grid})["reconstruction"]
  writer.close()
  assert path == tmp_path / "run" / "images" / "reconstruction_0000007.png"
  written = np.asarray(Image.open(path))
  np.testing.assert_array_equal(written, images.layout(grid, "beta4-seed0  ·  step 7  ·  reconstruction"))
  assert not np.array_equal(written, images.layout(grid, "run  ·  step 7  ·  reconstruction"))
