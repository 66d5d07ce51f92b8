"""The medical family: the patch denoiser's shape, residual form and skips, random ellipse phantoms against
scikit-image's ellipse rasteriser and their mixing into batches, the Anscombe transform and its unbiased inverse
by Monte Carlo, whole-image denoising's padding, the baselines and PSNR/SSIM on known cases, the medical_patches
data set, a smoke run through the loop and the medical_denoise suite, and bad input by its message."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import skimage.data
import skimage.draw
from PIL import Image

from aejax import config as config_lib, evaluate, train
from aejax.data import datasets, photos
from aejax.errors import ConfigError
from aejax.variants.medical import models, patch_dae, phantoms, suite

from conftest import REPO


def test_denoiser_is_fully_convolutional_and_residual():
  model = models.PatchDenoiser(features=4, levels=2, channels=1)
  params = train.compile_cheaply(model.init, jax.random.key(0), jnp.zeros((1, 32, 32, 1)))
  assert model.apply(params, jnp.zeros((2, 48, 40, 1))).shape == (2, 48, 40, 1)  # Any size 4 divides.
  last = sorted(params["params"])[-1]  # Conv_N: the output layer (names sort Conv_ < ConvTranspose_).
  zeroed = jax.tree.map(jnp.zeros_like, params["params"][last])
  x = jax.random.uniform(jax.random.key(1), (1, 32, 32, 1))
  out = model.apply({"params": {**params["params"], last: zeroed}}, x)
  np.testing.assert_allclose(out, x)  # A residual net that predicts no noise returns its input.


def test_skips_feed_each_decoder_level_the_encoders_features_and_are_off_by_default():
  """Without skips the parameters are those of the network before skips existed (old checkpoints restore); with
  them each decoder level's first convolution reads twice the channels, and the output keeps any size 4 divides."""
  x = jnp.zeros((1, 32, 32, 1))
  plain = train.compile_cheaply(models.PatchDenoiser(features=4, levels=2, channels=1).init, jax.random.key(0), x)
  model = models.PatchDenoiser(features=4, levels=2, channels=1, skips=True)
  params = train.compile_cheaply(model.init, jax.random.key(0), x)
  shapes = lambda p: {k: v["kernel"].shape for k, v in p["params"].items()}  # noqa: E731
  assert shapes(plain) == {**{f"Conv_{i}": (3, 3, 1 if i == 0 else 4, 4) for i in range(7)}, "Conv_7": (3, 3, 4, 1),
                           "ConvTranspose_0": (3, 3, 4, 4), "ConvTranspose_1": (3, 3, 4, 4)}
  assert shapes(params) == {**shapes(plain), "Conv_5": (3, 3, 8, 4), "Conv_6": (3, 3, 8, 4)}
  assert model.apply(params, jnp.zeros((2, 48, 40, 1))).shape == (2, 48, 40, 1)


@pytest.mark.parametrize("centre, axes, angle", [((0.4, 0.6), (0.3, 0.15), 0.0), ((0.5, 0.45), (0.35, 0.1), 0.7),
                                                 ((0.3, 0.7), (0.2, 0.4), -1.2), ((1.2, -0.3), (0.9, 0.6), 2.0)])
def test_ellipse_pixels_match_scikit_images_rasteriser(centre, axes, angle):
  """`phantoms.inside` (centres of pixels at (i + 0.5) / size) against skimage.draw.ellipse (centres at i),
  rotated, and partly outside the image."""
  size = 48
  got = np.asarray(phantoms.inside(size, size, jnp.asarray(centre), jnp.asarray(axes), jnp.asarray(angle)))
  rows, cols = skimage.draw.ellipse(centre[0] * size - 0.5, centre[1] * size - 0.5, axes[0] * size, axes[1] * size,
                                    shape=(size, size), rotation=angle)
  want = np.zeros((size, size), bool)
  want[rows, cols] = True
  np.testing.assert_array_equal(got, want)


def test_random_phantoms_are_piecewise_constant_in_the_unit_range_and_replace_the_batchs_first_rows():
  """Phantoms: the same for the same key, at most a level per subset of ellipses, mostly flat with edges, spread
  over the range; `with_phantoms` replaces exactly the batch's first share (rounded half up) and nothing else."""
  drawn = np.asarray(phantoms.random_phantoms(jax.random.key(0), 256, 32, 32))
  assert drawn.shape == (256, 32, 32, 1) and drawn.min() >= 0 and drawn.max() <= 1
  np.testing.assert_array_equal(drawn, phantoms.random_phantoms(jax.random.key(0), 256, 32, 32))
  assert all(len(np.unique(p)) <= 2**phantoms.MAX_ELLIPSES for p in drawn)  # A level per subset of ellipses.
  flat = np.mean(np.diff(drawn, axis=1) == 0)
  assert 0.8 < flat < 1  # Mostly flat, with edges.
  assert 0.3 < drawn.mean() < 0.7 and drawn.std() > 0.2
  x = jax.random.uniform(jax.random.key(1), (8, 32, 32, 1))
  mixed = np.asarray(patch_dae.with_phantoms(x, jax.random.key(2), 0.25))
  np.testing.assert_array_equal(mixed[2:], x[2:])
  np.testing.assert_array_equal(mixed[:2], phantoms.random_phantoms(jax.random.key(2), 2, 32, 32))
  np.testing.assert_array_equal(patch_dae.with_phantoms(x, jax.random.key(2), 0.0), x)
  assert np.array_equal(patch_dae.with_phantoms(x, jax.random.key(2), 1 / 16)[1:], x[1:])  # Half a patch: one.


def test_the_loss_trains_on_phantoms_in_place_of_the_share_of_the_batch():
  """With phantom_share 1 the loss no longer reads the batch's images (two batches give the same value); with 0 it
  does. The experiment's network with skips, through `build_model`."""
  c = config_lib.from_file(f"{REPO}/experiments/medical_dae.py")
  c.medical.features, c.medical.skips = 4, True
  model = patch_dae.build_model(c, (32, 32, 1))
  assert model.skips
  params = train.compile_cheaply(model.init, jax.random.key(0), jnp.zeros((1, 32, 32, 1)))
  hp, key = patch_dae.hparams(c), jax.random.key(1)
  hp = {k: jnp.asarray(v) for k, v in hp.items()}
  value = {}
  for share in (0.0, 1.0):
    c.medical.phantom_share = share
    value[share] = [float(patch_dae.loss(model, c, params, {"image": jnp.full((4, 32, 32, 1), fill)}, key, hp,
                                         jnp.zeros((), jnp.int32))[0]) for fill in (0.0, 1.0)]
  assert value[1.0][0] == value[1.0][1] and value[0.0][0] != value[0.0][1]


def test_anscombe_stabilises_poisson_noise_and_its_inverse_is_unbiased():
  rng = np.random.default_rng(0)
  peak = 30.0
  for x in (0.2, 0.5, 0.9):
    counts = rng.poisson(x * peak, 400_000) / peak
    transformed = suite.anscombe(counts, peak)
    assert abs(transformed.var() - 1) < 0.05  # Close to Gaussian of σ = 1 from ~6 photons up.
    assert abs(suite.inverse_anscombe(transformed.mean(), peak) - x) < 0.01 * x


def test_whole_images_are_padded_to_the_networks_multiple_and_cropped_back():
  noisy = np.random.default_rng(0).uniform(-0.1, 1.1, (37, 50))
  shapes = []

  def identity(x):
    shapes.append(x.shape)
    return x

  np.testing.assert_allclose(suite.denoise_image(identity, noisy, 4), np.clip(noisy, 0, 1), rtol=1e-6)
  assert shapes == [(1, 40, 52, 1)]


def test_psnr_and_ssim_on_known_cases():
  clean = skimage.data.camera()[:64, :64] / 255.0
  with np.errstate(divide="ignore"):
    assert suite._psnr(clean, clean) == np.inf  # pylint: disable=protected-access
  shifted = np.clip(clean + 0.1, 0, 1)
  mse = np.mean((shifted - clean) ** 2)
  assert suite._psnr(shifted, clean) == pytest.approx(10 * np.log10(1 / mse))  # pylint: disable=protected-access


def test_baselines_remove_noise_told_its_level(monkeypatch):
  clean = skimage.data.camera()[::4, ::4] / 255.0
  rng = np.random.default_rng(0)
  noisy = {"gaussian": clean + 0.1 * rng.normal(size=clean.shape), "poisson": rng.poisson(clean * 20) / 20}
  for noise_type, level in (("gaussian", 0.1), ("poisson", 0.05)):
    monkeypatch.setitem(__import__("sys").modules, "bm3d", None)  # As where the package is not installed.
    out = suite.baselines(noisy[noise_type], clean, noise_type, level, bm3d=True)
    assert set(out) == {"nlm", "tv", "wavelet"}
    before = suite._psnr(noisy[noise_type], clean)  # pylint: disable=protected-access
    for name, y in out.items():
      assert suite._psnr(y, clean) > before + 3, (noise_type, name)  # pylint: disable=protected-access


def test_medical_patches_hold_out_their_test_images(tmp_path):
  train_x, train_y = datasets.load_split("medical_patches", "train", data_dir=str(tmp_path))
  test_x, test_y = datasets.load_split("medical_patches", "test", data_dir=str(tmp_path))
  assert train_x.shape == (9_850, 32, 32, 1) and test_x.shape == (153, 32, 32, 1)
  assert list(np.bincount(train_y)) == [7_569, 961, 1_320] and list(np.bincount(test_y)) == [0, 0, 0, 9, 144]
  np.testing.assert_array_equal(test_x[0, ..., 0], skimage.data.microaneurysms()[:32, :32])
  assert not set(photos.MEDICAL_TEST) & set(photos.MEDICAL_TRAIN)


@pytest.mark.optimized
def test_smoke_run_denoises_and_scores_whole_images_beside_the_baselines(smoke_config, tmp_path):
  config = smoke_config("medical_dae", num_steps=60, log_every=20)
  config.eval.noise_factors = (0.1,)
  config.medical.test_images = ("microaneurysms", "coins")  # Two small ones (102x102, 303x384) keep it quick.
  train.train_and_evaluate(config, tmp_path)
  got = evaluate.evaluate_run(tmp_path, ["medical_denoise"])
  for method in ("noisy", "model", "nlm", "tv", "wavelet"):
    for image in ("microaneurysms", "coins"):
      assert np.isfinite(got[f"medical_denoise/{image}/0.1/psnr_{method}"])
    assert got[f"medical_denoise/0.1/psnr_{method}"] == pytest.approx(np.mean(
        [got[f"medical_denoise/{i}/0.1/psnr_{method}"] for i in ("microaneurysms", "coins")]))
  assert "medical_denoise/0.1/psnr_bm3d" not in got  # The smoke config leaves BM3D out.
  assert got["medical_denoise/0.1/psnr_model"] > got["medical_denoise/0.1/psnr_noisy"]


@pytest.mark.parametrize("flat, message", [
    ({"noise_type": "mask"}, r"^config\.noise_type='mask': the patch denoiser learns additive or photon noise"),
    ({"noise_factor": 0.0}, r"^config\.noise_factor=0\.0: the largest noise level trained on must be positive"),
    ({"eval.noise_factors": (0.1, 0.4)}, r"^config\.eval\.noise_factors=\(0\.1, 0\.4\): score levels the network "),
    ({"medical.levels": 6}, r"^config\.medical\.levels=6: medical_patches's 32x32 patches do not halve 6 times"),
    ({"medical.phantom_share": 1.5}, r"^config\.medical\.phantom_share=1\.5: use a share of the batch in \[0, 1\]"),
    ({"medical.phantom_share": 0.01}, r"^config\.medical\.phantom_share=0\.01: it gives no phantom in a batch of 32: "
     r"use 0, or at least 0\.015625"),
    ({"medical.test_images": ("no_such_image",)}, r"^config\.medical\.test_images: 'no_such_image' is neither"),
])
def test_bad_fields_are_named_in_one_line(flat, message):
  c = config_lib.from_file(f"{REPO}/experiments/medical_dae.py")
  c.update_from_flattened_dict(flat)
  with pytest.raises(ConfigError, match=message):
    train.check_config(c)


def test_an_image_smaller_than_a_patch_is_named_before_training(tmp_path):
  Image.fromarray(np.zeros((20, 40), np.uint8)).save(tmp_path / "small.png")
  c = config_lib.from_file(f"{REPO}/experiments/medical_dae.py")
  c.medical.test_images = (str(tmp_path / "small.png"),)
  with pytest.raises(ConfigError, match=r"small\.png' is 20x40, smaller than the 32x32 patches the network trained"):
    train.check_config(c)


def test_images_of_other_depths_are_scaled_to_8_bits(tmp_path):
  ramp = np.linspace(0, 65535, 64 * 64).astype(np.uint16).reshape(64, 64)
  Image.fromarray(ramp).save(tmp_path / "deep.png")
  np.testing.assert_allclose(photos.gray(str(tmp_path / "deep.png")).astype(float), ramp / 257.0, atol=1.0)
  np.testing.assert_array_equal(photos.gray("shepp_logan_phantom"),
                                np.rint(skimage.data.shepp_logan_phantom() * 255).astype(np.uint8))
