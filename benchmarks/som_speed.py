"""Training speed and quantisation error of aejax's batch SOM beside MiniSom's, on MNIST's pixels.

MiniSom (pure NumPy, `pip install minisom`; not one of aejax's dependencies) trains by the Kohonen rule, one
sample after another (`MiniSom.train(..., use_epochs=True)`); aejax's batch SOM (experiments/som.py) makes one
update per epoch, every prototype set to its neighbourhood-weighted mean of the samples (one jitted step: the
code path of `aejax.train`, `make_data_step` over the variant's `train_step`, the split gathered on device).

Both sides get the same `--num_train` train images (pixels in [0, 1]), the same rows x cols map on a rectangular
grid, the same initial prototypes (aejax's PCA plane, copied into MiniSom), the same Gaussian neighbourhood and
the same radius schedule (σ0 / (1 + (σ0 - 1) t / T) from σ0 = `--radius` to 1 at epoch T: MiniSom's
'inverse_decay_to_one', aejax's 'inverse_time'; set per epoch: MiniSom's `use_epochs` holds it through an epoch,
aejax's step is an epoch), for `--epochs` epochs. MiniSom's learning rate decays by the same inverse-time law
from `--minisom_rate` to 1 % of it (a batch SOM has none: each epoch moves the prototypes all the way). Each of
`--rounds` rounds trains each side once from the start, in turn; samples/s = num_train x epochs / seconds, medians
with min and max. The quantisation error (mean distance of a train image to its
best-matching prototype) of each side's final map is computed by the same NumPy function. aejax's compilation and
one untimed warm-up run are not timed; the load average before and after is printed.

    pip install minisom
    python benchmarks/som_speed.py [--num_train 2000 --rows 20 --epochs 5 --rounds 3]
"""
import argparse
import importlib.metadata
import json
import os
import pathlib
import statistics
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

from aejax import config as config_lib, registry, train
from aejax.data import input_pipeline

try:
  import minisom
except ImportError:
  sys.exit("som_speed.py: error: MiniSom is not installed: pip install minisom (it is not an aejax dependency)")

_REPO = pathlib.Path(__file__).resolve().parents[1]
_DEFAULT_MNIST_DIR = _REPO.parent / "shared" / "data" / "mnist"


def parse_args(argv: list[str]) -> argparse.Namespace:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--num_train", type=int, default=2_000, help="train images both sides map")
  parser.add_argument("--rows", type=int, default=20, help="the map is rows x rows units")
  parser.add_argument("--epochs", type=int, default=5)
  parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds, one full training of each side each")
  parser.add_argument("--radius", type=float, default=None, help="initial radius (default: rows / 2)")
  parser.add_argument("--minisom_rate", type=float, default=0.5, help="MiniSom's initial learning rate")
  parser.add_argument("--mnist_dir", default=str(_DEFAULT_MNIST_DIR),
                      help="folder with the four MNIST IDX .gz files (config.data.manual_dir)")
  parser.add_argument("--data_dir", default=None,
                      help="TFDS data dir for config.data.data_dir (default: $TFDS_DATA_DIR or TFDS's own)")
  return parser.parse_args(argv)


def make_config(args: argparse.Namespace):
  config = config_lib.from_file(str(_REPO / "experiments" / "som.py"))
  config.data.manual_dir, config.data.data_dir = args.mnist_dir, args.data_dir
  config.data.num_train = config.batch_size = args.num_train
  config.som.rows = config.som.cols = args.rows
  config.som.radius, config.som.final_radius = args.radius or args.rows / 2, 1.0  # MiniSom's sigma decays to 1.
  config.som.decay, config.som.init = "inverse_time", "pca"
  config.num_steps = args.epochs
  return config


class AejaxSide:
  """aejax's batch SOM: the jitted data step of `aejax.train`, one call per epoch, from the same state each round."""

  def __init__(self, config):
    variant = registry.get(config.variant)
    self.split, _ = input_pipeline.load(config.data)
    self.model = variant.build_model(config, self.split.image_shape)
    init_key, self.key, data_key = jax.random.split(jax.random.key(config.seed), 3)
    example = jnp.zeros((1, *self.split.image_shape), jnp.float32)
    self.initial = jax.device_get(train.init_state(variant, self.model, config, init_key, example))
    self.step = jax.jit(train.make_data_step(train.make_train_step(variant, self.model, config), self.split, config),
                        donate_argnums=0)
    self.perm = jax.jit(input_pipeline.epoch_permutation, static_argnums=2)(data_key, 0, self.split.size)
    self.epochs = config.num_steps
    self.prototypes = None
    self.run()  # Compiles the step; not timed.

  def run(self) -> float:
    """Trains from the initial state for all epochs; samples per second."""
    state = jax.device_put(self.initial)
    jax.block_until_ready(state)
    start = time.perf_counter()
    for _ in range(self.epochs):
      state, metrics = self.step(state, self.split, self.perm, self.key)
    jax.block_until_ready((state, metrics))
    seconds = time.perf_counter() - start
    self.prototypes = np.asarray(state.params["prototypes"], np.float64)
    return self.split.size * self.epochs / seconds


class MiniSomSide:
  """MiniSom's online training on the same images from the same prototypes, its radius schedule aejax's."""

  def __init__(self, x: np.ndarray, initial: np.ndarray, config, rate: float):
    s = config.som
    self.x, self.epochs, self.rate = x, config.num_steps, rate
    self.initial = initial.reshape(s.rows, s.cols, -1)
    # aejax's 'inverse_time' decay to 1 % in plain Python (MiniSom calls it at every sample).
    self.rate_decay = lambda eta, t, epochs: eta / (1 + 99 * t / epochs)
    self.sigma, self.prototypes = s.radius, None

  def run(self) -> float:
    rows, cols, dim = self.initial.shape
    som = minisom.MiniSom(rows, cols, dim, sigma=self.sigma, learning_rate=self.rate, neighborhood_function="gaussian",
                          decay_function=self.rate_decay, sigma_decay_function="inverse_decay_to_one", random_seed=0)
    som._weights = self.initial.copy()  # pylint: disable=protected-access  (the same start as aejax's)
    start = time.perf_counter()
    som.train(self.x, self.epochs, use_epochs=True)
    seconds = time.perf_counter() - start
    self.prototypes = som.get_weights().reshape(rows * cols, dim)
    return len(self.x) * self.epochs / seconds


def quantization_error(x: np.ndarray, prototypes: np.ndarray) -> float:
  """The mean distance of each row of `x` to its nearest prototype (float64, in blocks)."""
  errors = []
  for i in range(0, len(x), 1_000):
    d2 = ((x[i:i + 1_000, None, :] - prototypes[None]) ** 2).sum(-1)
    errors.append(np.sqrt(d2.min(1)))
  return float(np.mean(np.concatenate(errors)))


def main(argv: list[str]) -> None:
  args = parse_args(argv)
  config = make_config(args)
  load_before = os.getloadavg()
  aejax_side = AejaxSide(config)
  x = aejax_side.split.host_pixels().astype(np.float64).reshape(aejax_side.split.size, -1) / 255.0
  sides = {"aejax batch SOM": aejax_side,
           "MiniSom train": MiniSomSide(x, np.asarray(aejax_side.initial.params["prototypes"]), config,
                                        args.minisom_rate)}
  rates = {name: [] for name in sides}
  errors = {}
  for r in range(args.rounds):
    for name, side in sides.items():
      rates[name].append(side.run())
      errors[name] = quantization_error(x, side.prototypes)
    print(f"round {r + 1}/{args.rounds}: " + ", ".join(f"{name} {v[-1]:.0f} samples/s" for name, v in rates.items()),
          file=sys.stderr)
  load_after = os.getloadavg()
  initial_error = quantization_error(x, np.asarray(aejax_side.initial.params["prototypes"], np.float64))
  median = {name: statistics.median(v) for name, v in rates.items()}
  ratio = median["aejax batch SOM"] / median["MiniSom train"]
  print(f"{args.rounds} rounds of {args.epochs} epochs over {len(x)} MNIST train images, {args.rows}x{args.rows} "
        f"rectangular map, radius {config.som.radius:g} -> {config.som.final_radius:g}; medians [min, max]")
  print(f"{'':<18}{'samples/s':>28}{'quantisation error':>21}")
  for name, v in rates.items():
    print(f"{name:<18}{median[name]:>12.0f} [{min(v):>6.0f}, {max(v):>6.0f}]{errors[name]:>21.4f}")
  print(f"aejax / MiniSom: {ratio:.1f}x samples/s; the initial map's quantisation error: {initial_error:.4f}")
  print(f"jax {jax.__version__}, minisom {importlib.metadata.version('minisom')}; load "
        f"average (1, 5, 15 min): {' '.join(f'{v:.2f}' for v in load_before)} before, "
        f"{' '.join(f'{v:.2f}' for v in load_after)} after")
  print(json.dumps({"num_train": len(x), "rows": args.rows, "cols": args.rows, "epochs": args.epochs,
                    "rounds": args.rounds, "radius": config.som.radius, "final_radius": config.som.final_radius,
                    "minisom_rate": args.minisom_rate, "samples_per_s": {n: {"median": median[n], "per_round": v}
                                                                          for n, v in rates.items()},
                    "quantization_error": errors, "initial_quantization_error": initial_error, "ratio": ratio,
                    "load_before": load_before, "load_after": load_after}))


if __name__ == "__main__":
  main(sys.argv[1:])
