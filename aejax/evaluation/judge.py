"""The samples suite's judge: a digit classifier trained once per data set by aejax itself, and the real images'
features it compares samples with, both cached in one folder that every evaluation reuses.

The classifier is the registered `classifier` variant (aejax/variants/classifier.py), trained by the one train
loop into `<eval.classifier_dir>/<data set>-<eval.classifier_steps>steps` (a run's folder like any other: its
config.json, checkpoints, metrics.jsonl, summary.json with its test accuracy). The first evaluation that needs it
trains it there, under the folder's lock (a second process waits, then reuses it); an interrupted training resumes.
Beside it, `reference-<N>.npz` holds the penultimate features of the first N test images with their labels, and
the floor: the Fréchet distance, precision and recall of the first N train images against them.
"""
import contextlib
import dataclasses
import functools
import json
import os
import pathlib
import sys
from collections.abc import Callable, Iterator
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from ml_collections import config_dict

from aejax import locks, train, writers
from aejax.errors import ConfigError, check_folder
from aejax.evaluation import batches, sample_quality
from aejax.variants import classifier

_WAIT_S = 3_600.0  # How long an evaluation waits for another process training the same classifier.


@dataclasses.dataclass(frozen=True)
class Judge:
  """A trained classifier and the real test images as it sees them."""
  workdir: pathlib.Path
  classify: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]  # Images -> penultimate features, classes.
  accuracy: float  # On the whole test split.
  test_features: np.ndarray  # (N, D): the first N test images' penultimate features.
  test_labels: np.ndarray  # (N,)
  floor: dict[str, float]  # 'fid', 'precision', 'recall' of N train images against the N test images.


def classifier_fn(model: classifier.Classifier, params: Any,
                  batch_size: int) -> Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]:
  """`classify(x)`: the penultimate features (N, D) and predicted classes (N,) of images x (N, H, W, C) in [0, 1],
  computed `batch_size` at a time."""

  @jax.jit
  def apply(x):
    features = model.apply(params, x, method=model.features)
    return features, jnp.argmax(model.apply(params, features, method=lambda m, f: m.head(f)), axis=-1)

  return lambda x: batches.apply(apply, x, batch_size)


def workdir(config: config_dict.ConfigDict) -> pathlib.Path:
  """Where the classifier of the data set of run `config` (at its size, where resized) is cached."""
  size = "" if config.data.resize is None else "-{}x{}".format(*config.data.resize)
  return (pathlib.Path(config.eval.classifier_dir).expanduser()
          / f"{config.data.name}{size}-{config.eval.classifier_steps}steps")


def classifier_config(config: config_dict.ConfigDict) -> config_dict.ConfigDict:
  """The classifier's run config for the data set of run `config`: `classifier.default_config()` on the whole
  splits of its data, for `eval.classifier_steps` steps."""
  c = classifier.default_config()
  c.num_steps = config.eval.classifier_steps
  for field in ("name", "data_dir", "manual_dir", "download", "resize"):
    c.data[field] = config.data[field]
  c.eval_batch_size = config.eval_batch_size
  c.compilation_cache_dir = config.compilation_cache_dir
  c.eval.num_train = config.eval.reference_count  # The train images `evaluate.restore` gives: the floor's.
  return c


def load(config: config_dict.ConfigDict) -> Judge:
  """The judge of run `config`'s data set: trained first if it is not cached yet (one line says so)."""
  directory = workdir(config)
  check_folder(directory, "config.eval.classifier_dir")
  judge_config = classifier_config(config)
  with _held(directory):
    if not writers.is_finished(directory, judge_config.num_steps, evaluated=False):
      print(f"aejax: training the samples suite's digit classifier for {config.data.name!r} once "
            f"({judge_config.num_steps} steps), cached in {directory}", file=sys.stderr, flush=True)
      train.train_and_evaluate(judge_config, directory)
    # Restored once per process: a process that evaluates several runs (a sweep's summary, tests) reuses it while
    # the folder holds the same training (its summary.json unchanged).
    stamp = (directory / "summary.json").stat().st_mtime_ns
    return _restored(directory, config_dict.FrozenConfigDict(judge_config), config.eval.reference_count,
                     config.eval_batch_size, stamp)


@functools.lru_cache(maxsize=4)
def _restored(path: pathlib.Path, judge_config: config_dict.FrozenConfigDict, reference_count: int, batch_size: int,
              stamp: int) -> Judge:
  """The `Judge` of the trained classifier in `path` (of `classifier_config`); `stamp` names the training it holds."""
  del stamp
  from aejax import evaluate  # pylint: disable=g-import-not-at-top  (evaluate imports the suites, which import this)
  run = evaluate.restore(path, config_dict.ConfigDict(judge_config))
  classify = classifier_fn(run.model, run.state.params, batch_size)
  reference = _reference(path, classify, run, min(reference_count, len(run.test_images)))
  accuracy = float(json.loads((path / "summary.json").read_text())["test/accuracy"])
  return Judge(path, classify, accuracy, **reference)


def _reference(directory: pathlib.Path, classify: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]], run: Any,
               count: int) -> dict[str, Any]:
  """The `Judge`'s test features, labels and floor for `count` images per split of the classifier's `run`, from
  the cache in `directory` or computed (and cached) now."""
  path = directory / f"reference-{count}.npz"
  if path.exists():
    with np.load(path) as saved:
      if int(saved["step"]) == run.step:
        return {"test_features": saved["test_features"], "test_labels": saved["test_labels"],
                "floor": {name: float(saved[f"floor_{name}"]) for name in ("fid", "precision", "recall")}}
  test_features, _ = classify(run.test_images[:count])
  train_features, _ = classify(run.train_images[:count])
  precision, recall = sample_quality.precision_recall(test_features, train_features)
  floor = {"fid": sample_quality.frechet_distance(*sample_quality.gaussian_fit(train_features),
                                                  *sample_quality.gaussian_fit(test_features)),
           "precision": precision, "recall": recall}
  reference = {"test_features": test_features, "test_labels": np.asarray(run.test_labels[:count]), "floor": floor}
  partial = path.with_suffix(".partial.npz")
  np.savez(partial, step=run.step, test_features=test_features, test_labels=reference["test_labels"],
           **{f"floor_{name}": value for name, value in floor.items()})
  os.replace(partial, path)  # Whole or not at all.
  return reference


@contextlib.contextmanager
def _held(directory: pathlib.Path) -> Iterator[None]:
  """Holds the classifier folder's lock, waiting (with one line) while another process trains the classifier."""
  with locks.lock(directory) as fd:
    if fd is not None:
      yield
      return
  print(f"aejax: waiting for another process to finish the classifier in {directory}", file=sys.stderr, flush=True)
  with locks.lock(directory, patience_s=_WAIT_S) as fd:
    if fd is None:
      raise ConfigError(f"config.eval.classifier_dir: {str(directory)!r} stayed in use by another process for "
                        f"{_WAIT_S / 60:.0f} minutes: wait for it to end, or use another --config.eval.classifier_dir")
    yield
