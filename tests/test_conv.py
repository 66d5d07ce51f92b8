"""The convolutional autoencoder: the seed's shapes, the CPU conv path against XLA's, a smoke run that learns."""
import json
import pathlib
import re

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import aejax.variants.all  # noqa: F401
from aejax import config as config_lib
from aejax import registry, train
from aejax.errors import ConfigError
from aejax.nn import convolution

_EXPERIMENT = pathlib.Path(__file__).resolve().parents[1] / "experiments" / "conv_ae.py"


def _model(**model_fields):
  """experiments/conv_ae.py's model (the seed's net) with `config.model` fields overridden."""
  c = config_lib.from_file(str(_EXPERIMENT))
  c.model.update(model_fields)
  return registry.get(c.variant).build_model(c, (28, 28, 1))


def _shapes(model, batch: int = 2):
  """The parameter and output shapes of `model` on a batch of MNIST-sized images, traced, not run."""
  x = jax.ShapeDtypeStruct((batch, 28, 28, 1), jnp.float32)
  params = jax.eval_shape(model.init, jax.random.key(0), x)
  return params, jax.eval_shape(model.apply, params, x)


def _kernels(params, module):
  return {name: layer["kernel"].shape for name, layer in params["params"][module].items()}


def test_seed_net_shapes():
  params, out = _shapes(_model())
  assert out["code"].shape == (2, 7, 7, 128)
  assert out["logits"].shape == (2, 28, 28, 1)
  assert set(params["params"]) == {"encoder", "decoder"}  # No dense layer: the feature map is the code.
  assert _kernels(params, "encoder") == {"Conv_0": (3, 3, 1, 32), "Conv_1": (3, 3, 32, 64), "Conv_2": (3, 3, 64, 128)}
  assert _kernels(params, "decoder") == {"Conv_0": (3, 3, 128, 64), "Conv_1": (3, 3, 64, 32), "Conv_2": (3, 3, 32, 1)}


@pytest.mark.parametrize("spatial_code", [True, False])
def test_transposed_conv_decoder_shapes(spatial_code):
  params, out = _shapes(_model(upsample="transpose", spatial_code=spatial_code))
  assert out["code"].shape == ((2, 7, 7, 128) if spatial_code else (2, 64))
  assert out["logits"].shape == (2, 28, 28, 1)
  kernels = {"ConvTranspose_0": (3, 3, 128 if spatial_code else 64, 64), "ConvTranspose_1": (3, 3, 64, 32),
             "Conv_0": (3, 3, 32, 1)}
  if not spatial_code:  # A vector code goes through a dense layer to the 7x7x64 map first.
    kernels["Dense_0"] = (64, 7 * 7 * 64)
  assert _kernels(params, "decoder") == kernels


@pytest.mark.parametrize("spatial_code", [True, False])
def test_cpu_path_equals_xla_conv_forward_and_gradients(spatial_code):
  cpu, xla = (_model(conv_impl=impl, spatial_code=spatial_code) for impl in ("cpu", "xla"))
  x = jax.random.uniform(jax.random.key(1), (8, 28, 28, 1))
  params = jax.jit(cpu.init)(jax.random.key(0), x)  # One parameter layout for both.
  assert jax.tree.structure(params) == jax.tree.structure(_shapes(xla)[0])

  def outputs(model):
    loss = lambda p, x: jnp.sum(jnp.tanh(model.apply(p, x)["logits"]))
    code = lambda x: model.apply(params, x)["code"]
    # Forward mode too: the contractive AE's Jacobians use it. Compiled cheaply: compiling is most of the test.
    return train.compile_cheaply(lambda p, x: (model.apply(p, x), jax.grad(loss, argnums=(0, 1))(p, x),
                                               jax.jvp(code, (x,), (jnp.ones_like(x),))[1]), params, x)

  got, want = outputs(cpu), outputs(xla)
  for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
    np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-4 * float(jnp.abs(w).max()))


@pytest.mark.parametrize("cin,cout,kernel", [(3, 8, (3, 3)), (8, 3, (3, 3)), (2, 4, (5, 3)), (1, 4, (3, 3)),
                                             (1, 2, (3, 5)), (4, 1, (3, 3)), (3, 1, (5, 3)), (1, 1, (3, 3))])
def test_cpu_conv_matches_xla_for_other_shapes(cin, cout, kernel):
  """Values, gradients and forward-mode derivatives, also of the one-channel layers' matrix-product forms."""
  x = jax.random.normal(jax.random.key(0), (5, 6, 5, cin))
  convs = [nn.Conv(cout, kernel, padding="SAME", conv_general_dilated=convolution.conv_general_dilated(impl))
           for impl in ("cpu", "xla")]
  params = convs[0].init(jax.random.key(1), x)
  tangents = jax.tree.map(jnp.ones_like, (params, x))

  def derivatives(conv):
    apply = lambda p, x: jnp.sin(conv.apply(p, x))
    return (jax.grad(lambda p, x: jnp.sum(apply(p, x)), argnums=(0, 1))(params, x),
            jax.jvp(apply, (params, x), tangents))

  got, want = (train.compile_cheaply(lambda c=c: derivatives(c)) for c in convs)
  for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
    np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-5)


def _ynnpack_convolutions(hlo: str) -> int:
  """How many convolutions the compiled module `hlo` runs in YNNPACK (fusions of kind '__ynn_fusion')."""
  called = re.findall(r'calls=(%[\w.\-]+).*"__ynn_fusion"', hlo)
  bodies = [re.search(rf"^{re.escape(name)} .*?^}}", hlo, re.M | re.S).group(0) for name in called]
  return sum(body.count(" convolution(") for body in bodies)


def test_cpu_compiler_options_keep_the_conv_train_step_off_ynnpack():
  """The options go to conv nets on the CPU path alone, and the step compiled with them runs no convolution in
  YNNPACK (its matrix products may stay there), while the default compilation of the same step does."""
  config = config_lib.from_file(f"{_EXPERIMENT}:smoke")
  options = convolution.compiler_options(config)
  assert options is not None
  for field, value in (("model.kind", "mlp"), ("model.conv_impl", "xla")):
    other = config.copy_and_resolve_references()
    other.update_from_flattened_dict({field: value})
    assert convolution.compiler_options(other) is None
  model = registry.get(config.variant).build_model(config, (28, 28, 1))
  x = jnp.zeros((4, 28, 28, 1))
  params = jax.eval_shape(model.init, jax.random.key(0), x)
  grad = jax.grad(lambda p, x: jnp.sum(model.apply(p, x)["logits"]))
  default, chosen = (jax.jit(grad, compiler_options=o).lower(params, x).compile().as_text() for o in (None, options))
  assert _ynnpack_convolutions(default) > 0
  assert _ynnpack_convolutions(chosen) == 0


def test_auto_picks_the_cpu_path_on_cpu_and_rejects_what_it_does_not_support():
  conv = nn.Conv(4, (3, 3), padding="SAME", conv_general_dilated=convolution.auto_conv)
  x = jnp.zeros((1, 4, 4, 2))
  params = conv.init(jax.random.key(0), x)
  assert jax.default_backend() == "cpu"
  assert "custom_jvp_call" in str(jax.make_jaxpr(conv.apply)(params, x))
  strided = nn.Conv(4, (3, 3), strides=2, padding="SAME", conv_general_dilated=convolution.cpu_conv)
  with pytest.raises(ValueError, match="stride 1"):
    strided.init(jax.random.key(0), x)


def test_pooling_and_upsampling_match_flax_and_numpy():
  x = jax.random.normal(jax.random.key(0), (2, 6, 4, 3))
  np.testing.assert_array_equal(convolution.max_pool_2x2(x), nn.max_pool(x, (2, 2), strides=(2, 2)))
  np.testing.assert_array_equal(convolution.upsample_2x(x), np.repeat(np.repeat(x, 2, axis=1), 2, axis=2))
  pooled_sum = lambda pool, x: jnp.sum(jnp.sin(pool(x)))
  np.testing.assert_array_equal(jax.grad(pooled_sum, argnums=1)(convolution.max_pool_2x2, x),
                                jax.grad(pooled_sum, argnums=1)(lambda x: nn.max_pool(x, (2, 2), strides=(2, 2)), x))


def test_spatial_code_is_rejected_for_mlp_and_vae():
  c = config_lib.from_file(str(_EXPERIMENT))
  c.model.kind = "mlp"
  with pytest.raises(ConfigError, match="config.model.spatial_code=True: .* --config.model.kind=conv"):
    config_lib.validate(c)
  c.model.kind, c.variant = "conv", "vae"
  with pytest.raises(ConfigError, match="config.model.spatial_code=True: the VAE's latent is a vector"):
    registry.get("vae").validate(c)


def test_conv_ae_smoke_run_lowers_the_loss(smoke_config, tmp_path):
  config = smoke_config("conv_ae", num_steps=40, batch_size=32, eval_every=40, checkpoint_every=40)
  summary = train.train_and_evaluate(config, tmp_path)
  rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
  losses = [r["train/loss"] for r in rows if "train/loss" in r]
  assert len(losses) == 2 and losses[-1] < 0.8 * losses[0], losses
  assert np.isfinite(summary["test/loss"]) and summary["test/loss"] < losses[0]
