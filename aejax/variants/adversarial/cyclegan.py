"""`cyclegan`: unpaired translation between two domains (Zhu et al. 2017), domain A `config.data` (MNIST) and domain
B `gan.domain_b` (the UCI digits), with two translators and two discriminators.

Each batch holds A's images and as many of B's (`registry.Variant.second_data`). Each step of the loop:
`gan.d_steps` updates of both discriminators (D_A: A's images against G_BA(b); D_B: B's against G_AB(a); `gan.loss`
and its penalties), then one update of both translators on their adversarial losses plus the cycle-consistency and
identity terms (`gan.cycle_weight`, `gan.identity_weight`). Train metrics: `d_loss` (= `loss`, the two
discriminators' sum), `adversarial`, `cycle`, `identity`; test metrics the same per test image of A (beside a test
image of B). Pictures: A, G_AB(A), G_BA(G_AB(A)), and B, G_BA(B), G_AB(G_BA(B)).
"""
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from aejax import images as images_lib, registry
from aejax.data import catalog
from aejax.errors import ConfigError
from aejax.evaluation import batches
from aejax.registry import Batch, Config, HParams, Params
from aejax.variants import common
from aejax.variants.adversarial import fields, gan, losses, networks


def build_model(config: Config, input_shape: tuple[int, ...]) -> networks.CycleGAN:
  return networks.CycleGAN(tuple(config.model.conv_features), input_shape[-1], config.gan.residual_blocks,
                           config.gan.leaky_slope)


def hparams(config: Config) -> dict[str, float]:
  return {"gan.cycle_weight": float(config.gan.cycle_weight), "gan.identity_weight": float(config.gan.identity_weight)}


def init(model: networks.CycleGAN, key: jax.Array, x: jax.Array) -> Params:
  return model.init(key, x, x)


def second_data(config: Config) -> Config:
  """Domain B's data config: `config.data` with `gan.domain_b` at `gan.domain_b_resize`, every class kept."""
  data = config.data.copy_and_resolve_references()
  data.name, data.resize, data.train_labels = config.gan.domain_b, config.gan.domain_b_resize, ()
  return data


def _domains(batch: Batch) -> tuple[jax.Array, jax.Array]:
  return 2.0 * batch["image"] - 1.0, 2.0 * batch["other_image"] - 1.0


def _translate(model: networks.CycleGAN, generator: Params, x: jax.Array, direction: str) -> jax.Array:
  return model.apply({"params": {"generator": generator}}, x, method=f"translate_{direction}")


def _l1(x: jax.Array, y: jax.Array) -> jax.Array:
  """Per example, the mean absolute difference over pixels."""
  return jnp.mean(jnp.abs(x - y).reshape(len(x), -1), -1)


def discriminator_terms(model: networks.CycleGAN, config: Config, discriminator: Params, a: jax.Array, b: jax.Array,
                        fake_a: jax.Array, fake_b: jax.Array, key: jax.Array) -> dict[str, jax.Array]:
  """Per example: both discriminators' terms (`gan.discriminator_terms`), summed."""
  key_a, key_b = jax.random.split(key)
  terms_a = gan.discriminator_terms(config, gan.scorer(model, discriminator, method="discriminate_a"), a, fake_a,
                                    key_a)
  terms_b = gan.discriminator_terms(config, gan.scorer(model, discriminator, method="discriminate_b"), b, fake_b,
                                    key_b)
  return {k: terms_a[k] + terms_b[k] for k in terms_a}


def translator_terms(model: networks.CycleGAN, config: Config, generator: Params, discriminator: Params,
                     a: jax.Array, b: jax.Array) -> dict[str, jax.Array]:
  """Per example: the translators' adversarial, cycle and identity terms."""
  fake_b, fake_a = _translate(model, generator, a, "ab"), _translate(model, generator, b, "ba")
  d_fake_a = gan.scorer(model, discriminator, method="discriminate_a")(fake_a)
  d_fake_b = gan.scorer(model, discriminator, method="discriminate_b")(fake_b)
  terms = {"adversarial": losses.generator_loss(config.gan.loss, d_fake_a)
                          + losses.generator_loss(config.gan.loss, d_fake_b),
           "cycle": _l1(_translate(model, generator, fake_b, "ba"), a)
                    + _l1(_translate(model, generator, fake_a, "ab"), b),
           "identity": _l1(_translate(model, generator, a, "ba"), a) + _l1(_translate(model, generator, b, "ab"), b)}
  return terms


def weighted(terms: dict[str, jax.Array], hp: HParams) -> jax.Array:
  """The translators' loss per example: adversarial + cycle_weight · cycle + identity_weight · identity."""
  return terms["adversarial"] + hp["gan.cycle_weight"] * terms["cycle"] + hp["gan.identity_weight"] * terms["identity"]


def train_step(model: networks.CycleGAN, config: Config, state: Any, batch: Batch,
               key: jax.Array) -> tuple[Any, dict]:
  """`gan.d_steps` updates of both discriminators, then one of both translators."""
  a, b = _domains(batch)
  generator = state.params["params"]["generator"]
  fake_b, fake_a = _translate(model, generator, a, "ab"), _translate(model, generator, b, "ba")
  for d_key in jax.random.split(key, config.gan.d_steps):

    def d_objective(discriminator):
      terms = discriminator_terms(model, config, discriminator, a, b, fake_a, fake_b, d_key)
      return terms["d_loss"].mean(), {k: v.mean() for k, v in terms.items()}

    grads, metrics = jax.grad(d_objective, has_aux=True)(state.params["params"]["discriminator"])
    state = gan.update_player(state, "discriminator", grads)
  discriminator, hp = state.params["params"]["discriminator"], state.hparams

  def g_objective(generator):
    terms = translator_terms(model, config, generator, discriminator, a, b)
    return weighted(terms, hp).mean(), {k: v.mean() for k, v in terms.items()}

  (g_loss, g_metrics), grads = jax.value_and_grad(g_objective, has_aux=True)(generator)
  state = gan.update_player(state, "generator", grads)
  return state.replace(step=state.step + 1), {"loss": metrics["d_loss"], **metrics, "g_loss": g_loss, **g_metrics}


def evaluate(model: networks.CycleGAN, config: Config, params: Params, batch: Batch, key: jax.Array,
             hp: HParams) -> dict[str, jax.Array]:
  """Per test image of A (beside one of B): the discriminators' and the translators' terms."""
  a, b = _domains(batch)
  generator, discriminator = params["params"]["generator"], params["params"]["discriminator"]
  fake_b, fake_a = _translate(model, generator, a, "ab"), _translate(model, generator, b, "ba")
  terms = translator_terms(model, config, generator, discriminator, a, b)
  terms["g_loss"] = weighted(terms, hp)
  return {**discriminator_terms(model, config, discriminator, a, b, fake_a, fake_b, key), **terms}


def images(model: networks.CycleGAN, config: Config, params: Params, batch: Batch, key: jax.Array,
           hp: HParams) -> dict:
  """Each domain's test images, translated, and translated back."""
  del key, hp
  a, b = _domains(batch)
  generator = params["params"]["generator"]
  to_b, to_a = _translate(model, generator, a, "ab"), _translate(model, generator, b, "ba")
  rows = {"A": a, "A to B": to_b, "A to B to A": _translate(model, generator, to_b, "ba"),
          "B": b, "B to A": to_a, "B to A to B": _translate(model, generator, to_a, "ab")}
  return {"translations": common.image_grid({k: (v + 1.0) / 2.0 for k, v in rows.items()}, n=config.num_images)}


def translation_suite(run: Any) -> tuple[dict[str, float], dict[str, images_lib.Grid]]:
  """Each direction's translations of the source domain's test images, scored by the target domain's digit
  classifier (the samples suite's, `aejax.evaluation.judge`) against their labels, beside 'source only': the same
  classifier on the untranslated images (of the target's size: the domains share one shape)."""
  from aejax.data import input_pipeline  # pylint: disable=g-import-not-at-top  (the loop's data, light)
  from aejax.evaluation import judge  # pylint: disable=g-import-not-at-top  (it imports the train loop)
  config = run.config
  b_config = config.copy_and_resolve_references()
  b_config.data = second_data(config)
  _, b_test = input_pipeline.load(b_config.data)
  domains = {"a": (np.asarray(run.test_images), np.asarray(run.test_labels)),
             "b": (b_test.host_pixels().astype(np.float32) / 255.0, np.asarray(b_test.labels))}
  judges = {"a": judge.load(config), "b": judge.load(b_config)}
  generator = run.state.params["params"]["generator"]
  metrics, rows = {}, {}
  for source, target in (("a", "b"), ("b", "a")):
    x, labels = domains[source]
    translate = jax.jit(lambda x, d=source + target: (_translate(run.model, generator, 2.0 * x - 1.0, d) + 1.0) / 2.0)
    translated = batches.apply(translate, x, config.eval_batch_size)
    name = f"{source}_to_{target}"
    metrics[f"translation/{name}_accuracy"] = float(np.mean(judges[target].classify(translated)[1] == labels))
    metrics[f"translation/{name}_source_only"] = float(np.mean(judges[target].classify(x)[1] == labels))
    rows[source.upper()], rows[f"{source.upper()} to {target.upper()}"] = x, translated
  metrics.update({f"translation/{d}_classifier_accuracy": j.accuracy for d, j in judges.items()})
  return metrics, {"eval_translations": common.image_grid(rows, n=config.num_images)}


def validate(config: Config) -> None:
  """The family's fields; conv players; two domains of one image shape (the translators keep the shape)."""
  fields.validate(config)
  if config.model.kind != "conv":
    raise ConfigError(f"config.model.kind={config.model.kind!r}: CycleGAN's translators are convolutional: use "
                      "--config.model.kind=conv")
  if config.gan.domain_b not in catalog.image_names():
    raise ConfigError(f"config.gan.domain_b={config.gan.domain_b!r} is not a known dataset: use one of "
                      f"{', '.join(map(repr, catalog.image_names()))}")
  shape_a = catalog.image_shape(config.data.name, config.data.resize)
  resize_b = None if config.gan.domain_b_resize is None else tuple(config.gan.domain_b_resize)
  try:
    shape_b = catalog.image_shape(config.gan.domain_b, resize_b)
  except ConfigError as e:
    raise ConfigError(str(e).replace("config.data.resize", "config.gan.domain_b_resize", 1)) from e
  if shape_a[-1] != shape_b[-1]:
    raise ConfigError(f"config.gan.domain_b={config.gan.domain_b!r}: its images have {shape_b[-1]} channel(s) and "
                      f"{config.data.name}'s {shape_a[-1]}, and the translators map no channels onto others: choose "
                      "domains of one channel count")
  if shape_a != shape_b:
    raise ConfigError(f"config.gan.domain_b_resize={resize_b!r}: domain B's images are {shape_b[0]}×{shape_b[1]}, "
                      f"domain A's {shape_a[0]}×{shape_a[1]}: use --config.gan.domain_b_resize='({shape_a[0]}, "
                      f"{shape_a[1]})'")
  gan.check_doublings(config, len(config.model.conv_features) - 1, "the translators halve the image")
  if config.gan.ema_decay > 0:
    raise ConfigError(f"config.gan.ema_decay={config.gan.ema_decay!r}: cyclegan keeps no moving average of its "
                      "translators: drop it")


registry.register("cyclegan", registry.Variant(
    build_model=build_model, hparams=hparams, evaluate=evaluate, images=images, init=init, train_step=train_step,
    validate=validate, config_fields=fields.add, optimizer=gan.optimizer, second_data=second_data,
    suites={"translation": translation_suite}))
