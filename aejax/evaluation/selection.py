"""Which evaluation suites (`aejax.evaluate`) fit a run, known from its config alone, so that a run checks its
`eval.suites` before training rather than failing once training is done."""
from collections.abc import Sequence

import flax.linen as nn
from ml_collections import config_dict

import aejax.variants.all  # noqa: F401  (registers the variants)
from aejax import config as config_lib, registry
from aejax.data import catalog
from aejax.errors import ConfigError
from aejax.nn import models


def is_vae(model: nn.Module) -> bool:
  """Whether `model` has a VAE's Gaussian posterior (the generate and nll suites need one)."""
  return isinstance(model, models.GaussianAutoEncoder)


def known() -> tuple[str, ...]:
  """Every suite's name: the shared ones (aejax/evaluation/suites.py), then those variants bring
  (`registry.Variant.suites`)."""
  own = sorted({name for variant in registry.names() for name in registry.get(variant).suites})
  return config_lib.EVAL_SUITES + tuple(own)


def check_known(names: Sequence[str], field: str) -> None:
  """A `ConfigError` naming `field` if one of `names` is no suite at all."""
  unknown = [name for name in names if name not in known()]
  if unknown:
    raise ConfigError(f"{field}: suite {unknown[0]!r} is not known: use any of {', '.join(known())}")


def select(config: config_dict.ConfigDict, names: Sequence[str] | None) -> tuple[str, ...]:
  """The suites to run on the run of `config` (already validated): `names`, or all that fit it when None.

  Raises `ConfigError` if one of `names` does not fit, or the run's model has no encoder and decoder for a shared
  suite to evaluate.
  """
  variant = registry.get(config.variant)
  if names is not None:
    check_known(names, f"config.eval.suites={tuple(names)!r}")
    for name in names:
      if name not in config_lib.EVAL_SUITES and name not in variant.suites:
        owners = ", ".join(v for v in registry.names() if name in registry.get(v).suites)
        raise ConfigError(f"suite {name!r} is for {owners} runs, not config.variant={config.variant!r}: drop it from "
                          "--suite (or config.eval.suites)")
  own = [name for name in (variant.suites if names is None else names) if name in variant.suites]
  reasons = {name: _own_suite_misfit(config, variant, name) for name in own}
  if names is not None and any(reasons.values()):
    raise ConfigError(next(reason for reason in reasons.values() if reason))
  own = [name for name in own if not reasons[name]]
  shared = [name for name in (config_lib.EVAL_SUITES if names is None else names) if name in config_lib.EVAL_SUITES]
  samples = _samples_suite(config, variant, shared, names is None)
  rest = [name for name in shared if name != "samples"]
  return (*_shared_suites(config, variant, rest, names is None, [*samples, *own]), *samples, *own)


def _samples_suite(config: config_dict.ConfigDict, variant: registry.Variant, names: Sequence[str],
                   all_that_fit: bool) -> list[str]:
  """['samples'] if `names` has it and it fits the run, [] if not (`all_that_fit`) or a `ConfigError` saying why:
  it scores what the variant's `sample` draws, and the family's `validate` may say more (as for its own suites)."""
  if "samples" not in names:
    return []
  if variant.sample is None:
    reason = (f"suite 'samples' scores a generative model's samples, and config.variant={config.variant!r} draws "
              f"none: drop it from --suite (or config.eval.suites), or evaluate a run of "
              f"{', '.join(v for v in registry.names() if registry.get(v).sample is not None)}")
  else:
    reason = _own_suite_misfit(config, variant, "samples")
  if reason and not all_that_fit:
    raise ConfigError(reason)
  return [] if reason else ["samples"]


def _own_suite_misfit(config: config_dict.ConfigDict, variant: registry.Variant, name: str) -> str | None:
  """Why the variant's own suite `name` does not fit the run, None if it does: a family says what its suites need
  in its `validate`, run here as if `eval.suites` named only this one."""
  trial = config.copy_and_resolve_references()
  trial.eval.suites = (name,)
  try:
    variant.validate(trial)
  except ConfigError as e:
    return str(e)
  return None


def _shared_suites(config: config_dict.ConfigDict, variant: registry.Variant, names: Sequence[str],
                   all_that_fit: bool, own: Sequence[str]) -> list[str]:
  """Those of the shared suites `names` that fit the run (`all_that_fit`), or `names` once each is known to fit
  (`own`: the variant's own suites that fit it, named in the error of a model without an encoder)."""
  if not names:
    return []
  if catalog.is_ratings(config.data.name):  # The shared suites score images.
    if all_that_fit:
      return []
    raise ConfigError(f"suite {names[0]!r} scores images, and {config.data.name} holds ratings: use "
                      f"{', '.join(variant.suites)}")
  shape = catalog.image_shape(config.data.name, config.data.resize)
  model = variant.build_model(config, shape)
  missing = [method for method in ("encode", "decode") if not hasattr(model, method)]
  if missing and all_that_fit:
    return []
  if missing:
    instead = f": use {', '.join(own)}" if own else ""
    raise ConfigError(f"config.variant={config.variant!r}: its model has no {missing[0]}(), which suite "
                      f"{names[0]!r} needs{instead}")
  vae = is_vae(model)
  one_class = bool(tuple(config.data.train_labels))
  if all_that_fit:
    fits = {"recon": True, "anomaly": one_class, "denoise": config.variant == "dae", "impute": True,
            "generate": vae, "nll": vae, "disentanglement": _disentanglement_misfit(config) is None}
    names = [name for name in names if fits[name]]
  if "disentanglement" in names and _disentanglement_misfit(config):
    raise ConfigError(_disentanglement_misfit(config))
  for name in names:
    if name in ("generate", "nll") and not vae:
      raise ConfigError(f"suite {name!r} needs a VAE, not config.variant={config.variant!r}: "
                        "drop it from --suite (or config.eval.suites) or evaluate a vae/beta_vae run")
    if name == "anomaly" and not one_class:
      raise ConfigError("suite 'anomaly' needs a one-class run: train with --config.data.train_labels='(3,)' "
                        "(the normal digits)")
  height, width = shape[:2]
  if "impute" in names and config.eval.block_size > min(height, width):
    raise ConfigError(f"config.eval.block_size={config.eval.block_size}: the imputation block must fit in the "
                      f"{height}x{width} images; use at most {min(height, width)}")
  return list(names)


def _disentanglement_misfit(config: config_dict.ConfigDict) -> str | None:
  """Why the disentanglement suite cannot score the run of `config`, None if it can: it needs a data set with
  ground-truth factors whose images aejax can draw for any of their combinations (one it renders), and a flat code
  with a unit for each factor (MIG, SAP and the FactorVAE score rank units against each)."""
  from aejax.evaluation import disentanglement  # pylint: disable=g-import-not-at-top  (scikit-learn, when used)
  dataset = catalog.get(config.data.name)
  try:
    disentanglement.require_factors(dataset.factor_sizes, config.data.name)
    disentanglement.require_units(config.latent_dim, len(dataset.factor_sizes),
                                  "the disentanglement suite (MIG, SAP, FactorVAE)")
  except ConfigError as e:
    return str(e)
  if dataset.source != catalog.RENDER:
    return (f"config.data.name={config.data.name!r}: aejax draws no images of chosen factors for it, which the "
            "disentanglement metrics need: score a run of a data set it renders (dsprites)")
  if config.model.spatial_code:
    return ("config.model.spatial_code=True: the disentanglement metrics score a flat code's units: train with "
            "--config.model.spatial_code=False to score it")
  return None
