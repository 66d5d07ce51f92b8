"""Self-organising map of MNIST's pixels: a 30 x 30 batch SOM, one step an epoch over the 60,000 train images.

Each step finds every train image's best-matching unit and sets every prototype to the Gaussian-weighted mean of
the images its neighbourhood wins (learning rate 1, the classic batch SOM), the radius decaying exponentially from
10 to 1 unit over 30 epochs, from prototypes drawn around the mean image (`--config.som.init=pca` starts from the
plane of the first two principal axes instead). `--config.som.mode=online --config.batch_size=64
--config.num_steps=30000 --config.learning_rate=0.5` trains by the Kohonen rule on mini-batches instead,
`--config.som.topology=hexagonal` on a hexagonal grid. The `som` suite runs after training.

    python -m aejax.main --config experiments/som.py --workdir runs/som
"""
from ml_collections import config_dict

from aejax import config as config_lib, sweep as sweep_lib
from aejax.variants.som import fields


def get_config(arg: str | None = None) -> config_dict.ConfigDict:
  c = fields.add(config_lib.base_config())
  c.variant = "som"
  c.som.rows = c.som.cols = 30
  c.som.mode = "batch"
  c.som.radius = 10.0
  c.som.final_radius = 1.0
  c.som.final_rate = 1.0  # The batch SOM moves each prototype all the way to its weighted mean at every step.
  c.som.init = "random"
  c.optimizer, c.momentum, c.learning_rate = "sgd", 0.0, 1.0  # The SOM's update as it is: see fields.py.
  c.batch_size = 60_000  # The whole train split: one step is one epoch.
  c.num_steps = 30
  c.log_every = 1
  c.eval_every = c.checkpoint_every = 10
  c.eval.num_train = 60_000  # The suite's class map is that of every train image.
  c.eval.suites = ("som",)
  c.wandb.tags = ("som",)
  c = config_lib.finalize(c, arg)
  if arg == "smoke":
    c.som.rows = c.som.cols = 6
    c.som.radius = 3.0
    c.som.chunk_size = 512  # Several chunks per step.
    c.batch_size = c.data.num_train
    c.num_steps = 10
    c.log_every = c.eval_every = c.checkpoint_every = 5
  return c


def get_sweep() -> list[sweep_lib.Overrides]:
  """Map size × initial radius × learning rate × seed, 3 × 2 × 2 × 2 = 24 runs; the 8 runs of each map size can
  train as one vmapped bundle (their maps stack; the launchers bundle variants with their own step only when
  asked):

      python -m launch.local --config experiments/som.py --root runs/som_sweep --bundle_size 8
  """
  sizes = sweep_lib.zipit(sweep_lib.sweep("som.rows", [10, 20, 30]), sweep_lib.sweep("som.cols", [10, 20, 30]))
  return sweep_lib.product(sizes, sweep_lib.sweep("som.radius", [5.0, 10.0]),
                           sweep_lib.sweep("learning_rate", [0.5, 1.0]), sweep_lib.sweep("seed", [0, 1]))
