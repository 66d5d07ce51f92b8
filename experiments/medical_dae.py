"""A blind denoising autoencoder of medical images: a fully convolutional encoder–decoder (two levels of 3x3
convolutions, 48 channels, U-Net skips, residual output) trained on 32x32 patches of a fundus photograph, an
immunohistochemistry slide and a microscopy image (`medical_patches`), a quarter of each batch replaced by random
ellipse phantoms (the kind of image a CT phantom is), with Gaussian noise of σ up to 0.2; the medical_denoise suite
scores it on two held-out whole images (a retinal detail, the Shepp–Logan phantom) at σ = 0.05, 0.1, 0.2 beside
non-local means, total variation, wavelets and BM3D.

    python -m aejax.main --config experiments/medical_dae.py --workdir runs/medical_dae
    python -m aejax.main --config experiments/medical_dae.py:poisson --workdir runs/medical_dae_poisson
"""
from ml_collections import config_dict

from aejax import config as config_lib, sweep as sweep_lib
from aejax.errors import ConfigError
from aejax.variants.medical import fields


def get_config(arg: str | None = None) -> config_dict.ConfigDict:
  """`arg`: '' (Gaussian noise), 'poisson' (photon noise, peaks 100, 33 and 10 photons), either with ',smoke'."""
  options = set((arg or "").split(",")) - {""}
  if options - {"poisson", "smoke"}:
    raise ConfigError(f"config argument {arg!r} is not known: use '', 'poisson', 'smoke' or 'poisson,smoke'")
  c = fields.add(config_lib.base_config())
  c.variant = "patch_dae"
  c.data.name = "medical_patches"
  c.medical.skips = True
  c.medical.phantom_share = 0.25
  c.noise_type, c.noise_factor = "gaussian", 0.2
  c.eval.noise_factors = (0.05, 0.1, 0.2)
  if "poisson" in options:
    c.noise_type, c.noise_factor = "poisson", 0.1
    c.eval.noise_factors = (0.01, 0.03, 0.1)
  c.learning_rate = 1e-3
  c.batch_size = 32
  c.num_steps = 8_000  # docs/results.md: at 4,000 and 12,000 steps fewer levels beat NLM and TV.
  c.log_every = 200
  c.eval_every = c.checkpoint_every = 1_000
  c.eval_batch_size = 256
  c.eval.num_train = 1_000
  c.eval.suites = ("medical_denoise",)
  c.wandb.tags = ("medical", c.noise_type)
  c = config_lib.finalize(c, "smoke" if "smoke" in options else None)
  if "smoke" in options:
    c.medical.features = 8
    c.medical.bm3d = False
    c.data.num_test = None  # All 153 test patches.
  return c


def get_sweep() -> list[sweep_lib.Overrides]:
  """Width × seed, 2 × 2 = 4 runs."""
  return sweep_lib.product(sweep_lib.sweep("medical.features", [32, 48]), sweep_lib.sweep("seed", [0, 1]))
