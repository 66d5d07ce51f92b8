"""InfoVAE with the MMD divergence (Zhao et al. 2019) on MNIST: a Gaussian encoder and a Bernoulli decoder (of the
grey levels); loss = -log p(x|z) + (1 - α)·KL(q(z|x) ‖ N(0, I)) + (α + λ - 1)·MMD², the negative of the paper's
objective, with α = 0 (the ELBO's KL kept) and λ = 1000 (MMD² of a batch is of order 1e-3 where the reconstruction is
of order 100 nats), the inverse multiquadratic kernel at C = 2·d. On the protocol of Ghosh et al.'s comparison
(`fields.ghosh_mnist_protocol`: a 16-d code, batches of 100 for 100 epochs, Adam at 1e-3 decayed to 0), its samples
(decoded prior draws) scored by the samples suite; the test metrics also hold the negative ELBO in nats.

    python -m aejax.main --config experiments/info_vae.py --workdir runs/info_vae --config.mmd.alpha=1
"""
from ml_collections import config_dict

from aejax import config as config_lib, sweep as sweep_lib
from aejax.variants.variational import fields


def get_config(arg: str | None = None) -> config_dict.ConfigDict:
  c = fields.add_mmd(config_lib.base_config())
  c.variant = "info_vae"
  c.mmd.alpha = 0.0
  c.mmd.lambda_ = 1_000.0
  c.wandb.tags = ("info_vae",)
  c = fields.ghosh_mnist_protocol(c, arg)
  c.loss = "bce"
  return c


def get_sweep() -> list[sweep_lib.Overrides]:
  """λ ∈ {10, 100, 1000, 10000} × seeds {0, 1, 2}, 12 runs:

      python -m launch.local --config experiments/info_vae.py --root runs/info_vae_sweep
  """
  return sweep_lib.product(sweep_lib.sweep("mmd.lambda_", [10.0, 100.0, 1_000.0, 10_000.0]),
                           sweep_lib.sweep("seed", [0, 1, 2]))


def get_curves() -> list[sweep_lib.Curve]:
  """λ against the negative ELBO, the KL, the codes' MMD² to the prior and the samples' classifier FID."""
  return [("mmd.lambda_", ["test/neg_elbo", "test/kl", "test/mmd", "samples/fid"])]
