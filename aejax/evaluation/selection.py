"""Which evaluation suites (`aejax.evaluate`) fit a run, known from its config alone, so that a run checks its
`eval.suites` before training rather than failing once training is done."""
from collections.abc import Sequence

import flax.linen as nn
from ml_collections import config_dict

import aejax.variants  # noqa: F401  (registers the variants)
from aejax import config as config_lib, registry
from aejax.errors import ConfigError
from aejax.nn import models


def is_vae(model: nn.Module) -> bool:
  """Whether `model` has a VAE's Gaussian posterior (the generate and nll suites need one)."""
  return isinstance(model, models.GaussianAutoEncoder)


def select(config: config_dict.ConfigDict, names: Sequence[str] | None) -> tuple[str, ...]:
  """The suites to run on the run of `config` (already validated): `names`, or all that fit it when None.

  Raises `ConfigError` if the run's model has no encoder and decoder to evaluate, or one of `names` does not fit.
  """
  model = registry.get(config.variant).build_model(config, config_lib.IMAGE_SHAPE)
  for method in ("encode", "decode"):
    if not hasattr(model, method):
      raise ConfigError(f"config.variant={config.variant!r}: its model has no {method}(), which the evaluation "
                        "suite needs")
  vae = is_vae(model)
  one_class = bool(tuple(config.data.train_labels))
  if names is None:
    fits = {"recon": True, "anomaly": one_class, "denoise": config.variant == "dae", "impute": True,
            "generate": vae, "nll": vae}
    names = [name for name in config_lib.EVAL_SUITES if fits[name]]
  for name in names:
    if name in ("generate", "nll") and not vae:
      raise ConfigError(f"suite {name!r} needs a VAE, not config.variant={config.variant!r}: "
                        "drop it from --suite (or config.eval.suites) or evaluate a vae/beta_vae run")
    if name == "anomaly" and not one_class:
      raise ConfigError("suite 'anomaly' needs a one-class run: train with --config.data.train_labels='(3,)' "
                        "(the normal digits)")
  height, width = config_lib.IMAGE_SHAPE[:2]
  if "impute" in names and config.eval.block_size > min(height, width):
    raise ConfigError(f"config.eval.block_size={config.eval.block_size}: the imputation block must fit in the "
                      f"{height}x{width} images; use at most {min(height, width)}")
  return tuple(names)
