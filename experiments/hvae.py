"""The Hamiltonian VAE (Caterini, Doucet & Sejdinovic 2018): each draw of the Gaussian posterior moved by K = 4
tempered leapfrog steps of -log p(x, z), the step sizes and initial inverse temperature (from 0.01 and 0.3) learned;
on Burda et al.'s MNIST protocol (`fields.burda_protocol`). pythae reports 86.21 nats with 4 leapfrog steps (the paper
86.40, on its own net).

    python -m aejax.main --config experiments/hvae.py --workdir runs/hvae --config.vae.leapfrog_steps=8
"""
from ml_collections import config_dict

from aejax import config as config_lib, sweep as sweep_lib
from aejax.variants.variational import fields


def get_config(arg: str | None = None) -> config_dict.ConfigDict:
  c = fields.burda_protocol(fields.add_vae(config_lib.base_config()))
  c.vae.leapfrog_steps = 4
  c.wandb.tags = ("paper", "hvae")
  return config_lib.finalize(c, arg)


def get_sweep() -> list[sweep_lib.Overrides]:
  """Leapfrog steps ∈ {1, 2, 4, 8} × seeds {0, 1}: 8 runs."""
  return sweep_lib.product(sweep_lib.sweep("vae.leapfrog_steps", [1, 2, 4, 8]), sweep_lib.sweep("seed", [0, 1]))
