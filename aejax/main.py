"""Trains one run of an experiment config; rerunning the same command resumes it from its latest checkpoint.

    python -m aejax.main --config experiments/vae.py[:smoke] --workdir DIR [--config.FIELD=VALUE ...]

Every field of the config (aejax/config.py, changed by the experiment file) can be overridden with
`--config.FIELD=VALUE`, nested fields dotted (`--config.model.encoder_widths='(256,64)'`). The workdir
receives config.json, checkpoints, metrics.jsonl, images and summary.json.
"""
from aejax import signals  # First: from here on a signal ends the command with one line (aejax/signals.py).

signals.install("aejax")

import os  # noqa: E402
import pathlib  # noqa: E402
import sys  # noqa: E402

from absl import app, flags  # noqa: E402
from ml_collections import config_flags  # noqa: E402

from aejax import config as config_lib  # noqa: E402

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Experiment config file, e.g. experiments/vae.py (append ':smoke' for a run of "
    "seconds); --config.FIELD=VALUE overrides any field.", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Run directory: checkpoints, metrics.jsonl, images. Reused to resume.")


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  import jax  # pylint: disable=g-import-not-at-top  (after flags, so `--help` is fast)
  from aejax import locks, parallel, train, writers  # pylint: disable=g-import-not-at-top
  from aejax.errors import ConfigError  # pylint: disable=g-import-not-at-top
  if _CONFIG.value is None or not _WORKDIR.value:
    sys.exit("aejax: error: --config and --workdir are required, e.g. "
             "--config experiments/vae.py --workdir runs/vae (rerun the same command to resume)")
  train.configure_jax(_CONFIG.value.compilation_cache_dir)
  parallel.initialize_distributed()  # Several processes (SLURM tasks, TPU hosts) train one run together.
  try:
    summary = train.train_and_evaluate(_CONFIG.value, _WORKDIR.value)
  except ConfigError as e:
    sys.exit(f"aejax: error: {e}")
  print(writers.format_report("aejax: finished", summary))
  if _CONFIG.value.eval.suites and jax.process_index() == 0:  # The config's suites, on the last checkpoint.
    from aejax import evaluate  # pylint: disable=g-import-not-at-top  (scikit-learn and friends, only when used)
    try:
      with locks.hold(pathlib.Path(_WORKDIR.value)):  # Still at work there: a launcher must not start it.
        report = evaluate.evaluate_run(_WORKDIR.value, _CONFIG.value.eval.suites)
    except ConfigError as e:
      sys.exit(f"aejax: error: {e}")
    print(writers.format_report(f"aejax: evaluated ({os.path.join(_WORKDIR.value, 'eval.json')})", report))


if __name__ == "__main__":
  with signals.exit_on_signals("aejax"):
    app.run(main, flags_parser=config_lib.flags_parser(
        "aejax", example="python -m aejax.main --config experiments/vae.py:smoke --workdir runs/vae_smoke"))
