"""The annealed-capacity β-VAE (Burgess et al. 2018): loss = -log p(x|z) + γ·|KL - C|, γ = 1000, the capacity C
growing linearly from 0 to 25 nats (the paper's dSprites setting, there over 100,000 steps); a 10-d code and a
Bernoulli decoder behind the papers' strided convolutions (4x4, stride 2, then Dense 256, and the mirror).

On MNIST here: two stride-2 convolutions (32, 64) for its 28x28 images, C growing over the first 10,000 of 14,040
steps. On dSprites, the papers' four (`--config.data.name=dsprites --config.model.conv_features='(32,32,64,64)'`,
or `fields.dsprites_protocol` as experiments/dsprites_beta_vae.py uses it), scored by the disentanglement suite.

    python -m aejax.main --config experiments/beta_vae_capacity.py --workdir runs/beta_vae_capacity
"""
from ml_collections import config_dict

from aejax import config as config_lib, sweep as sweep_lib
from aejax.variants.variational import fields


def get_config(arg: str | None = None) -> config_dict.ConfigDict:
  c = fields.add_capacity(config_lib.base_config())
  c.variant = "beta_vae_capacity"
  c.capacity.gamma = 1_000.0
  c.capacity.c_max = 25.0
  c.capacity.steps = 10_000
  c = fields.mnist_strided_net(c)
  c.learning_rate = 1e-3
  c.batch_size = 128
  c.num_steps = 14_040  # 30 epochs of 468 steps.
  c.eval_every = c.checkpoint_every = 2_340
  c.wandb.tags = ("beta_vae_capacity",)
  c = config_lib.finalize(c, arg)
  if arg == "smoke":
    c.capacity.steps = 40
  return c


def get_sweep() -> list[sweep_lib.Overrides]:
  """The final capacity C ∈ {5, 10, 25, 50} nats × seeds {0, 1, 2}, 12 runs:

      python -m launch.local --config experiments/beta_vae_capacity.py --root runs/beta_vae_capacity_sweep
  """
  return sweep_lib.product(sweep_lib.sweep("capacity.c_max", [5, 10, 25, 50]), sweep_lib.sweep("seed", [0, 1, 2]))


def get_curves() -> list[sweep_lib.Curve]:
  """The final capacity against reconstruction error and the KL it reached, when the sweep has finished."""
  return [("capacity.c_max", ["test/recon_error", "test/kl"])]
