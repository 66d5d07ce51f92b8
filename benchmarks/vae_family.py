"""The variational family on binarised MNIST: each model's train-step throughput beside the plain VAE's, and a
reproduction table at a stated, shortened schedule (test NLL by importance sampling, k = `--nll_samples`).

`--mode throughput`: for each entry, `--steps` jitted train steps of its experiment file (throughput.py's runner:
the code path of `aejax.train`, batches gathered on device), `--rounds` rounds interleaved over the entries,
medians; samples/s and the slowdown against the plain VAE's step on the same net (Burda et al.'s 784-200-200-50 at
batch 20: `vae`; the VampPrior protocol's 784-300-300-40 at batch 100: `vae_300`) — the price of a bound's extra
draws, a learned prior, a flow, leapfrog steps. The autoencoders without a bound (`OTHERS`) on their own nets.

`--mode train`: trains each entry for `--epochs` epochs of its own batch size (the learning-rate schedule follows
the shortened run), W&B off, in WORKDIR/<name>, then scores the `nll` suite with `--nll_samples` importance samples
on the whole test split (or its first `--nll_images`); prints the test NLL, the negative ELBO, the training minutes
and samples/s. A finished run is read back, not retrained (its minutes those it took).

`--mode samples`: trains each sampler of `SAMPLERS` the same way (the two-stage VAE on the codes of the `vae_mlp`
run, which it trains first), then scores its samples with the `samples` suite (classifier FID, precision, recall
against the test images; the train-vs-test floor beside them). RAE-GP is left out unless named: its Jacobian penalty
makes its step about 24× slower than WAE-MMD's on this CPU (docs/performance.md).

  python benchmarks/vae_family.py --mode throughput
  python benchmarks/vae_family.py --mode train --workdir runs/vae_family --epochs 10 [--only vae vamp]
  python benchmarks/vae_family.py --mode samples --workdir runs/vae_samples --epochs 5
"""
import argparse
import json
import pathlib
import statistics
import sys
import time

import throughput as throughput_lib
from family import Entry

from aejax import config as config_lib, evaluate, train

_REPO = pathlib.Path(__file__).resolve().parents[1]
_DEFAULT_MNIST_DIR = _REPO.parent / "shared" / "data" / "mnist"


# Each model: the experiment file that trains it and its overrides (dotted fields), with its published NLLs.
ENTRIES = (
    Entry("vae", "experiments/iwae_burda2016.py"),
    Entry("iwae_k8", "experiments/iwae_burda2016.py", overrides={"iwae_samples": 8}),
    Entry("miwae_8x8", "experiments/miwae.py"),
    Entry("piwae_8x8", "experiments/piwae.py"),
    Entry("ciwae_0.05", "experiments/ciwae.py"),
    Entry("vae_300", "experiments/vamp_vae.py", overrides={"vae.prior": "normal"}),
    Entry("vamp", "experiments/vamp_vae.py"),
    Entry("mog", "experiments/vamp_vae.py", overrides={"vae.prior": "mog"}),
    Entry("iaf_4", "experiments/iaf_vae.py"),
    Entry("planar_10", "experiments/planar_vae.py"),
    Entry("hvae_4", "experiments/hvae.py"),
    Entry("two_layer", "experiments/iwae_two_layer.py"),
)
# Autoencoders without a likelihood bound (no NLL to reproduce): their steps' speeds only, on their own nets.
OTHERS = (
    Entry("vqvae", "experiments/vqvae.py"),
    Entry("wae_mmd", "experiments/wae_mmd.py"),
    Entry("info_vae", "experiments/info_vae.py"),
    Entry("rae_gp", "experiments/rae.py", overrides={"rae.regularizer": "gp"}),
)
# Samplers scored by the samples suite: the VAE of experiments/vae.py and the two-stage VAE on its codes (Dai &
# Wipf's comparison), and the models of Ghosh et al.'s comparison on its protocol.
SAMPLERS = (
    Entry("vae_mlp", "experiments/vae.py"),
    Entry("two_stage", "experiments/two_stage_vae.py"),
    Entry("wae_mmd", "experiments/wae_mmd.py"),
    Entry("info_vae", "experiments/info_vae.py"),
    Entry("rae_l2", "experiments/rae.py"),
    Entry("rae_gp", "experiments/rae.py", overrides={"rae.regularizer": "gp"}),
)
PUBLISHED = {"vae": "86.76 (Burda et al.); pythae 89.78", "iwae_k8": "k = 50: 84.78 (Burda et al.)",
             "miwae_8x8": "pythae 85.09", "piwae_8x8": "pythae 84.58", "ciwae_0.05": "pythae 84.74",
             "vamp": "85.57 (Tomczak & Welling); pythae 85.79", "hvae_4": "86.40 (Caterini et al.); pythae 86.21",
             "two_layer": "85.33 (Burda et al.)"}


def make_config(entry: Entry, args: argparse.Namespace) -> config_lib.config_dict.ConfigDict:
  """`entry`'s experiment file with its overrides, on the MNIST files of `args`, W&B off."""
  config = config_lib.from_file(str(_REPO / entry.experiment))
  config.data.manual_dir, config.data.data_dir, config.wandb.mode = args.mnist_dir, args.data_dir, "disabled"
  config.update_from_flattened_dict(entry.overrides)
  return config


def throughput(entries: list[Entry], args: argparse.Namespace) -> None:
  """Prints each entry's train-step samples/s (medians of interleaved rounds) and its slowdown."""
  runners = {e.name: throughput_lib.AejaxRunner(make_config(e, args), warmup_steps=10) for e in entries}
  rates = {name: [] for name in runners}
  for _ in range(args.rounds):
    for name, runner in runners.items():
      rates[name].append(runner.run(args.steps))
  medians = {name: statistics.median(r) for name, r in rates.items()}
  print(f"{'model':<12}{'samples/s':>11}{'min':>9}{'max':>9}  slowdown against the plain VAE of its net")
  for e in entries:
    base = "vae_300" if e.experiment == "experiments/vamp_vae.py" else "vae"
    ratio = f"{medians[base] / medians[e.name]:.2f} ({base})" if base in medians and e not in OTHERS else ""
    r = rates[e.name]
    print(f"{e.name:<12}{medians[e.name]:>11.0f}{min(r):>9.0f}{max(r):>9.0f}  {ratio}")
  print(json.dumps({"samples_per_s": medians, "rounds": rates}))


def train_shortened(entry: Entry, args: argparse.Namespace, **overrides) -> tuple[pathlib.Path, dict]:
  """`entry` (with `overrides`) trained for `args.epochs` epochs in WORKDIR/<name>, no suites at its end: its
  workdir and (steps, training minutes, median samples/s). Its training time is kept in train_seconds.json, so
  that a finished run read back reports it."""
  config = make_config(entry, args)
  config.update_from_flattened_dict(overrides)
  steps = round(args.epochs * (60_000 // config.batch_size))
  config.num_steps = steps
  config.eval_every = config.checkpoint_every = max(1, steps // 4)
  config.kl_warmup_steps = min(config.kl_warmup_steps, steps // 2)
  if "rae" in config:  # Its code density refitted before steps 0, s, 2s, 3s: the last a few steps before the end.
    config.rae.density_every = max(1, (steps - 1) // 3)
  config.eval.suites = ()
  workdir = args.workdir / entry.name
  timing = workdir / "train_seconds.json"
  start = time.perf_counter()
  summary = train.train_and_evaluate(config, workdir)
  if not timing.exists():
    timing.write_text(json.dumps({"seconds": time.perf_counter() - start}))
  rows = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
  return workdir, {"steps": summary["step"], "train_minutes": json.loads(timing.read_text())["seconds"] / 60,
                   "samples_per_s": statistics.median(r["train/samples_per_s"] for r in rows
                                                      if "train/samples_per_s" in r)}


def trained(entry: Entry, args: argparse.Namespace) -> dict:
  """`entry` trained by `train_shortened` on the first `--nll_images` test images, and its NLL figures."""
  workdir, figures = train_shortened(entry, args, **{"data.num_test": args.nll_images})
  report = evaluate.evaluate_run(workdir, ["nll"], nll_samples=args.nll_samples)
  return {"nll": report["nll/iwae_nll"], "neg_elbo": report["nll/neg_elbo"], **figures}


def reproduce(entries: list[Entry], args: argparse.Namespace) -> None:
  """Prints the reproduction table of `entries` trained by `trained`."""
  results = {e.name: trained(e, args) for e in entries}
  print(f"{'model':<12}{'NLL':>9}{'-ELBO':>9}{'steps':>10}{'minutes':>9}{'samples/s':>11}  published")
  for e in entries:
    r = results[e.name]
    print(f"{e.name:<12}{r['nll']:>9.2f}{r['neg_elbo']:>9.2f}{r['steps']:>10}{r['train_minutes']:>9.1f}"
          f"{r['samples_per_s']:>11.0f}  {PUBLISHED.get(e.name, '')}")
  print(json.dumps(results))


def sample_quality(entries: list[Entry], args: argparse.Namespace) -> None:
  """Prints the samples suite's figures of each of `entries` trained by `train_shortened` (the two-stage VAE on
  the `vae_mlp` run's codes), beside the train-vs-test floor."""
  results = {}
  for e in entries:
    first = {}
    if e.name == "two_stage":
      vae_mlp = next(s for s in SAMPLERS if s.name == "vae_mlp")
      first = {"two_stage.first_workdir": str(train_shortened(vae_mlp, args)[0])}
    workdir, figures = train_shortened(e, args, **first)
    report = evaluate.evaluate_run(workdir, ["samples"])
    results[e.name] = {**figures, **{k.split("/")[1]: v for k, v in report.items() if k.startswith("samples/")}}
  print(f"{'model':<10}{'FID':>9}{'precision':>11}{'recall':>8}{'modes':>7}{'steps':>8}{'minutes':>9}{'samples/s':>11}")
  for name, r in results.items():
    print(f"{name:<10}{r['fid']:>9.2f}{r['precision']:>11.3f}{r['recall']:>8.3f}{r['modes_covered']:>7.0f}"
          f"{r['steps']:>8}{r['train_minutes']:>9.1f}{r['samples_per_s']:>11.0f}")
  if results:
    floor = next(iter(results.values()))
    print(f"{'floor':<10}{floor['fid_floor']:>9.2f}{floor['precision_floor']:>11.3f}{floor['recall_floor']:>8.3f}"
          "  (train images against test images)")
  print(json.dumps(results))


def main(argv: list[str]) -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--mode", choices=("throughput", "train", "samples"), required=True)
  parser.add_argument("--workdir", type=pathlib.Path, default=None, help="train, samples: runs go to WORKDIR/<name>")
  parser.add_argument("--only", nargs="+", choices=sorted({e.name for e in ENTRIES + OTHERS + SAMPLERS}),
                      default=None)
  parser.add_argument("--epochs", type=float, default=10,
                      help="train, samples: epochs of each model's own batch size")
  parser.add_argument("--nll_samples", type=int, default=5_000)
  parser.add_argument("--nll_images", type=int, default=None, help="train: the first N test images (None: all)")
  parser.add_argument("--steps", type=int, default=200, help="throughput: steps per round")
  parser.add_argument("--rounds", type=int, default=5)
  parser.add_argument("--mnist_dir", default=str(_DEFAULT_MNIST_DIR), help="the four MNIST IDX .gz files")
  parser.add_argument("--data_dir", default=None, help="TFDS data dir (default: $TFDS_DATA_DIR or TFDS's own)")
  args = parser.parse_args(argv)
  known = [e.name for e in {"throughput": ENTRIES + OTHERS, "train": ENTRIES, "samples": SAMPLERS}[args.mode]]
  if args.only and set(args.only) - set(known):
    parser.error(f"--mode {args.mode} has no {sorted(set(args.only) - set(known))}: choose among {known}")
  if args.mode == "throughput":
    throughput([e for e in ENTRIES + OTHERS if args.only is None or e.name in args.only], args)
  elif args.workdir is None:
    parser.error(f"--mode {args.mode} needs --workdir")
  elif args.mode == "train":
    reproduce([e for e in ENTRIES if args.only is None or e.name in args.only], args)
  else:
    default = [e.name for e in SAMPLERS if e.name != "rae_gp"]
    sample_quality([e for e in SAMPLERS if e.name in (args.only or default)], args)


if __name__ == "__main__":
  main(sys.argv[1:])
