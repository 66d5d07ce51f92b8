"""Total training samples/s of N sweep members trained as one vmapped bundle, beside the same N one after another.

The members are `--config` (default the seed's small dae.py, 784-128-64-32) with different noise factors
and seeds. Bundle: `aejax.bundle.make_bundle_step`, the program `train_bundle` runs, one call per step for all
N members. Back-to-back: the single run's step (`train.make_data_step`, as `train_and_evaluate` builds it)
for each member in turn; since the members cost the same, that is one member's samples/s whatever N, plus
each run's start-up (compilation, data, process), which this script leaves out (see cold_start.py).
Interleaved rounds of `--steps` steps per side; medians over `--rounds`, [min, max]. Peak memory is not measured.

  python benchmarks/bundles.py [--sizes 1,4,16 --rounds 3 --steps 100]
"""
import argparse
import json
import pathlib
import statistics
import sys
import time

import jax
import jax.numpy as jnp

from aejax import bundle, config as config_lib, input_pipeline, registry, train

_REPO = pathlib.Path(__file__).resolve().parents[1]
_DEFAULT_MNIST_DIR = _REPO.parent / "shared" / "data" / "mnist"


def member_configs(spec: str, n: int, mnist_dir: str, data_dir: str | None) -> list:
  """`n` members of `spec` differing in noise factor and seed."""
  configs = []
  for k in range(n):
    config = config_lib.from_file(spec)
    config.data.manual_dir, config.data.data_dir = mnist_dir, data_dir
    config.noise_factor = 0.1 + 0.8 * k / max(n - 1, 1)
    config.seed = k
    configs.append(config)
  return configs


def timer(step, args, batch_size: int):
  """A function `steps -> samples/s` that runs `step` on its own output state, blocking once at the end."""
  box = list(args)

  def run(steps: int) -> float:
    start = time.perf_counter()
    for _ in range(steps):
      box[0], metrics = step(*box)
    jax.block_until_ready((box[0], metrics))
    return steps * batch_size / (time.perf_counter() - start)

  return run


def runners(configs: list, split: input_pipeline.Split, warmup_steps: int):
  """(bundle of all members, one member alone): functions `steps -> total samples/s`."""
  base = bundle.base_config(configs)
  variant = registry.get(base.variant)
  shape = tuple(split.images.shape[1:])
  model = variant.build_model(base, shape)
  n = len(configs)
  perm = input_pipeline.epoch_permutation(jax.random.key(0), 0, split.size)

  state, rates, (train_keys, *_) = bundle.init_bundle(variant, model, configs, base, shape)
  run_bundle = timer(bundle.make_bundle_step(variant, model, base, split),
                     (state, rates, split, jnp.stack([perm] * n), train_keys), n * base.batch_size)

  alone = configs[0]
  state = train.init_state(variant, model, alone, jax.random.key(alone.seed), jnp.zeros((1, *shape)))
  step = jax.jit(train.make_data_step(train.make_train_step(variant, model, alone), split, alone.batch_size,
                                      alone.data.binarize == "dynamic"), donate_argnums=0)
  run_alone = timer(step, (state, split, perm, jax.random.key(1)), alone.batch_size)
  run_bundle(warmup_steps)
  run_alone(warmup_steps)
  return run_bundle, run_alone


def summarize(values: list[float]) -> dict[str, float]:
  return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def main(argv: list[str]) -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--config", default=str(_REPO / "experiments" / "dae.py"), help="experiment file")
  parser.add_argument("--sizes", default="1,4,16", help="bundle sizes N, comma-separated")
  parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds per size")
  parser.add_argument("--steps", type=int, default=100, help="train steps per round and side")
  parser.add_argument("--warmup_steps", type=int, default=10, help="untimed steps after compilation")
  parser.add_argument("--mnist_dir", default=str(_DEFAULT_MNIST_DIR), help="config.data.manual_dir")
  parser.add_argument("--data_dir", default=None, help="TFDS data dir (config.data.data_dir)")
  args = parser.parse_args(argv)

  sizes = [int(s) for s in args.sizes.split(",")]
  configs = member_configs(args.config, max(sizes), args.mnist_dir, args.data_dir)
  split, _ = input_pipeline.load(configs[0].data)
  results = []
  for n in sizes:
    run_bundle, run_alone = runners(configs[:n], split, args.warmup_steps)
    rates = {"bundle": [], "back_to_back": []}
    for _ in range(args.rounds):
      rates["bundle"].append(run_bundle(args.steps))
      rates["back_to_back"].append(run_alone(args.steps))
    results.append({"members": n, **{k: summarize(v) for k, v in rates.items()}})
    print(f"N={n}: bundle {results[-1]['bundle']['median']:.0f}, back-to-back "
          f"{results[-1]['back_to_back']['median']:.0f} samples/s", file=sys.stderr)

  print(f"{args.config}, batch {configs[0].batch_size}; total samples/s over all members, median [min, max] of "
        f"{args.rounds} rounds of {args.steps} steps")
  print(f"{'N':>4}{'bundle':>28}{'back-to-back':>28}{'ratio':>8}")
  for r in results:
    b, s = r["bundle"], r["back_to_back"]
    print(f"{r['members']:>4}{b['median']:>12.0f} [{b['min']:>6.0f}, {b['max']:>6.0f}]"
          f"{s['median']:>12.0f} [{s['min']:>6.0f}, {s['max']:>6.0f}]{b['median'] / s['median']:>7.2f}x")
  print(json.dumps({"config": args.config, "jax_version": jax.__version__, "results": results}))


if __name__ == "__main__":
  main(sys.argv[1:])
