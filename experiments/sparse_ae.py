"""Sparse autoencoder: experiments/ae.py's 784-500-300-150-100-64 net with a sigmoid code held sparse by KL.

loss = squared error + λ·Σ_j KL(ρ ‖ ρ̂_j), ρ̂_j the batch-mean activation of code unit j, λ = 1 and
ρ = 0.05 (`--config.sparsity=l1` with a non-sigmoid code gives the L1 penalty instead). Test metrics add
`mean_activation` (close to ρ when the penalty holds) and `near_zero_fraction`.

    python -m aejax.main --config experiments/sparse_ae.py --workdir runs/sparse_ae
"""
from ml_collections import config_dict

from aejax import config as config_lib
from aejax import sweep as sweep_lib


def get_config(arg: str | None = None) -> config_dict.ConfigDict:
  c = config_lib.base_config()
  c.variant = "sparse_ae"
  c.latent_dim = 64
  c.model.encoder_widths = (500, 300, 150, 100)
  c.model.code_activation = "sigmoid"
  c.sparsity = "kl"
  c.sparsity_weight = 1.0
  c.sparsity_target = 0.05
  c.loss = "mse"
  c.learning_rate = 1e-3
  c.lr_schedule = "cosine"
  c.batch_size = 256
  c.num_steps = 4_680  # 20 epochs of 234 steps.
  c.eval_every = c.checkpoint_every = 1_170
  c.wandb.tags = ("sparse_ae",)
  return config_lib.finalize(c, arg)


def get_sweep() -> list[sweep_lib.Overrides]:
  """The sparsity weight λ, 4 runs.

      python -m launch.local --config experiments/sparse_ae.py --root runs/sparse_sweep
  """
  return sweep_lib.sweep("sparsity_weight", [0.01, 0.1, 1.0, 10.0])


def get_curves() -> list[sweep_lib.Curve]:
  """λ against the test error and the code's mean activation (ρ = 0.05 is the target), drawn at the sweep's end."""
  return [("sparsity_weight", ["test/recon_error", "test/mean_activation"])]
