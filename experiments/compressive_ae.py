"""A compressive autoencoder of MNIST (Ballé et al.'s factorized-prior model, sized for 28x28): two stride-2 5x5
convolutions with GDN down to a 7x7x32 integer code, a learned density per code channel, loss = MSE + λ · bpp. The
compression suite codes the test digits into real streams (constriction's range coder), decodes them, and puts the
bits and PSNR beside PNG, JPEG and WebP on the same digits.

    python -m aejax.main --config experiments/compressive_ae.py --workdir runs/compressive_ae
    python -m aejax.main --config experiments/compressive_ae.py --config.compress.lmbda=0.01  # fewer bits
"""
from ml_collections import config_dict

from aejax import config as config_lib, sweep as sweep_lib
from aejax.variants.compression import fields


def get_config(arg: str | None = None) -> config_dict.ConfigDict:
  c = fields.add(config_lib.base_config())
  c.variant = "compressive_ae"
  c.compress.lmbda = 0.003
  c.compress.channels = 64
  c.compress.code_channels = 32
  c.compress.layers = 2
  c.learning_rate = 1e-3
  c.batch_size = 64
  c.num_steps = 10_000
  c.log_every = 200
  c.eval_every = c.checkpoint_every = 2_000
  c.eval.suites = ("compression",)
  c.wandb.tags = ("compression",)
  c = config_lib.finalize(c, arg)
  if arg == "smoke":
    c.compress.channels = 16
    c.compress.code_channels = 8
    c.data.num_test = 64
    c.compress.jpeg_qualities = (10, 50, 90)
    c.compress.webp_qualities = (10, 50, 90)
  return c


def get_sweep() -> list[sweep_lib.Overrides]:
  """λ × seed, 5 × 2 = 10 runs, one point of the rate–distortion curve each; they can train as one vmapped bundle:

      python -m launch.local --config experiments/compressive_ae.py --root runs/compressive_ae_sweep --bundle_size 10
  """
  return sweep_lib.product(sweep_lib.sweep("compress.lmbda", [0.0003, 0.001, 0.003, 0.01, 0.03]),
                           sweep_lib.sweep("seed", [0, 1]))


def get_curves() -> list[sweep_lib.Curve]:
  """λ against the streams' bits per pixel and the decoded PSNR, with JPEG's bits at that PSNR."""
  return [("compress.lmbda", ["compression/bpp", "compression/psnr", "compression/jpeg_no_tables_bpp_at_psnr"])]
