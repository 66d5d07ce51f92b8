"""Cost of the contractive penalty: `contractive_ae`'s jitted train step beside `ae`'s on the same net.

Two nets, each trained as `ae` and as `contractive_ae` (experiments/contractive_ae.py otherwise: 64 sigmoid
code units, MSE, Adam, batch 256, the full MNIST train split):

- `one_layer`: 784-64 encoder, 64-784 decoder. The penalty takes its closed form
  Σ_j (h_j(1−h_j))² Σ_i W_ij²: a few elementwise ops on (B, 64) and one pass over the 784 x 64 kernel.
- `deep`: experiments/ae.py's 784-500-300-150-100-64 encoder and its mirror. The penalty is the whole
  Jacobian in reverse mode (784 inputs > 64 code units): 64 backward passes through the encoder per step,
  each at about the cost of the `ae` step's own encoder backward pass, and the parameter gradient
  differentiates through them once more.

Each runner is `benchmarks/throughput.py`'s `AejaxRunner`: the code path of `aejax.train`
(`make_data_step` over `make_train_step`, state from `init_state`, batches gathered on device), built and
warmed up once. Each of `--rounds` rounds then times the four runners in turn, so background load falls on
all alike. Reported: medians [min, max] of samples/s; the slowdown, the median over rounds of
`ae` samples/s / `contractive_ae` samples/s; and XLA's FLOP count of each compiled step per sample.

  python benchmarks/contractive_cost.py [--rounds 5]
"""
import argparse
import json
import math
import pathlib
import statistics
import sys

import jax

from aejax import config as config_lib
from aejax import registry
from aejax.variants.autoencoders import contractive
from throughput import AejaxRunner, summarize

_REPO = pathlib.Path(__file__).resolve().parents[1]
_EXPERIMENT = _REPO / "experiments" / "contractive_ae.py"
_DEFAULT_MNIST_DIR = _REPO.parent / "shared" / "data" / "mnist"
NETS = {"one_layer": (), "deep": (500, 300, 150, 100)}  # Encoder hidden widths; the decoder mirrors them.
VARIANTS = ("ae", "contractive_ae")


def step_mflops_per_sample(runner: AejaxRunner) -> float:
  """XLA's FLOP count of the runner's compiled step (data gather and Adam included), in millions per sample."""
  compiled = runner.step.lower(runner.state, runner.split, runner.perm, runner.key).compile()
  return compiled.cost_analysis()["flops"] / runner.batch_size / 1e6


def make_config(args: argparse.Namespace, variant: str, encoder_widths: tuple[int, ...]):
  config = config_lib.from_file(str(_EXPERIMENT))
  config.variant, config.model.encoder_widths = variant, encoder_widths
  config.data.manual_dir, config.data.data_dir = args.mnist_dir, args.data_dir
  return config


def parse_args(argv: list[str]) -> argparse.Namespace:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds over the four runners")
  parser.add_argument("--steps", type=int, default=200, help="timed steps per round of the one-layer runners")
  parser.add_argument("--deep_steps", type=int, default=20, help="timed steps per round of the deep runners")
  parser.add_argument("--warmup_steps", type=int, default=3, help="untimed steps per runner before the first round")
  parser.add_argument("--mnist_dir", default=str(_DEFAULT_MNIST_DIR),
                      help="folder with the four MNIST IDX .gz files (config.data.manual_dir)")
  parser.add_argument("--data_dir", default=None,
                      help="TFDS data dir for config.data.data_dir (default: $TFDS_DATA_DIR or TFDS's own)")
  return parser.parse_args(argv)


def main(argv: list[str]) -> None:
  args = parse_args(argv)
  configs = {(net, variant): make_config(args, variant, widths) for net, widths in NETS.items() for variant in VARIANTS}
  runners = {key: AejaxRunner(config, args.warmup_steps) for key, config in configs.items()}
  steps = {"one_layer": args.steps, "deep": args.deep_steps}
  rates = {key: [] for key in runners}
  for r in range(args.rounds):
    for (net, variant), runner in runners.items():
      rates[net, variant].append(runner.run(steps[net]))
    print(f"round {r + 1}/{args.rounds}: " + ", ".join(f"{net} {variant} {rates[net, variant][-1]:.0f}"
                                                      for net, variant in runners) + " samples/s", file=sys.stderr)

  batch_size = configs["one_layer", "ae"].batch_size
  result = {"rounds": args.rounds, "steps": steps, "batch_size": batch_size, "jax_version": jax.__version__,
            "device": jax.devices()[0].device_kind}
  for net, widths in NETS.items():
    config, input_shape = configs[net, "contractive_ae"], runners[net, "ae"].split.image_shape
    model = registry.get(config.variant).build_model(config, input_shape)
    slowdowns = [a / c for a, c in zip(rates[net, "ae"], rates[net, "contractive_ae"])]
    result[net] = {"encoder": "-".join(map(str, (math.prod(input_shape), *widths, config.latent_dim))),
                   "penalty": contractive.penalty_path(model, input_shape),
                   **{variant: {"samples_per_s": summarize(rates[net, variant]), "per_round": rates[net, variant],
                                "mflops_per_sample": step_mflops_per_sample(runners[net, variant])}
                      for variant in VARIANTS},
                   "slowdown": statistics.median(slowdowns), "slowdown_per_round": slowdowns}

  print(f"{args.rounds} rounds, batch {batch_size}; samples/s, medians [min, max]; slowdown = ae / contractive_ae")
  print(f"{'net':<10}{'encoder':<24}{'penalty':<13}{'ae':>24}{'contractive_ae':>24}{'slowdown':>10}"
        f"{'MFLOP/sample ae, cae':>24}")
  for net in NETS:
    row = result[net]
    cells = [f"{s['median']:>8.0f} [{s['min']:>6.0f}, {s['max']:>6.0f}]"
             for s in (row[v]["samples_per_s"] for v in VARIANTS)]
    flops = ", ".join(f"{row[v]['mflops_per_sample']:.2f}" for v in VARIANTS)
    print(f"{net:<10}{row['encoder']:<24}{row['penalty']:<13}{cells[0]:>24}{cells[1]:>24}{row['slowdown']:>9.2f}x"
          f"{flops:>24}")
  print(json.dumps(result))


if __name__ == "__main__":
  main(sys.argv[1:])
