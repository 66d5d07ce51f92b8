"""Time of `ais_log_partition` (aejax/variants/boltzmann/ais.py) on a 784-500 RBM, the size of the paper's MNIST RBMs.

Random weights N(0, 0.01), visible biases drawn around a base rate, 100 AIS runs over `default_betas()` (14,501
values of β: 14,499 Gibbs steps). Prints the first call's time (compilation included) and a second call's, then
one JSON line with both and the estimate. The issue's goal: under a minute on a CPU.

  python benchmarks/ais_speed.py [--runs 100] [--num_hidden 500] [--num_steps 14500]
"""
import argparse
import json
import sys
import time

import jax
import numpy as np

from aejax.variants.boltzmann import ais


def main(argv: list[str]) -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--runs", type=int, default=100, help="AIS runs (the batch)")
  parser.add_argument("--num_visible", type=int, default=784)
  parser.add_argument("--num_hidden", type=int, default=500)
  parser.add_argument("--num_steps", type=int, default=len(ais.default_betas()) - 1,
                      help="β steps (default: the paper's)")
  args = parser.parse_args(argv)

  rng = np.random.default_rng(0)
  weights = rng.normal(0, 0.01, (args.num_visible, args.num_hidden)).astype(np.float32)
  base_visible_bias = ais.base_rate_bias(rng.random((1000, args.num_visible)) < rng.uniform(0, 0.5, args.num_visible))
  visible_bias = base_visible_bias + rng.normal(0, 0.1, args.num_visible).astype(np.float32)
  hidden_bias = rng.normal(0, 0.1, args.num_hidden).astype(np.float32)
  betas = ais.schedule(args.num_steps)

  seconds = []
  for call in range(2):
    start = time.perf_counter()
    log_z, log_weights = ais.ais_log_partition(weights, visible_bias, hidden_bias, base_visible_bias, betas,
                                               args.runs, jax.random.key(call))
    log_z.block_until_ready()
    seconds.append(time.perf_counter() - start)
  lower, upper = ais.log_z_spread(log_weights, ais.base_log_partition(base_visible_bias, args.num_hidden))
  print(f"{args.num_visible}-{args.num_hidden} RBM, {args.runs} runs, {len(betas)} betas on {jax.devices()[0]}: "
        f"first call {seconds[0]:.1f} s (compilation included), second {seconds[1]:.1f} s; "
        f"log Z = {float(log_z):.3f} in [{float(lower):.3f}, {float(upper):.3f}]")
  print(json.dumps({"num_visible": args.num_visible, "num_hidden": args.num_hidden, "runs": args.runs,
                    "betas": len(betas), "device": jax.devices()[0].device_kind, "jax_version": jax.__version__,
                    "first_call_s": seconds[0], "second_call_s": seconds[1], "log_z": float(log_z),
                    "log_z_spread": [float(lower), float(upper)]}))


if __name__ == "__main__":
  main(sys.argv[1:])
