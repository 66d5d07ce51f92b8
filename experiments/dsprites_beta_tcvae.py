"""β-TCVAE on dSprites: experiments/dsprites_beta_vae.py's protocol and suite, with β weighing the total
correlation alone (Chen et al. 2018; log q(z) by minibatch-weighted sampling over the 737,280 images).

    python -m launch.local --config experiments/dsprites_beta_tcvae.py --root runs/dsprites_beta_tcvae_sweep
    python -m aejax.curves --config experiments/dsprites_beta_tcvae.py --root runs/dsprites_beta_tcvae_sweep
"""
from ml_collections import config_dict

from aejax import config as config_lib, sweep as sweep_lib
from aejax.variants.variational import fields


def get_config(arg: str | None = None) -> config_dict.ConfigDict:
  c = fields.add_tcvae(config_lib.base_config())
  c.variant = "beta_tcvae"
  c.beta = 6.0
  c.wandb.tags = ("dsprites", "beta_tcvae")
  return fields.dsprites_protocol(c, arg)


def get_sweep() -> list[sweep_lib.Overrides]:
  """The total correlation's weight β ∈ {1, 2, 4, 6, 8, 16} × seeds {0, 1, 2}, 18 runs."""
  return sweep_lib.product(sweep_lib.sweep("beta", [1, 2, 4, 6, 8, 16]), sweep_lib.sweep("seed", [0, 1, 2]))


def get_curves() -> list[sweep_lib.Curve]:
  """Each disentanglement metric and the reconstruction error against β."""
  return [("beta", fields.DSPRITES_CURVES)]
