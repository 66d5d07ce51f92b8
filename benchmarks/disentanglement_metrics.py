"""Time of each disentanglement metric (aejax/evaluation/disentanglement.py) at disentanglement_lib's published
sample counts, on dSprites' factor grid (3, 6, 40, 32, 32), with a code so cheap to draw and encode that the time
is the metrics' own: sampling, batching and the scikit-learn fits, not a model's.

The observations are the standardised factor indices, the jitted encoder maps them to 10 units: each factor
scaled in a unit of its own and five units of a fixed nonlinear mix of them (nuisance units). Prints one JSON line
per metric with its seconds and figures; `--fraction` scales every sample count down.

  python benchmarks/disentanglement_metrics.py [--fraction 1.0] [--batch_size 256]
"""
import argparse
import json
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

from aejax.evaluation import disentanglement as dis

SIZES = (3, 6, 40, 32, 32)


def main(argv: list[str]) -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--fraction", type=float, default=1.0, help="share of the library's sample counts")
  parser.add_argument("--batch_size", type=int, default=256, help="observations per encode call")
  args = parser.parse_args(argv)

  sizes = np.array(SIZES)
  truth = dis.GroundTruth(SIZES, lambda f: ((f - (sizes - 1) / 2) / np.sqrt((sizes**2 - 1) / 12)).astype(np.float32))
  mix = jax.random.normal(jax.random.key(0), (len(SIZES), 5))
  encode = jax.jit(lambda z: jnp.concatenate([z * jnp.arange(1.0, 6.0), jnp.sin(z @ mix)], axis=1))

  def count(n: int) -> int:
    return max(int(n * args.fraction), 10)

  runs = {
      "beta_vae": lambda: dis.beta_vae_score(truth, encode, 0, num_train=count(dis.BETA_VAE_NUM_TRAIN),
                                             num_eval=count(dis.BETA_VAE_NUM_EVAL), batch_size=args.batch_size),
      "factor_vae": lambda: dis.factor_vae_score(truth, encode, 0, num_train=count(dis.FACTOR_VAE_NUM_TRAIN),
                                                 num_eval=count(dis.FACTOR_VAE_NUM_EVAL),
                                                 num_variance=count(dis.FACTOR_VAE_NUM_VARIANCE),
                                                 batch_size=args.batch_size),
      "mig": lambda: dis.mig(truth, encode, 0, num_samples=count(dis.MIG_NUM_SAMPLES), batch_size=args.batch_size),
      "dci": lambda: dis.dci(truth, encode, 0, num_train=count(dis.DCI_NUM_TRAIN), num_test=count(dis.DCI_NUM_TEST),
                             batch_size=args.batch_size),
      "sap": lambda: dis.sap(truth, encode, 0, num_train=count(dis.SAP_NUM_TRAIN), num_test=count(dis.SAP_NUM_TEST),
                             batch_size=args.batch_size),
      "sap_threshold": lambda: dis.sap(truth, encode, 0, num_train=count(dis.SAP_NUM_TRAIN),
                                       num_test=count(dis.SAP_NUM_TEST), predictor="threshold",
                                       batch_size=args.batch_size),
  }
  for name, run in runs.items():
    start = time.perf_counter()
    figures = run()
    seconds = time.perf_counter() - start
    print(json.dumps({"metric": name, "seconds": round(seconds, 2), "fraction": args.fraction,
                      **{k: round(v, 4) for k, v in figures.items()}}), flush=True)


if __name__ == "__main__":
  main(sys.argv[1:])
