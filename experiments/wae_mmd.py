"""WAE-MMD (Tolstikhin et al. 2018) on MNIST: a deterministic encoder, codes matched to N(0, I) by MMD² with the
inverse multiquadratic kernel at C = 2·d·σ², σ² = 1; loss = squared error summed over pixels + λ·MMD², λ = 200: the
paper's λ = 10 against its 0.05 times the summed squared error. On the protocol of Ghosh et al.'s comparison
(`fields.ghosh_mnist_protocol`: a 16-d code where Tolstikhin et al. had 8, batches of 100 for 100 epochs, Adam at 1e-3
decayed to 0), its samples (decoded prior draws) scored by the samples suite.

    python -m aejax.main --config experiments/wae_mmd.py --workdir runs/wae_mmd --config.mmd.kernel=rbf
"""
from ml_collections import config_dict

from aejax import config as config_lib, sweep as sweep_lib
from aejax.variants.variational import fields


def get_config(arg: str | None = None) -> config_dict.ConfigDict:
  c = fields.add_mmd(config_lib.base_config())
  c.variant = "wae_mmd"
  c.mmd.lambda_ = 200.0
  c.wandb.tags = ("wae_mmd",)
  return fields.ghosh_mnist_protocol(c, arg)


def get_sweep() -> list[sweep_lib.Overrides]:
  """λ ∈ {20, 200, 2000} × seeds {0, 1, 2}, 9 runs:

      python -m launch.local --config experiments/wae_mmd.py --root runs/wae_mmd_sweep
  """
  return sweep_lib.product(sweep_lib.sweep("mmd.lambda_", [20.0, 200.0, 2000.0]), sweep_lib.sweep("seed", [0, 1, 2]))


def get_curves() -> list[sweep_lib.Curve]:
  """λ against reconstruction error, the codes' MMD² to the prior and the samples' classifier FID."""
  return [("mmd.lambda_", ["test/recon_error", "test/mmd", "samples/fid"])]
