"""FactorVAE (Kim & Mnih 2018): the VAE's loss plus γ = 30 times the total correlation, estimated by a discriminator
(six leaky-ReLU layers of 1000) of codes against their dimension-wise permutation; Adam at 1e-4 for both players, the
discriminator's with b1 = 0.5 and b2 = 0.9, batches of 64; a 10-d code and a Bernoulli decoder behind the papers'
strided convolutions (4x4, stride 2, then Dense 256, and the mirror).

On MNIST here: two stride-2 convolutions (32, 64) for its 28x28 images. On dSprites, the papers' four
(`--config.data.name=dsprites --config.model.conv_features='(32,32,64,64)'`, or `fields.dsprites_protocol` as
experiments/dsprites_beta_vae.py uses it), scored by the disentanglement suite. `:smoke` shrinks the discriminator.

    python -m aejax.main --config experiments/factor_vae.py --workdir runs/factor_vae --config.factor.gamma=10
"""
from ml_collections import config_dict

from aejax import config as config_lib, sweep as sweep_lib
from aejax.variants.variational import fields


def get_config(arg: str | None = None) -> config_dict.ConfigDict:
  c = fields.add_factor(config_lib.base_config())
  c.variant = "factor_vae"
  c.factor.gamma = 30.0
  c = fields.mnist_strided_net(c)
  c.learning_rate = 1e-4
  c.batch_size = 64
  c.num_steps = 28_080  # 30 epochs of 936 steps.
  c.eval_every = c.checkpoint_every = 4_680
  c.wandb.tags = ("factor_vae",)
  c = config_lib.finalize(c, arg)
  if arg == "smoke":
    c.factor.d_widths = (64, 64)
    c.learning_rate = 1e-3
  return c


def get_sweep() -> list[sweep_lib.Overrides]:
  """γ ∈ {10, 20, 30, 40, 50, 100} (disentanglement_lib's) × seeds {0, 1, 2}, 18 runs:

      python -m launch.local --config experiments/factor_vae.py --root runs/factor_vae_sweep
  """
  return sweep_lib.product(sweep_lib.sweep("factor.gamma", [10, 20, 30, 40, 50, 100]),
                           sweep_lib.sweep("seed", [0, 1, 2]))


def get_curves() -> list[sweep_lib.Curve]:
  """γ against reconstruction error, the discriminator's total correlation and the KL, when the sweep has finished."""
  return [("factor.gamma", ["test/recon_error", "test/tc", "test/kl"])]
