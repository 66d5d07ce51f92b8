"""Training samples/s of `aejax.train`'s data step with the batch sharded over 1 and over 4 forced CPU devices.

On a CPU the forced devices share the same cores, so this is a correctness and overhead check more than a
speed-up: the 4-device step is the 1-device program split in four, plus an all-reduce of the gradients.

Each device count runs in its own subprocess (the count is fixed when JAX starts, by
`XLA_FLAGS=--xla_force_host_platform_device_count=N`). A subprocess builds what `train_and_evaluate` builds
for experiments/ae.py's net (batch 256, Adam, MSE): the state and train split replicated over the mesh of
`aejax.parallel.data_mesh`, the step from `make_data_step(..., mesh)` jitted with the state donated. On 1
device it also times the step without a mesh (the code path before data parallelism) in interleaved rounds,
so that any cost of the sharding annotations on one device shows. Medians over `--rounds` rounds of
`--steps` steps, [min, max]; compilation and warm-up are not timed. As in the train loop, several CPU devices
wait for each step before dispatching the next (`aejax.parallel.sync_each_step`: XLA:CPU's collectives can
deadlock with steps in flight).

  python benchmarks/multidevice.py [--rounds 5 --steps 200]
"""
import argparse
import json
import os
import pathlib
import statistics
import subprocess
import sys
import time

_REPO = pathlib.Path(__file__).resolve().parents[1]
_EXPERIMENT = _REPO / "experiments" / "ae.py"
_DEFAULT_MNIST_DIR = _REPO.parent / "shared" / "data" / "mnist"
_DEVICE_COUNTS = (1, 4)


def measure(args: argparse.Namespace) -> dict:
  """In a subprocess with the forced device count: samples/s of the sharded step (and, on 1 device, the plain one)."""
  import jax  # pylint: disable=g-import-not-at-top  (after XLA_FLAGS is set by the parent)
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  from aejax import config as config_lib, parallel, registry, train  # pylint: disable=g-import-not-at-top
  from aejax.data import input_pipeline  # pylint: disable=g-import-not-at-top

  config = config_lib.from_file(str(_EXPERIMENT))
  config.data.manual_dir, config.data.data_dir = args.mnist_dir, args.data_dir
  variant = registry.get(config.variant)
  split, _ = input_pipeline.load(config.data)
  model = variant.build_model(config, split.image_shape)
  init_key, key, data_key = jax.random.split(jax.random.key(config.seed), 3)
  example = jnp.zeros((1, *split.image_shape), jnp.float32)
  perm = input_pipeline.epoch_permutation(data_key, 0, split.size)
  mesh = parallel.data_mesh()
  parallel.check_batch_size(config.batch_size, mesh)
  sync = parallel.sync_each_step(mesh)  # As the train loop does: see aejax/parallel.py.

  def runner(sharded: bool):
    state = train.init_state(variant, model, config, init_key, example)
    inputs = parallel.replicate((state, split, perm), mesh) if sharded else (state, split, perm)
    step = jax.jit(train.make_data_step(train.make_train_step(variant, model, config), split, config,
                                        mesh if sharded else None), donate_argnums=0)
    box = list(inputs)

    def run(steps: int) -> float:
      start = time.perf_counter()
      for _ in range(steps):
        box[0], metrics = step(box[0], box[1], box[2], key)
        if sync:
          jax.block_until_ready(box[0])
      jax.block_until_ready((box[0], metrics))
      return steps * config.batch_size / (time.perf_counter() - start)

    run(args.warmup_steps)
    return run

  runners = {"sharded": runner(True)}
  if mesh.size == 1:
    runners["plain"] = runner(False)
  rates = {name: [] for name in runners}
  for _ in range(args.rounds):
    for name, run in runners.items():
      rates[name].append(run(args.steps))
  return {"devices": jax.device_count(), "batch_size": config.batch_size,
          **{name: {"median": statistics.median(r), "min": min(r), "max": max(r), "per_round": r}
             for name, r in rates.items()}}


def parse_args(argv: list[str]) -> argparse.Namespace:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--rounds", type=int, default=5, help="timed rounds per runner")
  parser.add_argument("--steps", type=int, default=200, help="train steps per round")
  parser.add_argument("--warmup_steps", type=int, default=20, help="untimed steps after compilation")
  parser.add_argument("--mnist_dir", default=str(_DEFAULT_MNIST_DIR),
                      help="folder with the four MNIST IDX .gz files (config.data.manual_dir)")
  parser.add_argument("--data_dir", default=None, help="TFDS data dir (config.data.data_dir)")
  parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
  return parser.parse_args(argv)


def main(argv: list[str]) -> None:
  args = parse_args(argv)
  if args.child:
    print(json.dumps(measure(args)))
    return
  results = []
  for n in _DEVICE_COUNTS:
    env = {**os.environ, "XLA_FLAGS": f"--xla_force_host_platform_device_count={n}", "JAX_PLATFORMS": "cpu"}
    done = subprocess.run([sys.executable, __file__, "--child", *argv], env=env, cwd=_REPO, capture_output=True,
                          text=True, check=False)
    if done.returncode != 0:
      sys.exit(f"multidevice: the {n}-device run failed ({done.returncode}):\n{done.stderr[-2000:]}")
    results.append(json.loads(done.stdout.strip().splitlines()[-1]))
  print(f"experiments/ae.py, batch {results[0]['batch_size']}, {args.rounds} rounds of {args.steps} steps; "
        "samples/s, median [min, max]")
  for r in results:
    for name in ("sharded", "plain"):
      if name in r:
        rate = r[name]
        label = f"{r['devices']} device{'s' if r['devices'] > 1 else ''}, " + (
            "batch sharded" if name == "sharded" else "no mesh (before)")
        print(f"  {label:<32}{rate['median']:>9.0f} [{rate['min']:.0f}, {rate['max']:.0f}]")
  print(json.dumps(results))


if __name__ == "__main__":
  main(sys.argv[1:])
