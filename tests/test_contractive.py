"""The contractive penalty against jax.jacobian, its effect on a trained code, and its config check."""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
import pytest

import aejax.variants.all  # noqa: F401
from aejax import config as config_lib
from aejax import registry, train
from aejax.data import input_pipeline
from aejax.errors import ConfigError
from aejax.variants.autoencoders import contractive


def _model(encoder_widths, code_activation, latent_dim, input_shape):
  """A `contractive_ae` model, its random parameters and 6 random inputs of `input_shape`."""
  c = config_lib.base_config()
  c.variant, c.latent_dim = "contractive_ae", latent_dim
  c.model.encoder_widths, c.model.activation, c.model.code_activation = encoder_widths, "tanh", code_activation
  variant = registry.get("contractive_ae")
  model = variant.build_model(c, input_shape)
  init_key, x_key = jax.random.split(jax.random.key(0))
  x = jax.random.uniform(x_key, (6, *input_shape))
  return model, train.init_state(variant, model, c, init_key, x).params, x


def _codes_and_penalties(model, params, x, **paths) -> dict:
  """{name: (h, penalty)} of each `path(model, params, x)`, and the 'reference' from jax.jacobian.

  The reference is the code and ‖∂h/∂x‖²_F of each example alone, by jax.jacobian of the encoder. All in
  one jit, so that a test compiles once.
  """
  def run(params, x):
    encode = lambda xi: model.apply(params, xi[None], method=model.encode)[0]
    h, jacobians = jax.vmap(lambda xi: (encode(xi), jax.jacobian(encode)(xi)))(x)
    reference = jnp.sum(jnp.square(jacobians).reshape(len(x), -1), axis=1)
    return {"reference": (h, reference), **{name: path(model, params, x) for name, path in paths.items()}}
  return jax.jit(run)(params, x)


@pytest.mark.parametrize("code_activation", ["sigmoid", "tanh"])
def test_one_layer_closed_form_is_the_jacobian_norm_and_is_chosen(code_activation):
  model, params, x = _model((), code_activation, 16, (28, 28, 1))
  assert contractive.penalty_path(model, x.shape[1:]) == "closed_form"
  jacobian = contractive.jacobian_penalty
  out = _codes_and_penalties(model, params, x, chosen=contractive.code_and_penalty,
                             closed=contractive.closed_form_penalty,
                             forward=functools.partial(jacobian, mode="forward"),
                             reverse=functools.partial(jacobian, mode="reverse"))
  code, reference = out["reference"]
  for name in ("chosen", "closed", "forward", "reverse"):
    np.testing.assert_allclose(out[name][0], code, rtol=1e-6, err_msg=name)
    np.testing.assert_allclose(out[name][1], reference, rtol=1e-5, err_msg=name)
  for mode in ("forward", "reverse"):
    np.testing.assert_allclose(out[mode][1], out["closed"][1], rtol=1e-5, err_msg=mode)


@pytest.mark.parametrize("input_shape,latent_dim,mode", [((28, 28, 1), 8, "reverse"), ((3, 3, 1), 16, "forward")])
def test_deep_encoder_penalty_is_the_jacobian_norm(input_shape, latent_dim, mode):
  model, params, x = _model((32, 24), "sigmoid", latent_dim, input_shape)
  assert contractive.penalty_path(model, input_shape) == mode
  out = _codes_and_penalties(model, params, x, chosen=contractive.code_and_penalty)
  np.testing.assert_allclose(out["chosen"][0], out["reference"][0], rtol=1e-6)
  np.testing.assert_allclose(out["chosen"][1], out["reference"][1], rtol=1e-5)


def _test_penalty(config, workdir) -> float:
  """The mean ‖∂h/∂x‖²_F over the test split of the latest checkpoint in `workdir`."""
  _, test = input_pipeline.load(config.data)
  model = registry.get("contractive_ae").build_model(config, tuple(test.images.shape[1:]))
  with ocp.CheckpointManager(workdir / "checkpoints") as manager:
    params = manager.restore(manager.latest_step())["params"]
  penalty = jax.jit(functools.partial(contractive.code_and_penalty, model))
  return float(penalty(params, test.images.astype(jnp.float32) / 255.0)[1].mean())


def test_trained_contractive_ae_has_a_flatter_code_than_the_plain_ae(smoke_config, tmp_path):
  summary = train.train_and_evaluate(smoke_config("contractive_ae"), tmp_path / "cae")
  train.train_and_evaluate(smoke_config("contractive_ae", variant="ae"), tmp_path / "ae")
  cae = _test_penalty(smoke_config("contractive_ae"), tmp_path / "cae")
  ae = _test_penalty(smoke_config("contractive_ae"), tmp_path / "ae")
  assert cae == pytest.approx(summary["test/jacobian_norm_sq"], rel=1e-4)
  assert cae < 0.8 * ae, (cae, ae)


def test_negative_weight_is_one_line_naming_field_value_and_fix(smoke_config, tmp_path):
  with pytest.raises(ConfigError) as error:
    train.train_and_evaluate(smoke_config("contractive_ae", contractive_weight=-0.5), tmp_path / "run")
  message = str(error.value)
  assert "\n" not in message
  assert message.startswith("config.contractive_weight=-0.5: ") and "--config.contractive_weight=0.1" in message
  assert not (tmp_path / "run").exists()  # Nothing was started.


def test_spatial_code_is_refused_with_the_fix(smoke_config, tmp_path):
  config = smoke_config("contractive_ae", model__kind="conv", model__spatial_code=True)
  with pytest.raises(ConfigError, match="spatial_code=True: .* use --config.model.spatial_code=false"):
    train.train_and_evaluate(config, tmp_path / "run")
