"""Training throughput of aejax's `ae` step beside the seed's Keras `model.fit`, against this CPU's matmul peak.

Each of `--rounds` rounds runs, in turn: a Keras round (`benchmarks/keras_ae.py` in its own TensorFlow
virtualenv, a subprocess that times `--steps` batches of `model.fit` and prints one JSON line, of which
only stdout is read), an aejax round (`--steps` train steps), a products round (the step's matrix
products alone, `--steps` times: the ceiling for any implementation of this step here) and a matmul
round (`--matmul_reps` jitted float32 `x @ y` of two n x n matrices). Interleaving spreads background load over all
three alike; the medians over rounds are the figures, with min and max beside them.

The aejax round times the code path `aejax.train.train_and_evaluate` runs: `make_data_step` over
`make_train_step` for experiments/ae.py's net (784-500-300-150-100-64 and its mirror, Adam, MSE, batch
256), jitted with the state donated, each batch gathered on device from the MNIST train split that
`aejax.data.input_pipeline.load` returns, the state from `create_state`. Steps are dispatched from a Python
loop and blocked on once at the end; compilation and warm-up steps are not timed.

FLOPs: per sample, a dense layer costs 2 * fan_in * fan_out forward and 4 * fan_in * fan_out backward
(the gradients of its input and of its weights); the first layer's input gradient is never needed (nor
computed by XLA or TensorFlow), so a train step costs

  6 * sum over dense layers of (fan_in * fan_out) - 2 * (fan_in * fan_out of the first layer)

FLOPs per sample, counted from the aejax parameters' kernels. Biases, activations, the loss and Adam's
update are left out. Keras builds the same dense layers, so one count serves both. A product of two n x n
matrices costs 2 * n^3 FLOPs; its median GFLOP/s is the peak that the others are a percentage of.

  python benchmarks/throughput.py --keras_python /work/kerasvenv/bin/python
"""
import argparse
import json
import pathlib
import statistics
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
from ml_collections import config_dict

from aejax import config as config_lib
from aejax import registry, train
from aejax.data import input_pipeline
from aejax.nn import convolution

_REPO = pathlib.Path(__file__).resolve().parents[1]
_EXPERIMENT = _REPO / "experiments" / "ae.py"
_KERAS_SCRIPT = _REPO / "benchmarks" / "keras_ae.py"
_DEFAULT_MNIST_DIR = _REPO.parent / "shared" / "data" / "mnist"


def kernel_shapes(params) -> list[tuple[int, int]]:
  """The kernel shapes of an `AutoEncoder` with MLP encoder and decoder, in network order.

  An encoder without hidden layers has no parameters, so flax stores no "encoder" entry.
  """
  p = params["params"]
  encoder, decoder = p.get("encoder", {}), p["decoder"]
  layers = ([encoder[f"Dense_{i}"] for i in range(len(encoder))] + [p["code"]]
            + [decoder[f"Dense_{i}"] for i in range(len(decoder))])
  return [tuple(layer["kernel"].shape) for layer in layers]


def train_flops_per_sample(shapes: list[tuple[int, int]]) -> int:
  """6 * sum of fan_in * fan_out, less the first layer's unneeded input gradient."""
  return 6 * sum(a * b for a, b in shapes) - 2 * shapes[0][0] * shapes[0][1]


class AejaxRunner:
  """The aejax side: data, state and the jitted data step are built and warmed up once, then timed per round."""

  def __init__(self, config: config_dict.ConfigDict, warmup_steps: int):
    self.batch_size = config.batch_size
    variant = registry.get(config.variant)
    self.split, _ = input_pipeline.load(config.data)
    model = variant.build_model(config, self.split.image_shape)
    init_key, self.key, data_key = jax.random.split(jax.random.key(config.seed), 3)
    example = jnp.zeros((1, *self.split.image_shape), jnp.float32)
    self.state = train.init_state(variant, model, config, init_key, example)
    self.step = jax.jit(train.make_data_step(train.make_train_step(variant, model, config), self.split, config),
                        donate_argnums=0, compiler_options=convolution.compiler_options(config))
    self.perm = jax.jit(input_pipeline.epoch_permutation, static_argnums=2)(data_key, 0, self.split.size)
    self.run(max(warmup_steps, 1))

  def run(self, steps: int) -> float:
    """Runs `steps` train steps and returns their samples per second."""
    start = time.perf_counter()
    for _ in range(steps):
      self.state, metrics = self.step(self.state, self.split, self.perm, self.key)
    jax.block_until_ready((self.state, metrics))
    return steps * self.batch_size / (time.perf_counter() - start)


class ProductsRunner:
  """The step's matrix products alone, a ceiling for the step on this machine.

  For the same kernels and batch: forward `h @ W` per layer, then backward `h.T @ g` (weight gradient)
  and `g @ W.T` (input gradient, skipped for the first layer, as in the step); no activation, loss or
  update.
  """

  def __init__(self, shapes: list[tuple[int, int]], batch_size: int):
    self.kernels = [jnp.full(shape, 0.01, jnp.float32) for shape in shapes]
    self.batch_size = batch_size
    self.x = jnp.ones((batch_size, shapes[0][0]), jnp.float32)
    self.products = jax.jit(self._products)
    jax.block_until_ready(self.products(self.kernels, self.x))

  @staticmethod
  def _products(kernels, x):
    activations = [x]
    for w in kernels:
      activations.append(activations[-1] @ w)
    g, grads = activations[-1], []
    for i in reversed(range(len(kernels))):
      grads.append(activations[i].T @ g)
      if i:
        g = g @ kernels[i].T
    return grads

  def run(self, steps: int) -> float:
    """Returns samples per second over `steps` calls."""
    start = time.perf_counter()
    out = [self.products(self.kernels, self.x) for _ in range(steps)]
    jax.block_until_ready(out)
    return steps * self.batch_size / (time.perf_counter() - start)


class MatmulRunner:
  """The float32 matmul peak: `reps` jitted n x n products, dispatched in a loop and blocked on once."""

  def __init__(self, n: int, reps: int):
    self.n, self.reps = n, reps
    kx, ky = jax.random.split(jax.random.key(0))
    self.x = jax.random.normal(kx, (n, n), jnp.float32)
    self.y = jax.random.normal(ky, (n, n), jnp.float32)
    self.matmul = jax.jit(jnp.matmul)
    jax.block_until_ready(self.matmul(self.x, self.y))

  def run(self) -> float:
    """Returns GFLOP/s over `reps` products."""
    start = time.perf_counter()
    out = [self.matmul(self.x, self.y) for _ in range(self.reps)]
    jax.block_until_ready(out)
    return self.reps * 2 * self.n**3 / (time.perf_counter() - start) / 1e9


def keras_round(keras_python: str, mnist_dir: str, steps: int, batch_size: int,
                script: pathlib.Path = _KERAS_SCRIPT, warmup_steps: int = 30) -> dict:
  """Runs a Keras script (benchmarks/keras_ae.py) once and returns the JSON line it prints on stdout."""
  result = subprocess.run(
      [keras_python, str(script), "--mnist_dir", mnist_dir, "--steps", str(steps),
       "--batch_size", str(batch_size), "--warmup_steps", str(warmup_steps)],
      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, check=False)
  if result.returncode != 0:
    sys.exit(f"{script.name} failed ({result.returncode}):\n{result.stderr[-2000:]}")
  return json.loads(result.stdout.strip().splitlines()[-1])


def summarize(values: list[float]) -> dict[str, float]:
  return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def base_parser(description: str, steps: int, warmup_steps: int, keras_required: bool = True
                ) -> argparse.ArgumentParser:
  """The arguments every Keras-beside-aejax benchmark takes, with its own step defaults."""
  parser = argparse.ArgumentParser(description=description)
  parser.add_argument("--keras_python", required=keras_required, default=None,
                      help="python of a virtualenv with TensorFlow, e.g. /work/kerasvenv/bin/python"
                      + ("" if keras_required else "; without it, aejax's sides alone (e.g. on a GPU)"))
  parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds")
  parser.add_argument("--steps", type=int, default=steps, help="timed train steps per round, each side")
  parser.add_argument("--warmup_steps", type=int, default=warmup_steps,
                      help="untimed aejax steps before the first round")
  parser.add_argument("--mnist_dir", default=str(_DEFAULT_MNIST_DIR),
                      help="folder with the four MNIST IDX .gz files (config.data.manual_dir)")
  parser.add_argument("--data_dir", default=None,
                      help="TFDS data dir for config.data.data_dir (default: $TFDS_DATA_DIR or TFDS's own)")
  return parser


def parse_args(argv: list[str]) -> argparse.Namespace:
  parser = base_parser(__doc__.splitlines()[0], steps=200, warmup_steps=30)
  parser.add_argument("--matmul_size", type=int, default=2048, help="n of the n x n float32 matmul")
  parser.add_argument("--matmul_reps", type=int, default=10, help="matmuls per matmul round")
  return parser.parse_args(argv)


def main(argv: list[str]) -> None:
  args = parse_args(argv)
  config = config_lib.from_file(str(_EXPERIMENT))
  config.data.manual_dir = args.mnist_dir
  config.data.data_dir = args.data_dir

  aejax_runner = AejaxRunner(config, args.warmup_steps)
  shapes = kernel_shapes(aejax_runner.state.params)
  products_runner = ProductsRunner(shapes, config.batch_size)
  matmul_runner = MatmulRunner(args.matmul_size, args.matmul_reps)
  keras_rates, aejax_rates, products_rates, matmul_gflops, tf_version = [], [], [], [], None
  for r in range(args.rounds):
    keras = keras_round(args.keras_python, args.mnist_dir, args.steps, config.batch_size)
    tf_version = keras["tf_version"]
    keras_rates.append(keras["samples_per_s"])
    aejax_rates.append(aejax_runner.run(args.steps))
    products_rates.append(products_runner.run(args.steps))
    matmul_gflops.append(matmul_runner.run())
    print(f"round {r + 1}/{args.rounds}: keras {keras_rates[-1]:.0f} samples/s, aejax {aejax_rates[-1]:.0f} "
          f"samples/s, products {products_rates[-1]:.0f} samples/s, matmul {matmul_gflops[-1]:.1f} GFLOP/s",
          file=sys.stderr)

  flops = train_flops_per_sample(shapes)
  peak = summarize(matmul_gflops)
  result = {
      "batch_size": config.batch_size, "steps": args.steps, "rounds": args.rounds,
      "train_flops_per_sample": flops, "jax_version": jax.__version__, "tf_version": tf_version,
      "matmul": {"n": args.matmul_size, "gflops": peak, "per_round": matmul_gflops},
  }
  for name, rates in (("keras", keras_rates), ("aejax", aejax_rates), ("products", products_rates)):
    rate = summarize(rates)
    gflops = rate["median"] * flops / 1e9
    result[name] = {"samples_per_s": rate, "per_round": rates, "gflops": gflops,
                    "fraction_of_peak": gflops / peak["median"]}
  result["ratio_aejax_over_keras"] = result["aejax"]["samples_per_s"]["median"] / result["keras"]["samples_per_s"][
      "median"]

  print(f"{args.rounds} rounds of {args.steps} steps at batch {config.batch_size}; "
        f"{flops / 1e6:.2f} MFLOP per training sample; medians [min, max]")
  print(f"{'':<22}{'samples/s':>28}{'GFLOP/s':>10}{'of peak':>9}")
  for name, label in (("keras", f"keras (tf {tf_version})"), ("aejax", f"aejax (jax {jax.__version__})"),
                      ("products", "step's products alone")):
    rate, row = result[name]["samples_per_s"], result[name]
    print(f"{label:<22}{rate['median']:>12.0f} [{rate['min']:>6.0f}, {rate['max']:>6.0f}]"
          f"{row['gflops']:>10.1f}{row['fraction_of_peak']:>8.0%}")
  print(f"{f'matmul {args.matmul_size}^2 f32':<22}{'':>28}{peak['median']:>10.1f}{1:>8.0%}"
        f"   [{peak['min']:.1f}, {peak['max']:.1f}]")
  print(f"aejax / keras: {result['ratio_aejax_over_keras']:.2f}x")
  print(json.dumps(result))


if __name__ == "__main__":
  main(sys.argv[1:])
