"""RAE (Ghosh et al. 2020) on MNIST: a deterministic autoencoder, loss = squared error summed over pixels + β·½‖z‖² +
λ·‖θ_dec‖² (RAE-L2; `--config.rae.regularizer=gp` for RAE-GP, the decoder's squared Jacobian norm), sampled from a
10-component full-covariance Gaussian mixture fitted to the train codes (refitted every 2,000 steps, the last 2,000
steps before the end, where the cosine schedule has the learning rate below 0.3% of its peak). β = 0.01 and λ = 1e-4:
the authors' MNIST weights (1e-4 for the mean of z² over the 16 code units, 1e-7 for ‖θ_dec‖²) against their error
per pixel, scaled to the error summed over MNIST's 784 pixels. On their comparison's protocol
(`fields.ghosh_mnist_protocol`: a 16-d code, batches of 100 for 100 epochs, Adam at 1e-3 decayed to 0), its samples
scored by the samples suite.

    python -m aejax.main --config experiments/rae.py --workdir runs/rae_gp --config.rae.regularizer=gp
"""
from ml_collections import config_dict

from aejax import config as config_lib, sweep as sweep_lib
from aejax.variants.variational import fields


def get_config(arg: str | None = None) -> config_dict.ConfigDict:
  c = fields.add_rae(config_lib.base_config())
  c.variant = "rae"
  c.beta = 0.01
  c.rae.regularizer = "l2"
  c.rae.reg_weight = 1e-4
  c.rae.components = 10
  c.wandb.tags = ("rae",)
  c = fields.ghosh_mnist_protocol(c, arg)
  c.rae.density_every = 30 if arg == "smoke" else 2_000  # The smoke run's 60 steps refit it twice.
  return c


def get_sweep() -> list[sweep_lib.Overrides]:
  """The regulariser ('l2', 'gp') × λ ∈ {1e-5, 1e-4, 1e-3} × seeds {0, 1, 2}, 18 runs:

      python -m launch.local --config experiments/rae.py --root runs/rae_sweep
  """
  return sweep_lib.product(sweep_lib.sweep("rae.regularizer", ["l2", "gp"]),
                           sweep_lib.sweep("rae.reg_weight", [1e-5, 1e-4, 1e-3]), sweep_lib.sweep("seed", [0, 1, 2]))


def get_curves() -> list[sweep_lib.Curve]:
  """λ against reconstruction error, the decoder's penalty and the samples' classifier FID."""
  return [("rae.reg_weight", ["test/recon_error", "test/decoder_reg", "samples/fid"])]
