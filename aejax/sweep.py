"""Sweeps defined next to the config: each member is a dict of config overrides, named by a readable run id.

An experiment file may define `get_sweep()` from these helpers, e.g. β × seed in experiments/beta_vae.py:

    def get_sweep():
      return sweep_lib.product(sweep_lib.sweep("beta", [1, 2, 4, 8, 16]), sweep_lib.sweep("seed", [0, 1, 2]))

Fields are dotted paths into the config ("model.encoder_widths"). The launchers in `launch/` run the
members, each in its own workdir `<root>/<run id>`. An optional `get_curves()` beside it names the curves
(`aejax.curves`) the launchers draw when every member has finished: (swept field, [metrics]) pairs, e.g.

    def get_curves():
      return [("beta", ["test/recon_error", "test/kl"])]
"""
import itertools
import re
import runpy
from collections.abc import Iterable, Sequence
from typing import Any

from ml_collections import config_dict

from aejax import config as config_lib
from aejax.errors import ConfigError

Overrides = dict[str, Any]
Curve = tuple[str, list[str]]  # (swept field, metrics): one picture of `aejax.curves`.


def sweep(field: str, values: Iterable[Any]) -> list[Overrides]:
  """One member per value of `field`."""
  return [{field: v} for v in values]


def _merge(members: Sequence[Overrides]) -> Overrides:
  merged = {}
  for member in members:
    shared = merged.keys() & member.keys()
    if shared:
      raise ConfigError(f"sweep field {sorted(shared)[0]!r} is set by two factors of one product or zipit: "
                        "sweep each field in one place")
    merged.update(member)
  return merged


def product(*sweeps: Sequence[Overrides]) -> list[Overrides]:
  """Every combination of the sweeps' members; the last sweep varies fastest."""
  return [_merge(combination) for combination in itertools.product(*sweeps)]


def zipit(*sweeps: Sequence[Overrides]) -> list[Overrides]:
  """The k-th members of all sweeps joined into one; the sweeps must have equal lengths."""
  lengths = [len(s) for s in sweeps]
  if len(set(lengths)) > 1:
    raise ConfigError(f"zipit needs sweeps of equal lengths, got {lengths}: use product to combine them instead")
  return [_merge(members) for members in zip(*sweeps)]


def chain(*sweeps: Sequence[Overrides]) -> list[Overrides]:
  """The members of each sweep, one sweep after another."""
  return [member for s in sweeps for member in s]


def _text(value: Any) -> str:
  if isinstance(value, float) and value.is_integer():
    return str(int(value))  # 4.0 and 4 name the same run.
  if isinstance(value, (tuple, list)):
    return "x".join(_text(v) for v in value)
  return str(value)


def run_id(overrides: Overrides) -> str:
  """A stable, readable name safe in file names: {'beta': 4, 'seed': 1} -> 'beta4-seed1'; {} -> 'base'."""
  if not overrides:
    return "base"
  return "-".join(re.sub(r"[^A-Za-z0-9._+]", "_", f"{field}{_text(value)}") for field, value in overrides.items())


def override(config: config_dict.ConfigDict, overrides: Overrides) -> config_dict.ConfigDict:
  """A copy of `config` with `overrides` set; an unknown field or a value of the wrong type is a ConfigError."""
  config = config.copy_and_resolve_references()
  for field, value in overrides.items():
    *parents, leaf = field.split(".")
    node = config
    for part in parents:
      node = node.get(part)
      if not isinstance(node, config_dict.ConfigDict):
        break
    if not isinstance(node, config_dict.ConfigDict) or leaf not in node:
      raise ConfigError(f"sweep field {field!r} is not a config field: check its spelling against aejax/config.py "
                        "(nested fields are dotted, e.g. 'model.encoder_widths')")
    try:
      node[leaf] = value
    except TypeError as e:
      raise ConfigError(f"sweep value {field}={value!r} does not fit the field: {e}") from e
  return config


def load(spec: str, config: config_dict.ConfigDict | None = None) -> dict[str, Overrides]:
  """The members of the config file's `get_sweep()`, by run id, each checked against `config` and validated.

  `spec` is 'experiments/x.py' or 'experiments/x.py:smoke'; `config` defaults to the config it gives.
  """
  if config is None:
    config = config_lib.from_file(spec)
  path = spec.partition(":")[0]
  get_sweep = runpy.run_path(path).get("get_sweep")
  if get_sweep is None:
    raise ConfigError(f"{path} defines no sweep: add get_sweep() returning e.g. "
                      "sweep_lib.sweep('seed', [0, 1, 2]) (see experiments/beta_vae.py)")
  try:
    sweep_members = list(get_sweep())
  except Exception as e:  # pylint: disable=broad-except  (named by config_file_error, or raised as it is)
    message = config_lib.config_file_error(spec, e)
    if message is None:
      raise
    raise ConfigError(message) from e
  from aejax import train  # pylint: disable=g-import-not-at-top  (JAX and the variants; slow for --help)
  members = {}
  for overrides in sweep_members:
    name = run_id(overrides)
    if name in members:
      raise ConfigError(f"{path}: get_sweep() members {members[name]} and {overrides} share the run id {name!r}: "
                        "make their values differ")
    try:
      train.check_config(override(config, overrides))
    except ConfigError as e:
      raise ConfigError(f"{path}: sweep member {name}: {e}") from e
    members[name] = overrides
  if not members:
    raise ConfigError(f"{path}: get_sweep() returned no members: give it at least one value to sweep")
  return members


def _is_curve(value: Any) -> bool:
  return (isinstance(value, (tuple, list)) and len(value) == 2 and isinstance(value[0], str) and bool(value[0])
          and isinstance(value[1], (tuple, list)) and bool(value[1])
          and all(isinstance(y, str) and y for y in value[1]))


def load_curves(spec: str) -> list[Curve]:
  """The (x, [ys]) pairs of the config file's `get_curves()`, [] when it has none; a malformed value is a ConfigError.

  `spec` is 'experiments/x.py' or 'experiments/x.py:smoke'.
  """
  path = spec.partition(":")[0]
  get_curves = runpy.run_path(path).get("get_curves")
  if get_curves is None:
    return []
  curves = get_curves()
  if not isinstance(curves, (tuple, list)) or not all(map(_is_curve, curves)):
    raise ConfigError(f"{path}: get_curves() returned {curves!r}: return a list of (x, [metrics]) pairs, e.g. "
                      "[('beta', ['test/recon_error', 'test/kl'])]")
  return [(x, list(ys)) for x, ys in curves]
