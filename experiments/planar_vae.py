"""Planar flows (Rezende & Mohamed 2015) on the VAE's posterior: `vae.flow_steps` = 10 planar maps (their parameters
shared by all images, as pythae's VAE_LinNF has them; the paper's are computed from each image), after the Gaussian
posterior; on Burda et al.'s MNIST MLP protocol (`fields.burda_protocol`). The paper's MNIST figures (−log p(x) ≤
85.1 nats with 80 maps) come from a 400-unit maxout net of 40 latents.

    python -m aejax.main --config experiments/planar_vae.py --workdir runs/planar --config.vae.flow_steps=40
"""
from ml_collections import config_dict

from aejax import config as config_lib, sweep as sweep_lib
from aejax.variants.variational import fields


def get_config(arg: str | None = None) -> config_dict.ConfigDict:
  c = fields.burda_protocol(fields.add_vae(config_lib.base_config()))
  c.vae.flow = "planar"
  c.vae.flow_steps = 10
  c.wandb.tags = ("paper", "planar_vae")
  return config_lib.finalize(c, arg)


def get_sweep() -> list[sweep_lib.Overrides]:
  """Flow lengths ∈ {2, 10, 40, 80} (the paper's range) × seeds {0, 1}: 8 runs."""
  return sweep_lib.product(sweep_lib.sweep("vae.flow_steps", [2, 10, 40, 80]), sweep_lib.sweep("seed", [0, 1]))
