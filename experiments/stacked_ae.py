"""Stacked autoencoder, the seed's 784-256-128-64 (and mirror), relu codes, sigmoid output, BCE.

Greedy layer-wise by default: each layer pre-trains alone for 4 epochs, on the codes of the layer below,
then the stacked net fine-tunes end to end for 8 epochs. `--config.pretrain_steps=0` trains the same
net end to end from the start; `--config.stack_input=concat` gives each next layer its predecessor's
input joined with its reconstruction (the seed's "implementation 1").

    python -m aejax.main --config experiments/stacked_ae.py --workdir runs/stacked_ae
"""
from ml_collections import config_dict

from aejax import config as config_lib


def get_config(arg: str | None = None) -> config_dict.ConfigDict:
  c = config_lib.base_config()
  c.variant = "stacked_ae"
  c.model.encoder_widths = (256, 128)
  c.latent_dim = 64
  c.model.activation = c.model.code_activation = "relu"
  c.loss = "bce"
  c.learning_rate = 1e-3
  c.batch_size = 256
  c.pretrain_steps = 936  # 4 epochs of 234 steps per layer.
  c.num_steps = 3 * 936 + 1_872  # Then 8 epochs of fine-tuning.
  c.eval_every = c.checkpoint_every = 468
  c.log_every = 78
  c.wandb.tags = ("stacked_ae",)
  c = config_lib.finalize(c, arg)
  if arg == "smoke":
    c.pretrain_steps = 30
    c.num_steps = 150
  return c
