"""The adversarial family: each loss against its formula in NumPy, the penalties against finite differences, each
player's update against Adam's first step (the other player untouched), the moving average, eight-mode coverage on a
2-D mixture, conditioning, resume and bundles by behaviour, and bad input."""
import dataclasses
import functools
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from aejax import bundle, config as config_lib, registry, sweep as sweep_lib, train
from aejax.errors import ConfigError
from aejax.variants.adversarial import fields as fields_lib, gan, losses

from conftest import REPO, saved_checkpoint

REAL = np.array([-3.0, -0.5, 0.0, 0.7, 4.0], np.float32)
FAKE = np.array([2.5, -1.0, 0.3, -4.0, 0.0], np.float32)


def _softplus(x):
  return np.log1p(np.exp(-np.abs(x))) + np.maximum(x, 0)


def _log_sigmoid(x):
  return -_softplus(-x)


NUMPY_LOSSES = {  # (discriminator's, generator's), per example, from the papers' formulas.
    "non_saturating": (lambda r, f: -_log_sigmoid(r) - np.log1p(-1 / (1 + np.exp(-f))), lambda f: -_log_sigmoid(f)),
    "minimax": (lambda r, f: -_log_sigmoid(r) - np.log1p(-1 / (1 + np.exp(-f))),
                lambda f: np.log1p(-1 / (1 + np.exp(-f)))),
    "hinge": (lambda r, f: np.maximum(0, 1 - r) + np.maximum(0, 1 + f), lambda f: -f),
    "least_squares": (lambda r, f: 0.5 * (r - 1) ** 2 + 0.5 * f ** 2, lambda f: 0.5 * (f - 1) ** 2),
    "wasserstein": (lambda r, f: f - r, lambda f: -f),
}


@pytest.mark.parametrize("kind", fields_lib.LOSSES)
def test_each_loss_is_its_formula(kind):
  d_loss, g_loss = NUMPY_LOSSES[kind]
  np.testing.assert_allclose(losses.discriminator_loss(kind, REAL, FAKE), d_loss(REAL.astype(np.float64), FAKE),
                             rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(losses.generator_loss(kind, FAKE), g_loss(FAKE.astype(np.float64)), rtol=1e-5, atol=1e-6)


W = np.random.default_rng(0).normal(size=(2, 3, 1, 4)).astype(np.float32)


def _score(x):
  """A smooth score of each image (no batch statistics), in JAX or NumPy."""
  xp = jnp if isinstance(x, jax.Array) else np
  return xp.sum(xp.sin(x[..., None] * W) ** 2, axis=(1, 2, 3, 4)) + xp.sum(x ** 3, axis=(1, 2, 3))


def _numeric_gradients(x, eps=1e-5):
  """Central differences of `_score` in float64, per image: (B, pixels)."""
  x = x.astype(np.float64)
  grads = np.zeros((len(x), x[0].size))
  for i in range(x[0].size):
    step = np.zeros(x[0].size)
    step[i] = eps
    step = step.reshape(x.shape[1:])
    grads[:, i] = (_score(x + step) - _score(x - step)) / (2 * eps)
  return grads


def test_gradient_penalty_is_the_finite_difference_norm_at_the_interpolates():
  rng = np.random.default_rng(1)
  real, fake = rng.normal(size=(2, 5, 2, 3, 1)).astype(np.float32)
  key = jax.random.key(3)
  eps = np.asarray(jax.random.uniform(key, (5, 1, 1, 1)))  # The draw `gradient_penalty` makes with this key.
  between = eps * real + (1 - eps) * fake
  expected = (np.linalg.norm(_numeric_gradients(between), axis=-1) - 1) ** 2
  got = losses.gradient_penalty(_score, jnp.asarray(real), jnp.asarray(fake), key)
  np.testing.assert_allclose(got, expected, rtol=2e-4)
  np.testing.assert_allclose(losses.r1_penalty(_score, jnp.asarray(real)),
                             np.sum(_numeric_gradients(real) ** 2, -1), rtol=2e-4)


def _config(variant="gan", **fields):
  c = config_lib.from_file(f"{REPO}/experiments/{variant}.py:smoke")
  c.update_from_flattened_dict(fields)
  train.check_config(c)
  return c


def _state(config, shape=(28, 28, 1)):
  variant = registry.get(config.variant)
  model = variant.build_model(config, shape)
  state = train.init_state(variant, model, config, jax.random.key(0), jnp.zeros((1, *shape)))
  return variant, model, state


def _leaves(tree):
  return [np.asarray(x) for x in jax.tree.leaves(tree)]


@pytest.mark.parametrize("player,other", [("discriminator", "generator"), ("generator", "discriminator")])
def test_a_player_update_is_adams_first_step_at_its_rate_and_leaves_the_other_as_it_was(player, other):
  # Adam's first update of a constant-sign gradient is -lr per parameter (m̂ / √v̂ = ±1): it reads out the rate.
  config = _config("gan", learning_rate=1e-3, **{"gan.d_rate_scale": 4.0})
  _, _, state = _state(config)
  grads = jax.tree.map(jnp.ones_like, state.params["params"][player])
  new = gan.update_player(state, player, grads)
  rate = 4e-3 if player == "discriminator" else 1e-3
  for before, after in zip(_leaves(state.params["params"][player]), _leaves(new.params["params"][player])):
    np.testing.assert_allclose(before - after, rate, rtol=1e-3)
  for before, after in zip(_leaves((state.params["params"][other], state.opt_state.inner_states[other])),
                           _leaves((new.params["params"][other], new.opt_state.inner_states[other]))):
    np.testing.assert_array_equal(before, after)
  assert not all(np.array_equal(a, b) for a, b in zip(_leaves(state.opt_state.inner_states[player]),
                                                      _leaves(new.opt_state.inner_states[player])))


def test_the_moving_average_follows_the_generator_by_its_decay():
  config = _config("gan", **{"gan.ema_decay": 0.9})
  variant, model, state = _state(config)
  assert all(np.array_equal(a, b) for a, b in zip(_leaves(state.params["ema"]),
                                                  _leaves(state.params["params"]["generator"])))
  step = jax.jit(train.make_train_step(variant, model, config))
  batch = {"image": jax.random.uniform(jax.random.key(1), (16, 28, 28, 1)), "label": jnp.zeros(16, jnp.int32)}
  new, metrics = step(state, batch, jax.random.key(2))
  assert int(new.step) == 1 and float(metrics["finite"]) == 1.0
  for old_ema, ema, generator in zip(_leaves(state.params["ema"]), _leaves(new.params["ema"]),
                                     _leaves(new.params["params"]["generator"])):
    np.testing.assert_allclose(ema, 0.9 * old_ema + 0.1 * generator, rtol=1e-5, atol=1e-7)


def _mixture(key, n, modes=8, radius=0.8, std=0.05):
  """n points of a ring of `modes` Gaussians in [-1, 1]², as (n, 1, 1, 2) 'images' in [0, 1], and their modes."""
  mode_key, noise_key = jax.random.split(key)
  modes_of = jax.random.randint(mode_key, (n,), 0, modes)
  angles = 2 * jnp.pi * modes_of / modes
  points = radius * jnp.stack([jnp.cos(angles), jnp.sin(angles)], -1) + std * jax.random.normal(noise_key, (n, 2))
  return ((points + 1) / 2).reshape(n, 1, 1, 2), modes_of


def _nearest_mode(images, modes=8, radius=0.8):
  points = 2 * np.asarray(images).reshape(-1, 2) - 1
  angles = 2 * np.pi * np.arange(modes) / modes
  centres = radius * np.stack([np.cos(angles), np.sin(angles)], -1)
  distances = np.linalg.norm(points[:, None] - centres[None], axis=-1)
  return distances.argmin(-1), distances.min(-1)


def _train_on_mixture(variant_name, steps, **fields):
  config = _config(variant_name, **{"latent_dim": 2, "learning_rate": 1e-3, "batch_size": 256, "model.kind": "mlp",
                                    "model.encoder_widths": (128, 128), **fields})
  variant, model, state = _state(config, (1, 1, 2))
  step = train.make_train_step(variant, model, config)

  @functools.partial(jax.jit, donate_argnums=0)  # The draws and the step in one program: one dispatch a step.
  def one(state, key):
    data_key, step_key = jax.random.split(key)
    images, modes_of = _mixture(data_key, config.batch_size)
    return step(state, {"image": images, "label": modes_of}, step_key)

  for key in jax.random.split(jax.random.key(1), steps):
    state, _ = one(state, key)
  return config, variant, model, state


@pytest.mark.optimized
def test_gan_covers_all_eight_modes_of_a_ring_of_gaussians():
  config, variant, model, state = _train_on_mixture("gan", 2_000)
  samples = variant.sample(model, config, state.params, jax.random.key(7), jnp.zeros(4_000, jnp.int32))
  nearest, distance = _nearest_mode(samples)
  close = distance < 4 * 0.05
  shares = np.bincount(nearest[close], minlength=8) / len(nearest)
  assert close.mean() > 0.8, close.mean()
  assert shares.min() > 0.05, shares  # 0.125 each when every mode is matched; a dropped mode has none.


@pytest.mark.optimized
def test_cgan_draws_the_mode_it_is_given():
  config, variant, model, state = _train_on_mixture("cgan", 1_500, **{"gan.conditioning": "projection"})
  labels = jnp.repeat(jnp.arange(8), 250)
  nearest, distance = _nearest_mode(variant.sample(model, config, state.params, jax.random.key(7), labels))
  assert np.mean(nearest == np.asarray(labels)) > 0.9


TWO_OPTIMISERS = {"num_steps": 20, "checkpoint_every": 10, "eval_every": 10, "gan__ema_decay": 0.9, "gan__d_steps": 2}


def test_resumed_two_player_run_equals_uninterrupted(smoke_config, tmp_path):
  train.train_and_evaluate(smoke_config("gan", **TWO_OPTIMISERS), tmp_path / "whole")
  train.train_and_evaluate(smoke_config("gan", **{**TWO_OPTIMISERS, "num_steps": 10}), tmp_path / "resumed")
  train.train_and_evaluate(smoke_config("gan", **TWO_OPTIMISERS), tmp_path / "resumed")
  whole, resumed = saved_checkpoint(tmp_path / "whole", 20), saved_checkpoint(tmp_path / "resumed", 20)
  assert set(whole["params"]) == {"params", "ema"}
  for x, y in zip(jax.tree.leaves(whole), jax.tree.leaves(resumed), strict=True):
    np.testing.assert_array_equal(x, y)


def test_a_seed_and_rate_sweep_runs_as_one_bundle_as_if_alone(smoke_config, tmp_path):
  # The discriminator trains at 4 times each member's rate: a bundle must scale both players' updates.
  members = [{"num_steps": 10, "eval_every": 10, "checkpoint_every": 10, "gan__d_rate_scale": 4.0},
             {"num_steps": 10, "eval_every": 10, "checkpoint_every": 10, "gan__d_rate_scale": 4.0,
              "learning_rate": 5e-4, "seed": 1}]
  configs = [smoke_config("gan", **m) for m in members]
  bundle.train_bundle(configs, [tmp_path / f"member{k}" for k in range(2)])
  train.train_and_evaluate(configs[1], tmp_path / "alone")
  for x, y in zip(jax.tree.leaves(saved_checkpoint(tmp_path / "alone", 10)),
                  jax.tree.leaves(saved_checkpoint(tmp_path / "member1", 10)), strict=True):
    # Float noise of the vmapped program; Adam moves a weight by about its rate a step (D here: 2e-3, not 5e-4).
    np.testing.assert_allclose(x, y, rtol=1e-3, atol=5e-5)


@pytest.mark.parametrize("variant,fields,message", [
    ("gan", {"gan.d_steps": 0}, "config.gan.d_steps=0: the discriminator needs at least one update"),
    ("gan", {"gan.gp_weight": 10.0}, "config.gan.gp_weight=10.0: the gradient penalty keeps a Wasserstein critic"),
    ("gan", {"gan.loss": "wasserstein"}, "config.gan.loss='wasserstein': an unconstrained Wasserstein critic"),
    ("gan", {"gan.loss": "wgan"}, "config.gan.loss='wgan': use one of non_saturating, minimax, hinge"),
    ("dcgan", {"model.kind": "mlp"}, "config.model.kind='mlp': config.variant='dcgan' has convolutional players"),
    ("cgan", {"model.kind": "strided_conv"}, "config.model.kind='strided_conv': cgan's players are MLPs or DCGAN's"),
    ("gan", {"adam_b1": 0.5, "optimizer": "sgd"}, "config.adam_b1=(0.5, 0.999): only optimizer='adam' or 'adamw'"),
])
def test_bad_gan_fields_are_one_line_errors(variant, fields, message):
  with pytest.raises(ConfigError, match="^" + re.escape(message)):
    _config(variant, **fields)


def test_a_conditional_model_of_a_data_set_without_classes_is_one_line(monkeypatch):
  from aejax.data import catalog  # pylint: disable=g-import-not-at-top
  unlabelled = dataclasses.replace(catalog.get("mnist"), num_classes=0)
  monkeypatch.setitem(catalog._REGISTRY, "unlabelled", unlabelled)  # pylint: disable=protected-access
  with pytest.raises(ConfigError, match="^" + re.escape("config.data.name='unlabelled' has no classes to condition")):
    _config("cgan", **{"data.name": "unlabelled"})


@pytest.mark.parametrize("variant,fields,message", [
    ("dcgan", {"model.conv_features": (8, 16, 32)}, "the generator doubles its map 3 times, and 28×28 images are not "
                                                    "a multiple of 8 on each side"),
    ("cyclegan", {"model.conv_features": (8, 16, 32, 64)}, "the translators halve the image 3 times"),
    ("aae", {"model.code_activation": "sigmoid"}, "config.model.code_activation='sigmoid': the codes are matched to "
                                                 "N(0, I)"),
])
def test_shapes_the_players_cannot_make_are_one_line_before_any_work(variant, fields, message):
  with pytest.raises(ConfigError, match=re.escape(message)):
    _config(variant, **fields)


def test_conv_cgan_conditions_both_players_on_the_class():
  # A batch of one class: the class joined to the noise alone would be a constant that batch norm removes; the
  # generator's class-conditional batch norm keeps it. 'embedding' with conv players: the class is an input
  # channel, so the score's dependence on it varies with the image (not one bias per class).
  config = _config("cgan", **{"model.kind": "conv", "gan.conditioning": "embedding"})
  _, model, state = _state(config)
  noise = np.random.default_rng(9)  # NumPy's draws: one eager jax.random.normal per parameter shape compiles each.
  params = jax.tree.map(lambda x: x + 0.1 * noise.standard_normal(x.shape, np.float32), state.params)
  z = jax.random.normal(jax.random.key(1), (6, config.latent_dim))
  zeros, fives = (gan.generate(model, params["params"]["generator"], z, jnp.full(6, c, jnp.int32), jax.random.key(2))
                  for c in (0, 5))
  assert float(jnp.abs(zeros - fives).max()) > 1e-2
  x = jax.random.uniform(jax.random.key(3), (6, 28, 28, 1))
  score = lambda c: gan.scorer(model, params["params"]["discriminator"], jnp.full(6, c, jnp.int32))(x)  # noqa: E731
  gap = np.asarray(score(3) - score(7))
  assert np.ptp(gap) > 1e-3, gap


def _code_moments(beta, steps=400):
  """The mean and standard deviation of an `aae`'s codes of random 4×4 images after `steps` steps at `beta`."""
  config = _config("aae", **{"beta": beta, "latent_dim": 2, "learning_rate": 2e-3, "batch_size": 128,
                             "model.encoder_widths": (32,), "gan.code_widths": (32, 32)})
  variant, model, state = _state(config, (4, 4, 1))
  step = jax.jit(train.make_train_step(variant, model, config), donate_argnums=0)
  images = jax.random.uniform(jax.random.key(5), (1024, 4, 4, 1))
  for i, key in enumerate(jax.random.split(jax.random.key(1), steps)):
    batch = {"image": images[(i % 8) * 128:(i % 8 + 1) * 128], "label": jnp.zeros(128, jnp.int32)}
    state, metrics = step(state, batch, key)
  codes = np.asarray(model.apply(state.params, images, method=model.encode))
  return codes.mean(0), codes.std(0), metrics


def test_aae_matches_its_codes_to_the_prior_where_a_plain_autoencoder_does_not():
  mean, std, metrics = _code_moments(beta=1.0)
  plain_mean, plain_std, _ = _code_moments(beta=0.0)
  assert set(metrics) >= {"loss", "objective", "adversarial", "d_loss", "d_real", "d_fake"}
  gap = np.abs(mean).max() + np.abs(np.log(std)).max()
  plain_gap = np.abs(plain_mean).max() + np.abs(np.log(plain_std)).max()
  assert gap < 0.5 and plain_gap > 2 * gap, (mean, std, plain_mean, plain_std)


@pytest.mark.parametrize("name", ["gan", "dcgan", "stylegan", "cgan", "aae", "cyclegan"])
def test_every_member_of_each_sweep_passes_the_checks(name):
  assert len(sweep_lib.load(f"{REPO}/experiments/{name}.py")) >= 8  # Each member checked as a run would be.


def test_modulated_convolution_is_the_per_example_modulated_and_demodulated_kernel():
  from aejax.variants.adversarial import networks  # pylint: disable=g-import-not-at-top
  layer = networks.ModulatedConv(5)
  x, w = jax.random.normal(jax.random.key(0), (3, 6, 6, 4)), jax.random.normal(jax.random.key(1), (3, 7))
  params = layer.init(jax.random.key(2), x, w)
  got = layer.apply(params, x, w)
  kernel = np.asarray(params["params"]["kernel"], np.float64)
  dense = params["params"]["Dense_0"]
  styles = np.asarray(w, np.float64) @ np.asarray(dense["kernel"]) + np.asarray(dense["bias"])
  for b in range(3):  # StyleGAN2's eq. 1 and 3: w'_ijk = s_i w_ijk, w''_ijk = w'_ijk / sqrt(Σ_ik w'_ijk² + ε).
    modulated = kernel * styles[b][None, None, :, None]
    demodulated = modulated / np.sqrt(np.sum(modulated ** 2, (0, 1, 2)) + 1e-8)
    expected = jax.lax.conv_general_dilated(jnp.asarray(x[b:b + 1], jnp.float32), jnp.asarray(demodulated, jnp.float32),
                                            (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))
    np.testing.assert_allclose(got[b], expected[0], rtol=1e-4, atol=1e-5)


def test_stylegan_steps_and_its_samples_depend_on_the_per_pixel_noise():
  config = _config("stylegan")
  variant, model, state = _state(config)
  step = jax.jit(train.make_train_step(variant, model, config))
  batch = {"image": jax.random.uniform(jax.random.key(1), (8, 28, 28, 1)), "label": jnp.zeros(8, jnp.int32)}
  state, metrics = step(state, batch, jax.random.key(2))
  assert float(metrics["finite"]) == 1.0 and {"r1_penalty", "g_loss"} <= set(metrics)
  strengths = jax.tree_util.tree_map_with_path(
      lambda path, x: jnp.full_like(x, 0.5) if "noise_strength" in jax.tree_util.keystr(path) else x, state.params)
  z, labels = jax.random.normal(jax.random.key(3), (4, config.latent_dim)), None
  generator = gan.sampling_generator(strengths)
  same = [gan.generate(model, generator, z, labels, jax.random.key(4)) for _ in range(2)]
  other = gan.generate(model, generator, z, labels, jax.random.key(5))
  np.testing.assert_array_equal(same[0], same[1])
  assert float(jnp.abs(same[0] - other).max()) > 1e-3


def test_a_second_domain_sits_beside_each_batch_example_by_index_modulo_its_size():
  from aejax.data import input_pipeline  # pylint: disable=g-import-not-at-top
  a = input_pipeline.Split(jnp.arange(10, dtype=jnp.uint8).reshape(10, 1, 1, 1), jnp.arange(10, dtype=jnp.int32))
  b = input_pipeline.Split(jnp.arange(100, 103, dtype=jnp.uint8).reshape(3, 1, 1, 1), jnp.arange(3, dtype=jnp.int32))
  batch = input_pipeline.make_batch(a.replace(other=b), jnp.array([7, 2, 9]), jax.random.key(0), False)
  np.testing.assert_array_equal(np.round(batch["image"].ravel() * 255), [7, 2, 9])
  np.testing.assert_array_equal(np.round(batch["other_image"].ravel() * 255), [101, 102, 100])
  np.testing.assert_array_equal(batch["other_label"], [1, 2, 0])


def test_cyclegan_terms_are_their_formulas_and_a_step_updates_both_translators():
  from aejax.variants.adversarial import cyclegan  # pylint: disable=g-import-not-at-top
  config = _config("cyclegan", **{"gan.cycle_weight": 3.0, "gan.identity_weight": 0.5})
  variant, model, state = _state(config)
  images = jax.random.uniform(jax.random.key(1), (2, 4, 28, 28, 1))
  batch = {"image": images[0], "other_image": images[1], "label": jnp.zeros(4, jnp.int32)}
  a, b = 2 * np.asarray(images) - 1
  generator = state.params["params"]["generator"]
  ab = lambda x: np.asarray(model.apply({"params": {"generator": generator}}, x, method="translate_ab"))  # noqa: E731
  ba = lambda x: np.asarray(model.apply({"params": {"generator": generator}}, x, method="translate_ba"))  # noqa: E731
  l1 = lambda x, y: np.abs(x - y).reshape(len(x), -1).mean(-1)  # noqa: E731
  terms = variant.evaluate(model, config, state.params, batch, jax.random.key(2), state.hparams)
  np.testing.assert_allclose(terms["cycle"], l1(ba(ab(a)), a) + l1(ab(ba(b)), b), rtol=1e-5)
  np.testing.assert_allclose(terms["identity"], l1(ba(a), a) + l1(ab(b), b), rtol=1e-5)
  np.testing.assert_allclose(terms["g_loss"], terms["adversarial"] + 3.0 * terms["cycle"] + 0.5 * terms["identity"],
                             rtol=1e-5)
  critics = {"params": {"discriminator": state.params["params"]["discriminator"]}}
  d_a = lambda x: np.asarray(model.apply(critics, x, method="discriminate_a"))  # noqa: E731
  d_b = lambda x: np.asarray(model.apply(critics, x, method="discriminate_b"))  # noqa: E731
  assert config.gan.loss == "least_squares"  # experiments/cyclegan.py's.
  g_loss = lambda d: 0.5 * (d - 1) ** 2  # noqa: E731
  d_loss = lambda r, f: 0.5 * (r - 1) ** 2 + 0.5 * f ** 2  # noqa: E731
  np.testing.assert_allclose(terms["adversarial"], g_loss(d_a(ba(b))) + g_loss(d_b(ab(a))), rtol=1e-4)
  np.testing.assert_allclose(terms["d_loss"], d_loss(d_a(a), d_a(ba(b))) + d_loss(d_b(b), d_b(ab(a))), rtol=1e-4)
  new, metrics = jax.jit(train.make_train_step(variant, model, config))(state, batch, jax.random.key(3))
  assert float(metrics["finite"]) == 1.0
  for direction in ("ab", "ba"):
    before, after = (_leaves(s.params["params"]["generator"][direction]) for s in (state, new))
    assert not all(np.array_equal(x, y) for x, y in zip(before, after)), direction
  assert cyclegan.second_data(config).name == "uci_digits"


@pytest.mark.parametrize("fields,message", [
    ({"gan.domain_b_resize": None}, "config.gan.domain_b_resize=None: domain B's images are 8×8, domain A's 28×28: "
                                    "use --config.gan.domain_b_resize='(28, 28)'"),
    ({"gan.domain_b_resize": (30, 30)}, "config.gan.domain_b_resize=(30, 30): uci_digits is prepared at"),
    ({"gan.domain_b": "svhn"}, "config.gan.domain_b='svhn' is not a known dataset: use one of 'mnist'"),
    ({"model.kind": "mlp"}, "config.model.kind='mlp': CycleGAN's translators are convolutional"),
])
def test_bad_cyclegan_domains_are_one_line_errors(fields, message):
  with pytest.raises(ConfigError, match="^" + re.escape(message)):
    _config("cyclegan", **fields)


@pytest.mark.optimized
def test_translation_suite_scores_each_direction_beside_source_only(smoke_config, tmp_path):
  from aejax.evaluation import judge  # pylint: disable=g-import-not-at-top
  from aejax.variants.adversarial import cyclegan  # pylint: disable=g-import-not-at-top
  from aejax import evaluate  # pylint: disable=g-import-not-at-top
  config = smoke_config("cyclegan", num_steps=2, checkpoint_every=2, eval_every=2, data__num_test=300,
                        eval__classifier_steps=20)  # Classifiers of 20 steps: the suite's wiring is what is checked.
  train.train_and_evaluate(config, tmp_path / "run")
  summary = evaluate.evaluate_run(tmp_path / "run", ["translation"])
  b_config = config.copy_and_resolve_references()
  b_config.data = cyclegan.second_data(config)
  judge_b = judge.load(b_config)
  assert judge_b.workdir.name.startswith("uci_digits-28x28-")
  judge_a = judge.load(config)
  from aejax.data import input_pipeline  # pylint: disable=g-import-not-at-top
  run = evaluate.restore(tmp_path / "run")
  generator = run.state.params["params"]["generator"]
  for source, target_judge, data in (("a", judge_b, config.data), ("b", judge_a, b_config.data)):
    test = input_pipeline.load(data)[1]
    x, labels = np.asarray(test.images, np.float32) / 255.0, np.asarray(test.labels)
    method = "translate_ab" if source == "a" else "translate_ba"
    translate = jax.jit(lambda x, m=method: run.model.apply({"params": {"generator": generator}}, x, method=m))
    moved = (np.asarray(translate(2 * x - 1)) + 1) / 2
    name = "a_to_b" if source == "a" else "b_to_a"
    assert summary[f"translation/{name}_source_only"] == pytest.approx(np.mean(target_judge.classify(x)[1] == labels))
    assert summary[f"translation/{name}_accuracy"] == pytest.approx(np.mean(target_judge.classify(moved)[1] == labels),
                                                                   abs=2.5 / len(labels))  # Two images.


def test_cyclegan_domains_of_other_channel_counts_are_one_line(monkeypatch):
  from aejax.data import catalog  # pylint: disable=g-import-not-at-top
  colour = dataclasses.replace(catalog.get("uci_digits"), image_shape=(8, 8, 3))
  monkeypatch.setitem(catalog._REGISTRY, "colour_digits", colour)  # pylint: disable=protected-access
  message = ("config.gan.domain_b='colour_digits': its images have 3 channel(s) and mnist's 1, and the translators "
             "map no channels onto others")
  with pytest.raises(ConfigError, match="^" + re.escape(message)):
    _config("cyclegan", **{"gan.domain_b": "colour_digits"})
