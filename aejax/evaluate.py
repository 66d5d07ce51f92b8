"""The evaluation suite: what a trained autoencoder is for, measured from its latest checkpoint.

    python -m aejax.evaluate --workdir RUN [--suite recon,anomaly,denoise,impute,generate,nll,samples,ais]
                             [--nll_samples K]

The shared suites (recon, anomaly, denoise, impute, generate, nll, samples) are in aejax/evaluation/suites.py; a
family brings its own (`registry.Variant.suites`: the RBM's and DBN's ais). Without `--suite`, every suite that fits the
run runs. Results go to RUN/eval.json, one row of metrics.jsonl at the checkpoint's step, RUN/images/eval_*.png,
and the W&B run's summary when the run used W&B.
"""
import contextlib
import json
import pathlib
import sys
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
from absl import app, flags
from ml_collections import config_dict

from aejax import checkpoint, config as config_lib, locks, registry, signals, train, writers
from aejax.data import input_pipeline
from aejax.errors import ConfigError
from aejax.evaluation import selection, suites as suites_lib


def load_config(workdir: pathlib.Path) -> config_dict.ConfigDict:
  """The run's `config.json` over today's defaults (its variant's family's sections included), so that fields added
  since the run was trained have values."""
  path = workdir / "config.json"
  if not path.is_file():
    raise ConfigError(f"--workdir={str(workdir)!r} has no config.json: point it at a run's folder "
                      "(the --workdir of `python -m aejax.main`)")

  def merge(base: config_dict.ConfigDict, saved: dict) -> None:
    for name, value in saved.items():
      if isinstance(value, dict) and isinstance(base.get(name), config_dict.ConfigDict):
        merge(base[name], value)
      else:
        base[name] = tuple(value) if isinstance(value, list) else value

  saved = json.loads(path.read_text())
  config = config_lib.base_config()
  if saved.get("variant") in registry.names():  # Else `train.check_config` names the unknown variant.
    config = registry.get(saved["variant"]).config_fields(config)
  merge(config, saved)
  return config


def restore_state(workdir: pathlib.Path, config: config_dict.ConfigDict,
                  input_shape: tuple[int, ...]) -> tuple[registry.Variant, Any, train.TrainState]:
  """The variant, model and train state of the run in `workdir` at its latest checkpoint, for inputs of
  `input_shape` (one example's)."""
  variant = registry.get(config.variant)
  model = variant.build_model(config, input_shape)
  example = jnp.zeros((1, *input_shape), jnp.float32)
  state = train.init_state(variant, model, config, jax.random.key(config.seed), example)
  ckpts = checkpoint.Checkpoints(workdir, config.keep_checkpoints, read_only=True)
  try:
    if ckpts.latest_step is None:
      raise ConfigError(f"--workdir={str(workdir)!r} has no checkpoint yet: train it first with "
                        f"python -m aejax.main --workdir {workdir} --config ...")
    state = ckpts.restore_latest(state)  # Skips damaged steps with one line; moves nothing (read-only).
  except checkpoint.OtherModel as e:
    raise ConfigError(f"--workdir={str(workdir)!r} holds checkpoints of another model than its config describes: "
                      "evaluate it with the config it was trained with") from e
  finally:
    ckpts.close()
  return variant, model, state


def restore(workdir: str | pathlib.Path, config: config_dict.ConfigDict | None = None) -> suites_lib.Run:
  """The run in `workdir` at its latest checkpoint (its own config.json, or `config` after `train.check_config`)."""
  workdir = pathlib.Path(workdir)
  config = load_config(workdir) if config is None else config
  train_split, test_split = input_pipeline.load(config.data)
  variant, model, state = restore_state(workdir, config, test_split.image_shape)
  num_train = min(config.eval.num_train, train_split.size)
  binarize = config.data.binarize == "dynamic"  # Static runs were binarised on loading; the test split always is.
  train_batch = input_pipeline.make_batch(train_split, jnp.arange(num_train), jax.random.key(config.seed), binarize)
  test_batch = input_pipeline.make_batch(test_split, jnp.arange(test_split.size), jax.random.key(0), False)
  train_batch, test_batch = jax.device_get((train_batch, test_batch))
  inputs = "ratings" if test_split.is_ratings else "image"  # A ratings run's rows of ratings.
  return suites_lib.Run(config, variant, model, state, int(state.step), train_batch[inputs], train_batch["label"],
                        test_batch[inputs], test_batch["label"])


def evaluate_run(workdir: str | pathlib.Path, suites: Sequence[str] | None = None,
                 nll_samples: int | None = None, beside_training: bool = False) -> dict[str, Any]:
  """Runs `suites` (None: those that fit) on the run in `workdir`; writes eval.json and pictures, and appends its
  metrics to the run's metrics.jsonl and W&B run unless `beside_training` (the run still trains: its files are
  the trainer's alone)."""
  selection.check_known(suites or (), f"--suite={','.join(suites or ())}")
  workdir = pathlib.Path(workdir)
  config = load_config(workdir)
  if nll_samples is not None:
    config.eval.nll_samples = nll_samples
  train.check_config(config)
  chosen = selection.select(config, suites)
  run = restore(workdir, config)
  results, pictures = {}, {}
  for name in chosen:
    suite_metrics, suite_pictures = {**suites_lib.SUITES, **run.variant.suites}[name](run)
    results.update(suite_metrics)
    pictures.update(suite_pictures)
  writer = writers.MetricWriter(workdir, config, start_step=None, rows=not beside_training)
  try:
    writer.write_scalars(run.step, results)
    paths = writer.write_images(run.step, pictures)
    report = {"step": run.step, "suites": list(chosen), **results, **{f"image/{k}": str(p) for k, p in paths.items()}}
    newer = writers.report_step(workdir / "eval.json")
    if newer is None or newer <= run.step:  # Beside training, the trainer may have evaluated a newer step since.
      writer.write_summary(report, "eval.json")  # The run's own summary.json stays as training left it.
  finally:
    writer.close()
  return report


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  if not _WORKDIR.value:
    sys.exit("aejax.evaluate: error: --workdir is required: the folder of a trained run, e.g. --workdir runs/vae")
  suites = tuple(s.strip() for s in _SUITE.value.split(",")) if _SUITE.value else None
  workdir = pathlib.Path(_WORKDIR.value)
  try:
    with locks.lock(workdir, patience_s=0.2) if workdir.is_dir() else contextlib.nullcontext(0) as held:
      if held is None:
        print(f"aejax.evaluate: {workdir} is still training: its latest checkpoint is evaluated into eval.json and "
              "images/, its metrics.jsonl and W&B run are left to the trainer", file=sys.stderr, flush=True)
      report = evaluate_run(workdir, suites, _NLL_SAMPLES.value, beside_training=held is None)
  except ConfigError as e:
    sys.exit(f"aejax.evaluate: error: {e}")
  print(writers.format_report("aejax.evaluate: finished", report))


if __name__ == "__main__":
  # Flags are defined only when run as a program, so that aejax.main can import this module beside its own.
  _WORKDIR = flags.DEFINE_string("workdir", None, "The folder of a trained run (its config.json and checkpoints).")
  _SUITE = flags.DEFINE_string("suite", None, f"Comma-separated suites among {','.join(selection.known())}; "
                               "default: those that fit the run.")
  _NLL_SAMPLES = flags.DEFINE_integer("nll_samples", None, "Importance samples per image for the nll suite "
                                      "(default: the run's config.eval.nll_samples).")
  signals.install("aejax.evaluate")
  with signals.exit_on_signals("aejax.evaluate", rerun="to evaluate again"):
    app.run(main, flags_parser=config_lib.flags_parser(
        "aejax.evaluate", example="python -m aejax.evaluate --workdir runs/vae_smoke --suite recon,nll "
        "--nll_samples 100"))
