"""CIWAE (Rainforth et al. 2018): β·ELBO + (1 - β)·IWAE on the same K = 64 draws, β = 0.05 as pythae's reproduction
table has it (84.74 nats there), on Burda et al.'s MNIST protocol (`fields.burda_protocol`).

    python -m aejax.main --config experiments/ciwae.py --workdir runs/ciwae --config.vae.ciwae_beta=0.5
"""
from ml_collections import config_dict

from aejax import config as config_lib, sweep as sweep_lib
from aejax.variants.variational import fields


def get_config(arg: str | None = None) -> config_dict.ConfigDict:
  c = fields.burda_protocol(fields.add_vae(config_lib.base_config()))
  c.vae.bound = "ciwae"
  c.vae.ciwae_beta = 0.05
  c.iwae_samples = 64
  c.wandb.tags = ("paper", "ciwae")
  return config_lib.finalize(c, arg)


def get_sweep() -> list[sweep_lib.Overrides]:
  """β ∈ {0, 0.05, 0.25, 0.5, 1} (IWAE to ELBO) × seeds {0, 1}: 10 runs; β is a scalar, so members bundle."""
  return sweep_lib.product(sweep_lib.sweep("vae.ciwae_beta", [0.0, 0.05, 0.25, 0.5, 1.0]),
                           sweep_lib.sweep("seed", [0, 1]))


def get_curves() -> list[sweep_lib.Curve]:
  """β against the test NLL, the bound trained and the ELBO, when the sweep has finished."""
  return [("vae.ciwae_beta", ["nll/iwae_nll", "test/neg_bound", "test/neg_elbo"])]
