"""Variants by name. A variant is a model builder plus a few pure functions; the train loop knows no other.

Every function gets the flax `model` and the (static) `config` first, then traced arguments.
`hparams` holds the variant's scalar hyper-parameters (β, noise factor, ...) as arrays carried in
the train state, so runs that differ only in them can later be stacked and vmapped. A variant whose
update is not one gradient step on `loss` (two optimisers, contrastive divergence, competitive
updates) supplies its own `train_step`; the loop calls it the same way, and state such a step carries that is
neither parameters nor optimiser state (persistent Gibbs chains) lives in the train state's `carry`, checkpointed
with the rest.

A family owns its config fields: `config_fields` adds its sections, with their defaults, to a config (the
family's experiment files call it; `aejax.evaluate` reads a saved config over them), and `suites` are the
evaluation suites that only it has, beside the shared ones of aejax/evaluation/suites.py.
"""
import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

import flax.linen as nn
import jax
import optax
from ml_collections import config_dict

from aejax import images
from aejax.errors import ConfigError

# 'image': float32 (B, H, W, C) in [0, 1]; 'label': int32 (B,); 'index': int32 (B,), each example's row in its split;
# for a data set with ground-truth factors (dSprites)
# 'factors': int32 (B, number of factors), their indices; in `train.make_eval_sums`'s batches also 'valid':
# float32 (B,), 1 for an example and 0 for the padding of a last, partial batch (statistics of a batch skip it).
Batch = dict[str, jax.Array]
HParams = dict[str, jax.Array]
Params = Any
Config = config_dict.ConfigDict

# (model, config, params, batch, key, hparams, step) -> (batch-mean loss, scalar metrics)
LossFn = Callable[[nn.Module, Config, Params, Batch, jax.Array, HParams, jax.Array], tuple[jax.Array, dict]]
# (model, config, params, batch, key, hparams) -> {name: (B,) per-example values}
EvalFn = Callable[[nn.Module, Config, Params, Batch, jax.Array, HParams], dict[str, jax.Array]]
# (model, config, params, batch, key, hparams) -> {name: `images.Grid`: (rows, N, H, W, C) images in [0, 1] and the
# rows' labels}
ImagesFn = Callable[[nn.Module, Config, Params, Batch, jax.Array, HParams], dict[str, images.Grid]]
# (model, config, state, batch, key) -> (state, metrics)
TrainStepFn = Callable[[nn.Module, Config, Any, Batch, jax.Array], tuple[Any, dict]]
# (model, config, key, example images) -> the train state's initial `carry` (any pytree of arrays)
CarryFn = Callable[[nn.Module, Config, jax.Array, jax.Array], Any]
# (model, config, params, key, labels: int32 (N,)) -> float32 (N, H, W, C) samples in [0, 1]; a conditional model
# draws sample i of class labels[i], an unconditional one reads only their number.
SampleFn = Callable[[nn.Module, Config, Params, jax.Array, jax.Array], jax.Array]
# (model, config, state, the train split) -> state: what a variant refreshes from the whole train split between steps
# (DEC's target distribution), run by the loop before each step whose number `Variant.refresh_every` divides.
RefreshFn = Callable[[nn.Module, Config, Any, Any], Any]
# (config, the shared optimiser of a config: `train.make_optimizer`) -> the run's optimiser
OptimizerFn = Callable[[Config, Callable[[Config], optax.GradientTransformation]], optax.GradientTransformation]
# (restored run: `aejax.evaluation.suites.Run`) -> ({name: number}, {name: `images.Grid`})
SuiteFn = Callable[[Any], tuple[dict[str, float], dict[str, images.Grid]]]


def no_checks(config: Config) -> None:
  """The default `Variant.validate`: nothing beyond the shared checks."""
  del config


def no_carry(model: nn.Module, config: Config, key: jax.Array, example: jax.Array) -> dict:
  """The default `Variant.carry`: a step that carries nothing beyond parameters and optimiser state."""
  del model, config, key, example
  return {}


def no_fields(config: Config) -> Config:
  """The default `Variant.config_fields`: the variant reads only the shared fields of `aejax.config`."""
  return config


def default_init(model: nn.Module, key: jax.Array, x: jax.Array) -> Params:
  """The default `Variant.init`: `model.init` on an example batch of images."""
  return model.init(key, x)


@dataclasses.dataclass(frozen=True)
class Variant:
  """What the train loop needs of a variant."""
  build_model: Callable[[Config, tuple[int, ...]], nn.Module]
  hparams: Callable[[Config], dict[str, float]]
  evaluate: EvalFn
  images: ImagesFn
  loss: LossFn | None = None  # What the shared gradient step descends; None where `train_step` needs none.
  init: Callable[[nn.Module, jax.Array, jax.Array], Params] = default_init
  train_step: TrainStepFn | None = None  # None: one optimiser step on `loss`.
  validate: Callable[[Config], None] = no_checks  # Variant-specific config checks.
  carry: CarryFn = no_carry  # The initial `TrainState.carry` of a `train_step` that carries state.
  config_fields: Callable[[Config], Config] = no_fields  # Adds the family's config sections, with defaults.
  suites: Mapping[str, SuiteFn] = dataclasses.field(default_factory=dict)  # Evaluation suites of its own.
  sample: SampleFn | None = None  # A generative variant's draws from its model (the samples suite scores them).
  # None: `train.make_optimizer(config)`. Players of their own (a GAN's generator and discriminator) build theirs from
  # it, e.g. one per player through `optax.transforms.partition`; a bundle member's rate scales what it returns.
  optimizer: OptimizerFn | None = None
  # A variant of two domains (CycleGAN): the `config.data` of the second, whose images each batch also holds
  # ('other_image', 'other_label'; `aejax.data.input_pipeline.make_batch`). None: one domain.
  second_data: Callable[[Config], Config] | None = None
  conditional: bool = False  # Whether `sample` draws the class it is given (the samples suite scores its accuracy).
  # A step that needs the whole train split now and then (DEC's target distribution over every example) refreshes
  # its carry from it: `refresh` runs before the steps whose number `refresh_every(config)` divides (step 0 too),
  # its result checkpointed with the state, so that resume replays it. None: nothing to refresh.
  refresh: RefreshFn | None = None
  refresh_every: Callable[[Config], int] = lambda config: 0
  # Whether `build_model` draws from `config.seed` (DEC's k-means start): a bundle builds one model for all its
  # members, so they may not differ in seed.
  model_uses_seed: bool = False
  # A learner with a stopping rule of its own (DEC: the assignments settled) says from its train state whether it has
  # met it, as a boolean scalar. The loop looks at the steps it logs: once every live member has, the run ends there
  # (evaluated and checkpointed at that step), its summary says `converged`, and a rerun or a launcher counts it as
  # finished (`writers.is_finished`). None: runs end at num_steps.
  converged: Callable[[Any], jax.Array] | None = None


_REGISTRY: dict[str, Variant] = {}


def register(name: str, variant: Variant) -> None:
  """Makes `variant` available as `config.variant = name`."""
  if name in _REGISTRY:
    raise ValueError(f"variant {name!r} is registered twice")
  if variant.loss is None and variant.train_step is None:
    raise ValueError(f"variant {name!r} needs a loss for the shared gradient step, or its own train_step")
  _REGISTRY[name] = variant


def names() -> list[str]:
  return sorted(_REGISTRY)


def get(name: str) -> Variant:
  """The variant registered as `name`, or a `ConfigError` listing the known ones."""
  if name not in _REGISTRY:
    raise ConfigError(f"config.variant={name!r} is not a known variant: use one of {', '.join(names())}")
  return _REGISTRY[name]
