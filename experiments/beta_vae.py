"""β-VAE (Higgins et al. 2017): the VAE with the KL term weighted by β = 4 and a 10-d code.

A larger β trades reconstruction for a code closer to the prior (more factorised); the KL weight
warms up linearly over the first 2,000 steps.

    python -m aejax.main --config experiments/beta_vae.py --workdir runs/beta_vae --config.beta=8
"""
from ml_collections import config_dict

from aejax import config as config_lib
from aejax import sweep as sweep_lib
from aejax.variants.variational import fields


def get_config(arg: str | None = None) -> config_dict.ConfigDict:
  c = fields.add_vae(config_lib.base_config())
  c.variant = "beta_vae"
  c.beta = 4.0
  c.kl_warmup_steps = 2_000
  c.latent_dim = 10
  c.model.encoder_widths = (512, 256)
  c.loss = "bce"
  c.data.binarize = "dynamic"
  c.learning_rate = 1e-3
  c.batch_size = 128
  c.num_steps = 14_040  # 30 epochs of 468 steps.
  c.eval_every = c.checkpoint_every = 2_340
  c.wandb.tags = ("beta_vae",)
  return config_lib.finalize(c, arg)


def get_sweep() -> list[sweep_lib.Overrides]:
  """β ∈ {1, 2, 4, 8, 16} × seeds {0, 1, 2}, 15 runs: how the KL weight trades reconstruction for the prior.

      python -m launch.local --config experiments/beta_vae.py --root runs/beta_vae_sweep
  """
  return sweep_lib.product(sweep_lib.sweep("beta", [1, 2, 4, 8, 16]), sweep_lib.sweep("seed", [0, 1, 2]))


def get_curves() -> list[sweep_lib.Curve]:
  """The rate-distortion curve: β against reconstruction error and KL, drawn when the sweep has finished."""
  return [("beta", ["test/recon_error", "test/kl"])]
