"""A compressive autoencoder of natural photographs: 64x64 grayscale patches of ten photos scikit-image ships
(`photo_patches`; the astronaut held out for test), three stride-2 5x5 convolutions with GDN down to an 8x8x32
integer code, loss = MSE + λ · bpp. The compression suite codes the 64 test patches and puts them beside PNG, JPEG
and WebP on the same patches.

    python -m aejax.main --config experiments/compressive_ae_photos.py --workdir runs/compressive_ae_photos
"""
from ml_collections import config_dict

from aejax import config as config_lib, sweep as sweep_lib
from aejax.variants.compression import fields


def get_config(arg: str | None = None) -> config_dict.ConfigDict:
  c = fields.add(config_lib.base_config())
  c.variant = "compressive_ae"
  c.data.name = "photo_patches"
  c.compress.lmbda = 0.001
  c.compress.channels = 64
  c.compress.code_channels = 32
  c.compress.layers = 3
  c.learning_rate = 1e-3
  c.batch_size = 16
  c.num_steps = 10_000
  c.log_every = 200
  c.eval_every = c.checkpoint_every = 2_000
  c.eval_batch_size = 64
  c.eval.num_train = 1_000
  c.eval.suites = ("compression",)
  c.wandb.tags = ("compression", "photos")
  c = config_lib.finalize(c, arg)
  if arg == "smoke":
    c.compress.channels = 16
    c.compress.code_channels = 8
    c.batch_size = 8
    c.data.num_test = None  # All 64 test patches.
    c.compress.jpeg_qualities = (10, 50, 90)
    c.compress.webp_qualities = (10, 50, 90)
  return c


def get_sweep() -> list[sweep_lib.Overrides]:
  """λ × seed, 4 × 2 = 8 runs, one point of the rate–distortion curve each."""
  return sweep_lib.product(sweep_lib.sweep("compress.lmbda", [0.0001, 0.0003, 0.001, 0.003]),
                           sweep_lib.sweep("seed", [0, 1]))


def get_curves() -> list[sweep_lib.Curve]:
  """λ against the streams' bits per pixel and the decoded PSNR, with JPEG's and WebP's bits at that PSNR."""
  return [("compress.lmbda", ["compression/bpp", "compression/psnr", "compression/webp_bpp_at_psnr"])]
