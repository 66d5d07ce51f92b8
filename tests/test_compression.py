"""The compressive autoencoder: its factorized density against a float64 NumPy transcription and as a distribution
(mass 1 over the integers, increasing cumulative), the rate of a known distribution against its entropy, the codec's
bit-exact round trip and stream lengths against the likelihoods, GDN against its formula, the baselines and PSNR on
known cases, a smoke run through the loop and the compression suite, resume, and bad input by its message."""
import json

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import scipy.special
from PIL import Image

from aejax import compress, config as config_lib, evaluate, registry, sweep as sweep_lib, train
from aejax.errors import ConfigError
from aejax.variants.compression import codec as codec_lib
from aejax.variants.compression import entropy, fields, models, suite

from conftest import REPO, saved_checkpoint


def _density(channels=3, seed=0, jitter=0.5):
  """A density with random parameters (its initial ones moved by N(0, jitter²)), so that no test sees only the
  symmetric initial state."""
  density = entropy.FactorizedDensity(channels)
  params = train.compile_cheaply(density.init, jax.random.key(seed), jnp.zeros((4, channels)))
  return density, _jittered(params, jax.random.key(seed + 1), jitter)


@jax.jit
def _jittered(params, key, scale):
  """`params` each moved by N(0, scale²)."""
  leaves, tree = jax.tree.flatten(params)
  keys = jax.random.split(key, len(leaves))
  return tree.unflatten([p + scale * jax.random.normal(k, p.shape) for p, k in zip(leaves, keys)])


def test_likelihoods_match_the_float64_numpy_tables():
  """The JAX density (rates in training) against the NumPy one the codec builds its tables from: logits, support
  and bin masses."""
  density, params = _density()
  own = params["params"]
  y = np.random.default_rng(0).normal(0, 4, (50, 3))
  np.testing.assert_allclose(density.apply(params, jnp.asarray(y, jnp.float32), method=density.logits),
                             entropy.numpy_logits(own, y), rtol=1e-4, atol=1e-4)
  logits = lambda v: density.apply(params, v, method=density.logits)  # noqa: E731
  assert tuple(map(int, entropy.support(logits, 3, 255, 1e-9))) == entropy.numpy_support(own, 255, 1e-9)
  low, high = entropy.numpy_support(own, 255, 1e-9)
  grid = jnp.repeat(jnp.arange(low, high + 1, dtype=jnp.float32)[:, None], 3, 1)
  np.testing.assert_allclose(np.asarray(density.apply(params, grid)).T, entropy.numpy_pmf(own, low, high), rtol=1e-3,
                             atol=1e-7)


def test_density_is_a_distribution_over_the_integers():
  density, params = _density(seed=3)
  grid = jnp.linspace(-300, 300, 2001)[:, None].repeat(3, 1)
  logits = np.asarray(density.apply(params, grid, method=density.logits))
  assert np.all(np.diff(logits, axis=0) > 0)  # An increasing cumulative, for any parameters.
  integers = jnp.arange(-300, 301, dtype=jnp.float32)[:, None].repeat(3, 1)
  # Every bin floored at 1e-9 adds at most 601e-9 to the sum; float32 sigmoids are exact to ~1e-7 each.
  np.testing.assert_allclose(np.asarray(density.apply(params, integers)).sum(0), 1.0, atol=1e-5)
  np.testing.assert_allclose(entropy.numpy_pmf(params["params"], -300, 300).sum(1), 1.0, atol=1e-6)


def test_floor_passes_the_gradient_that_raises_a_likelihood():
  x = jnp.array([1e-12, 0.5])
  np.testing.assert_allclose(jax.grad(lambda v: -jnp.sum(jnp.log(entropy.floor(v))))(x), [-1e9, -2.0], rtol=1e-6)
  np.testing.assert_allclose(jax.grad(lambda v: jnp.sum(entropy.floor(v)))(x), [0.0, 1.0])  # Down: held.
  np.testing.assert_allclose(float(entropy.bin_mass(jnp.float32(-1.0), jnp.float32(1.0))),
                             scipy.special.expit(1.0) - scipy.special.expit(-1.0), rtol=1e-6)  # lower + upper = 0.


def test_upper_tail_masses_do_not_cancel():
  """A bin far above the median has a tiny mass, sigmoid(u) - sigmoid(l) with both near 1: computed on the other
  side of the median it keeps its digits (float32 would round the naive difference to 0)."""
  lower, upper = jnp.float32(18.0), jnp.float32(19.0)
  expected = scipy.special.expit(19.0) - scipy.special.expit(18.0)  # float64: 9.7e-9
  np.testing.assert_allclose(float(entropy.bin_mass(lower, upper)), expected, rtol=1e-4)
  np.testing.assert_allclose(float(entropy.bin_mass(-upper, -lower)), expected, rtol=1e-4)


def _laplace_pmf(scale, low, high):
  k = np.arange(low, high + 1)
  p = np.exp(-np.abs(k) / scale)
  return k, p / p.sum()


def test_learned_rate_of_a_known_distribution_reaches_its_entropy():
  """Fitted to integer samples of a known distribution by the training objective (noise in place of rounding), the
  density's rate on those integers comes within 0.03 bits of the distribution's entropy (cross-entropy >= entropy)."""
  k, p = _laplace_pmf(2.0, -30, 30)
  entropy_bits = float(-(p * np.log2(p)).sum())
  samples = np.random.default_rng(0).choice(k, size=(20_000, 1), p=p).astype(np.float32)
  density = entropy.FactorizedDensity(1)
  params = train.compile_cheaply(density.init, jax.random.key(0), samples[:4])
  optimizer = optax.adam(5e-2)

  def step(carry, key):
    params, opt_state = carry
    noisy = samples + jax.random.uniform(key, samples.shape, minval=-0.5, maxval=0.5)
    grads = jax.grad(lambda q: jnp.mean(entropy.bits(density.apply(q, noisy))))(params)
    updates, opt_state = optimizer.update(grads, opt_state)
    return (optax.apply_updates(params, updates), opt_state), None

  fit = jax.jit(lambda carry, keys: jax.lax.scan(step, carry, keys)[0][0])
  params = fit((params, optimizer.init(params)), jax.random.split(jax.random.key(1), 400))
  rate = float(jnp.mean(entropy.bits(density.apply(params, jnp.asarray(samples)))))
  empirical = float(-np.mean(np.log2(p[(samples[:, 0] - k[0]).astype(int)])))
  assert empirical - 0.01 < rate < empirical + 0.03, (rate, empirical, entropy_bits)


def test_gdn_matches_its_formula():
  x = jax.random.normal(jax.random.key(0), (2, 3, 3, 4))
  for inverse in (False, True):
    gdn = models.GDN(inverse=inverse)
    params = jax.tree.map(lambda a: a + 0.3, train.compile_cheaply(gdn.init, jax.random.key(1), x))
    beta, gamma = (np.asarray(params["params"][n], np.float64) for n in ("beta", "gamma"))
    xs = np.asarray(x, np.float64)
    norm = np.sqrt(beta**2 + 1e-6 + np.einsum("bhwj,ji->bhwi", xs**2, gamma**2))
    np.testing.assert_allclose(gdn.apply(params, x), xs * norm if inverse else xs / norm, rtol=1e-5)


# The codec ----------------------------------------------------------------------------------------------------------

def _config(**flat):
  c = fields.add(config_lib.base_config())
  c.variant = "compressive_ae"
  c.compress.channels, c.compress.code_channels, c.eval_batch_size = 8, 4, 16
  c.update_from_flattened_dict(flat)
  return c


@pytest.fixture(scope="module")
def codec():
  """A codec of a small untrained model whose density is moved off its initial state."""
  config = _config()
  model = registry.get("compressive_ae").build_model(config, (28, 28, 1))
  params = train.compile_cheaply(model.init, jax.random.key(0), jnp.zeros((1, 28, 28, 1)))
  params = {"params": {**params["params"], "density": _jittered(params["params"]["density"], jax.random.key(5), 0.5)}}
  return codec_lib.Codec(model, config, params)


def _draws(codec, count, seed=0):
  """`count` codes (7, 7, 4) drawn from the codec's own probabilities, channel by channel."""
  rng = np.random.default_rng(seed)
  symbols = np.stack([rng.choice(len(p), size=(count, 7, 7), p=p) for p in codec.probabilities], axis=-1)
  return symbols + codec.low


def test_streams_round_trip_bit_exactly_and_cost_the_likelihoods(codec):
  codes = _draws(codec, 40)
  edges = np.full((1, 7, 7, 4), codec.low)
  edges[0, ::2] = codec.high  # The alphabet's ends, however improbable.
  codes = np.concatenate([codes, edges])
  streams = [codec.write(code) for code in codes]
  for code, stream in zip(codes, streams):
    np.testing.assert_array_equal(codec.read(stream), code)
  bits = -np.log2(codec.probabilities[np.arange(4), codes - codec.low]).sum(axis=(1, 2, 3))
  payload = 8 * np.array([len(s) - codec_lib.HEADER.size for s in streams])
  # Each stream: its information content, within 2 %, plus at most the range coder's last 32-bit word.
  assert np.all(payload <= 1.02 * bits + 32), (payload, bits)
  assert np.all(payload[:-1] >= bits[:-1] - 1)  # (The edges: constriction gives each symbol at least 2^-24.)
  entropy_bits = -(codec.probabilities * np.log2(codec.probabilities)).sum() * 49
  one = 8 * len(codec.payload(_draws(codec, 400, seed=1).reshape(-1, 7, 4)))
  assert abs(one / 400 - entropy_bits) < 0.03 * entropy_bits + 1  # Drawn from p, a code costs p's entropy.


def test_decoded_images_equal_the_models_reconstruction(codec):
  x = np.asarray(jax.random.uniform(jax.random.key(2), (5, 28, 28, 1)))
  codes = codec.codes(x)
  decoded = codec.images(np.stack([codec.read(codec.write(c)) for c in codes]))
  expected = models.reconstruct(codec.model, codec.params, models.quantize(codec.model, codec.params, jnp.asarray(x),
                                                                           255, 1e-9))
  np.testing.assert_array_equal(decoded, expected)
  np.testing.assert_allclose(decoded * 255, np.round(decoded * 255), atol=1e-4)  # 8-bit images.


def test_a_stream_of_another_model_or_damaged_is_refused_in_one_line(codec):
  config = _config()
  other = codec_lib.Codec(codec.model, config, jax.tree.map(lambda a: a * 1.01, codec.params))
  stream = other.write(_draws(codec, 1)[0])
  with pytest.raises(ConfigError, match=r"^this stream was written by another model \(fingerprint [0-9a-f]{8}"):
    codec.read(stream)
  for damaged in (stream[:12], stream[:-1], b"\x89PNG" + stream[4:]):
    with pytest.raises(ConfigError, match=f"^these {len(damaged)} bytes are no aejax compressive_ae stream"):
      codec.read(damaged)
  stream = codec.write(_draws(codec, 1)[0])
  flipped = stream[:-1] + bytes([stream[-1] ^ 1])
  for damaged in (flipped, stream[:-4]):
    with pytest.raises(ConfigError, match=r"^this stream's \d+-byte payload fails its checksum: the file is damaged"):
      codec.read(damaged)


# Baselines and metrics ----------------------------------------------------------------------------------------------

def test_png_is_lossless_and_jpeg_trades_bits_for_psnr():
  x = np.round(np.random.default_rng(0).uniform(size=(3, 16, 16, 1)) * 255) / 255
  bpp, decoded = suite.pillow_codec(x, "PNG")
  np.testing.assert_array_equal(decoded, x)
  out = suite.baselines(x, (10, 90), (10, 90))
  assert out["png_psnr"] == 100.0  # metrics.PSNR_CAP_DB: an exact copy.
  assert out["jpeg_q10_bpp"] < out["jpeg_q90_bpp"] and out["jpeg_q10_psnr"] < out["jpeg_q90_psnr"]
  assert out["jpeg_q10_bpp_no_tables"] < out["jpeg_q10_bpp"]  # The tables are left out.
  curve = suite.curve(out, "jpeg", (90, 10))
  assert list(curve[1]) == sorted(curve[1])
  middle = (out["jpeg_q10_psnr"] + out["jpeg_q90_psnr"]) / 2
  np.testing.assert_allclose(suite.bpp_at(curve, middle), (out["jpeg_q10_bpp"] + out["jpeg_q90_bpp"]) / 2)
  assert np.isnan(suite.bpp_at(curve, out["jpeg_q90_psnr"] + 1))


# Training through the loop, the suite, resume and bad input --------------------------------------------------------

def test_smoke_run_trains_codes_and_reports_streams_beside_the_baselines(smoke_config, tmp_path):
  summary = train.train_and_evaluate(smoke_config("compressive_ae", num_steps=40, log_every=10), tmp_path / "run")
  losses = [m["train/loss"] for m in train_metrics(tmp_path / "run")]
  assert losses[-1] < losses[0]
  got = evaluate.evaluate_run(tmp_path / "run", ["compression"])
  assert got["compression/decoded_equal"] == 1.0
  np.testing.assert_allclose(got["compression/psnr"], summary["test/psnr"], rtol=1e-4)
  np.testing.assert_allclose(got["compression/bpp_estimated"], summary["test/bpp"], rtol=1e-4)
  assert 0 <= got["compression/gap_one_stream"] < 0.02
  assert got["compression/bpp"] > got["compression/bpp_payload"] >= got["compression/bpp_estimated"] * 0.999
  assert np.isfinite(got["compression/jpeg_q50_psnr"]) and got["compression/png_psnr"] == 100.0
  assert (tmp_path / "run" / "images").is_dir()

  # aejax.compress: a file of another size and in colour, to a stream and back to the model's reconstruction.
  codec = compress.load_codec(tmp_path / "run")
  photo = np.random.default_rng(0).integers(0, 256, (32, 48, 3), np.uint8)
  Image.fromarray(photo).save(tmp_path / "photo.png")
  bpp = compress.compress(codec, tmp_path / "photo.png", tmp_path / "photo.aejx")
  assert bpp == 8 * (tmp_path / "photo.aejx").stat().st_size / (32 * 48)
  image = compress.decompress(codec, tmp_path / "photo.aejx", tmp_path / "photo.aejx.png")
  gray = compress.read_image(tmp_path / "photo.png", 1, 4)
  np.testing.assert_array_equal(image, codec.images(codec.codes(gray))[0])
  np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "photo.aejx.png")), np.rint(image[..., 0] * 255))
  Image.fromarray(photo[:30]).save(tmp_path / "odd.png")
  with pytest.raises(ConfigError, match=r"odd\.png' is 30x48: this model codes images whose sides are multiples of 4"):
    compress.compress(codec, tmp_path / "odd.png", tmp_path / "odd.aejx")


def train_metrics(workdir):
  lines = (workdir / "metrics.jsonl").read_text().splitlines()
  return [m for m in map(json.loads, lines) if "train/loss" in m]


def test_resumed_run_equals_uninterrupted(smoke_config, tmp_path):
  fields_ = {"num_steps": 4, "checkpoint_every": 2, "eval_every": 2, "log_every": 2, "eval__suites": ()}
  train.train_and_evaluate(smoke_config("compressive_ae", **fields_), tmp_path / "whole")
  train.train_and_evaluate(smoke_config("compressive_ae", **{**fields_, "num_steps": 2}), tmp_path / "resumed")
  train.train_and_evaluate(smoke_config("compressive_ae", **fields_), tmp_path / "resumed")
  whole, resumed = saved_checkpoint(tmp_path / "whole", 4), saved_checkpoint(tmp_path / "resumed", 4)
  for x, y in zip(jax.tree.leaves(whole), jax.tree.leaves(resumed), strict=True):
    np.testing.assert_array_equal(x, y)


def test_sweep_resolves_one_point_per_lambda_and_seed():
  members = sweep_lib.load(f"{REPO}/experiments/compressive_ae.py")
  assert len(members) == 10
  assert {m["compress.lmbda"] for m in members.values()} == {0.0003, 0.001, 0.003, 0.01, 0.03}


@pytest.mark.parametrize("flat, message", [
    ({"compress.lmbda": 0.0}, r"^config\.compress\.lmbda=0\.0: λ prices the rate and must be positive"),
    ({"compress.lmbda": -1.0}, r"^config\.compress\.lmbda=-1\.0: λ prices the rate"),
    ({"compress.layers": 3}, r"^config\.compress\.layers=3: mnist's 28x28 images do not halve 3 times"),
    ({"compress.jpeg_qualities": (5, 101)}, r"^config\.compress qualities=.*Pillow's qualities run 0\.\.100"),
])
def test_bad_fields_are_named_in_one_line(flat, message):
  with pytest.raises(ConfigError, match=message):
    train.check_config(_config(**flat))


def test_photo_patches_hold_out_the_test_photo(tmp_path):
  import skimage.color  # pylint: disable=g-import-not-at-top
  import skimage.data  # pylint: disable=g-import-not-at-top
  from aejax.data import datasets, photos  # pylint: disable=g-import-not-at-top
  train_x, train_y = datasets.load_split("photo_patches", "train", data_dir=str(tmp_path))
  test_x, test_y = datasets.load_split("photo_patches", "test", data_dir=str(tmp_path))
  assert train_x.shape == (6_824, 64, 64, 1) and test_x.shape == (64, 64, 64, 1)
  assert set(np.unique(train_y)) == set(range(10)) and set(test_y) == {10}
  np.testing.assert_array_equal(train_x[0, ..., 0], skimage.data.camera()[:64, :64])
  np.testing.assert_array_equal(train_x[1, ..., 0], skimage.data.camera()[:64, 16:80])  # Stride 16.
  gray = np.rint(skimage.color.rgb2gray(skimage.data.astronaut()) * 255).astype(np.uint8)
  np.testing.assert_array_equal(test_x[9, ..., 0], gray[64:128, 64:128])  # Disjoint, row by row.
  assert photos.PHOTO_TEST not in photos.PHOTO_TRAIN
