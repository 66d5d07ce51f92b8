"""The two-stage VAE (Dai & Wipf 2019): a second VAE (ReLU MLPs of 1024 × 3, a Gaussian decoder of learned variance)
on the codes of a trained VAE run, sampled through both stages; ends with the `samples` suite, whose classifier FID
is to be read beside the first stage's own (`python -m aejax.evaluate --workdir FIRST --suite samples`).

The first stage is the run of `experiments/vae.py` by default (20-d code, statically binarised MNIST): give its
workdir; the second stage's code has as many units.

    python -m aejax.main --config experiments/vae.py --workdir runs/vae
    python -m aejax.main --config experiments/two_stage_vae.py --workdir runs/two_stage \\
        --config.two_stage.first_workdir=runs/vae
"""
from ml_collections import config_dict

from aejax import config as config_lib, sweep as sweep_lib
from aejax.variants.variational import fields


def get_config(arg: str | None = None) -> config_dict.ConfigDict:
  c = fields.add_two_stage(config_lib.base_config())
  c.variant = "two_stage_vae"
  c.latent_dim = 20
  c.data.binarize = "static"
  c.learning_rate = 1e-3
  c.lr_schedule = "cosine"
  c.batch_size = 128
  c.num_steps = 23_400  # 50 epochs of 468 steps.
  c.eval_every = c.checkpoint_every = 4_680
  c.eval.suites = ("samples",)
  c.wandb.tags = ("two_stage_vae",)
  c = config_lib.finalize(c, arg)
  if arg == "smoke":
    c.two_stage.widths = (64, 64)
  return c


def get_sweep() -> list[sweep_lib.Overrides]:
  """The second stage's latent size ∈ {8, 20, 64} × seeds {0, 1, 2}: 9 runs (first_workdir given on the command
  line)."""
  return sweep_lib.product(sweep_lib.sweep("latent_dim", [8, 20, 64]), sweep_lib.sweep("seed", [0, 1, 2]))
