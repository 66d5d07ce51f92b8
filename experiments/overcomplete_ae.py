"""Overcomplete denoising autoencoder: a code of 1024 ReLU units, wider than the 784 pixels, on one hidden layer.

The regulariser is input noise (`dae`, masking noise: 30 % of the pixels set to 0; binary cross-entropy
against the clean image). Without it (`--config.variant=ae`, the same code and net) a code this wide
drifts towards the identity and passes what it is shown through, holes included. Under- and overcomplete
differ only in `latent_dim` and `model.encoder_widths` (here none: 784-1024-784).

    python -m aejax.main --config experiments/overcomplete_ae.py --workdir runs/overcomplete_ae
"""
from ml_collections import config_dict

from aejax import config as config_lib


def get_config(arg: str | None = None) -> config_dict.ConfigDict:
  c = config_lib.base_config()
  c.variant = "dae"
  c.noise_type = "mask"
  c.noise_factor = 0.3
  c.latent_dim = 1024
  c.model.encoder_widths = ()
  c.model.code_activation = "relu"
  c.loss = "bce"
  c.learning_rate = 1e-3
  c.batch_size = 256
  c.num_steps = 2_340  # 10 epochs of 234 steps.
  c.eval_every = c.checkpoint_every = 1_170
  c.wandb.tags = ("dae", "overcomplete")
  return config_lib.finalize(c, arg)
