"""Variational autoencoder: 784-500-20 MLP, Bernoulli decoder on statically binarised MNIST, β = 1.

The flax VAE example's setting (one hidden layer of 500, 20 latents, Adam 1e-3, batch 128).
`test/neg_elbo` is the negative ELBO in nats per image.

    python -m aejax.main --config experiments/vae.py --workdir runs/vae
"""
from ml_collections import config_dict

from aejax import config as config_lib
from aejax.variants.variational import fields


def get_config(arg: str | None = None) -> config_dict.ConfigDict:
  c = fields.add_vae(config_lib.base_config())
  c.variant = "vae"
  c.latent_dim = 20
  c.model.encoder_widths = (500,)
  c.loss = "bce"
  c.data.binarize = "static"
  c.beta = 1.0
  c.learning_rate = 1e-3
  c.batch_size = 128
  c.num_steps = 14_040  # 30 epochs of 468 steps.
  c.eval_every = c.checkpoint_every = 2_340
  c.wandb.tags = ("vae",)
  return config_lib.finalize(c, arg)
