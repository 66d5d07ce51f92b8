"""VQ-VAE (van den Oord et al. 2017) of MNIST: the conv encoder (Conv32-MaxPool2-Conv64-MaxPool2, 3x3, relu) ends in
a 7x7 map of 16-d vectors, each replaced by the nearest of 512 codes; the mirrored decoder reads the codes, Bernoulli
likelihood; commitment weight β = 0.25, Adam at 1e-3, batches of 128, 20 epochs. `--config.vq.ema=True`: the
codebook as moving averages of its assigned outputs (decay 0.99) instead of its loss term. The pictures show the
reconstructions and the 7x7 code maps; the train and test logs the codebook's perplexity and its unused codes.

    python -m aejax.main --config experiments/vqvae.py --workdir runs/vqvae --config.vq.ema=True
"""
from ml_collections import config_dict

from aejax import config as config_lib, sweep as sweep_lib
from aejax.variants.variational import fields


def get_config(arg: str | None = None) -> config_dict.ConfigDict:
  c = fields.add_vq(config_lib.base_config())
  c.variant = "vqvae"
  c.model.kind = "conv"
  c.model.conv_features = (32, 64)
  c.model.spatial_code = True
  c.vq.num_codes = 512
  c.vq.code_dim = c.model.code_channels = 16
  c.vq.beta_commit = 0.25
  c.loss = "bce"
  c.learning_rate = 1e-3
  c.batch_size = 128
  c.num_steps = 9_360  # 20 epochs of 468 steps.
  c.eval_every = c.checkpoint_every = 1_872
  c.wandb.tags = ("vqvae",)
  c = config_lib.finalize(c, arg)
  if arg == "smoke":
    c.model.conv_features = (8, 16)
    c.vq.num_codes = 64
    c.vq.code_dim = c.model.code_channels = 8
  return c


def get_sweep() -> list[sweep_lib.Overrides]:
  """β_commit ∈ {0.1, 0.25, 0.5, 1, 2} × seeds {0, 1, 2}, 15 runs (β is a hyper-parameter of the state: they can
  train as bundles):

      python -m launch.local --config experiments/vqvae.py --root runs/vqvae_sweep
  """
  return sweep_lib.product(sweep_lib.sweep("vq.beta_commit", [0.1, 0.25, 0.5, 1.0, 2.0]),
                           sweep_lib.sweep("seed", [0, 1, 2]))


def get_curves() -> list[sweep_lib.Curve]:
  """β_commit against the reconstruction error and the codebook's use on the test images."""
  return [("vq.beta_commit", ["test/recon_error", "test/perplexity", "test/unused_codes"])]
