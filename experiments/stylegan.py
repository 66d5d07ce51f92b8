"""A small style-based generator (Karras et al. 2019, 2020) on MNIST: z and w of 128 dimensions, a 4-layer mapping
network, a learned 7×7×128 constant and three modulated 3×3 style layers (7×7×128, 14×14×128, 28×28×64) with
per-pixel noise, style mixing in 90 % of batches; DCGAN's discriminator (64, 128 features). The non-saturating
loss with R1 (γ = 1), Adam at 2e-4 with b1 = 0.5, batches of 64; samples from the generator's moving average.

    python -m aejax.main --config experiments/stylegan.py --workdir runs/stylegan
"""
from ml_collections import config_dict

from aejax import config as config_lib, sweep as sweep_lib
from aejax.variants.adversarial import fields


def get_config(arg: str | None = None) -> config_dict.ConfigDict:
  c = fields.add(config_lib.base_config())
  c.variant = "stylegan"
  c.latent_dim = 128
  c.model.kind = "conv"
  c.model.conv_features = (64, 128)
  c.learning_rate = 2e-4
  c.adam_b1 = 0.5
  c.gan.r1_weight = 1.0
  c.gan.ema_decay = 0.999
  c.batch_size = 64
  c.num_steps = 20_000
  c.log_every = 200
  c.eval_every = c.checkpoint_every = 2_000
  c.num_images = 10
  c.wandb.tags = ("gan", "stylegan")
  c = config_lib.finalize(c, arg)
  if arg == "smoke":
    c.latent_dim = 16
    c.model.conv_features = (8, 16)
  return c


def get_sweep() -> list[sweep_lib.Overrides]:
  """R1 weight × style mixing × seed, 2 × 2 × 2 = 8 runs:

      python -m launch.local --config experiments/stylegan.py --root runs/stylegan_sweep
  """
  return sweep_lib.product(sweep_lib.sweep("gan.r1_weight", [1.0, 10.0]),
                           sweep_lib.sweep("gan.style_mixing", [0.0, 0.9]), sweep_lib.sweep("seed", [0, 1]))
