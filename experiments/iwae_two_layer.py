"""Burda, Grosse & Salakhutdinov (2016), Table 1: MNIST, two stochastic layers, 784-[200-200]-100-[100-100]-50.

Published test NLL (k = 5,000): VAE (k = 1) 85.33 nats; IWAE trained with k = 50: 82.90. The protocol of the
one-layer model (`fields.burda_protocol`: tanh units, dynamic binarisation, batch 20, 3,280 epochs, a cosine decay
for the paper's staircase) with h1 of 100 units and h2 of 50 above it (`vae.stochastic_layers=2`).

    python -m aejax.main --config experiments/iwae_two_layer.py --workdir runs/iwae2_vae
    python -m aejax.main --config experiments/iwae_two_layer.py --workdir runs/iwae2_k50 --config.iwae_samples=50
"""
from ml_collections import config_dict

from aejax import config as config_lib, sweep as sweep_lib
from aejax.variants.variational import fields


def get_config(arg: str | None = None) -> config_dict.ConfigDict:
  c = fields.burda_protocol(fields.add_vae(config_lib.base_config()))
  c.latent_dim = 100
  c.vae.stochastic_layers = 2
  c.vae.top_widths = (100, 100)
  c.vae.top_latent_dim = 50
  c.wandb.tags = ("paper", "iwae_two_layer")
  return config_lib.finalize(c, arg)


def get_sweep() -> list[sweep_lib.Overrides]:
  """k ∈ {1, 5, 50} (the paper's) × seeds {0, 1}: 6 runs."""
  return sweep_lib.product(sweep_lib.sweep("iwae_samples", [1, 5, 50]), sweep_lib.sweep("seed", [0, 1]))
