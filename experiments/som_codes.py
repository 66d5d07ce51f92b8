"""Self-organising map of an autoencoder's codes: "the autoencoder for the reduction, the SOM for the picture".

A 20 x 20 batch SOM (as experiments/som.py's) over the 32-unit codes of experiments/dae.py's denoising autoencoder,
frozen: each step encodes the train images with it and updates the map. The prototypes are drawn as the
autoencoder decodes them. Train the autoencoder first, then the map:

    python -m aejax.main --config experiments/dae.py --workdir runs/dae
    python -m aejax.main --config experiments/som_codes.py --workdir runs/som_codes --config.som.input_workdir=runs/dae

`:smoke` maps the codes of `experiments/dae.py:smoke` trained in runs/dae_smoke.
"""
from ml_collections import config_dict

from aejax import config as config_lib, sweep as sweep_lib
from aejax.variants.som import fields


def get_config(arg: str | None = None) -> config_dict.ConfigDict:
  c = fields.add(config_lib.base_config())
  c.variant = "som"
  c.som.input_workdir = "runs/dae"
  c.som.rows = c.som.cols = 20
  c.som.mode = "batch"
  c.som.radius = 7.0
  c.som.final_radius = 1.0
  c.som.final_rate = 1.0  # The batch SOM moves each prototype all the way to its weighted mean at every step.
  c.som.init = "random"
  c.optimizer, c.momentum, c.learning_rate = "sgd", 0.0, 1.0  # The SOM's update as it is: see fields.py.
  c.batch_size = 60_000  # The whole train split: one step is one epoch.
  c.num_steps = 30
  c.log_every = 1
  c.eval_every = c.checkpoint_every = 10
  c.eval.num_train = 60_000
  c.eval.suites = ("som",)
  c.wandb.tags = ("som", "codes")
  c = config_lib.finalize(c, arg)
  if arg == "smoke":
    c.som.input_workdir = "runs/dae_smoke"
    c.som.rows = c.som.cols = 6
    c.som.radius = 3.0
    c.batch_size = c.data.num_train
    c.num_steps = 10
    c.log_every = c.eval_every = c.checkpoint_every = 5
  return c


def get_sweep() -> list[sweep_lib.Overrides]:
  """Map size × initial radius × learning rate × seed, 2 × 2 × 2 × 2 = 16 runs over the same autoencoder's codes:

      python -m launch.local --config experiments/som_codes.py --root runs/som_codes_sweep --bundle_size 8
  """
  sizes = sweep_lib.zipit(sweep_lib.sweep("som.rows", [10, 20]), sweep_lib.sweep("som.cols", [10, 20]))
  return sweep_lib.product(sizes, sweep_lib.sweep("som.radius", [3.0, 7.0]),
                           sweep_lib.sweep("learning_rate", [0.5, 1.0]), sweep_lib.sweep("seed", [0, 1]))
