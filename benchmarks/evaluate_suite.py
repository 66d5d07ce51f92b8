"""Figures of the evaluation suite on full MNIST, each from real `train_and_evaluate` and `evaluate_run` calls.

- `anomaly`: `experiments/anomaly_ae.py` once per normal digit (`data.train_labels=(d,)`), the `anomaly` suite:
  a table of the AUROCs (reconstruction squared error and BCE as scores) per digit, and their mean.
- `defaults`: the spine's configs (`experiments/ae.py`, `dae.py`, `vae.py`, `beta_vae.py`, or those of
  `--configs`) as they are, then every suite that fits each run (the VAEs' NLL with `--nll_samples`, 5,000 by
  default).

Runs that already finished in WORKDIR are not retrained (training resumes from the last checkpoint).

  python benchmarks/evaluate_suite.py --workdir runs/evaluate_suite [--only anomaly|defaults] [--digits 0,1]
      [--configs ae,vae] [--nll_samples K]
"""
import argparse
import json
import pathlib
import sys
import time

from aejax import config as config_lib
from aejax import evaluate, train, writers

_REPO = pathlib.Path(__file__).resolve().parents[1]
_DEFAULT_MNIST_DIR = _REPO.parent / "shared" / "data" / "mnist"


def train_and_evaluate(spec: str, workdir: pathlib.Path, args: argparse.Namespace, suites: tuple[str, ...] | None,
                       **fields) -> tuple[dict, dict]:
  """Trains experiment file `spec` (fields overridden, W&B off, no suites at the end), then evaluates `suites`."""
  config = config_lib.from_file(str(_REPO / spec))
  config.data.manual_dir, config.data.data_dir, config.wandb.mode = args.mnist_dir, args.data_dir, "disabled"
  config.eval.suites = ()
  config.update_from_flattened_dict(fields)
  start = time.perf_counter()
  summary = train.train_and_evaluate(config, workdir)
  summary["train_seconds"] = time.perf_counter() - start
  start = time.perf_counter()
  report = evaluate.evaluate_run(workdir, suites, args.nll_samples)
  report["eval_seconds"] = time.perf_counter() - start
  return summary, report


def anomaly_table(args: argparse.Namespace) -> str:
  rows = ["| normal digit | AUROC (squared error) | AUROC (BCE) | train s | eval s |", "|---|---|---|---|---|"]
  aurocs = []
  for digit in args.digits:
    summary, report = train_and_evaluate("experiments/anomaly_ae.py", args.workdir / "anomaly_ae" / str(digit), args,
                                         ("anomaly",), **{"data.train_labels": (digit,)})
    aurocs.append((report["anomaly/auroc_squared_error"], report["anomaly/auroc_bce"]))
    rows.append(f"| {digit} | {aurocs[-1][0]:.4f} | {aurocs[-1][1]:.4f} | {summary['train_seconds']:.0f} | "
                f"{report['eval_seconds']:.0f} |")
    print(rows[-1], flush=True)
  means = [sum(column) / len(column) for column in zip(*aurocs)]
  rows.append(f"| mean | **{means[0]:.4f}** | **{means[1]:.4f}** | | |")
  return "\n".join(rows)


def default_reports(args: argparse.Namespace) -> str:
  reports = {}
  for name in args.configs:
    summary, report = train_and_evaluate(f"experiments/{name}.py", args.workdir / name, args, None)
    reports[name] = {**report, "train_seconds": summary["train_seconds"]}
    print(writers.format_report(f"{name}:", reports[name]), flush=True)
  return json.dumps(reports, indent=2)


def main(argv: list[str]) -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--workdir", type=pathlib.Path, required=True, help="runs go to WORKDIR/anomaly_ae/D etc.")
  parser.add_argument("--only", choices=("anomaly", "defaults"), default=None)
  parser.add_argument("--digits", type=lambda s: [int(d) for d in s.split(",")], default=list(range(10)),
                      help="normal digits of the anomaly table, comma-separated (default: all ten)")
  parser.add_argument("--configs", type=lambda s: s.split(","), default=["ae", "dae", "vae", "beta_vae"],
                      help="experiments/NAME.py files of the defaults table, comma-separated")
  parser.add_argument("--nll_samples", type=int, default=5_000, help="importance samples of the VAE's NLL estimate")
  parser.add_argument("--mnist_dir", default=str(_DEFAULT_MNIST_DIR), help="the four MNIST IDX .gz files")
  parser.add_argument("--data_dir", default=None, help="TFDS data dir (default: $TFDS_DATA_DIR or TFDS's own)")
  args = parser.parse_args(argv)
  if args.only in (None, "anomaly"):
    print(anomaly_table(args))
  if args.only in (None, "defaults"):
    print(default_reports(args))


if __name__ == "__main__":
  main(sys.argv[1:])
