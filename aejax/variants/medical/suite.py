"""The `medical_denoise` suite: whole held-out images (`medical.test_images`), corrupted by the run's noise type at
each of `eval.noise_factors`, denoised by the run's network and by the denoisers people use, all on the same noisy
images: scikit-image's non-local means, total variation (Chambolle) and wavelet (BayesShrink) denoisers and, where
the `bm3d` package is installed, BM3D.

The noise is as the network trained on it (`noise.corrupt`): Gaussian unclipped, Poisson photon counts. The
baselines are told the true noise: for Gaussian noise its σ (the level); for Poisson noise the images go
through the Anscombe transform, after which the noise is close to Gaussian of σ = 1 at the known peak, and come back
through Mäkitalo and Foi's closed-form unbiased inverse. Non-local means uses skimage's recommended h = 0.8 σ
(5x5 patches, 13x13 search); total variation the best of four weights on each image, chosen with the clean image
(an oracle: the best TV can do); the network is told nothing (blind).

Metrics: 'medical_denoise/<level>/psnr_<method>' and 'ssim_<method>' averaged over the images, and per image
'medical_denoise/<image>/<level>/...'; methods noisy, model, nlm, tv, wavelet, bm3d. Pictures: per level, the
first image clean, noisy and as each method returns it.
"""
import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from aejax import images
from aejax.data import photos
from aejax.variants.medical import noise

Metrics = dict[str, float]
TV_WEIGHTS = (0.25, 0.5, 1.0, 2.0)  # Total variation's weights, in units of σ, of which each image gets the best.


def denoise_image(apply: Any, noisy: np.ndarray, multiple: int) -> np.ndarray:
  """The network (`apply`: a jitted (1, H, W, 1) -> (1, H, W, 1)) on a whole (H, W) image, edges reflected up to
  sides that `multiple` divides and cropped back, clipped to [0, 1]."""
  height, width = noisy.shape
  padded = np.pad(noisy, ((0, -height % multiple), (0, -width % multiple)), mode="reflect")
  out = np.asarray(apply(jnp.asarray(padded, jnp.float32)[None, ..., None]))[0, :height, :width, 0]
  return np.clip(out, 0.0, 1.0)


def anscombe(x: np.ndarray, peak: float) -> np.ndarray:
  """The Anscombe transform of photon counts x · peak: Poisson noise becomes close to Gaussian of σ = 1."""
  return 2 * np.sqrt(np.maximum(x * peak, 0) + 3 / 8)


def inverse_anscombe(d: np.ndarray, peak: float) -> np.ndarray:
  """Mäkitalo and Foi's (2011) closed-form approximation of the exact unbiased inverse, back to intensities."""
  d = np.maximum(d, 0.8)  # Its expansion holds where d is not near 0 (counts of a few photons at least).
  counts = d**2 / 4 + np.sqrt(1.5) / (4 * d) - 11 / (8 * d**2) + 5 * np.sqrt(1.5) / (8 * d**3) - 1 / 8
  return np.maximum(counts, 0) / peak


def _psnr(y: np.ndarray, clean: np.ndarray) -> float:
  from skimage import metrics as sk_metrics  # pylint: disable=g-import-not-at-top  (only when scoring)
  return float(sk_metrics.peak_signal_noise_ratio(clean, np.clip(y, 0, 1), data_range=1.0))


def baselines(noisy: np.ndarray, clean: np.ndarray, noise_type: str, level: float, bm3d: bool) -> dict[str, np.ndarray]:
  """Non-local means, total variation, wavelet and (if installed and asked) BM3D on one noisy image, told the noise
  (see the module docstring); clipped to [0, 1]."""
  from skimage import restoration  # pylint: disable=g-import-not-at-top  (only when scoring)
  if noise_type == "poisson":
    peak = 1 / level
    forward, back = functools.partial(anscombe, peak=peak), functools.partial(inverse_anscombe, peak=peak)
    scale = forward(np.ones(()))  # The transform of a pixel of 1: the transformed images are divided by it.
    image, sigma = forward(noisy) / scale, 1 / scale
    finish = lambda y: np.clip(back(y * scale), 0, 1)  # noqa: E731
  else:
    image, sigma = noisy, level
    finish = lambda y: np.clip(y, 0, 1)  # noqa: E731
  out = {"nlm": finish(restoration.denoise_nl_means(image, h=0.8 * sigma, sigma=sigma, patch_size=5,
                                                    patch_distance=6, fast_mode=True)),
         "wavelet": finish(restoration.denoise_wavelet(image, sigma=sigma, method="BayesShrink", mode="soft",
                                                       rescale_sigma=True))}
  candidates = [finish(restoration.denoise_tv_chambolle(image, weight=w * sigma)) for w in TV_WEIGHTS]
  out["tv"] = max(candidates, key=lambda y: _psnr(y, clean))
  if bm3d:
    try:
      import bm3d as bm3d_lib  # pylint: disable=g-import-not-at-top  (optional: pip install bm3d)
    except ImportError:
      return out
    out["bm3d"] = finish(bm3d_lib.bm3d(image, sigma_psd=sigma))
  return out


def medical_denoise(run: Any) -> tuple[Metrics, dict[str, images.Grid]]:
  """The suite (see the module docstring)."""
  from skimage import metrics as sk_metrics  # pylint: disable=g-import-not-at-top  (only when scoring)
  config = run.config
  patch = run.test_images.shape[1]
  chosen = photos.test_images(tuple(config.medical.test_images), patch)
  apply = jax.jit(functools.partial(run.model.apply, run.state.params))
  out, pictures = {}, {}
  for level in config.eval.noise_factors:
    sums: dict[str, list[float]] = {}
    for k, (name, clean) in enumerate(chosen.items()):
      key = jax.random.fold_in(jax.random.key(k), int(round(level * 1e6)))  # The same noise for every method.
      noisy = np.asarray(noise.corrupt(config.noise_type, key, jnp.asarray(clean, jnp.float32), level), np.float64)
      results = {"noisy": np.clip(noisy, 0, 1), "model": denoise_image(apply, noisy, 2**config.medical.levels),
                 **baselines(noisy, clean, config.noise_type, level, config.medical.bm3d)}
      for method, y in results.items():
        scores = {"psnr": _psnr(y, clean),
                  "ssim": float(sk_metrics.structural_similarity(clean, np.clip(y, 0, 1), data_range=1.0))}
        for measure, value in scores.items():
          out[f"medical_denoise/{name}/{level:g}/{measure}_{method}"] = value
          sums.setdefault(f"medical_denoise/{level:g}/{measure}_{method}", []).append(value)
      if k == 0:
        pictures[f"medical_denoise_{level:g}"] = images.Grid(
            np.stack([clean[None, ..., None]] + [y[None, ..., None] for y in results.values()]),
            ("clean", *(f"{m} {level:g}" if m == "noisy" else m for m in results)))
    out |= {key: float(np.mean(values)) for key, values in sums.items()}
  return out, pictures
