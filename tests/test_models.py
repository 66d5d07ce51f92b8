"""Module shapes for every encoder/decoder kind, and impossible sizes rejected."""
import jax
import jax.numpy as jnp
import pytest

import aejax.variants.all  # noqa: F401
from aejax import config as config_lib
from aejax import registry
from aejax.errors import ConfigError


def _config(variant: str, **model):
  c = config_lib.base_config()
  c.variant, c.latent_dim = variant, 7
  c.model.encoder_widths = (32, 16)
  c.model.conv_features = (8, 16)
  c.model.update(model)
  return c


@pytest.mark.parametrize("kind,upsample", [("mlp", "nearest"), ("conv", "nearest"), ("conv", "transpose")])
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


def test_conv_poolings_must_divide_the_image():
  c = _config("ae", kind="conv", conv_features=(8, 16, 32))
  with pytest.raises(ConfigError, match=r"config.model.conv_features=.*divisible by 8"):
    registry.get("ae").build_model(c, (28, 28, 1))
