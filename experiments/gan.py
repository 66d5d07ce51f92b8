"""A GAN of MLP players on MNIST (Goodfellow et al. 2014): noise of 64 dimensions, generator 256-512-784 (ReLU,
tanh), discriminator 784-512-256-1 (leaky ReLU), the non-saturating loss, Adam at 2e-4 with b1 = 0.5, batches of 128.

    python -m aejax.main --config experiments/gan.py --workdir runs/gan
    python -m aejax.main --config experiments/gan.py --config.gan.loss=hinge --workdir runs/gan_hinge

`get_sweep` crosses the losses with learning rates and seeds (Lucic et al. 2018's question: do they differ, tuned?).
"""
from ml_collections import config_dict

from aejax import config as config_lib, sweep as sweep_lib
from aejax.variants.adversarial import fields


def get_config(arg: str | None = None) -> config_dict.ConfigDict:
  c = fields.add(config_lib.base_config())
  c.variant = "gan"
  c.latent_dim = 64
  c.model.encoder_widths = (512, 256)
  c.learning_rate = 2e-4
  c.adam_b1 = 0.5
  c.batch_size = 128
  c.num_steps = 20_000  # About 43 epochs.
  c.log_every = 200
  c.eval_every = c.checkpoint_every = 2_000
  c.num_images = 10
  c.wandb.tags = ("gan",)
  return config_lib.finalize(c, arg)


def get_sweep() -> list[sweep_lib.Overrides]:
  """Loss × learning rate × seed, 4 × 3 × 2 = 24 runs (WGAN-GP with its penalty and 5 critic steps):

      python -m launch.local --config experiments/gan.py --root runs/gan_sweep
  """
  losses = [{"gan.loss": "non_saturating"}, {"gan.loss": "hinge"}, {"gan.loss": "least_squares"},
            {"gan.loss": "wasserstein", "gan.gp_weight": 10.0, "gan.d_steps": 5}]
  return sweep_lib.product(losses, sweep_lib.sweep("learning_rate", [1e-4, 2e-4, 5e-4]),
                           sweep_lib.sweep("seed", [0, 1]))
