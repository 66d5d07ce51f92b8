"""CycleGAN (Zhu et al. 2017) between MNIST (domain A) and the UCI handwritten digits resized to 28×28 (domain B),
unpaired: translators of 32 and 64 features with two residual blocks, DCGAN discriminators, the least-squares loss,
cycle weight 10, identity weight 5, Adam at 2e-4 with b1 = 0.5, batches of 64.

    python -m aejax.main --config experiments/cyclegan.py --workdir runs/cyclegan
"""
from ml_collections import config_dict

from aejax import config as config_lib, sweep as sweep_lib
from aejax.variants.adversarial import fields


def get_config(arg: str | None = None) -> config_dict.ConfigDict:
  c = fields.add(config_lib.base_config())
  c.variant = "cyclegan"
  c.model.kind = "conv"
  c.model.conv_features = (32, 64)
  c.gan.loss = "least_squares"
  c.learning_rate = 2e-4
  c.adam_b1 = 0.5
  c.batch_size = 64
  c.num_steps = 10_000
  c.log_every = 200
  c.eval_every = c.checkpoint_every = 2_000
  c.num_images = 10
  c.wandb.tags = ("gan", "cyclegan")
  c = config_lib.finalize(c, arg)
  if arg == "smoke":
    c.model.conv_features = (8, 16)
    c.gan.residual_blocks = 1
  return c


def get_sweep() -> list[sweep_lib.Overrides]:
  """Cycle weight × identity weight × seed, 2 × 2 × 2 = 8 runs (one bundle: the weights are per-member values):

      python -m launch.local --config experiments/cyclegan.py --root runs/cyclegan_sweep
  """
  return sweep_lib.product(sweep_lib.sweep("gan.cycle_weight", [5.0, 10.0]),
                           sweep_lib.sweep("gan.identity_weight", [0.0, 5.0]), sweep_lib.sweep("seed", [0, 1]))
