"""The adversarial autoencoder (Makhzani et al. 2016) on MNIST: a 784-512-256-8 encoder and its mirror (ReLU,
Bernoulli decoder), codes matched to N(0, I) by a 512-512 discriminator, the non-saturating loss, β = 1, Adam at
2e-4 with b1 = 0.5, batches of 128.

    python -m aejax.main --config experiments/aae.py --workdir runs/aae
"""
from ml_collections import config_dict

from aejax import config as config_lib, sweep as sweep_lib
from aejax.variants.adversarial import fields


def get_config(arg: str | None = None) -> config_dict.ConfigDict:
  c = fields.add(config_lib.base_config())
  c.variant = "aae"
  c.latent_dim = 8
  c.loss = "bce"
  c.model.encoder_widths = (512, 256)
  c.learning_rate = 2e-4
  c.adam_b1 = 0.5
  c.batch_size = 128
  c.num_steps = 20_000
  c.log_every = 200
  c.eval_every = c.checkpoint_every = 2_000
  c.eval.suites = ("recon",)
  c.wandb.tags = ("gan", "aae")
  return config_lib.finalize(c, arg)


def get_sweep() -> list[sweep_lib.Overrides]:
  """β × code size × seed, 3 × 2 × 2 = 12 runs (β and seed members of one code size bundle as one program):

      python -m launch.local --config experiments/aae.py --root runs/aae_sweep
  """
  return sweep_lib.product(sweep_lib.sweep("beta", [0.3, 1.0, 3.0]), sweep_lib.sweep("latent_dim", [2, 8]),
                           sweep_lib.sweep("seed", [0, 1]))
