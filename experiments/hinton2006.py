"""Hinton & Salakhutdinov (2006), Science 313:504: the deep MNIST autoencoder 784-1000-500-250-30.

Published: test squared error per image 3.00 for the deep autoencoder, 13.87 for PCA with 30 components
(the `recon` suite reports both, as `recon/squared_error` and `recon/pca_squared_error`).

Protocol here: the same widths and a linear 30-unit code, trained end to end from a random initialisation
(no RBM pre-training; `stacked_ae` covers layer-wise pre-training) on the cross-entropy of the logistic
outputs, as in the paper's fine-tuning, with Adam and a cosine schedule for 200 epochs (234 steps each).
Differences from the paper: ReLU hidden units instead of logistic ones, Adam instead of conjugate gradients.

    python -m aejax.main --config experiments/hinton2006.py --workdir runs/hinton2006
"""
from ml_collections import config_dict

from aejax import config as config_lib


def get_config(arg: str | None = None) -> config_dict.ConfigDict:
  c = config_lib.base_config()
  c.variant = "ae"
  c.latent_dim = 30
  c.model.encoder_widths = (1000, 500, 250)
  c.model.code_activation = "linear"
  c.loss = "bce"
  c.learning_rate = 1e-3
  c.lr_schedule = "cosine"
  c.batch_size = 256
  c.num_steps = 46_800  # 200 epochs of 234 steps.
  c.eval_every = c.checkpoint_every = 4_680
  c.eval.suites = ("recon",)
  c.wandb.tags = ("paper", "hinton2006")
  return config_lib.finalize(c, arg)
