"""β-TCVAE (Chen et al. 2018): the KL term split into mutual information, total correlation and dimension-wise KL,
β = 6 on the total correlation alone (α = γ = 1), log q(z) by minibatch-weighted sampling; a 10-d code and a
Bernoulli decoder behind the papers' strided convolutions (4x4, stride 2, then Dense 256, and the mirror).

On MNIST here: two stride-2 convolutions (32, 64) for its 28x28 images; q(z) averages over the `data.num_train`
train images (60,000: all of MNIST's; `:smoke` reads and counts 2,048). On dSprites, with the papers' four
convolutions and the disentanglement suite: experiments/dsprites_beta_tcvae.py.

    python -m aejax.main --config experiments/beta_tcvae.py --workdir runs/beta_tcvae --config.beta=4
"""
from ml_collections import config_dict

from aejax import config as config_lib, sweep as sweep_lib
from aejax.variants.variational import fields


def get_config(arg: str | None = None) -> config_dict.ConfigDict:
  c = fields.add_tcvae(config_lib.base_config())
  c.variant = "beta_tcvae"
  c.beta = 6.0
  c = fields.mnist_strided_net(c)
  c.data.num_train = 60_000
  c.learning_rate = 1e-3
  c.batch_size = 128
  c.num_steps = 14_040  # 30 epochs of 468 steps.
  c.eval_every = c.checkpoint_every = 2_340
  c.wandb.tags = ("beta_tcvae",)
  return config_lib.finalize(c, arg)


def get_sweep() -> list[sweep_lib.Overrides]:
  """The total correlation's weight β ∈ {1, 2, 4, 6, 8, 16} × seeds {0, 1, 2}, 18 runs:

      python -m launch.local --config experiments/beta_tcvae.py --root runs/beta_tcvae_sweep
  """
  return sweep_lib.product(sweep_lib.sweep("beta", [1, 2, 4, 6, 8, 16]), sweep_lib.sweep("seed", [0, 1, 2]))


def get_curves() -> list[sweep_lib.Curve]:
  """β against reconstruction error, the total correlation and the KL, drawn when the sweep has finished."""
  return [("beta", ["test/recon_error", "test/tc", "test/kl"])]
