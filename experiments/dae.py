"""Denoising autoencoder as in the seed: x + 0.5·N(0,1) clipped to [0,1], dense 784-128-64-32, sigmoid output.

The loss compares the reconstruction of the noisy input with the clean input.

    python -m aejax.main --config experiments/dae.py --workdir runs/dae
"""
from ml_collections import config_dict

from aejax import config as config_lib
from aejax import sweep as sweep_lib


def get_config(arg: str | None = None) -> config_dict.ConfigDict:
  c = config_lib.base_config()
  c.variant = "dae"
  c.noise_type = "gaussian"
  c.noise_factor = 0.5
  c.latent_dim = 32
  c.model.encoder_widths = (128, 64)
  c.model.code_activation = "relu"
  c.loss = "bce"
  c.learning_rate = 1e-3
  c.batch_size = 256
  c.num_steps = 4_680  # 20 epochs of 234 steps.
  c.eval_every = c.checkpoint_every = 1_170
  c.eval.suites = ("denoise",)  # PSNR and SSIM at the end: the figures a noise-level sweep is read by.
  c.wandb.tags = ("dae",)
  return config_lib.finalize(c, arg)


def get_sweep() -> list[sweep_lib.Overrides]:
  """The noise level, 5 runs: `python -m launch.local --config experiments/dae.py --root runs/dae_sweep`."""
  return sweep_lib.sweep("noise_factor", [0.1, 0.25, 0.5, 0.75, 1.0])


def get_curves() -> list[sweep_lib.Curve]:
  """The training noise level against the clean inputs' test error and the PSNR of the denoised test images at
  each noise level of `eval.noise_factors`, drawn at the sweep's end."""
  psnrs = [f"denoise/{factor:g}/psnr_model" for factor in get_config().eval.noise_factors]
  return [("noise_factor", ["test/recon_error", *psnrs])]
