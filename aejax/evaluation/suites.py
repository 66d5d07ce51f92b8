"""The evaluation suites: what a trained autoencoder is for, each a function of a run restored by `aejax.evaluate`.

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
- generate (VAEs): samples from the run's prior, latent traversals (one row per latent unit), interpolations between
  test images, and a scatter of the test codes coloured by label when latent_dim = 2.
- nll (VAEs): the importance-weighted estimate of the test NLL with `eval.nll_samples` samples per image.
- samples (generative variants, `registry.Variant.sample`): `eval.sample_count` samples scored in the penultimate
  features of a digit classifier trained once per data set (aejax/evaluation/judge.py): the Fréchet distance to the
  test images ("classifier FID") beside its floor (train images against test images), precision and recall of
  the sample manifold, the class histogram (modes covered, KL to the test labels' distribution), and for
  conditional variants the classifier's accuracy on samples against the labels they were drawn for.

- disentanglement (data sets with ground-truth factors: dSprites): the BetaVAE and FactorVAE scores, MIG, DCI and
  SAP of the code (a VAE's posterior mean) on `eval.factor_samples` points each (aejax/evaluation/disentanglement.py),
  the normalised mutual information of each unit with each factor as a heat map, and each unit's traversal
  labelled with the factor it shares most information with.

Which of them fit a run is known from its config alone (aejax/evaluation/selection.py).
"""
import dataclasses
import functools
import math
import zlib
from collections.abc import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import scipy.ndimage
import scipy.special
from ml_collections import config_dict

from aejax import images, registry, signals, train
from aejax.data import catalog, corruption
from aejax.errors import ConfigError
from aejax.evaluation import batches, disentanglement as factor_metrics, judge as judge_lib, metrics
from aejax.evaluation import sample_quality, selection
from aejax.nn import losses
from aejax.variants.variational import vae

_ELBO_SAMPLES = 16  # z samples per image behind the anomaly suite's negative-ELBO and IWAE scores.
_NLL_ROWS = 32_768  # Decoder rows (images x samples) per step of the NLL estimate: ~100 MB of MNIST logits.
# Decoder rows per call of the NLL estimate (images x samples; about 2 s of a 2-core CPU for vae.py): between calls
# a signal is acted on, where one call over eval_batch_size images x 5,000 samples took some 50 s.
_NLL_CALL_ROWS = 2**18
_PCA_BCE_EPS = 1e-4  # PCA reconstructions leave [0, 1]; their BCE is taken on them clipped to [eps, 1 - eps].
_TRAVERSAL_RANGE = 3.0  # Latent traversals sweep one unit over ±this (the N(0, I) prior's standard deviations).

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
    return selection.is_vae(self.model)

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
    return batches.apply(functools.partial(self._encode, self.state.params), x, self.config.eval_batch_size)

  def decode_logits(self, z: np.ndarray) -> np.ndarray:
    """The decoder's logits for codes `z`."""
    return batches.apply(functools.partial(self._decode, self.state.params), z, self.config.eval_batch_size)

  def decode(self, z: np.ndarray) -> np.ndarray:
    """The images of codes `z`: the sigmoid of the decoder's logits."""
    return scipy.special.expit(self.decode_logits(z))

  def reconstruct(self, x: np.ndarray) -> np.ndarray:
    return self.decode(self.encode(x))

  def key(self, name: str) -> jax.Array:
    """A key of its own for each use of randomness, derived from the run's seed."""
    return jax.random.fold_in(jax.random.key(self.config.seed), zlib.crc32(name.encode()))


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
    log_w = batches.apply(functools.partial(fn, run.state.params), x, run.config.eval_batch_size)
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
  codes = run.model.apply(run.state.params, run.key("prior"), n * n, method=run.model.sample_prior)  # The run's prior.
  samples = run.decode(np.asarray(codes))
  base = run.encode(run.test_images[:1])[0]
  ends = run.encode(run.test_images[:2 * n])
  pairs = min(n, len(ends) // 2)
  weights = np.linspace(0.0, 1.0, n)[None, :, None]
  paths = ends[:pairs, None] * (1 - weights) + ends[pairs:2 * pairs, None] * weights
  pictures = {
      "eval_prior_samples": images.Grid(samples.reshape(n, n, *shape), ("prior samples",)),
      "eval_traversals": _traversals(run, base, tuple(f"z{i}" for i in range(latent_dim))),
      "eval_interpolations": images.Grid(run.decode(paths.reshape(-1, latent_dim)).reshape(pairs, n, *shape),
                                         tuple(f"test {i} to {i + pairs}" for i in range(pairs)))}
  if latent_dim == 2:
    pictures["eval_latent_scatter"] = _scatter(run.encode(run.test_images), run.test_labels)
  return {}, pictures


def _traversals(run: Run, base: np.ndarray, labels: tuple[str, ...]) -> images.Grid:
  """One row per latent unit (labelled by `labels`): the images of code `base` with that unit swept over
  ±`_TRAVERSAL_RANGE` prior standard deviations in `num_images` steps."""
  n, latent_dim = run.config.num_images, len(base)
  traversals = np.repeat(base[None, None], latent_dim, 0).repeat(n, 1)
  traversals[np.arange(latent_dim), :, np.arange(latent_dim)] = np.linspace(-_TRAVERSAL_RANGE, _TRAVERSAL_RANGE, n)
  return images.Grid(run.decode(traversals.reshape(-1, latent_dim)).reshape(latent_dim, n, *run.test_images.shape[1:]),
                     labels)


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
  estimates = batches.apply(functools.partial(batch_nll, run.state.params), x, batch_size)
  elbo = jax.jit(lambda params, x: run.variant.evaluate(run.model, run.config, params, {"image": x, "label": None},
                                                        key, run.state.hparams)["neg_elbo"])
  neg_elbo = batches.apply(functools.partial(elbo, run.state.params), x, batch_size)
  return {"nll/iwae_nll": _mean(estimates), "nll/samples": float(num_samples), "nll/neg_elbo": _mean(neg_elbo)}, {}


def draw_samples(run: Run, key: jax.Array, labels: np.ndarray) -> np.ndarray:
  """The run's samples (N, H, W, C) for class `labels` (N,) (read only for their number by an unconditional
  variant), drawn `eval_batch_size` at a time, each batch with a key of its own."""
  draw = jax.jit(functools.partial(run.variant.sample, run.model, run.config))
  size = min(run.config.eval_batch_size, len(labels))
  parts = []
  for i, start in enumerate(range(0, len(labels), size)):
    signals.raise_if_signalled()
    rows = labels[start:start + size]
    parts.append(np.asarray(draw(run.state.params, jax.random.fold_in(key, i), jnp.asarray(batches.pad(rows, size))))
                 [:len(rows)])
  return np.concatenate(parts)


def samples(run: Run) -> tuple[Metrics, Pictures]:
  """Sample quality in a digit classifier's features, against the test images and the train-vs-test floor."""
  judge = judge_lib.load(run.config)
  num_classes, n = catalog.get(run.config.data.name).num_classes, run.config.num_images
  labels = np.asarray(jax.random.randint(run.key("sample_labels"), (run.config.eval.sample_count,), 0, num_classes))
  x = draw_samples(run, run.key("samples"), labels)
  if not np.all(np.isfinite(x)):
    raise ConfigError(f"suite 'samples': {int(np.sum(~np.isfinite(x).reshape(len(x), -1).all(1)))} of the "
                      f"{len(x)} samples of config.variant={run.config.variant!r} hold NaN or inf: the checkpoint's "
                      "parameters do not sample; evaluate a run that trained without diverging")
  features, predicted = judge.classify(np.clip(x, 0.0, 1.0))
  precision, recall = sample_quality.precision_recall(judge.test_features, features)
  histogram = sample_quality.class_histogram(predicted, judge.test_labels, num_classes)
  out = {"samples/fid": sample_quality.frechet_distance(*sample_quality.gaussian_fit(features),
                                                        *sample_quality.gaussian_fit(judge.test_features)),
         "samples/fid_floor": judge.floor["fid"], "samples/precision": precision, "samples/recall": recall,
         "samples/precision_floor": judge.floor["precision"], "samples/recall_floor": judge.floor["recall"],
         "samples/modes_covered": histogram["modes_covered"], "samples/class_kl": histogram["kl"],
         "samples/class_fraction_min": float(histogram["fractions"].min()),
         "samples/class_fraction_max": float(histogram["fractions"].max()),
         **{f"samples/class_fraction_{c}": float(f) for c, f in enumerate(histogram["fractions"])},
         "samples/count": float(len(x)), "samples/classifier_accuracy": judge.accuracy}
  if run.variant.conditional:
    out["samples/accuracy"] = float(np.mean(predicted == labels))
    rows = draw_samples(run, run.key("sample_grid"), np.repeat(np.arange(num_classes), n))
    grid = images.Grid(np.clip(rows, 0, 1).reshape(num_classes, n, *x.shape[1:]),
                       tuple(f"class {c}" for c in range(num_classes)))
  else:
    shown = max(1, min(n, len(x) // n))  # Rows of n samples (n x n, as the generate suite's prior samples).
    grid = images.Grid(np.clip(x[:n * shown], 0, 1).reshape(shown, -1, *x.shape[1:]), ("samples",))
  return out, {"eval_samples": grid}


def ground_truth(config: config_dict.ConfigDict) -> factor_metrics.GroundTruth:
  """The ground truth of run `config`'s data set (checked by `selection`: one aejax renders): its factors, and the
  images of any combination of them in [0, 1], (N, H, W, 1) float32. Rendered by aejax, or, where the run read the
  original dSprites file (`data.manual_dir`), looked up in that file's train split, which holds every combination:
  the renderer's images are not the original's (aejax/data/dsprites.py), and the code is scored on images like
  those it trained on. A run of `dsprites_small` is scored on the whole grid, combinations it never saw included."""
  from aejax.data import dsprites, datasets  # pylint: disable=g-import-not-at-top  (only for this suite)
  sizes = catalog.get(config.data.name).factor_sizes
  if not config.data.manual_dir:
    drawn = dsprites.drawings()
    return factor_metrics.GroundTruth(sizes, lambda f: dsprites.render(f, drawn)[..., None].astype(np.float32))
  original = datasets.load_examples(config.data.name, "train", config.data.data_dir, config.data.manual_dir,
                                    config.data.download, packed=True)  # 377 MB of bits, not 3 GB of bytes.
  rows = np.full(dsprites.NUM_IMAGES, -1)
  rows[dsprites.to_index(original["factors"])] = np.arange(len(original["factors"]))
  if (rows < 0).any():
    raise ConfigError(f"config.data.name={config.data.name!r} from the original file holds {int((rows >= 0).sum()):,} "
                      f"of dSprites' {dsprites.NUM_IMAGES:,} factor combinations, and the disentanglement metrics draw "
                      "any: score a run of dsprites, or drop data.manual_dir to score one of the rendered images")
  bits, shape = original["image"], catalog.image_shape(config.data.name, None)

  def images(factors: np.ndarray) -> np.ndarray:
    found = bits[rows[dsprites.to_index(factors)]]
    return np.unpackbits(found, axis=-1, count=math.prod(shape)).reshape(len(found), *shape).astype(np.float32)

  return factor_metrics.GroundTruth(sizes, images)


def disentanglement(run: Run) -> tuple[Metrics, Pictures]:
  """The disentanglement metrics of the run's code on its data set's ground truth, the heat map of each unit's
  normalised mutual information with each factor, and unit traversals labelled by the factor each unit encodes."""
  truth, n = ground_truth(run.config), run.config.eval.factor_samples
  names = catalog.get(run.config.data.name).factor_names

  def rng(metric: str) -> np.random.Generator:  # Each metric its own draws, from the run's seed.
    return np.random.default_rng([run.config.seed, zlib.crc32(metric.encode())])

  beta_vae = factor_metrics.beta_vae_score(truth, run.encode, rng("beta_vae"), num_train=n, num_eval=n // 2)
  factor_vae = factor_metrics.factor_vae_score(truth, run.encode, rng("factor_vae"), num_train=n,
                                                    num_eval=n // 2, num_variance=n)
  dci = factor_metrics.dci(truth, run.encode, rng("dci"), num_train=n, num_test=n // 2)
  sap = factor_metrics.sap(truth, run.encode, rng("sap"), num_train=n, num_test=n // 2,
                                predictor=run.config.eval.sap_predictor)
  codes, factors = factor_metrics.sample_codes(truth, run.encode, n, rng("mig"))
  information = factor_metrics.normalized_mutual_information(codes, factors)
  out = {"disentanglement/beta_vae_score": beta_vae["eval_accuracy"],
         "disentanglement/factor_vae_score": factor_vae["eval_accuracy"],
         "disentanglement/active_units": float(factor_vae["num_active_units"]),
         "disentanglement/mig": factor_metrics.mutual_information_gap(information),
         "disentanglement/dci_disentanglement": dci["disentanglement"],
         "disentanglement/dci_completeness": dci["completeness"],
         "disentanglement/dci_informativeness": dci["informativeness_test"],
         "disentanglement/sap": sap["sap"]}
  best = information.argmax(axis=1)
  labels = tuple(f"z{i}: {names[f]} {information[i, f]:.2f}" for i, f in enumerate(best))
  base = run.encode(run.test_images[:1])[0]
  return out, {"eval_factor_information": _heat_map(information, names),
               "eval_factor_traversals": _traversals(run, base, labels)}


SUITES: dict[str, Callable[[Run], tuple[Metrics, Pictures]]] = {
    "recon": recon, "anomaly": anomaly, "denoise": denoise, "impute": impute, "generate": generate, "nll": nll,
    "samples": samples, "disentanglement": disentanglement}


def _heat_map(information: np.ndarray, factor_names: tuple[str, ...]) -> images.Grid:
  """The (units, factors) normalised mutual information as one (1, 1, H, W, 3) picture, annotated."""
  units, factors = information.shape
  figure, axis = images.pyplot().subplots(figsize=(1.2 * factors + 2.5, 0.45 * units + 1.5), dpi=100)
  cells = axis.imshow(information, cmap="viridis", vmin=0.0, vmax=1.0, aspect="auto")
  for (i, f), value in np.ndenumerate(information):
    axis.text(f, i, f"{value:.2f}", ha="center", va="center", color="white" if value < 0.6 else "black", fontsize=8)
  axis.set(xticks=range(factors), xticklabels=factor_names, yticks=range(units),
           yticklabels=[f"z{i}" for i in range(units)], title="mutual information / factor entropy")
  figure.colorbar(cells, ax=axis)
  figure.tight_layout()
  return images.figure_picture(figure)


def _scatter(codes: np.ndarray, labels: np.ndarray) -> images.Grid:
  """A scatter plot of 2-D codes coloured by label, as one (1, 1, H, W, 3) picture without row labels."""
  figure, axis = images.pyplot().subplots(figsize=(6, 6), dpi=100)
  points = axis.scatter(codes[:, 0], codes[:, 1], c=labels, cmap="tab10", s=2)
  figure.colorbar(points, ax=axis, label="label")
  axis.set(xlabel="z[0] (posterior mean)", ylabel="z[1]")
  return images.figure_picture(figure)


def _mean(values) -> float:
  return float(np.mean(np.asarray(values)))
