"""dSprites rendered by aejax (aejax/data/dsprites.py): the factor grid, the documented rendering, the prepared data
sets (dsprites_small through the same builder and read path as dsprites), the original file as data.manual_dir, and
the batches' factors."""
import hashlib
import json
import math
import re
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import tensorflow_datasets as tfds

from aejax import config as config_lib
from aejax.data import catalog, datasets, dsprites, input_pipeline, tfds_builders
from aejax.errors import ConfigError

from conftest import REPO, network_blocked

SIZES = (3, 6, 40, 32, 32)
SMALL = tfds_builders.AejaxDspritesSmall
# The image indices of dsprites_small's grid, in order.
SMALL_INDICES = np.ravel_multi_index(np.meshgrid(*SMALL.GRID, indexing="ij"), SIZES).reshape(-1)


@pytest.fixture(scope="module")
def small_dir(tmp_path_factory):
  """A TFDS data dir with dsprites_small rendered and prepared, with the network blocked."""
  root = tmp_path_factory.mktemp("tfds-dsprites")
  with network_blocked() as attempts:
    datasets.load_examples("dsprites_small", "test", data_dir=str(root), download=False, num_examples=1)
  assert not attempts
  return root


def _image(shape: int, scale: int, orientation: int, x: int, y: int) -> np.ndarray:
  return dsprites.render(np.array([[shape, scale, orientation, x, y]]))[0]


def _inside_per_pixel(shape: int, scale: int, orientation: int, x: int, y: int) -> np.ndarray:
  """The module docstring's rule, pixel by pixel: centre (16.5 + x, 16.5 + y) in pixel units, turned back by the
  angle with cos and sin (no quarter turns), outlines as stated; 1 inside or on the outline."""
  theta, s = 2 * math.pi * orientation / 40, (0.5, 0.6, 0.7, 0.8, 0.9, 1.0)[scale]
  image = np.zeros((64, 64), np.uint8)
  for r in range(64):
    for c in range(64):
      u, v = (c + 0.5) - (16.5 + x), (16.5 + y) - (r + 0.5)
      px = (u * math.cos(theta) + v * math.sin(theta)) / s
      py = (-u * math.sin(theta) + v * math.cos(theta)) / s
      if shape == 0:
        level = max(abs(px), abs(py)) - 10.5
      elif shape == 1:
        level = (px / 14.5) ** 2 + (py / 7.25) ** 2 - 1
      else:
        hx, hy = px / 9.5, py / 9.5 + 0.12
        level = (hx * hx + hy * hy - 1) ** 3 - hx * hx * hy**3
      image[r, c] = level <= 0
  return image


def test_factor_counts_and_ranges():
  assert dsprites.FACTOR_SIZES == SIZES and dsprites.NUM_IMAGES == 737_280 == math.prod(SIZES)
  assert dsprites.FACTOR_NAMES == ("shape", "scale", "orientation", "position_x", "position_y")
  shape, scale, orientation, x, y = dsprites.factor_values()
  assert [len(v) for v in dsprites.factor_values()] == list(SIZES)
  np.testing.assert_array_equal(shape, [1, 2, 3])  # The original's values: square, ellipse, heart.
  np.testing.assert_allclose(scale, [0.5, 0.6, 0.7, 0.8, 0.9, 1.0])
  np.testing.assert_allclose(np.diff(orientation), 2 * np.pi / 40)
  assert orientation[0] == 0 and orientation[-1] < 2 * np.pi  # 40 distinct angles in [0, 2π).
  np.testing.assert_allclose(x, np.arange(32) / 31)
  np.testing.assert_array_equal(x, y)
  for name in ("dsprites", "dsprites_small"):
    dataset = catalog.get(name)
    assert (dataset.factor_names, dataset.factor_sizes) == (dsprites.FACTOR_NAMES, SIZES)
    assert dataset.num_classes == len(dsprites.SHAPES) == 3 and dataset.manual_file == dsprites.NPZ_FILE


def test_every_factor_combination_appears_exactly_once():
  index = np.arange(dsprites.NUM_IMAGES)
  factors = dsprites.to_factors(index)
  # Lexicographic order, position_y fastest, as the original file's rows.
  np.testing.assert_array_equal(factors, np.indices(SIZES).reshape(5, -1).T)
  np.testing.assert_array_equal(dsprites.to_index(factors), index)
  assert len(np.unique(factors, axis=0)) == dsprites.NUM_IMAGES
  assert dsprites.to_factors(np.array([1, 32]))[:, 3:].tolist() == [[0, 1], [1, 0]]
  np.testing.assert_allclose(dsprites.values(factors[[-1]]), [[3, 1, 2 * np.pi * 39 / 40, 1, 1]])
  with pytest.raises(ValueError):
    dsprites.render(np.array([[0, 6, 0, 0, 0]]))  # Scale index out of range.


def test_square_at_scale_1_angle_0_centre():
  """Half-side 10.5 pixels about the centre of pixel (32, 32): the pixel centres 22.5 .. 42.5, 21 on each side."""
  expected = np.zeros((64, 64), np.uint8)
  expected[22:43, 22:43] = 1
  image = _image(0, 5, 0, 16, 16)
  assert image.dtype == np.uint8
  np.testing.assert_array_equal(image, expected)


@pytest.mark.parametrize("factors", [(1, 5, 0, 16, 16), (2, 5, 0, 16, 16), (2, 2, 7, 3, 29), (0, 1, 13, 30, 0),
                                     (1, 4, 27, 0, 31), (2, 0, 39, 20, 5)])
def test_rendering_follows_the_documented_rule_pixel_by_pixel(factors):
  np.testing.assert_array_equal(_image(*factors), _inside_per_pixel(*factors))


def test_a_quarter_turn_is_rot90():
  """Orientation k + 10 is the image at k turned by 90 degrees counter-clockwise, its position turned with it:
  (x, y) -> (y, 31 - x). Every shape, scale and orientation, at random positions."""
  shape, scale, orientation = np.unravel_index(np.arange(3 * 6 * 30), (3, 6, 30))
  x, y = np.random.default_rng(0).integers(0, 32, (2, len(shape)))
  before = dsprites.render(np.stack([shape, scale, orientation, x, y], 1))
  after = dsprites.render(np.stack([shape, scale, orientation + 10, y, 31 - x], 1))
  np.testing.assert_array_equal(after, np.rot90(before, axes=(1, 2)))


def test_a_position_step_moves_the_shape_one_pixel_and_no_shape_reaches_the_border():
  """Every shape, scale and orientation at 7 positions: (15, 15), a step in x and in y, and the 4 corners."""
  positions = [(15, 15), (16, 15), (15, 16), (0, 0), (31, 31), (0, 31), (31, 0)]
  drawings = np.stack(np.unravel_index(np.arange(720), (3, 6, 40)), 1)
  factors = np.concatenate([np.column_stack([drawings, np.full((720, 2), p)]) for p in positions])
  centre, step_x, step_y, *corners = dsprites.render(factors).reshape(len(positions), 720, 64, 64)
  np.testing.assert_array_equal(step_x, np.roll(centre, 1, axis=2))
  np.testing.assert_array_equal(step_y, np.roll(centre, 1, axis=1))
  for image in corners:
    ring = image.copy()
    ring[:, 2:-2, 2:-2] = 0
    assert not ring.any()
    np.testing.assert_array_equal(image.sum((1, 2)), centre.sum((1, 2)))  # The whole shape, every time.


def test_images_differ_except_where_a_shape_is_symmetric():
  """Of the 720 (shape, scale, orientation) drawings, two are alike exactly when one shape's symmetry makes them
  one: a square's orientations repeat every 10 (90 degrees), an ellipse's every 20, a heart's not at all."""
  shape, scale, orientation = np.unravel_index(np.arange(720), (3, 6, 40))
  images = dsprites.render(np.stack([shape, scale, orientation, np.full(720, 16), np.full(720, 16)], 1))
  period = np.array([10, 20, 40])[shape]
  symmetric = (shape[:, None] == shape) & (scale[:, None] == scale) & (orientation[:, None] % period
                                                                        == orientation % period)
  distinct, which = np.unique(images.reshape(720, -1), axis=0, return_inverse=True)
  which = which.reshape(-1)
  np.testing.assert_array_equal(which[:, None] == which, symmetric)
  assert len(distinct) == 60 + 120 + 240


def test_every_pixel_centre_is_clear_of_every_outline():
  """The smallest |level| at a pixel centre over all 720 drawings is far above float64 rounding (~1e-15), so no
  image depends on the last bits of cos, sin or the scale values (the heart's is smallest, near its cusp)."""
  levels = dsprites.levels(*np.unravel_index(np.arange(720), (3, 6, 40)))
  assert np.abs(levels).min() > 1e-7


def test_rendering_checksum():
  """Pins the rendering documented in aejax/data/dsprites.py: every 97th image of the 737,280. Any change to an
  outline, a size, the position or rotation rule changes it; change it only with that docstring."""
  images = dsprites.render(dsprites.to_factors(np.arange(0, dsprites.NUM_IMAGES, 97)))
  assert images.shape == (7601, 64, 64) and set(np.unique(images)) == {0, 1}
  pinned = "f6bb5fd6ea41e07b6eef89f376db33cba1f1d53767687cd0cca8e3a4fdde8065"
  assert hashlib.sha256(images.tobytes()).hexdigest() == pinned


def test_render_takes_any_subset_in_any_order():
  factors = dsprites.to_factors(np.random.default_rng(1).choice(dsprites.NUM_IMAGES, 300, replace=False))
  images = dsprites.render(factors)
  for i in (0, 137, 299):
    np.testing.assert_array_equal(images[i], _image(*factors[i]))
  all_drawings = dsprites.drawings()
  assert all_drawings.shape == (720, 95, 95)
  np.testing.assert_array_equal(dsprites.render(factors, all_drawings), images)


def test_the_small_set_is_prepared_and_read_back(small_dir):
  train = datasets.load_examples("dsprites_small", "train", data_dir=str(small_dir), download=False)
  test = datasets.load_examples("dsprites_small", "test", data_dir=str(small_dir), download=False)
  for split, size in ((train, 1920), (test, 480)):
    assert split["image"].shape == (size, 64, 64, 1) and split["image"].dtype == np.uint8
    assert split["label"].dtype == split["factors"].dtype == np.int32 and split["factors"].shape == (size, 5)
    np.testing.assert_array_equal(split["image"][..., 0], dsprites.render(split["factors"]) * 255)
    np.testing.assert_array_equal(split["label"], split["factors"][:, 0])
  # Train: every image of the sub-grid once, in the documented seeded order; test: 480 of them, seed 1.
  np.testing.assert_array_equal(dsprites.to_index(train["factors"]),
                                SMALL_INDICES[np.random.default_rng(0).permutation(1920)])
  np.testing.assert_array_equal(dsprites.to_index(test["factors"]),
                                SMALL_INDICES[np.random.default_rng(1).choice(1920, 480, replace=False)])
  assert set(np.unique(train["factors"][:, 2])) == {0, 9, 18, 27, 36}
  # A prefix (data.num_train) is a sample of the grid, not one corner of it.
  first = datasets.load_examples("dsprites_small", "train", data_dir=str(small_dir), num_examples=60)
  assert set(first["label"].tolist()) == {0, 1, 2} and len(set(first["factors"][:, 1].tolist())) == 2
  np.testing.assert_array_equal(first["factors"], train["factors"][:60])


def test_records_parsed_in_chunks_read_the_same(small_dir, monkeypatch):
  whole = [datasets.load_examples("dsprites_small", "train", data_dir=str(small_dir), num_examples=n, packed=packed)
           for n, packed in ((None, False), (100, True))]
  monkeypatch.setattr(datasets, "_PARSE_CHUNK", 7)  # 1,920 = 274 chunks of 7 and one of 2; 100 = 14 and one of 2.
  for (n, packed), expected in zip(((None, False), (100, True)), whole):
    got = datasets.load_examples("dsprites_small", "train", data_dir=str(small_dir), num_examples=n, packed=packed)
    assert got.keys() == expected.keys() and len(got["label"]) == (n or 1920)
    for key in got:
      np.testing.assert_array_equal(got[key], expected[key])
  assert whole[1]["image"].shape == (100, 512)
  np.testing.assert_array_equal(np.unpackbits(whole[1]["image"], axis=1).reshape(100, 64, 64, 1) * 255,
                                whole[0]["image"][:100])


def test_tfds_reads_its_features(small_dir):
  source = tfds.data_source("aejax_dsprites_small/rendered", data_dir=str(small_dir), download=False)["test"]
  test = datasets.load_examples("dsprites_small", "test", data_dir=str(small_dir), num_examples=3)
  for i in range(3):
    example = source[i]
    np.testing.assert_array_equal(np.unpackbits(example["image_bits"]).reshape(64, 64, 1) * 255, test["image"][i])
    np.testing.assert_array_equal(example["factors"], test["factors"][i])
    np.testing.assert_allclose(example["factor_values"], dsprites.values(test["factors"][i:i + 1])[0], rtol=1e-6)
    assert example["label"] == test["label"][i]


def test_reading_the_prepared_set_imports_no_tfds(small_dir):
  script = ("import json, sys\n"
            "from aejax.data import datasets\n"
            f"x = datasets.load_examples('dsprites_small', 'train', data_dir={str(small_dir)!r})\n"
            "print(json.dumps([list(x['factors'].shape), sorted({m.split('.')[0] for m in sys.modules})]))\n")
  result = subprocess.run([sys.executable, "-c", script], cwd=REPO, text=True, capture_output=True, timeout=120,
                          check=False)
  assert result.returncode == 0, result.stderr
  shape, imported = json.loads(result.stdout)
  assert shape == [1920, 5]
  assert not set(imported) & {"tensorflow_datasets", "skimage", "scipy", "requests"}


def test_batches_carry_the_factors_of_their_images(small_dir):
  data = config_lib.base_config().data
  data.name, data.data_dir, data.num_test = "dsprites_small", str(small_dir), 100
  train, test = input_pipeline.load(data)
  assert train.factors.shape == (1920, 5) and test.factors.shape == (100, 5) and train.factors.dtype == jnp.int32
  indices = jnp.array([5, 0, 1919])
  batch = input_pipeline.make_batch(train, indices, jax.random.key(0), False)
  np.testing.assert_array_equal(batch["factors"], train.factors[indices])
  np.testing.assert_array_equal(batch["image"][..., 0], dsprites.render(np.asarray(batch["factors"])))
  plain = train.replace(factors=None)  # A data set without factors: batches as before.
  batch = input_pipeline.make_batch(plain, indices, jax.random.key(0), False)
  assert set(batch) == {"image", "label", "index"}
  np.testing.assert_array_equal(batch["index"], indices)  # Each example's row in its split.


def test_splits_stay_packed_on_the_device_and_batches_unpack_their_rows(small_dir, monkeypatch):
  data = config_lib.base_config().data
  data.name, data.data_dir, data.num_test, data.binarize = "dsprites_small", str(small_dir), 100, "dynamic"
  train, test = input_pipeline.load(data)
  unpacked = datasets.load_examples("dsprites_small", "train", data_dir=str(small_dir))["image"]
  assert train.images.shape == (1920, 64 * 64 // 8) and train.images.dtype == jnp.uint8  # 8 pixels a byte.
  assert train.image_shape == test.image_shape == (64, 64, 1)
  np.testing.assert_array_equal(train.host_pixels(), unpacked)
  indices = jnp.array([7, 1919, 7, 300])
  np.testing.assert_array_equal(train.pixels(indices), unpacked[np.asarray(indices)])
  np.testing.assert_array_equal(train.pixels(indices.reshape(2, 2)), unpacked[np.asarray(indices).reshape(2, 2)])
  # Binary images: binarising (dynamic, in the step) changes nothing; a batch is the unpacked rows in [0, 1].
  batch = input_pipeline.make_batch(train, indices, jax.random.key(3), True)
  np.testing.assert_array_equal(batch["image"], unpacked[np.asarray(indices)] / 255.0)
  # A bundle's members gather their own rows, vmapped and jitted, as the population step does.
  members = jnp.array([[5, 0, 1919], [1, 2, 3]])
  batches = jax.jit(jax.vmap(lambda rows: input_pipeline.make_batch(train, rows, jax.random.key(0), True)))(members)
  np.testing.assert_array_equal(batches["image"], unpacked[np.asarray(members)] / 255.0)
  np.testing.assert_array_equal(test.host_pixels(), datasets.load_examples(
      "dsprites_small", "test", data_dir=str(small_dir), num_examples=100)["image"])
  # Statistics counted from the bits (chunks of 500 images: 4 chunks, the last one short) equal the float
  # computation over the unpacked images.
  monkeypatch.setattr(input_pipeline, "_STATS_CHUNK", 500)
  data.standardize, data.binarize = True, "none"
  stats, _ = input_pipeline.load(data)
  np.testing.assert_allclose(stats.pixel_mean, (unpacked / 255.0).mean(0), rtol=1e-6)
  np.testing.assert_allclose(stats.pixel_std, np.maximum((unpacked / 255.0).std(0), 1e-2), rtol=1e-5)
  assert float(stats.pixel_mean.min()) < 0.01 < 0.1 < float(stats.pixel_mean.max())  # Not all one value.
  data.standardize, data.with_test = False, True  # Train and test together: still packed, test after train.
  both, _ = input_pipeline.load(data)
  assert both.packed_shape == (64, 64, 1) and both.size == 2020
  np.testing.assert_array_equal(both.pixels(jnp.arange(1920, 2020)), test.host_pixels())


def _fake_npz(folder, rows: np.ndarray, seed: int = 0) -> np.ndarray:
  """Writes an npz of the original's keys holding image indices `rows` (in that row order) with random bits as
  images and the original's orientation values (its 40 run over [0, 2π] with the endpoint); returns the images."""
  rng = np.random.default_rng(seed)
  factors = dsprites.to_factors(rows)
  images = rng.integers(0, 2, (len(rows), 64, 64), dtype=np.uint8)
  values = dsprites.values(factors)
  values[:, 2] = np.linspace(0, 2 * np.pi, 40)[factors[:, 2]]
  folder.mkdir(exist_ok=True)
  np.savez_compressed(folder / dsprites.NPZ_FILE, imgs=images,
                      latents_classes=np.column_stack([np.zeros(len(rows), np.int64), factors]),
                      latents_values=np.column_stack([np.ones(len(rows)), values]))
  return images


def test_the_original_file_is_read_instead_of_rendering(small_dir, tmp_path, capfd):
  rows = np.random.default_rng(2).permutation(np.concatenate([SMALL_INDICES, [1, 2, 3]]))  # Any order, extra rows.
  images = _fake_npz(tmp_path / "manual", rows)
  capfd.readouterr()
  test = datasets.load_examples("dsprites_small", "test", data_dir=str(small_dir), manual_dir=str(tmp_path / "manual"))
  err = capfd.readouterr().err
  prepared = small_dir / "aejax_dsprites_small" / "original" / "1.0.0"
  assert re.fullmatch(rf"aejax: prepared dSprites \(small\) in {re.escape(str(prepared))} from "
                      rf"{re.escape(str(tmp_path / 'manual'))} in \d+\.\d s\n", err), err
  row_of = {index: row for row, index in enumerate(rows)}
  expected = images[[row_of[i] for i in dsprites.to_index(test["factors"])]]
  np.testing.assert_array_equal(test["image"][..., 0], expected * 255)
  rendered = datasets.load_examples("dsprites_small", "test", data_dir=str(small_dir))  # Still there, apart.
  np.testing.assert_array_equal(rendered["factors"], test["factors"])
  source = tfds.data_source("aejax_dsprites_small/original", data_dir=str(small_dir), download=False)["test"]
  np.testing.assert_allclose(source[0]["factor_values"][2], 2 * np.pi * test["factors"][0, 2] / 39, rtol=1e-6)


def _raises(start: str, **kwargs) -> None:
  """load_examples (dsprites_small, test, no download, unless overridden) raises a one-line ConfigError so starting."""
  kwargs = {"name": "dsprites_small", "split": "test", "download": False} | kwargs
  with pytest.raises(ConfigError) as info:
    datasets.load_examples(**kwargs)
  message = str(info.value)
  assert message.startswith(start), message
  assert "\n" not in message


def test_a_bad_original_file_is_one_line_and_leaves_nothing(tmp_path):
  manual, root = tmp_path / "manual", tmp_path / "tfds"
  _raises(f"data.manual_dir='{manual}' is not a folder: point it at a folder holding dSprites (small)'s original "
          f"{dsprites.NPZ_FILE}, or drop data.manual_dir to have aejax render dsprites_small",
          manual_dir=str(manual), data_dir=str(root))
  manual.mkdir()
  _raises(f"data.manual_dir='{manual}' has no {dsprites.NPZ_FILE}: ", manual_dir=str(manual), data_dir=str(root))
  (manual / dsprites.NPZ_FILE).write_bytes(b"not an npz")
  _raises(f"data.manual_dir='{manual}': {dsprites.NPZ_FILE} is not dSprites' file (", manual_dir=str(manual),
          data_dir=str(root))
  _fake_npz(manual, SMALL_INDICES[:-7])
  _raises(f"data.manual_dir='{manual}': {dsprites.NPZ_FILE} is not dSprites' file (no image of 7 of the 1,920 "
          "factor combinations): replace it with the original (https://github.com/deepmind/dsprites-dataset)",
          manual_dir=str(manual), data_dir=str(root))
  assert not root.exists() or not any(root.iterdir())


def test_bad_options_are_one_line(tmp_path):
  _raises("config.data.resize=(28, 28): dsprites_small is prepared at (64, 64) only", resize=(28, 28),
          data_dir=str(tmp_path))
  config = config_lib.base_config()
  config.data.name, config.data.train_labels = "dsprites", (3,)
  with pytest.raises(ConfigError, match=re.escape("config.data.train_labels=(3,): use distinct class labels in 0..2")):
    config_lib.validate(config)
