"""Training throughput of the seed's convolutional autoencoder: Keras beside aejax's two convolution paths.

Each of `--rounds` rounds runs, in turn: a Keras round (`benchmarks/keras_conv_ae.py`, the seed's Keras
model and `model.fit`, in its own TensorFlow virtualenv), then an aejax round per `model.conv_impl`:
'xla' (`nn.Conv` through XLA's convolution as it is, what GPUs and TPUs run) and 'cpu' (the forms of the
same convolutions that 'auto' picks on a CPU, see aejax/nn/convolution.py); `--impls` picks others, e.g.
'auto,xla,cpu' on a GPU, where 'auto' should be XLA's convolution and Keras can be left out (no
`--keras_python`). Each side trains `--steps`
batches of 256 per round after `--warmup_steps` untimed ones; interleaving spreads background load over
all sides alike. The figures are medians over rounds, with min and max beside them.

The aejax rounds time what `aejax.train.train_and_evaluate` runs for experiments/conv_ae.py (BCE, Adam,
batch 256, batches gathered on device), through benchmarks/throughput.py's `AejaxRunner`.

  python benchmarks/conv_throughput.py --keras_python /work/kerasvenv/bin/python
  python benchmarks/conv_throughput.py --impls auto,xla,cpu   # aejax alone, e.g. on a GPU
"""
import itertools
import json
import pathlib
import sys

import jax
from ml_collections import config_dict

import throughput
from aejax import config as config_lib

_REPO = pathlib.Path(__file__).resolve().parents[1]
_EXPERIMENT = _REPO / "experiments" / "conv_ae.py"
_KERAS_SCRIPT = _REPO / "benchmarks" / "keras_conv_ae.py"


def _with_conv_impl(config: config_dict.ConfigDict, impl: str) -> config_dict.ConfigDict:
  config = config.copy_and_resolve_references()
  config.model.conv_impl = impl
  return config


def main(argv: list[str]) -> None:
  parser = throughput.base_parser(__doc__.splitlines()[0], steps=20, warmup_steps=5, keras_required=False)
  parser.add_argument("--impls", default="xla,cpu", help="model.conv_impl values to time, comma-separated")
  args = parser.parse_args(argv)
  impls = args.impls.split(",")
  if not set(impls) <= set(config_lib.CONV_IMPLS):
    parser.error(f"--impls={args.impls}: each must be one of {', '.join(config_lib.CONV_IMPLS)}, e.g. --impls xla,cpu")
  config = config_lib.from_file(str(_EXPERIMENT))
  config.data.manual_dir, config.data.data_dir = args.mnist_dir, args.data_dir
  runners = {impl: throughput.AejaxRunner(_with_conv_impl(config, impl), args.warmup_steps) for impl in impls}

  sides = (*(["keras"] if args.keras_python else []), *impls)
  rates, tf_version = {name: [] for name in sides}, None
  for r in range(args.rounds):
    if args.keras_python:
      keras = throughput.keras_round(args.keras_python, args.mnist_dir, args.steps, config.batch_size,
                                     script=_KERAS_SCRIPT, warmup_steps=args.warmup_steps)
      tf_version = keras["tf_version"]
      rates["keras"].append(keras["samples_per_s"])
    for impl, runner in runners.items():
      rates[impl].append(runner.run(args.steps))
    print(f"round {r + 1}/{args.rounds}: " + ", ".join(f"{name} {v[-1]:.0f}" for name, v in rates.items())
          + " samples/s", file=sys.stderr)

  medians = {name: throughput.summarize(v)["median"] for name, v in rates.items()}
  ratios = {f"{a}/{b}": medians[a] / medians[b] for a, b in itertools.combinations(reversed(sides), 2)}
  result = {"batch_size": config.batch_size, "steps": args.steps, "rounds": args.rounds,
            "backend": jax.default_backend(), "device": jax.devices()[0].device_kind, "jax_version": jax.__version__,
            "tf_version": tf_version,
            **{name: {"samples_per_s": throughput.summarize(v), "per_round": v} for name, v in rates.items()},
            "ratios": ratios}

  print(f"{args.rounds} rounds of {args.steps} steps at batch {config.batch_size} on {result['device']}; "
        "samples/s, medians [min, max]")
  labels = {"keras": f"keras (tf {tf_version})", "xla": "aejax, XLA convolutions", "cpu": "aejax, CPU path",
            "auto": "aejax, conv_impl auto"}
  for name in sides:
    rate = result[name]["samples_per_s"]
    print(f"{labels[name]:<28}{rate['median']:>8.0f} [{rate['min']:>5.0f}, {rate['max']:>5.0f}]")
  print(", ".join(f"{pair}: {ratio:.2f}x" for pair, ratio in ratios.items()))
  print(json.dumps(result))


if __name__ == "__main__":
  main(sys.argv[1:])
