"""The evaluation suite: what a trained autoencoder is for, measured from its latest checkpoint.

    python -m aejax.evaluate --workdir RUN [--suite recon,anomaly,denoise,impute,generate,nll] [--nll_samples K]

Suites (errors and likelihoods per image, in the units of the README: squared error summed over pixels, nats):
- recon: test squared error and BCE, beside PCA with as many components as the code has, fitted on the first
  `eval.num_train` train images; k-means clustering accuracy (Hungarian-matched) and linear-probe accuracy of
  the codes, beside the same on PCA codes and raw pixels.
- anomaly: one-class runs (`data.train_labels`): AUROC of telling the other digits of the test split from the
  normal ones by reconstruction error, BCE and, for VAEs, the negative ELBO and the importance-weighted NLL.
- denoise: PSNR and SSIM at each `eval.noise_factors` of the model's output on the noisy test images, beside
  the noisy input itself and a 3x3 median filter.
- impute: a random mask (`eval.mask_fraction`) and a square block (`eval.block_size`) of hidden pixels, set to
  0 as the masking noise does; squared error on the hidden pixels only, beside filling them with the train
  split's mean image.
- generate (VAEs): samples from the prior, latent traversals (one row per latent unit), interpolations between
  test images, and a scatter of the test codes coloured by label when latent_dim = 2.
- nll (VAEs): the importance-weighted estimate of the test NLL with `eval.nll_samples` samples per image.

Without `--suite`, every suite that fits the run runs. Results go to RUN/eval.json, one row of metrics.jsonl at
the checkpoint's step, RUN/images/eval_*.png, and the W&B run's summary when the run used W&B.
"""
import contextlib
import dataclasses
import functools
import json
import math
import pathlib
import sys
import zlib
from collections.abc import Callable, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import scipy.ndimage
import scipy.special
from absl import app, flags
from ml_collections import config_dict

from aejax import checkpoint, config as config_lib, corruption, images, input_pipeline, losses, metrics, registry
from aejax import locks, signals, suites as suites_lib, train, writers
from aejax.errors import ConfigError
from aejax.variants import vae

_ELBO_SAMPLES = 16  # z samples per image behind the anomaly suite's negative-ELBO and IWAE scores.
_NLL_ROWS = 32_768  # Decoder rows (images x samples) per step of the NLL estimate: ~100 MB of MNIST logits.
# Decoder rows per call of the NLL estimate (images x samples; about 2 s of a 2-core CPU for vae.py): between calls
# a signal is acted on, where one call over eval_batch_size images x 5,000 samples took some 50 s.
_NLL_CALL_ROWS = 2**18
_PCA_BCE_EPS = 1e-4  # PCA reconstructions leave [0, 1]; their BCE is taken on them clipped to [eps, 1 - eps].
_TRAVERSAL_RANGE = 3.0  # Latent traversals sweep one unit over ±this many prior standard deviations.

Metrics = dict[str, float]
Pictures = dict[str, images.Grid]  # name -> (rows, N, H, W, C) in [0, 1] and the rows' labels


@dataclasses.dataclass(frozen=True)
class Run:
  """A trained run, restored: its config, model and parameters, and its data as float images in [0, 1]."""
  config: config_dict.ConfigDict
  variant: registry.Variant
  model: nn.Module
  state: train.TrainState
  step: int
  train_images: np.ndarray  # The first `eval.num_train` train images (binarised as in training).
  train_labels: np.ndarray
  test_images: np.ndarray
  test_labels: np.ndarray

  @property
  def is_vae(self) -> bool:
    return suites_lib.is_vae(self.model)

  @functools.cached_property
  def _encode(self) -> Callable:
    def encode(params, x):
      code = self.model.apply(params, x, method=self.model.encode)
      return code[0] if self.is_vae else code  # A VAE's code is its posterior mean.
    return jax.jit(encode)

  @functools.cached_property
  def _decode(self) -> Callable:
    return jax.jit(lambda params, z: self.model.apply(params, z, method=self.model.decode))

  def encode(self, x: np.ndarray) -> np.ndarray:
    """The codes of images `x`, in batches of `eval_batch_size`."""
    return _batched(functools.partial(self._encode, self.state.params), x, self.config.eval_batch_size)

  def decode_logits(self, z: np.ndarray) -> np.ndarray:
    """The decoder's logits for codes `z`."""
    return _batched(functools.partial(self._decode, self.state.params), z, self.config.eval_batch_size)

  def decode(self, z: np.ndarray) -> np.ndarray:
    """The images of codes `z`: the sigmoid of the decoder's logits."""
    return scipy.special.expit(self.decode_logits(z))

  def reconstruct(self, x: np.ndarray) -> np.ndarray:
    return self.decode(self.encode(x))

  def key(self, name: str) -> jax.Array:
    """A key of its own for each use of randomness, derived from the run's seed."""
    return jax.random.fold_in(jax.random.key(self.config.seed), zlib.crc32(name.encode()))


def _batched(fn: Callable[[jax.Array], jax.Array], x: np.ndarray, batch_size: int) -> np.ndarray:
  """`fn` over `x` in fixed-size batches (the last one padded, so one compilation serves all)."""
  size = min(batch_size, len(x))
  parts = []
  for start in range(0, len(x), size):
    signals.raise_if_signalled()  # A signal whose exception a library dropped ends the suite here.
    parts.append(np.asarray(fn(jnp.asarray(_pad(x[start:start + size], size))))[:len(x[start:start + size])])
  return np.concatenate(parts)


def load_config(workdir: pathlib.Path) -> config_dict.ConfigDict:
  """The run's `config.json` over today's defaults, so fields added since the run was trained have values."""
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

  config = config_lib.base_config()
  merge(config, json.loads(path.read_text()))
  return config


def restore(workdir: str | pathlib.Path, config: config_dict.ConfigDict | None = None) -> Run:
  """The run in `workdir` at its latest checkpoint (its own config.json, or `config` after `train.check_config`)."""
  workdir = pathlib.Path(workdir)
  config = load_config(workdir) if config is None else config
  variant = registry.get(config.variant)
  train_split, test_split = input_pipeline.load(config.data)
  model = variant.build_model(config, tuple(test_split.images.shape[1:]))
  example = jnp.zeros((1, *test_split.images.shape[1:]), jnp.float32)
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
  num_train = min(config.eval.num_train, train_split.size)
  binarize = config.data.binarize == "dynamic"  # Static runs were binarised on loading; the test split always is.
  train_batch = input_pipeline.make_batch(train_split, jnp.arange(num_train), jax.random.key(config.seed), binarize)
  test_batch = input_pipeline.make_batch(test_split, jnp.arange(test_split.size), jax.random.key(0), False)
  train_batch, test_batch = jax.device_get((train_batch, test_batch))
  return Run(config, variant, model, state, int(state.step), train_batch["image"], train_batch["label"],
             test_batch["image"], test_batch["label"])


def recon(run: Run) -> tuple[Metrics, Pictures]:
  """Reconstruction and dimensionality reduction, against PCA of the same size and raw pixels."""
  x, x_train = run.test_images, run.train_images
  codes, train_codes = run.encode(x), run.encode(x_train)
  logits = run.decode_logits(codes)
  recon_images = scipy.special.expit(logits)
  width = min(math.prod(codes.shape[1:]), math.prod(x_train.shape[1:]), len(x_train))  # PCA's rank is at most this.
  mean, axes = metrics.pca_fit(x_train, width)
  pca_codes, pca_train_codes = metrics.pca_encode(x, mean, axes), metrics.pca_encode(x_train, mean, axes)
  pca_images = metrics.pca_decode(pca_codes, mean, axes, x.shape[1:])
  out = {"recon/squared_error": _mean(losses.squared_error(recon_images, x)),
         "recon/bce": _mean(losses.binary_cross_entropy(logits, x)),
         "recon/pca_components": float(width),
         "recon/pca_squared_error": _mean(losses.squared_error(pca_images, x)),
         "recon/pca_bce": _mean(losses.binary_cross_entropy(
             scipy.special.logit(np.clip(pca_images, _PCA_BCE_EPS, 1 - _PCA_BCE_EPS)).astype(np.float32), x))}
  features = {"code": (train_codes, codes), "pca": (pca_train_codes, pca_codes), "pixels": (x_train, x)}
  for name, (train_features, test_features) in features.items():
    out[f"recon/kmeans_accuracy_{name}"] = metrics.kmeans_accuracy(test_features, run.test_labels, run.config.seed)
    if len(np.unique(run.train_labels)) > 1:  # A one-class run has nothing to probe.
      out[f"recon/probe_accuracy_{name}"] = metrics.linear_probe_accuracy(
          train_features, run.train_labels, test_features, run.test_labels)
  n = run.config.num_images
  return out, {"eval_recon": images.Grid(np.stack([x[:n], recon_images[:n], np.clip(pca_images[:n], 0, 1)]),
                                         ("input", "reconstruction", f"PCA, {width} components"))}


def anomaly(run: Run) -> tuple[Metrics, Pictures]:
  """One-class anomaly detection: AUROC of per-image scores for the digits the run never saw in training."""
  x = run.test_images
  anomalous = ~np.isin(run.test_labels, tuple(run.config.data.train_labels))
  logits = run.decode_logits(run.encode(x))
  scores = {"squared_error": losses.squared_error(scipy.special.expit(logits), x),
            "bce": losses.binary_cross_entropy(logits, x)}
  if run.is_vae:
    fn = jax.jit(lambda params, x: vae.log_weights(run.model, run.config, params, x, run.key("anomaly"),
                                                   _ELBO_SAMPLES).T)
    log_w = _batched(functools.partial(fn, run.state.params), x, run.config.eval_batch_size)
    scores["neg_elbo"] = -log_w.mean(axis=1)
    scores["iwae_nll"] = -np.asarray(vae.iwae_bound(jnp.asarray(log_w.T)))
  out = {f"anomaly/auroc_{name}": metrics.auroc(np.asarray(s), anomalous) for name, s in scores.items()}
  out["anomaly/fraction_anomalous"] = float(anomalous.mean())
  order = np.argsort(np.asarray(scores["squared_error"]))
  n = run.config.num_images
  return out, {"eval_anomaly_least_and_most": images.Grid(np.stack([x[order[:n]], x[order[-n:]]]),
                                                          ("lowest error", "highest error"))}


def denoise(run: Run) -> tuple[Metrics, Pictures]:
  """PSNR and SSIM against the clean test images: the model on noisy inputs, the noisy inputs, a median filter."""
  x, out, pictures = run.test_images, {}, {}
  for factor in run.config.eval.noise_factors:
    noisy = np.asarray(corruption.corrupt(run.config.noise_type, run.key(f"denoise{factor}"), jnp.asarray(x), factor))
    outputs = {"noisy": noisy, "model": run.reconstruct(noisy),
               "median": scipy.ndimage.median_filter(noisy, size=(1, 3, 3, 1))}
    for name, y in outputs.items():
      out[f"denoise/{factor:g}/psnr_{name}"] = float(np.mean(metrics.psnr(y, x)))
      out[f"denoise/{factor:g}/ssim_{name}"] = metrics.mean_ssim(y, x)
    n = run.config.num_images
    pictures[f"eval_denoise_{factor:g}"] = images.Grid(np.stack([x[:n]] + [y[:n] for y in outputs.values()]),
                                                       ("clean", f"noise {factor:g}", "model", "3x3 median"))
  return out, pictures


def impute(run: Run) -> tuple[Metrics, Pictures]:
  """Squared error on hidden pixels only: the model's fill of a random mask and a block, beside the mean image."""
  x, config = run.test_images, run.config.eval
  height, width = x.shape[1:3]
  rng = np.random.default_rng(run.config.seed)
  rows, cols = np.arange(height)[:, None], np.arange(width)[None, :]
  top = rng.integers(0, height - config.block_size + 1, len(x))[:, None, None]
  left = rng.integers(0, width - config.block_size + 1, len(x))[:, None, None]
  block = (rows >= top) & (rows < top + config.block_size) & (cols >= left) & (cols < left + config.block_size)
  masks = {"random": rng.random(x.shape[:3]) < config.mask_fraction, "block": block}
  mean_image = run.train_images.mean(axis=0)
  out, pictures = {}, {}
  for name, mask in masks.items():
    hidden = mask[..., None].astype(x.dtype)
    visible = x * (1 - hidden)
    filled = run.reconstruct(visible)
    out[f"impute/{name}_squared_error"] = _mean(losses.squared_error(filled * hidden, x * hidden))
    out[f"impute/{name}_mean_fill_squared_error"] = _mean(losses.squared_error(mean_image * hidden, x * hidden))
    out[f"impute/{name}_hidden_pixels"] = float(hidden.sum() / len(x))
    n = run.config.num_images
    pictures[f"eval_impute_{name}"] = images.Grid(np.stack([x[:n], visible[:n], (visible + filled * hidden)[:n]]),
                                                  ("input", f"{name} hidden", "filled"))
  return out, pictures


def generate(run: Run) -> tuple[Metrics, Pictures]:
  """Pictures of the VAE's generative side: prior samples, latent traversals, interpolations, a 2-D scatter."""
  n, latent_dim, shape = run.config.num_images, run.config.latent_dim, run.test_images.shape[1:]
  samples = run.decode(np.asarray(jax.random.normal(run.key("prior"), (n * n, latent_dim))))
  base = run.encode(run.test_images[:1])[0]
  steps = np.linspace(-_TRAVERSAL_RANGE, _TRAVERSAL_RANGE, n)
  traversals = np.repeat(base[None, None], latent_dim, 0).repeat(n, 1)
  traversals[np.arange(latent_dim), :, np.arange(latent_dim)] = steps
  ends = run.encode(run.test_images[:2 * n])
  pairs = min(n, len(ends) // 2)
  weights = np.linspace(0.0, 1.0, n)[None, :, None]
  paths = ends[:pairs, None] * (1 - weights) + ends[pairs:2 * pairs, None] * weights
  pictures = {
      "eval_prior_samples": images.Grid(samples.reshape(n, n, *shape), ("prior samples",)),
      "eval_traversals": images.Grid(run.decode(traversals.reshape(-1, latent_dim)).reshape(latent_dim, n, *shape),
                                     tuple(f"z{i}" for i in range(latent_dim))),
      "eval_interpolations": images.Grid(run.decode(paths.reshape(-1, latent_dim)).reshape(pairs, n, *shape),
                                         tuple(f"test {i} to {i + pairs}" for i in range(pairs)))}
  if latent_dim == 2:
    pictures["eval_latent_scatter"] = _scatter(run.encode(run.test_images), run.test_labels)
  return {}, pictures


def nll(run: Run) -> tuple[Metrics, Pictures]:
  """The importance-weighted estimate of the test NLL (Burda et al. 2016) with `eval.nll_samples` samples."""
  num_samples = run.config.eval.nll_samples
  batch_size = min(run.config.eval_batch_size, len(run.test_images), max(1, _NLL_CALL_ROWS // num_samples))
  chunk = max(1, _NLL_ROWS // batch_size)
  key = run.key("nll")

  @jax.jit
  def batch_nll(params, x):  # Batches reuse the key: each image's estimate stays unbiased.
    return vae.importance_weighted_nll(run.model, run.config, params, x, key, num_samples, chunk)

  x = run.test_images
  estimates = _batched(functools.partial(batch_nll, run.state.params), x, batch_size)
  elbo = jax.jit(lambda params, x: run.variant.evaluate(run.model, run.config, params, {"image": x, "label": None},
                                                        key, run.state.hparams)["neg_elbo"])
  neg_elbo = _batched(functools.partial(elbo, run.state.params), x, batch_size)
  return {"nll/iwae_nll": _mean(estimates), "nll/samples": float(num_samples), "nll/neg_elbo": _mean(neg_elbo)}, {}


SUITES: dict[str, Callable[[Run], tuple[Metrics, Pictures]]] = {
    "recon": recon, "anomaly": anomaly, "denoise": denoise, "impute": impute, "generate": generate, "nll": nll}


def evaluate_run(workdir: str | pathlib.Path, suites: Sequence[str] | None = None,
                 nll_samples: int | None = None, beside_training: bool = False) -> dict[str, Any]:
  """Runs `suites` (None: those that fit) on the run in `workdir`; writes eval.json and pictures, and appends its
  metrics to the run's metrics.jsonl and W&B run unless `beside_training` (the run still trains: its files are
  the trainer's alone)."""
  unknown = [name for name in suites or () if name not in SUITES]
  if unknown:
    raise ConfigError(f"suite {unknown[0]!r} is not known: use a comma-separated list of {', '.join(SUITES)}, "
                      "e.g. --suite recon,impute")
  workdir = pathlib.Path(workdir)
  config = load_config(workdir)
  if nll_samples is not None:
    config.eval.nll_samples = nll_samples
  train.check_config(config)
  chosen = suites_lib.select(config, suites)
  run = restore(workdir, config)
  results, pictures = {}, {}
  for name in chosen:
    suite_metrics, suite_pictures = SUITES[name](run)
    results.update(suite_metrics)
    pictures.update(suite_pictures)
  writer = writers.MetricWriter(workdir, config, start_step=None, rows=not beside_training)
  try:
    writer.write_scalars(run.step, results)
    paths = writer.write_images(run.step, pictures)
    report = {"step": run.step, "suites": list(chosen), **results, **{f"image/{k}": str(p) for k, p in paths.items()}}
    writer.write_summary(report, "eval.json")  # The run's own summary.json stays as training left it.
  finally:
    writer.close()
  return report


def _scatter(codes: np.ndarray, labels: np.ndarray) -> images.Grid:
  """A scatter plot of 2-D codes coloured by label, as one (1, 1, H, W, 3) picture without row labels."""
  import matplotlib  # pylint: disable=g-import-not-at-top  (only for this picture)
  matplotlib.use("Agg")
  from matplotlib import pyplot as plt  # pylint: disable=g-import-not-at-top
  figure, axis = plt.subplots(figsize=(6, 6), dpi=100)
  points = axis.scatter(codes[:, 0], codes[:, 1], c=labels, cmap="tab10", s=2)
  figure.colorbar(points, ax=axis, label="label")
  axis.set(xlabel="z[0] (posterior mean)", ylabel="z[1]")
  figure.canvas.draw()
  picture = np.asarray(figure.canvas.buffer_rgba())[..., :3] / 255.0
  plt.close(figure)
  return images.Grid(picture[None, None])


def _pad(x: np.ndarray, size: int) -> np.ndarray:
  return np.concatenate([x, np.zeros((size - len(x), *x.shape[1:]), x.dtype)])


def _mean(values) -> float:
  return float(np.mean(np.asarray(values)))


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  if not _WORKDIR.value:
    sys.exit("aejax.evaluate: error: --workdir is required: the folder of a trained run, e.g. --workdir runs/vae")
  suites = tuple(s.strip() for s in _SUITE.value.split(",")) if _SUITE.value else None
  workdir = pathlib.Path(_WORKDIR.value)
  try:
    with locks.lock(workdir) if workdir.is_dir() else contextlib.nullcontext(0) as held:
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
  _SUITE = flags.DEFINE_string("suite", None, f"Comma-separated suites among {','.join(SUITES)}; "
                               "default: those that fit the run.")
  _NLL_SAMPLES = flags.DEFINE_integer("nll_samples", None, "Importance samples per image for the nll suite "
                                      "(default: the run's config.eval.nll_samples).")
  signals.install("aejax.evaluate")
  with signals.exit_on_signals("aejax.evaluate", rerun="to evaluate again"):
    app.run(main, flags_parser=config_lib.flags_parser(
        "aejax.evaluate", example="python -m aejax.evaluate --workdir runs/vae_smoke --suite recon,nll "
        "--nll_samples 100"))
