"""PIWAE (Rainforth et al. 2018): the decoder trained on the IWAE bound of all M·K draws, the encoder on MIWAE(M, K)
of the same draws, on Burda et al.'s MNIST protocol (`fields.burda_protocol`); M = K = 8 as pythae's reproduction
table has it (84.58 nats there).

    python -m aejax.main --config experiments/piwae.py --workdir runs/piwae
"""
from ml_collections import config_dict

from aejax import config as config_lib, sweep as sweep_lib
from aejax.variants.variational import fields


def get_config(arg: str | None = None) -> config_dict.ConfigDict:
  c = fields.burda_protocol(fields.add_vae(config_lib.base_config()))
  c.vae.bound = "piwae"
  c.vae.bound_estimates = 8
  c.iwae_samples = 8
  c.wandb.tags = ("paper", "piwae")
  return config_lib.finalize(c, arg)


def get_sweep() -> list[sweep_lib.Overrides]:
  """(M, K) ∈ {(2, 32), (4, 16), (8, 8), (16, 4)} × seeds {0, 1}: 8 runs."""
  pairs = sweep_lib.zipit(sweep_lib.sweep("vae.bound_estimates", [2, 4, 8, 16]),
                          sweep_lib.sweep("iwae_samples", [32, 16, 8, 4]))
  return sweep_lib.product(pairs, sweep_lib.sweep("seed", [0, 1]))
