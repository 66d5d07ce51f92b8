"""Training throughput of the seed's convolutional autoencoder: Keras beside aejax's two convolution paths.

Each of `--rounds` rounds runs, in turn: a Keras round (`benchmarks/keras_conv_ae.py`, the seed's Keras
model and `model.fit`, in its own TensorFlow virtualenv), then an aejax round per `model.conv_impl`:
'xla' (`nn.Conv` through XLA's convolution as it is, what GPUs and TPUs run) and 'cpu' (the forms of the
same convolutions that 'auto' picks on a CPU, see aejax/convolution.py). Each side trains `--steps`
batches of 256 per round after `--warmup_steps` untimed ones; interleaving spreads background load over
all sides alike. The figures are medians over rounds, with min and max beside them.

The aejax rounds time what `aejax.train.train_and_evaluate` runs for experiments/conv_ae.py (BCE, Adam,
batch 256, batches gathered on device), through benchmarks/throughput.py's `AejaxRunner`.

  python benchmarks/conv_throughput.py --keras_python /work/kerasvenv/bin/python
"""
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
_IMPLS = ("xla", "cpu")


def _with_conv_impl(config: config_dict.ConfigDict, impl: str) -> config_dict.ConfigDict:
  config = config.copy_and_resolve_references()
  config.model.conv_impl = impl
  return config


def main(argv: list[str]) -> None:
  args = throughput.base_parser(__doc__.splitlines()[0], steps=20, warmup_steps=5).parse_args(argv)
  config = config_lib.from_file(str(_EXPERIMENT))
  config.data.manual_dir, config.data.data_dir = args.mnist_dir, args.data_dir
  runners = {impl: throughput.AejaxRunner(_with_conv_impl(config, impl), args.warmup_steps) for impl in _IMPLS}

  rates, tf_version = {name: [] for name in ("keras", *_IMPLS)}, None
  for r in range(args.rounds):
    keras = throughput.keras_round(args.keras_python, args.mnist_dir, args.steps, config.batch_size,
                                   script=_KERAS_SCRIPT, warmup_steps=args.warmup_steps)
    tf_version = keras["tf_version"]
    rates["keras"].append(keras["samples_per_s"])
    for impl, runner in runners.items():
      rates[impl].append(runner.run(args.steps))
    print(f"round {r + 1}/{args.rounds}: " + ", ".join(f"{name} {v[-1]:.0f}" for name, v in rates.items())
          + " samples/s", file=sys.stderr)

  medians = {name: throughput.summarize(v)["median"] for name, v in rates.items()}
  result = {"batch_size": config.batch_size, "steps": args.steps, "rounds": args.rounds,
            "backend": jax.default_backend(), "jax_version": jax.__version__, "tf_version": tf_version,
            **{name: {"samples_per_s": throughput.summarize(v), "per_round": v} for name, v in rates.items()},
            "ratio_cpu_over_keras": medians["cpu"] / medians["keras"],
            "ratio_xla_over_keras": medians["xla"] / medians["keras"],
            "ratio_cpu_over_xla": medians["cpu"] / medians["xla"]}

  print(f"{args.rounds} rounds of {args.steps} steps at batch {config.batch_size} on {jax.default_backend()}; "
        "samples/s, medians [min, max]")
  for name, label in (("keras", f"keras (tf {tf_version})"), ("xla", "aejax, XLA convolutions"),
                      ("cpu", "aejax, CPU path")):
    rate = result[name]["samples_per_s"]
    print(f"{label:<28}{rate['median']:>8.0f} [{rate['min']:>5.0f}, {rate['max']:>5.0f}]")
  print(f"cpu / keras: {result['ratio_cpu_over_keras']:.2f}x, "
        f"xla / keras: {result['ratio_xla_over_keras']:.2f}x, cpu / xla: {result['ratio_cpu_over_xla']:.2f}x")
  print(json.dumps(result))


if __name__ == "__main__":
  main(sys.argv[1:])
