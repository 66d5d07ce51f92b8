"""Training speed of aejax's RBM (CD-1 and PCD-1) beside scikit-learn's `BernoulliRBM` (PCD-1 in NumPy).

experiments/rbm.py's 784-500 RBM on the MNIST train split (60,000 images, stochastically binarised), batch 100:
one epoch is 600 updates. Each of `--rounds` rounds times, in turn, one epoch of each side:

- **aejax CD-1**, **aejax PCD-1**: `benchmarks/throughput.py`'s `AejaxRunner`, the code path of `aejax.train`
  (`make_data_step` over `make_train_step`, here the variant's own `train_step`; SGD with momentum 0.9 and an L2
  weight cost; each batch gathered and Bernoulli-sampled on device inside the step), dispatched in a Python loop
  and blocked on once per epoch;
- **sklearn partial_fit**: `BernoulliRBM.partial_fit` on each batch of 100 in turn (one PCD-1 update per call,
  plain SGD, in float64: `partial_fit` casts its input to float64), the images binarised once beforehand (not
  timed);
- **sklearn fit**: `BernoulliRBM(n_iter=1).fit` on the whole binarised split in float32, scikit-learn's own epoch
  loop over the same batches and its fastest path (`fit` keeps float32; no per-call input validation; the
  parameters start afresh each round).

Interleaving spreads background load over the sides alike; the medians over rounds are the figures, with min and
max beside them, and the ratio of aejax's medians over `partial_fit`'s (and over `fit`'s). Compilation and
`--warmup_steps` aejax steps, and one scikit-learn batch, are not timed. The load average before and after is
printed: other processes slow every figure.

    python benchmarks/rbm_speed.py [--rounds 5]
"""
import argparse
import json
import os
import pathlib
import statistics
import sys
import time

import jax
import numpy as np
import sklearn
from sklearn.neural_network import BernoulliRBM

from aejax import config as config_lib
from throughput import AejaxRunner, summarize

_REPO = pathlib.Path(__file__).resolve().parents[1]
_EXPERIMENT = _REPO / "experiments" / "rbm.py"
_DEFAULT_MNIST_DIR = _REPO.parent / "shared" / "data" / "mnist"


class SklearnRunner:
  """scikit-learn's side: the split binarised once, one epoch per round by `partial_fit` (float64) or `fit`
  (float32)."""

  def __init__(self, images: np.ndarray, num_hidden: int, batch_size: int, learning_rate: float, seed: int):
    rng = np.random.default_rng(seed)
    pixels = images.reshape(len(images), -1) / 255.0
    self.x = (rng.random(pixels.shape) < pixels).astype(np.float64)
    self.x32 = self.x.astype(np.float32)
    self.batch_size, self.steps = batch_size, len(images) // batch_size
    self.make = lambda n_iter: BernoulliRBM(n_components=num_hidden, learning_rate=learning_rate,
                                            batch_size=batch_size, n_iter=n_iter, random_state=seed)
    self.rbm = self.make(1)
    self.rbm.partial_fit(self.x[:batch_size])  # Allocates its parameters and chains.

  def partial_fit_epoch(self) -> float:
    """One epoch of `partial_fit` calls, batch after batch; samples per second."""
    start = time.perf_counter()
    for i in range(self.steps):
      self.rbm.partial_fit(self.x[i * self.batch_size:(i + 1) * self.batch_size])
    return self.steps * self.batch_size / (time.perf_counter() - start)

  def fit_epoch(self) -> float:
    """One epoch of scikit-learn's own loop (`fit` with n_iter=1) in float32; samples per second."""
    start = time.perf_counter()
    self.make(1).fit(self.x32[:self.steps * self.batch_size])
    return self.steps * self.batch_size / (time.perf_counter() - start)


def parse_args(argv: list[str]) -> argparse.Namespace:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds, one epoch of each side per round")
  parser.add_argument("--warmup_steps", type=int, default=20, help="untimed aejax steps per runner before round 1")
  parser.add_argument("--mnist_dir", default=str(_DEFAULT_MNIST_DIR),
                      help="folder with the four MNIST IDX .gz files (config.data.manual_dir)")
  parser.add_argument("--data_dir", default=None,
                      help="TFDS data dir for config.data.data_dir (default: $TFDS_DATA_DIR or TFDS's own)")
  return parser.parse_args(argv)


def make_config(args: argparse.Namespace, persistent: bool):
  config = config_lib.from_file(str(_EXPERIMENT))
  config.data.manual_dir, config.data.data_dir = args.mnist_dir, args.data_dir
  config.rbm.persistent, config.rbm.cd_steps = persistent, 1
  return config


def main(argv: list[str]) -> None:
  args = parse_args(argv)
  load_before = os.getloadavg()
  runners = {"aejax CD-1": AejaxRunner(make_config(args, False), args.warmup_steps),
             "aejax PCD-1": AejaxRunner(make_config(args, True), args.warmup_steps)}
  config = make_config(args, True)
  steps = runners["aejax CD-1"].split.size // config.batch_size  # One epoch.
  sk = SklearnRunner(runners["aejax CD-1"].split.host_pixels(), config.latent_dim, config.batch_size,
                     config.learning_rate, config.seed)
  timers = {**{name: (lambda r=runner: r.run(steps)) for name, runner in runners.items()},
            "sklearn partial_fit": sk.partial_fit_epoch, "sklearn fit": sk.fit_epoch}
  rates = {name: [] for name in timers}
  for r in range(args.rounds):
    for name, timer in timers.items():
      rates[name].append(timer())
    print(f"round {r + 1}/{args.rounds}: " + ", ".join(f"{name} {v[-1]:.0f}" for name, v in rates.items())
          + " samples/s", file=sys.stderr)
  load_after = os.getloadavg()

  result = {"net": f"784-{config.latent_dim}", "batch_size": config.batch_size, "steps_per_epoch": steps,
            "rounds": args.rounds, "jax_version": jax.__version__, "sklearn_version": sklearn.__version__,
            "load_before": load_before, "load_after": load_after,
            "samples_per_s": {name: {**summarize(v), "per_round": v} for name, v in rates.items()}}
  median = {name: statistics.median(v) for name, v in rates.items()}
  result["ratios"] = {f"{a} / {b}": median[a] / median[b] for a in runners
                      for b in ("sklearn partial_fit", "sklearn fit")}
  print(f"{args.rounds} rounds of one epoch ({steps} updates at batch {config.batch_size}) of a "
        f"784-{config.latent_dim} RBM on binarised MNIST; medians [min, max]")
  print(f"{'':<22}{'samples/s':>26}{'/ partial_fit':>15}{'/ fit':>8}")
  for name, v in rates.items():
    print(f"{name:<22}{median[name]:>10.0f} [{min(v):>6.0f}, {max(v):>6.0f}]"
          f"{median[name] / median['sklearn partial_fit']:>14.2f}x{median[name] / median['sklearn fit']:>7.2f}x")
  print(f"jax {jax.__version__}, scikit-learn {sklearn.__version__}; load average (1, 5, 15 min): "
        f"{' '.join(f'{x:.2f}' for x in load_before)} before, {' '.join(f'{x:.2f}' for x in load_after)} after")
  print(json.dumps(result))


if __name__ == "__main__":
  main(sys.argv[1:])
