"""β-VAE on dSprites, scored by the disentanglement suite (disentanglement_lib's protocol:
`aejax.variants.variational.fields.dsprites_protocol`). Its sweep asks what β does: each disentanglement metric
and the reconstruction error against β, over seeds.

    python -m aejax.main --config experiments/dsprites_beta_vae.py --workdir runs/dsprites_beta_vae --config.beta=4
    python -m launch.local --config experiments/dsprites_beta_vae.py --root runs/dsprites_beta_vae_sweep
    python -m aejax.curves --config experiments/dsprites_beta_vae.py --root runs/dsprites_beta_vae_sweep
"""
from ml_collections import config_dict

from aejax import config as config_lib, sweep as sweep_lib
from aejax.variants.variational import fields


def get_config(arg: str | None = None) -> config_dict.ConfigDict:
  c = fields.add_vae(config_lib.base_config())
  c.variant = "beta_vae"
  c.beta = 4.0
  c.wandb.tags = ("dsprites", "beta_vae")
  return fields.dsprites_protocol(c, arg)


def get_sweep() -> list[sweep_lib.Overrides]:
  """β ∈ {1, 2, 4, 6, 8, 16} × seeds {0, 1, 2}, 18 runs."""
  return sweep_lib.product(sweep_lib.sweep("beta", [1, 2, 4, 6, 8, 16]), sweep_lib.sweep("seed", [0, 1, 2]))


def get_curves() -> list[sweep_lib.Curve]:
  """Each disentanglement metric and the reconstruction error against β, drawn when the sweep has finished."""
  return [("beta", fields.DSPRITES_CURVES)]
