"""`gan` (MLP players), `dcgan` (DCGAN's convolutional players), `stylegan` (a style-based generator against DCGAN's
discriminator) and `cgan` (class-conditional, MLP or conv players as `model.kind` says): two players trained against
each other through the one train loop.

Each step of the loop is `gan.d_steps` discriminator updates, each against fresh generated images and the step's
real batch, then one generator update against the updated discriminator. Each player has its own optimiser (the
run's, at its own learning rate: `optimizer`), and both live in the one train state: parameters
`{'params': {'generator': ..., 'discriminator': ...}}` and, with `gan.ema_decay` > 0, `'ema'`, the generator's
moving average, which samples, pictures and evaluation then use. Checkpoints, resume, bundles and launchers see
one state like any other.

Images are scaled to [-1, 1] for the players (the generator's tanh range) and back to [0, 1] for pictures and
samples. Train metrics: `d_loss` (= `loss`), `g_loss`, `d_real` and `d_fake` (D's mean raw score on real and on
generated images), and `gradient_penalty` / `r1_penalty` where on. Test metrics: the same, on the test images
against as many generated ones.
"""
from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from aejax import registry
from aejax.data import catalog
from aejax.errors import ConfigError
from aejax.registry import Batch, Config, HParams, Params
from aejax.variants import common
from aejax.variants.adversarial import fields, losses, networks


def player_widths(config: Config, conv: bool) -> tuple[tuple[int, ...], tuple[int, ...]]:
  """The discriminator's layers (`model.conv_features` or `model.encoder_widths`) and the generator's (their mirror
  image; an MLP generator's are `model.decoder_widths` where given)."""
  if conv:
    return tuple(config.model.conv_features), tuple(config.model.conv_features)
  widths = tuple(config.model.encoder_widths)
  return widths, tuple(config.model.decoder_widths or reversed(widths))


def make_build_model(players: str | None, conditional: bool):
  """The `build_model` of a GAN variant whose generator is 'mlp' (`gan`'s), 'conv' (`dcgan`'s) or 'style'
  (`stylegan`'s); None: as `model.kind` says (`cgan`)."""

  def build_model(config: Config, input_shape: tuple[int, ...]) -> networks.GAN:
    kind = players or config.model.kind
    is_conv = kind != "mlp"
    d_widths, g_widths = player_widths(config, is_conv)
    classes = catalog.get(config.data.name).num_classes if conditional else 0
    if kind == "style":
      generator = networks.StyleGenerator(g_widths, tuple(input_shape), config.gan.mapping_layers,
                                          config.gan.style_mixing)
    elif kind == "conv":
      generator = networks.ConvGenerator(g_widths, tuple(input_shape), classes)
    else:
      generator = networks.MLPGenerator(g_widths, tuple(input_shape), classes)
    discriminator = networks.Discriminator(d_widths, is_conv, config.gan.leaky_slope, classes, config.gan.conditioning)
    return networks.GAN(generator, discriminator, config.latent_dim, config.gan.ema_decay > 0, classes)

  return build_model


def hparams(config: Config) -> dict[str, float]:
  del config
  return {}


def init(model: networks.GAN, key: jax.Array, x: jax.Array) -> Params:
  """Both players' parameters, and for a model that keeps one, a copy of the generator's to average."""
  params = model.init({"params": key, "noise": jax.random.fold_in(key, 1)}, x, jnp.zeros(len(x), jnp.int32))
  return {**params, "ema": params["params"]["generator"]} if model.ema else params


def labels_of(model: networks.GAN, batch: Batch) -> jax.Array | None:
  """The batch's classes for a conditional model; None for an unconditional one."""
  return batch["label"] if model.num_classes else None


def generate(model: networks.GAN, generator: Params, z: jax.Array, labels: jax.Array | None, key: jax.Array,
             train: bool = False) -> jax.Array:
  """Images in [-1, 1] of the generator's parameters `generator`; `key` draws what a generator draws beside z
  (StyleGAN's per-pixel noise and, in training, its mixed styles)."""
  return model.apply({"params": {"generator": generator}}, z, labels, train, method=model.generate,
                     rngs={"noise": key})


def sampling_generator(params: Params) -> Params:
  """The generator that samples: its moving average where kept, else its weights."""
  return params["ema"] if "ema" in params else params["params"]["generator"]


def optimizer(config: Config, make: Callable[[Config], optax.GradientTransformation]) -> optax.GradientTransformation:
  """The run's optimiser for each player, the discriminator's at `gan.d_rate_scale` times the learning rate and its
  schedule stretched over its `gan.d_steps` updates per step; nothing for the moving average."""
  d_config = config.copy_and_resolve_references()
  d_config.learning_rate = config.learning_rate * config.gan.d_rate_scale
  d_config.num_steps = config.num_steps * config.gan.d_steps
  d_config.warmup_steps = config.warmup_steps * config.gan.d_steps
  return players_optimizer(make(config), make(d_config))


def players_optimizer(generator: optax.GradientTransformation, discriminator: optax.GradientTransformation,
                      player_of: Callable[[str], str] = lambda module: module) -> optax.GradientTransformation:
  """`generator` for the parameters of the 'generator' player, `discriminator` for those of the 'discriminator', and
  nothing for collections beside 'params' (a moving average). `player_of` names the player of each top-level module
  of `params['params']`: a GAN's modules are its players."""

  def labels(params: Params) -> Params:
    return {**{k: jax.tree.map(lambda _: "frozen", v) for k, v in params.items() if k != "params"},
            "params": {m: jax.tree.map(lambda _, p=player_of(m): p, v) for m, v in params["params"].items()}}

  return optax.transforms.partition(
      {"generator": generator, "discriminator": discriminator, "frozen": optax.set_to_zero()}, labels)


def update_modules(state: Any, player: str, grads: dict[str, Params]) -> Any:
  """`state` after one optimiser update of `player`, whose top-level modules' gradients `grads` holds ({module:
  gradients}); the other player's parameters and optimiser state unchanged (the update computed for its zero
  gradients is discarded, and XLA drops it)."""
  full = jax.tree.map(jnp.zeros_like, state.params)
  full["params"] = {**full["params"], **grads}
  updates, opt_state = state.tx.update(full, state.opt_state, state.params)
  moved = optax.apply_updates(state.params, updates)
  params = {**state.params, "params": {**state.params["params"], **{m: moved["params"][m] for m in grads}}}
  inner = {**state.opt_state.inner_states, player: opt_state.inner_states[player]}
  return state.replace(params=params, opt_state=opt_state._replace(inner_states=inner))


def update_player(state: Any, player: str, grads: Params) -> Any:
  """`state` after one optimiser update of `player`'s parameters (the module of its name) by `grads`."""
  return update_modules(state, player, {player: grads})


def scorer(model: nn.Module, discriminator: Params, labels: jax.Array | None = None,
           method: str = "discriminate") -> Callable[[jax.Array], jax.Array]:
  """`x -> d(x)`: the raw scores of the discriminator (of the model's method `method`) with parameters
  `discriminator`, of images of classes `labels`."""
  return lambda x: model.apply({"params": {"discriminator": discriminator}}, x, labels, method=method)


def discriminator_terms(config: Config, score: Callable[[jax.Array], jax.Array], real: jax.Array, fake: jax.Array,
                        key: jax.Array) -> dict[str, jax.Array]:
  """Per example: D's loss with its penalties ('d_loss'), its raw scores `score` of real and generated images, and
  the penalties on their own."""
  d_real, d_fake = score(real), score(fake)
  terms = {"d_loss": losses.discriminator_loss(config.gan.loss, d_real, d_fake), "d_real": d_real, "d_fake": d_fake}
  if config.gan.gp_weight > 0:
    terms["gradient_penalty"] = losses.gradient_penalty(score, real, fake, key)
    terms["d_loss"] = terms["d_loss"] + config.gan.gp_weight * terms["gradient_penalty"]
  if config.gan.r1_weight > 0:
    terms["r1_penalty"] = losses.r1_penalty(score, real)
    terms["d_loss"] = terms["d_loss"] + config.gan.r1_weight / 2 * terms["r1_penalty"]
  return terms


def train_step(model: networks.GAN, config: Config, state: Any, batch: Batch, key: jax.Array) -> tuple[Any, dict]:
  """`gan.d_steps` discriminator updates, then one generator update, then the moving average."""
  real, labels = 2.0 * batch["image"] - 1.0, labels_of(model, batch)
  shape = (len(real), config.latent_dim)
  keys = jax.random.split(key, config.gan.d_steps + 1)
  for d_key in keys[:-1]:  # Unrolled: d_steps is small, and convolutions inside lax.scan are slow on the CPU.
    z_key, noise_key, penalty_key = jax.random.split(d_key, 3)
    fake = generate(model, state.params["params"]["generator"], jax.random.normal(z_key, shape), labels, noise_key,
                    train=True)

    def d_objective(discriminator):
      terms = discriminator_terms(config, scorer(model, discriminator, labels), real, fake, penalty_key)
      return terms["d_loss"].mean(), {k: v.mean() for k, v in terms.items()}

    grads, metrics = jax.grad(d_objective, has_aux=True)(state.params["params"]["discriminator"])
    state = update_player(state, "discriminator", grads)

  z_key, noise_key = jax.random.split(keys[-1])
  z = jax.random.normal(z_key, shape)
  discriminator = state.params["params"]["discriminator"]

  def g_objective(generator):
    d_fake = scorer(model, discriminator, labels)(generate(model, generator, z, labels, noise_key, train=True))
    return losses.generator_loss(config.gan.loss, d_fake).mean()

  g_loss, grads = jax.value_and_grad(g_objective)(state.params["params"]["generator"])
  state = update_player(state, "generator", grads)
  if "ema" in state.params:
    decay = config.gan.ema_decay
    ema = jax.tree.map(lambda a, g: decay * a + (1 - decay) * g, state.params["ema"],
                       state.params["params"]["generator"])
    state = state.replace(params={**state.params, "ema": ema})
  return state.replace(step=state.step + 1), {"loss": metrics["d_loss"], **metrics, "g_loss": g_loss}


def evaluate(model: networks.GAN, config: Config, params: Params, batch: Batch, key: jax.Array,
             hp: HParams) -> dict[str, jax.Array]:
  """Per test example: `discriminator_terms` against a generated image of the same class, and G's loss on it."""
  del hp
  real, labels = 2.0 * batch["image"] - 1.0, labels_of(model, batch)
  z_key, noise_key, penalty_key = jax.random.split(key, 3)
  fake = generate(model, sampling_generator(params), jax.random.normal(z_key, (len(real), config.latent_dim)), labels,
                  noise_key)
  terms = discriminator_terms(config, scorer(model, params["params"]["discriminator"], labels), real, fake,
                              penalty_key)
  return {**terms, "g_loss": losses.generator_loss(config.gan.loss, terms["d_fake"])}


def sample(model: networks.GAN, config: Config, params: Params, key: jax.Array, labels: jax.Array) -> jax.Array:
  """Images in [0, 1] of classes `labels` (an unconditional model reads their number), generated in batches of
  `eval_batch_size`: DCGAN's batch norm normalises each batch by its own statistics, so its samples (and the
  samples suite's figures) depend a little on that size, as they would in training on `batch_size`."""
  n = len(labels)
  size = min(config.eval_batch_size, n)
  chunks = -(-n // size)
  labels = jnp.pad(labels, (0, chunks * size - n)).reshape(chunks, size)
  keys = jax.random.split(key, chunks)
  generator = sampling_generator(params)

  def draw(args):
    key, y = args
    z_key, noise_key = jax.random.split(key)
    return generate(model, generator, jax.random.normal(z_key, (size, config.latent_dim)),
                    y if model.num_classes else None, noise_key)

  out = jax.lax.map(draw, (keys, labels))
  return (out.reshape(chunks * size, *out.shape[2:])[:n] + 1.0) / 2.0


def images(model: networks.GAN, config: Config, params: Params, batch: Batch, key: jax.Array,
           hp: HParams) -> dict:
  """Test images beside samples, drawn as one batch: rows of fresh noise, or one row per class for a conditional
  model."""
  del hp
  n = config.num_images
  if model.num_classes:
    names = [f"class {c}" for c in range(model.num_classes)]
  else:
    names = [f"samples {r + 1}" for r in range(max(n - 1, 1))]
  labels = jnp.repeat(jnp.arange(len(names), dtype=jnp.int32), n)
  drawn = sample(model, config, params, key, labels).reshape(len(names), n, *batch["image"].shape[1:])
  return {"samples": common.image_grid({"test images": batch["image"], **dict(zip(names, drawn))}, n=n)}


def check_doublings(config: Config, times: int, what: str) -> None:
  """A `ConfigError` unless the images of `config.data` halve (or double up to their size) `times` times."""
  height, width, _ = catalog.image_shape(config.data.name, config.data.resize)
  scale = 2 ** times
  if height % scale or width % scale:
    raise ConfigError(f"config.model.conv_features={tuple(config.model.conv_features)!r}: {what} {times} times, "
                      f"and {height}×{width} images are not a multiple of {scale} on each side: use fewer "
                      "conv_features")


def make_validate(players: str | None, conditional: bool):
  """The checks of a GAN variant: the family's fields, the players' kind, and classes for a conditional one."""

  def validate(config: Config) -> None:
    fields.validate(config)
    if conditional and catalog.get(config.data.name).num_classes < 2:
      raise ConfigError(f"config.data.name={config.data.name!r} has no classes to condition on: use an "
                        "unconditional variant (gan, dcgan, stylegan), or a labelled data set such as mnist")
    if players is None and config.model.kind not in ("mlp", "conv"):
      raise ConfigError(f"config.model.kind={config.model.kind!r}: cgan's players are MLPs or DCGAN's convolutional "
                        "nets: use --config.model.kind=mlp or conv")
    if config.model.kind == "conv":
      check_doublings(config, len(config.model.conv_features), "the generator doubles its map")
    if players is not None and config.model.kind != ("mlp" if players == "mlp" else "conv"):
      raise ConfigError(f"config.model.kind={config.model.kind!r}: config.variant={config.variant!r} has "
                        f"{'MLP' if players == 'mlp' else 'convolutional'} players: drop --config.model.kind, or use "
                        "cgan, which follows model.kind")

  return validate


def _register(name: str, players: str | None, conditional: bool) -> None:
  registry.register(name, registry.Variant(
      build_model=make_build_model(players, conditional), hparams=hparams, evaluate=evaluate, images=images,
      init=init, train_step=train_step, validate=make_validate(players, conditional), config_fields=fields.add,
      sample=sample, optimizer=optimizer, conditional=conditional))


_register("gan", players="mlp", conditional=False)
_register("dcgan", players="conv", conditional=False)
_register("stylegan", players="style", conditional=False)
_register("cgan", players=None, conditional=True)
