"""Contractive autoencoder (Rifai et al., 2011): one-layer 784-64 sigmoid encoder, squared error + λ·‖∂h/∂x‖²_F.

λ = `contractive_weight` = 0.1 halves the mean ‖∂h/∂x‖²_F of the same net trained with λ = 0 (a plain `ae`)
(20 epochs: 6.0 against 13.0) for a test squared error of 15.2 against 14.5. The one-layer sigmoid encoder
takes the penalty's closed form Σ_j (h_j(1−h_j))² Σ_i W_ij²; deeper encoders
(`--config.model.encoder_widths='(500,300,150,100)'`) get the exact Jacobian through JAX, 32x slower per step on
this CPU (benchmarks/contractive_cost.py, in docs/performance.md). Test metrics add `jacobian_norm_sq`, the mean
‖∂h/∂x‖²_F.

    python -m aejax.main --config experiments/contractive_ae.py --workdir runs/contractive_ae
"""
from ml_collections import config_dict

from aejax import config as config_lib


def get_config(arg: str | None = None) -> config_dict.ConfigDict:
  c = config_lib.base_config()
  c.variant = "contractive_ae"
  c.latent_dim = 64
  c.model.encoder_widths = ()
  c.model.code_activation = "sigmoid"
  c.contractive_weight = 0.1
  c.loss = "mse"
  c.learning_rate = 1e-3
  c.lr_schedule = "cosine"
  c.batch_size = 256
  c.num_steps = 4_680  # 20 epochs of 234 steps.
  c.eval_every = c.checkpoint_every = 1_170
  c.wandb.tags = ("contractive_ae",)
  return config_lib.finalize(c, arg)
