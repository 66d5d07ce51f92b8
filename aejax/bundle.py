"""Bundles: sweep members that differ only in scalar hyper-parameters train together as one compiled program.

The members' parameters, optimiser states and hyper-parameters (the variant's `hparams`, the learning
rate, the seed's keys) are stacked on a leading axis and `aejax.train`'s data step is `vmap`ped over them:
one dispatch per step for the whole bundle, which pays off for small nets and on accelerators. Each
member keeps its own workdir, exactly as `train.train_and_evaluate` writes it (config.json, orbax
checkpoints, metrics.jsonl, pictures, W&B run), so a bundle resumes from its members' checkpoints and a
member's files read like those of a single run.

Devices: the stacked members are split over all of this process's devices (`parallel.member_mesh`), the data
replicated, so each device trains its share of whole members with no traffic between devices. A bundle whose
size does not divide by the device count is padded with copies of member 0, dummies whose results are never
read or saved (at most one fewer than the devices, and no slower: the devices work in parallel); an error
would instead make the researcher regroup the sweep. Each checkpoint gathers its member's slice to the host.

Per-member learning rates: the optimiser is built once at rate 1 and each member's updates are scaled
by its rate. Every optimiser and schedule of `train.make_optimizer` is proportional to the rate, so
this is the member's own optimiser, with the same state (checkpoints are interchangeable with single runs).

Command line (what the launchers in `launch/` run for a bundle of sweep members; each member's workdir is
ROOT/<run id>, its overrides those of the config file's `get_sweep()`):

    python -m aejax.bundle --config experiments/beta_vae.py[:smoke] --root ROOT --members ID1,ID2,...
        [--config.FIELD=VALUE ...]

SIGTERM or SIGINT checkpoints every member and exits with 128 + the signal number, as aejax.main does.
"""
import functools
import math
import pathlib
import sys
from collections.abc import Sequence
from typing import Any

from absl import app, flags
from ml_collections import config_dict, config_flags

from aejax import config as config_lib, locks, registry, signals, sweep as sweep_lib, train
from aejax.data import catalog
from aejax.errors import ConfigError

MEMBER_FIELDS = ("seed", "learning_rate", "wandb.name")  # May differ within a bundle, beside the variant's hparams.

# The bundle size the launchers choose (see `auto_size`).
ACCELERATOR_SIZE = 64  # One MNIST model uses a few percent of a GPU; 64 splits over 1, 2, 4, 8... GPUs unpadded.
CPU_SIZE = 4  # dae.py on 2 cores, 4 members: 1.25x and 0.98x back-to-back's samples/s, and 3 start-ups saved.
SMALL_NET_MACS = 250_000  # Multiply-adds per image of a "small" dense net: dae.py's 784-128-64-32 and back, 221k.


def _per_member(config: config_dict.ConfigDict) -> set[str]:
  """The fields in which members of one bundle may differ (not the seed where the model is built from it)."""
  variant = registry.get(config.variant)
  fields = set(MEMBER_FIELDS) - ({"seed"} if variant.model_uses_seed else set())
  return fields | set(variant.hparams(config))


def bundle_key(config: config_dict.ConfigDict) -> tuple[tuple[str, Any], ...]:
  """Equal for configs that can share a bundle (see `check_bundle`): the config without its per-member fields."""
  per_member = _per_member(config)
  flat = config_lib.flatten(config.copy_and_resolve_references())
  return tuple(sorted((field, value) for field, value in flat.items() if field not in per_member))


def _dense_macs(config: config_dict.ConfigDict) -> int:
  """Multiply-adds per image of a dense encoder and decoder (the decoder mirrors the encoder unless given)."""
  if catalog.is_ratings(config.data.name):
    from aejax.variants.recommend import fields  # pylint: disable=g-import-not-at-top  (light: no JAX)
    layers = fields.dense_layers(config)
    return 2 * sum(a * b for a, b in zip(layers, layers[1:]))
  pixels = math.prod(catalog.image_shape(config.data.name, config.data.resize))
  encoder = (pixels, *config.model.encoder_widths, config.latent_dim)
  decoder = (config.latent_dim, *(config.model.decoder_widths or config.model.encoder_widths[::-1]), pixels)
  return sum(a * b for layers in (encoder, decoder) for a, b in zip(layers, layers[1:]))


def auto_size(config: config_dict.ConfigDict, accelerator: bool) -> int:
  """The most members of `config`'s kind to bundle when the launcher chooses: never slower than running them
  back to back.

  1 for variants with their own train step (bundles are measured for one gradient step on a loss). Else on an
  accelerator `ACCELERATOR_SIZE`; on the CPU `CPU_SIZE` for dense nets of at most `SMALL_NET_MACS` multiply-adds
  per image, and 1 for larger or convolutional nets, which already keep the cores busy alone.
  """
  if registry.get(config.variant).train_step is not None:
    return 1
  if accelerator:
    return ACCELERATOR_SIZE
  small = config.model.kind == "mlp" and _dense_macs(config) <= SMALL_NET_MACS
  return CPU_SIZE if small else 1


def check_bundle(configs: Sequence[config_dict.ConfigDict], workdirs: Sequence[str | pathlib.Path]) -> None:
  """A `ConfigError` unless the configs can share one program: they may differ only in the variant's scalar
  hyper-parameters, `learning_rate`, `seed` and `wandb.name`, and each has a workdir of its own."""
  if not configs or len(configs) != len(workdirs):
    raise ConfigError(f"a bundle needs one workdir per config: got {len(configs)} configs and {len(workdirs)} "
                      "workdirs")
  resolved = [pathlib.Path(w).resolve() for w in workdirs]
  if len(set(resolved)) != len(resolved):
    raise ConfigError("two bundle members share a workdir: give each member its own")
  allowed = _per_member(configs[0])
  reference = config_lib.flatten(configs[0])
  for k, config in enumerate(configs[1:], 1):
    flat = config_lib.flatten(config)
    differing = sorted(f for f in reference.keys() | flat.keys()
                       if f not in allowed and reference.get(f) != flat.get(f))
    if differing:
      raise ConfigError(f"bundle member {k} ({workdirs[k]}) differs from member 0 in "
                        f"{', '.join(f'config.{f}' for f in differing)}: within a bundle only "
                        f"{', '.join(sorted(allowed))} may differ; train the others in another bundle")


def train_bundle(configs: Sequence[config_dict.ConfigDict],
                 workdirs: Sequence[str | pathlib.Path]) -> list[dict[str, Any]]:
  """Trains `configs[k]` in `workdirs[k]` for every k as one vmapped program, resuming from the members'
  checkpoints; returns each member's summary, as `train.train_and_evaluate` would (see `train.train_population`)."""
  check_bundle(configs, workdirs)  # Each config's own checks come with training's.
  return train.train_population(list(configs), list(workdirs), stacked=True)


def sweep_members(spec: str, config: config_dict.ConfigDict, run_ids: Sequence[str]) -> list[config_dict.ConfigDict]:
  """The configs of the sweep members `run_ids` of config file `spec` (its `get_sweep()`), from `config`, each
  named by its run id in W&B."""
  members = sweep_lib.load(spec, config)
  unknown = [run_id for run_id in run_ids if run_id not in members]
  if unknown:
    raise ConfigError(f"--members: {', '.join(unknown)} not in {spec.partition(':')[0]}'s get_sweep(), whose run "
                      f"ids are {', '.join(members)}")
  return [sweep_lib.override(config, {**members[run_id], "wandb.name": run_id}) for run_id in run_ids]


def main(argv: list[str], config_flag: flags.FlagHolder, root: flags.FlagHolder, run_ids: flags.FlagHolder) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  if config_flag.value is None or not root.value or not run_ids.value:
    sys.exit("aejax: error: --config, --root and --members are required, e.g. --config experiments/beta_vae.py "
             "--root runs/beta_sweep --members beta1-seed0,beta1-seed1")
  train.configure_jax(config_flag.value.compilation_cache_dir)
  spec = flags.FLAGS["config"].serialize().partition("=")[2]
  workdirs = [pathlib.Path(root.value) / run_id for run_id in run_ids.value]
  try:
    configs = sweep_members(spec, config_flag.value, run_ids.value)
    summaries = train_bundle(configs, workdirs)
  except ConfigError as e:
    sys.exit(f"aejax: error: {e}")
  print("aejax: finished bundle")
  for run_id, summary in zip(run_ids.value, summaries):
    metrics = ", ".join(f"{k} {v:.4f}" for k, v in summary.items() if k.startswith("test/"))
    print(f"  {run_id}  step {summary['step']}  {metrics}", flush=True)
  if config_flag.value.eval.suites:  # As aejax.main: the suites the config names, on each member's last checkpoint.
    from aejax import evaluate  # pylint: disable=g-import-not-at-top  (scikit-learn and friends, only when used)
    for workdir in workdirs:
      try:
        with locks.hold(workdir):  # Still at work there: a launcher must not start it.
          evaluate.evaluate_run(workdir, config_flag.value.eval.suites)
      except ConfigError as e:
        sys.exit(f"aejax: error: {e}")
      print(f"aejax: evaluated {workdir.name}: {workdir / 'eval.json'}", flush=True)


if __name__ == "__main__":
  signals.install("aejax")
  with signals.exit_on_signals("aejax"):
    app.run(functools.partial(
        main,
        config_flag=config_flags.DEFINE_config_file(
            "config", None, "Experiment config file with a get_sweep() (append ':smoke' for tiny members).",
            lock_config=True),
        root=flags.DEFINE_string("root", None, "Sweep folder: member ID trains in ROOT/ID."),
        run_ids=flags.DEFINE_list("members", None, "Run ids of the sweep members to train together.")),
        flags_parser=config_lib.flags_parser(
            "aejax", example="python -m aejax.bundle --config experiments/beta_vae.py:smoke --root runs/beta_smoke "
            "--members beta1-seed0,beta2-seed0"))
