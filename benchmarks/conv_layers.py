"""Where a conv train step's time goes on the CPU: each of the seed net's six convolutions, split into parts.

For each 3x3 'SAME' convolution of experiments/conv_ae.py's net at batch 256, the time of its three parts as
`model.conv_impl='cpu'` computes them (see aejax/nn/convolution.py): the forward convolution, the input
gradient and the kernel gradient, each jitted alone on random data, medians of `--reps` runs. The first
layer's input gradient is never needed in training and is left out of its total.

  python benchmarks/conv_layers.py [--reps 7]
"""
import argparse
import json
import statistics
import sys
import time

import jax

from aejax.nn import convolution

# (side, input channels, output channels) of the seed net's convolutions, encoder then decoder.
SEED_NET = ((28, 1, 32), (14, 32, 64), (7, 64, 128), (7, 128, 64), (14, 64, 32), (28, 32, 1))


def _median_ms(fn, args, reps: int) -> float:
  fn = jax.jit(fn, compiler_options=convolution.CPU_COMPILER_OPTIONS)  # As the train step is compiled.
  for _ in range(3):  # Compilation, then warm-up: the first timed part of a fresh process ran up to 2x slow.
    jax.block_until_ready(fn(*args))
  times = []
  for _ in range(reps):
    start = time.perf_counter()
    jax.block_until_ready(fn(*args))
    times.append(time.perf_counter() - start)
  return 1e3 * statistics.median(times)


def layer_parts(side: int, cin: int, cout: int, batch: int, reps: int) -> dict[str, float]:
  """Milliseconds of the forward convolution, input gradient and kernel gradient of one layer."""
  keys = jax.random.split(jax.random.key(0), 3)
  x = jax.random.normal(keys[0], (batch, side, side, cin))
  kernel = jax.random.normal(keys[1], (3, 3, cin, cout))
  cotangent = jax.random.normal(keys[2], (batch, side, side, cout))
  conv = lambda x, k: convolution.cpu_conv(x, k, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))
  input_grad = lambda x, k, g: jax.vjp(lambda x: conv(x, k), x)[1](g)[0]
  kernel_grad = lambda x, k, g: jax.vjp(lambda k: conv(x, k), k)[1](g)[0]
  return {"forward": _median_ms(conv, (x, kernel), reps),
          "input_grad": _median_ms(input_grad, (x, kernel, cotangent), reps),
          "kernel_grad": _median_ms(kernel_grad, (x, kernel, cotangent), reps)}


def main(argv: list[str]) -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--batch_size", type=int, default=256)
  parser.add_argument("--reps", type=int, default=7, help="timed runs of each part")
  args = parser.parse_args(argv)
  rows = []
  for i, (side, cin, cout) in enumerate(SEED_NET):
    parts = layer_parts(side, cin, cout, args.batch_size, args.reps)
    needed = {k: v for k, v in parts.items() if not (i == 0 and k == "input_grad")}
    rows.append({"layer": f"{side}x{side}x{cin} -> {cout}", **parts, "total": sum(needed.values())})
  total = sum(r["total"] for r in rows)
  kernel = sum(r["kernel_grad"] for r in rows)
  print(f"batch {args.batch_size}, medians of {args.reps} runs, ms")
  print(f"{'layer':<20}{'forward':>9}{'input grad':>12}{'kernel grad':>13}{'total':>8}")
  for r in rows:
    print(f"{r['layer']:<20}{r['forward']:>9.1f}{r['input_grad']:>12.1f}{r['kernel_grad']:>13.1f}{r['total']:>8.1f}")
  print(f"all six: {total:.1f} ms, of which kernel gradients {kernel:.1f} ({kernel / total:.0%})")
  print(json.dumps({"batch_size": args.batch_size, "layers": rows, "total_ms": total, "kernel_grad_ms": kernel}))


if __name__ == "__main__":
  main(sys.argv[1:])
