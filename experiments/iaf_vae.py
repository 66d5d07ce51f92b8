"""Inverse autoregressive flow (Kingma et al. 2016) on the VAE's posterior: `vae.flow_steps` = 4 IAF steps, each a
MADE of two hidden layers of 320 reading the encoder's features, after the Gaussian posterior; on Burda et al.'s
MNIST MLP protocol (`fields.burda_protocol`; the paper's MNIST figures, 79.88 nats, come from a ResNet VAE with
IAF, not this net). pythae reports VAE_IAF on its own protocol.

    python -m aejax.main --config experiments/iaf_vae.py --workdir runs/iaf --config.vae.flow_steps=8
"""
from ml_collections import config_dict

from aejax import config as config_lib, sweep as sweep_lib
from aejax.variants.variational import fields


def get_config(arg: str | None = None) -> config_dict.ConfigDict:
  c = fields.burda_protocol(fields.add_vae(config_lib.base_config()))
  c.vae.flow = "iaf"
  c.vae.flow_steps = 4
  c.vae.flow_hidden = (320, 320)
  c.wandb.tags = ("paper", "iaf_vae")
  c = config_lib.finalize(c, arg)
  if arg == "smoke":
    c.vae.flow_hidden = (32, 32)
  return c


def get_sweep() -> list[sweep_lib.Overrides]:
  """Flow steps ∈ {1, 2, 4, 8} × seeds {0, 1}: 8 runs."""
  return sweep_lib.product(sweep_lib.sweep("vae.flow_steps", [1, 2, 4, 8]), sweep_lib.sweep("seed", [0, 1]))
