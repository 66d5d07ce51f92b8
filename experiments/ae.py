"""Undercomplete autoencoder: the seed's dense 784-500-300-150-100-64 net, sigmoid output, squared error.

    python -m aejax.main --config experiments/ae.py --workdir runs/ae
"""
from ml_collections import config_dict

from aejax import config as config_lib
from aejax import sweep as sweep_lib


def get_config(arg: str | None = None) -> config_dict.ConfigDict:
  c = config_lib.base_config()
  c.variant = "ae"
  c.latent_dim = 64
  c.model.encoder_widths = (500, 300, 150, 100)
  c.loss = "mse"
  c.learning_rate = 1e-3
  c.lr_schedule = "cosine"
  c.batch_size = 256
  c.num_steps = 7_020  # 30 epochs of 234 steps.
  c.eval_every = c.checkpoint_every = 1_170
  c.wandb.tags = ("ae",)
  return config_lib.finalize(c, arg)


def get_sweep() -> list[sweep_lib.Overrides]:
  """The code size, 6 runs: `python -m launch.local --config experiments/ae.py --root runs/latent_sweep`."""
  return sweep_lib.sweep("latent_dim", [2, 8, 16, 30, 64, 128])
