"""The autoencoder family on full MNIST: one `train_and_evaluate` run of each variant's experiment file.

Every entry reports the test squared error per image (`test/recon_error`, summed over the 784 pixels in
[0, 1]), the training samples/s (the median of the run's logged `train/samples_per_s`, so that the first
window, which pays for compilation, does not count) and the test metrics that characterise its variant.
A new variant adds one `Entry` to `ENTRIES`.

  python benchmarks/family.py --workdir runs/family [--only contractive_ae ...]
"""
import argparse
import dataclasses
import json
import pathlib
import statistics
import sys

import quality

_REPO = pathlib.Path(__file__).resolve().parents[1]
_DEFAULT_MNIST_DIR = _REPO.parent / "shared" / "data" / "mnist"


@dataclasses.dataclass(frozen=True)
class Entry:
  """One row: a name, the experiment file that trains it (with `overrides`), and its own test metrics."""
  name: str
  experiment: str
  metrics: tuple[str, ...] = ()  # Names without 'test/'.
  overrides: dict = dataclasses.field(default_factory=dict)


_STACKED_METRICS = ("layer0_error", "layer1_error", "layer2_error", "depth1_recon_error", "depth2_recon_error")

ENTRIES = (
    # ‖∂h/∂x‖²_F, the contractive penalty, per test image.
    Entry("contractive_ae", "experiments/contractive_ae.py", ("jacobian_norm_sq",)),
    # Mean code activation (the KL target ρ is 0.05) and fraction of code units with |h| < 0.01, per test image.
    Entry("sparse_ae", "experiments/sparse_ae.py", ("mean_activation", "near_zero_fraction")),
    # A 1024-unit code on 784 pixels, kept from copying by masking noise: squared error of the reconstruction
    # of a masked test image against the clean one.
    Entry("overcomplete_ae", "experiments/overcomplete_ae.py", ("denoise_error",)),
    # The stacked 784-256-128-64 AE: greedy pre-training alone (3 layers x 936 steps), then followed by
    # fine-tuning (1,872 steps), and the same net trained end to end for as many steps as the whole schedule.
    # Per layer: squared error of each layer on its own input; per depth: the image's error through the
    # first layers alone.
    Entry("stacked_ae_pretrained", "experiments/stacked_ae.py", _STACKED_METRICS, {"num_steps": 3 * 936}),
    Entry("stacked_ae", "experiments/stacked_ae.py", _STACKED_METRICS),
    Entry("stacked_ae_end_to_end", "experiments/stacked_ae.py", ("depth1_recon_error",), {"pretrain_steps": 0}),
    # The seed's conv net (7x7x128 spatial code, BCE, 20 epochs): BCE per test image beside the squared error.
    Entry("conv_ae", "experiments/conv_ae.py", ("bce",)),
)


def samples_per_s(metrics_path: str) -> float:
  """The median of a run's logged `train/samples_per_s`."""
  rows = [json.loads(line) for line in pathlib.Path(metrics_path).read_text().splitlines()]
  return statistics.median(row["train/samples_per_s"] for row in rows if "train/samples_per_s" in row)


def figures(entry: Entry, args: argparse.Namespace) -> dict:
  """Trains `entry`'s experiment (or reads back a finished run) in WORKDIR/<name> and returns its figures."""
  steps = {} if args.num_steps is None else {"num_steps": args.num_steps}
  summary, seconds = quality.run_experiment(entry.experiment, args.workdir / entry.name, args,
                                            **{**entry.overrides, **steps})
  return {"test_squared_error": summary["test/recon_error"],
          **{metric: summary[f"test/{metric}"] for metric in entry.metrics},
          "samples_per_s": samples_per_s(summary["metrics"]), "steps": summary["step"], "seconds": seconds}


def main(argv: list[str]) -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--workdir", type=pathlib.Path, required=True, help="runs go to WORKDIR/<variant>")
  parser.add_argument("--only", nargs="+", choices=[e.name for e in ENTRIES], default=None)
  parser.add_argument("--num_steps", type=int, default=None, help="override num_steps (a quick check)")
  parser.add_argument("--mnist_dir", default=str(_DEFAULT_MNIST_DIR), help="the four MNIST IDX .gz files")
  parser.add_argument("--data_dir", default=None, help="TFDS data dir (default: $TFDS_DATA_DIR or TFDS's own)")
  args = parser.parse_args(argv)
  entries = [e for e in ENTRIES if args.only is None or e.name in args.only]
  results = {e.name: figures(e, args) for e in entries}
  print(f"{'variant':<18}{'test sq. error':>15}{'samples/s':>11}{'steps':>7}{'seconds':>9}  own test metrics")
  for e in entries:
    r = results[e.name]
    own = ", ".join(f"{metric} {r[metric]:.3f}" for metric in e.metrics)
    print(f"{e.name:<18}{r['test_squared_error']:>15.3f}{r['samples_per_s']:>11.0f}{r['steps']:>7}"
          f"{r['seconds']:>9.1f}  {own}")
  print(json.dumps(results))


if __name__ == "__main__":
  main(sys.argv[1:])
