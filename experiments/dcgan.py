"""DCGAN (Radford et al. 2016) scaled to MNIST's 28×28: noise of 100 dimensions to a 7×7×128 map, two stride-2 4×4
transposed convolutions (128 → 64 → 1 channels; batch norm and ReLU, tanh out); the discriminator two stride-2
4×4 convolutions (64 → 128; leaky ReLU 0.2) and a linear output. Adam at 2e-4 with b1 = 0.5, batches of 128,
the non-saturating loss; samples from the moving average of the generator's weights.

    python -m aejax.main --config experiments/dcgan.py --workdir runs/dcgan
"""
from ml_collections import config_dict

from aejax import config as config_lib, sweep as sweep_lib
from aejax.variants.adversarial import fields


def get_config(arg: str | None = None) -> config_dict.ConfigDict:
  c = fields.add(config_lib.base_config())
  c.variant = "dcgan"
  c.latent_dim = 100
  c.model.kind = "conv"
  c.model.conv_features = (64, 128)
  c.learning_rate = 2e-4
  c.adam_b1 = 0.5
  c.gan.ema_decay = 0.999
  c.batch_size = 128
  c.num_steps = 10_000  # About 21 epochs.
  c.log_every = 200
  c.eval_every = c.checkpoint_every = 2_000
  c.num_images = 10
  c.wandb.tags = ("gan", "dcgan")
  c = config_lib.finalize(c, arg)
  if arg == "smoke":
    c.model.conv_features = (8, 16)
  return c


def get_sweep() -> list[sweep_lib.Overrides]:
  """Loss × learning rate × seed, 4 × 2 × 2 = 16 runs:

      python -m launch.local --config experiments/dcgan.py --root runs/dcgan_sweep
  """
  losses = [{"gan.loss": "non_saturating"}, {"gan.loss": "hinge"}, {"gan.loss": "least_squares"},
            {"gan.loss": "wasserstein", "gan.gp_weight": 10.0, "gan.d_steps": 5}]
  return sweep_lib.product(losses, sweep_lib.sweep("learning_rate", [1e-4, 2e-4]), sweep_lib.sweep("seed", [0, 1]))
