"""MIWAE (Rainforth et al. 2018): the mean of M importance-weighted bounds of K samples each, on Burda et al.'s
MNIST protocol (`fields.burda_protocol`); M = K = 8 as pythae's reproduction table has it (85.09 nats there).
M = 1 is the IWAE, K = 1 the ELBO averaged over M draws.

    python -m aejax.main --config experiments/miwae.py --workdir runs/miwae --config.vae.bound_estimates=4
"""
from ml_collections import config_dict

from aejax import config as config_lib, sweep as sweep_lib
from aejax.variants.variational import fields


def get_config(arg: str | None = None) -> config_dict.ConfigDict:
  c = fields.burda_protocol(fields.add_vae(config_lib.base_config()))
  c.vae.bound = "miwae"
  c.vae.bound_estimates = 8
  c.iwae_samples = 8
  c.wandb.tags = ("paper", "miwae")
  return config_lib.finalize(c, arg)


def get_sweep() -> list[sweep_lib.Overrides]:
  """(M, K) along M·K = 64, from the IWAE (1, 64) to the averaged ELBO (64, 1), × seeds {0, 1}: 14 runs."""
  pairs = sweep_lib.zipit(sweep_lib.sweep("vae.bound_estimates", [1, 2, 4, 8, 16, 32, 64]),
                          sweep_lib.sweep("iwae_samples", [64, 32, 16, 8, 4, 2, 1]))
  return sweep_lib.product(pairs, sweep_lib.sweep("seed", [0, 1]))
