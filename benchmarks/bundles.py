"""Total training samples/s and peak memory of N sweep members trained as one vmapped bundle, beside the same N one
after another.

The members are those of each `--config` (default the seed's small dae.py, 784-128-64-32; e.g. also vae.py) with
different seeds and, where the variant has them, different noise factors or β. Bundle: the stacked population
step (`aejax.train.make_population_step`) with the members split over this machine's devices, the program
`train_bundle` runs, one call per step for all N members. Back-to-back: the single run's step
(`train.make_data_step`, as `train_and_evaluate` builds it, on one device) for each member in turn; since the
members cost the same, that is one member's samples/s whatever N, plus each run's start-up (compilation, data,
process), which this script leaves out (see cold_start.py).

Each (config, N, mode) runs in a spawned process of its own, so that its peak memory is its own and not that of an
earlier, larger measurement: peak resident memory (ru_maxrss: Python, JAX, the data and the programs) and, where
the backend reports it (GPUs, TPUs), the devices' peak bytes in use. The two processes of one N start together and
take turns: interleaved rounds of `--steps` steps per side; medians over `--rounds`, [min, max].

  python benchmarks/bundles.py [--config experiments/dae.py experiments/vae.py --sizes 1,4,16,64 --rounds 3
      --steps 100]
"""
import argparse
import json
import multiprocessing
import os
import pathlib
import resource
import statistics
import sys
import time

import jax
import jax.numpy as jnp

from aejax import config as config_lib, parallel, registry, train
from aejax.data import catalog, input_pipeline

_REPO = pathlib.Path(__file__).resolve().parents[1]
_DEFAULT_MNIST_DIR = _REPO.parent / "shared" / "data" / "mnist"
MODES = ("bundle", "back_to_back")
SWEPT = {"noise_factor": (0.1, 0.9), "beta": (0.5, 4.0)}  # Hyper-parameter: its values from first to last member.


def member_configs(spec: str, n: int, mnist_dir: str, data_dir: str | None) -> list:
  """`n` members of `spec` differing in seed and in those of the variant's hyper-parameters that `SWEPT` names."""
  configs = []
  for k in range(n):
    config = config_lib.from_file(spec)
    config.data.data_dir = data_dir
    if catalog.get(config.data.name).source == catalog.IDX:  # MNIST's files; others have their own sources.
      config.data.manual_dir = mnist_dir
    for field in registry.get(config.variant).hparams(config).keys() & SWEPT.keys():
      low, high = SWEPT[field]
      config[field] = low + (high - low) * k / max(n - 1, 1)
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


def runner(configs: list, split: input_pipeline.Split, mode: str, warmup_steps: int):
  """`mode`'s function `steps -> total samples/s`, compiled and warmed up: 'bundle' trains all of `configs` as one
  bundle (the members' samples only: padding dummies do not count), 'back_to_back' its first member alone."""
  base = train.stacked_base(configs)
  variant = registry.get(base.variant)
  shape = split.image_shape
  model = variant.build_model(base, shape)
  n = len(configs)
  perm = input_pipeline.epoch_permutation(jax.random.key(0), 0, split.size)
  if mode == "bundle":
    mesh = parallel.member_mesh()
    split = parallel.replicate(split, mesh)
    seeds, hparams, rates = train.member_inputs(variant, configs, stacked=True, mesh=mesh)
    init_keys, train_keys, *_ = train.make_keys(seeds, stacked=True)
    state = train.compile_cheaply(train.make_create(variant, model, base, shape, stacked=True), init_keys, hparams)
    perms = train.split_members(jnp.stack([perm] * n), mesh)
    run = timer(train.make_population_step(variant, model, base, split, mesh, stacked=True),
                (state, rates, split, perms, train_keys), n * base.batch_size)
  else:
    alone = configs[0]
    state = train.init_state(variant, model, alone, jax.random.key(alone.seed), jnp.zeros((1, *shape)))
    step = jax.jit(train.make_data_step(train.make_train_step(variant, model, alone), split, alone),
                   donate_argnums=0)
    run = timer(step, (state, split, perm, jax.random.key(1)), alone.batch_size)
  run(warmup_steps)
  return run


def peak_memory() -> dict[str, float | None]:
  """This process's peak resident memory and its devices' peak bytes in use (None where not reported), in MiB."""
  stats = [d.memory_stats() or {} for d in jax.local_devices()]
  on_devices = all("peak_bytes_in_use" in s for s in stats)
  return {"rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,  # KiB on Linux.
          "device_mib": sum(s["peak_bytes_in_use"] for s in stats) / 2**20 if on_devices else None}


def measure(conn, spec: str, n: int, mode: str, mnist_dir: str, data_dir: str | None, warmup_steps: int) -> None:
  """In a child process: builds `mode`'s runner for `n` members of `spec` and says so (None); then answers each
  number of steps it receives with the samples/s of that many, and the end (None) with its device count and
  `peak_memory`."""
  configs = member_configs(spec, n, mnist_dir, data_dir)
  run = runner(configs, input_pipeline.load(configs[0].data)[0], mode, warmup_steps)
  conn.send(None)
  for steps in iter(conn.recv, None):
    conn.send(run(steps))
  conn.send({"devices": jax.local_device_count(), "peak_memory": peak_memory()})


def measure_size(spec: str, n: int, args: argparse.Namespace) -> dict:
  """Both modes of `n` members of `spec`, each in a spawned process: samples/s of interleaved rounds, peak memory."""
  context = multiprocessing.get_context("spawn")
  children = {}
  for mode in MODES:
    conn, child_conn = context.Pipe()
    process = context.Process(target=measure, args=(child_conn, spec, n, mode, args.mnist_dir, args.data_dir,
                                                    args.warmup_steps))
    process.start()
    child_conn.close()  # A child that dies then ends `conn.recv` with EOFError instead of a hang.
    children[mode] = process, conn
  for _, conn in children.values():
    conn.recv()
  rates = {mode: [] for mode in MODES}
  for _ in range(args.rounds):
    for mode, (_, conn) in children.items():
      conn.send(args.steps)
      rates[mode].append(conn.recv())
  result = {"members": n}
  for mode, (process, conn) in children.items():
    conn.send(None)
    result[mode] = {**summarize(rates[mode]), **conn.recv()}
    process.join()
  return result


def summarize(values: list[float]) -> dict[str, float]:
  return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def _mib(value: float | None) -> str:
  return "-" if value is None else f"{value:.0f}"


def main(argv: list[str]) -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--config", nargs="+", default=[str(_REPO / "experiments" / "dae.py")],
                      help="experiment files, each measured on its own")
  parser.add_argument("--sizes", default="1,4,16,64", help="bundle sizes N, comma-separated")
  parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds per size")
  parser.add_argument("--steps", type=int, default=100, help="train steps per round and side")
  parser.add_argument("--warmup_steps", type=int, default=10, help="untimed steps after compilation")
  parser.add_argument("--mnist_dir", default=str(_DEFAULT_MNIST_DIR), help="config.data.manual_dir")
  parser.add_argument("--data_dir", default=None, help="TFDS data dir (config.data.data_dir)")
  args = parser.parse_args(argv)
  sizes = [int(s) for s in args.sizes.split(",")]
  if min(sizes) < 1:
    parser.error(f"--sizes={args.sizes}: bundle sizes must be >= 1, e.g. --sizes 1,4,16,64")
  # The two processes of one N share the devices: each allocates what it uses rather than most of a GPU up front.
  os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")

  report = []
  for spec in args.config:
    results = []
    for n in sizes:
      results.append(measure_size(spec, n, args))
      print(f"{spec} N={n}: bundle {results[-1]['bundle']['median']:.0f}, back-to-back "
            f"{results[-1]['back_to_back']['median']:.0f} samples/s", file=sys.stderr)
    report.append({"config": spec, "results": results})
    print(f"{spec}, batch {config_lib.from_file(spec).batch_size}, {results[0]['bundle']['devices']} device(s) for the "
          f"bundle; total samples/s over all members, median [min, max] of {args.rounds} rounds of {args.steps} steps; "
          "peak memory of each measurement's process, MiB: resident / devices' ('-': not reported)")
    print(f"{'N':>4}{'bundle':>28}{'back-to-back':>28}{'ratio':>8}{'bundle MiB':>16}{'back-to-back MiB':>20}")
    for r in results:
      b, s = r["bundle"], r["back_to_back"]
      memory = [f"{_mib(m['peak_memory']['rss_mib'])} / {_mib(m['peak_memory']['device_mib'])}" for m in (b, s)]
      print(f"{r['members']:>4}{b['median']:>12.0f} [{b['min']:>6.0f}, {b['max']:>6.0f}]"
            f"{s['median']:>12.0f} [{s['min']:>6.0f}, {s['max']:>6.0f}]{b['median'] / s['median']:>7.2f}x"
            f"{memory[0]:>16}{memory[1]:>20}")
  print(json.dumps({"jax_version": jax.__version__, "report": report}))


if __name__ == "__main__":
  main(sys.argv[1:])
