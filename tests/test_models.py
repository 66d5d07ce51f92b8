"""Module shapes for every encoder/decoder kind, and impossible sizes rejected."""
import jax
import jax.numpy as jnp
import pytest

import aejax.variants.all  # noqa: F401
from aejax import config as config_lib
from aejax import registry
from aejax.errors import ConfigError


def _config(variant: str, **model):
  c = registry.get(variant).config_fields(config_lib.base_config())
  c.variant, c.latent_dim = variant, 7
  c.model.encoder_widths = (32, 16)
  c.model.conv_features = (8, 16)
  c.model.update(model)
  return c


@pytest.mark.parametrize("kind,upsample", [("mlp", "nearest"), ("conv", "nearest"), ("conv", "transpose"),
                                          ("strided_conv", "nearest")])
@pytest.mark.parametrize("variant", ["ae", "vae"])
def test_shapes(variant, kind, upsample):
  c = _config(variant, kind=kind, upsample=upsample)
  v = registry.get(variant)
  model = v.build_model(c, (28, 28, 1))
  x = jnp.zeros((5, 28, 28, 1))
  key = jax.random.key(0)
  # Shapes only: abstract evaluation checks them without compiling every op.
  params = jax.eval_shape(lambda k: v.init(model, k, x), key)
  out = jax.eval_shape(lambda p, k: model.apply(p, x, k) if variant == "vae" else model.apply(p, x), params, key)
  assert out["logits"].shape == (5, 28, 28, 1)
  if variant == "vae":
    assert out["mean"].shape == out["logvar"].shape == out["z"].shape == (5, 7)
  else:
    assert out["code"].shape == (5, 7)


def test_decoder_widths_default_to_the_mirrored_encoder():
  c = _config("ae")
  v = registry.get("ae")
  params = jax.eval_shape(lambda k: v.init(v.build_model(c, (28, 28, 1)), k, jnp.zeros((1, 28, 28, 1))),
                          jax.random.key(0))
  p = params["params"]
  kernels = lambda module: [p[module][f"Dense_{i}"]["kernel"].shape for i in range(len(p[module]))]
  assert kernels("encoder") == [(784, 32), (32, 16)]
  assert p["code"]["kernel"].shape == (16, 7)
  assert kernels("decoder") == [(7, 16), (16, 32), (32, 784)]


@pytest.mark.parametrize("kind,halvings", [("conv", "2x poolings"), ("strided_conv", "stride-2 convolutions")])
def test_conv_halvings_must_divide_the_image(kind, halvings):
  c = _config("ae", kind=kind, conv_features=(8, 16, 32))
  with pytest.raises(ConfigError, match=rf"config.model.conv_features=.*: 3 {halvings} need image sides divisible by"):
    registry.get("ae").build_model(c, (28, 28, 1))


def _conv(k, cin, cout):
  return k * k * cin * cout + cout


def _dense(n_in, n_out):
  return n_in * n_out + n_out


def test_the_disentanglement_papers_64x64_net_has_their_layers():
  # Higgins et al. 2017 / Locatello et al. 2019: 4x4 stride-2 convs 32-32-64-64, Dense 256, a 10-d Gaussian code;
  # the decoder Dense 256, Dense 4x4x64, 4x4 stride-2 transposed convs 64-32-32-1.
  c = _config("vae", kind="strided_conv", conv_features=(32, 32, 64, 64), encoder_widths=(256,))
  c.latent_dim = 10
  v = registry.get("vae")
  model = v.build_model(c, (64, 64, 1))
  x = jnp.zeros((3, 64, 64, 1))
  params = jax.eval_shape(lambda k: v.init(model, k, x), jax.random.key(0))
  out = jax.eval_shape(lambda p, k: model.apply(p, x, k), params, jax.random.key(1))
  assert out["logits"].shape == (3, 64, 64, 1) and out["mean"].shape == out["logvar"].shape == (3, 10)
  p = params["params"]
  shapes = lambda module: {name: layer["kernel"].shape for name, layer in p[module].items()}  # noqa: E731
  assert shapes("encoder") == {"Conv_0": (4, 4, 1, 32), "Conv_1": (4, 4, 32, 32), "Conv_2": (4, 4, 32, 64),
                               "Conv_3": (4, 4, 64, 64), "Dense_0": (4 * 4 * 64, 256)}
  assert shapes("decoder") == {"Dense_0": (10, 256), "Dense_1": (256, 4 * 4 * 64), "ConvTranspose_0": (4, 4, 64, 64),
                               "ConvTranspose_1": (4, 4, 64, 32), "ConvTranspose_2": (4, 4, 32, 32),
                               "ConvTranspose_3": (4, 4, 32, 1)}
  encoder = _conv(4, 1, 32) + _conv(4, 32, 32) + _conv(4, 32, 64) + _conv(4, 64, 64) + _dense(1024, 256)
  heads = 2 * _dense(256, 10)
  decoder = (_dense(10, 256) + _dense(256, 1024) + _conv(4, 64, 64) + _conv(4, 64, 32) + _conv(4, 32, 32)
             + _conv(4, 32, 1))
  assert encoder + heads + decoder == 764_245  # 377,792 + 5,140 + 381,313, added up by hand.
  assert sum(leaf.size for leaf in jax.tree.leaves(params)) == encoder + heads + decoder
