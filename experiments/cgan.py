"""A class-conditional GAN (Mirza & Osindero 2014) on MNIST: DCGAN's players, the class's embedding joined to the
generator's noise and a projection discriminator (Miyato & Koyama 2018); `--config.model.kind=mlp` for MLP
players, `--config.gan.conditioning=embedding` for the class joined to the discriminator's features instead.

    python -m aejax.main --config experiments/cgan.py --workdir runs/cgan
"""
from ml_collections import config_dict

from aejax import config as config_lib, sweep as sweep_lib
from aejax.variants.adversarial import fields


def get_config(arg: str | None = None) -> config_dict.ConfigDict:
  c = fields.add(config_lib.base_config())
  c.variant = "cgan"
  c.latent_dim = 100
  c.model.kind = "conv"
  c.model.conv_features = (64, 128)
  c.model.encoder_widths = (512, 256)
  c.learning_rate = 2e-4
  c.adam_b1 = 0.5
  c.gan.ema_decay = 0.999
  c.batch_size = 128
  c.num_steps = 10_000
  c.log_every = 200
  c.eval_every = c.checkpoint_every = 2_000
  c.num_images = 10
  c.wandb.tags = ("gan", "cgan")
  c = config_lib.finalize(c, arg)
  if arg == "smoke":
    c.model.conv_features = (8, 16)
  return c


def get_sweep() -> list[sweep_lib.Overrides]:
  """Conditioning × players × seed, 2 × 2 × 2 = 8 runs:

      python -m launch.local --config experiments/cgan.py --root runs/cgan_sweep
  """
  return sweep_lib.product(sweep_lib.sweep("gan.conditioning", ["projection", "embedding"]),
                           sweep_lib.sweep("model.kind", ["conv", "mlp"]), sweep_lib.sweep("seed", [0, 1]))
