"""A dSprites β sweep at a shortened schedule, for a CPU: a member for each of `--betas` × `--seeds`, each trained
by `python -m aejax.main` for `--num_steps` steps and scored by the disentanglement suite on `--factor_samples`
points per metric, one after the other; then `aejax.curves` draws each metric against β (seeds' spread shaded)
into ROOT/curves_beta.png, and a table of every member prints: its metrics, reconstruction error and training
samples/s (the median of its logged windows, the first one, which compiles, left out).

A member already finished in ROOT is not trained again, so a stopped sweep resumes where it stopped.

  python benchmarks/dsprites_sweep.py --config experiments/dsprites_beta_vae.py --root runs/dsprites_cpu \
      --num_steps 1500 --factor_samples 1000 -- "--config.model.conv_features=(16,16,32,32)" \
      "--config.model.encoder_widths=(128,)" --config.learning_rate=5e-4
  python benchmarks/dsprites_sweep.py --config experiments/dsprites_beta_tcvae.py --root runs/dsprites_tc_cpu
"""
import argparse
import json
import pathlib
import statistics
import subprocess
import sys

from aejax.variants.variational import fields

_REPO = pathlib.Path(__file__).resolve().parents[1]
_METRICS = ("mig", "factor_vae_score", "beta_vae_score", "dci_disentanglement", "sap")


def member(args: argparse.Namespace, beta: float, seed: int) -> pathlib.Path:
  """Trains (or finds finished) the member of `beta` and `seed`; its workdir."""
  workdir = args.root / f"beta{beta:g}-seed{seed}"
  if (workdir / "eval.json").exists():
    return workdir
  overrides = [f"--config.beta={beta}", f"--config.seed={seed}", f"--config.num_steps={args.num_steps}",
               f"--config.eval_every={args.num_steps}", f"--config.checkpoint_every={args.num_steps}",
               f"--config.log_every={args.log_every}", f"--config.eval.factor_samples={args.factor_samples}",
               "--config.wandb.mode=disabled", *args.overrides]
  subprocess.run([sys.executable, "-m", "aejax.main", "--config", args.config, "--workdir", str(workdir),
                  *overrides], cwd=_REPO, check=True)
  return workdir


def row(workdir: pathlib.Path) -> dict[str, float]:
  """A finished member's figures: its config's β and seed, the suite's metrics, reconstruction, samples/s."""
  config = json.loads((workdir / "config.json").read_text())
  evaluated = json.loads((workdir / "eval.json").read_text())
  summary = json.loads((workdir / "summary.json").read_text())
  rates = [r["train/samples_per_s"] for r in map(json.loads, (workdir / "metrics.jsonl").read_text().splitlines())
           if "train/samples_per_s" in r][1:]
  return {"beta": config["beta"], "seed": config["seed"],
          **{m: evaluated[f"disentanglement/{m}"] for m in _METRICS},
          "recon_error": summary["test/recon_error"], "samples_per_s": statistics.median(rates) if rates else 0.0}


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--config", default="experiments/dsprites_beta_vae.py")
  parser.add_argument("--root", type=pathlib.Path, required=True)
  parser.add_argument("--betas", default="1,4,16")
  parser.add_argument("--seeds", default="0,1,2")
  parser.add_argument("--num_steps", type=int, default=3_000)
  parser.add_argument("--log_every", type=int, default=250)
  parser.add_argument("--factor_samples", type=int, default=2_000)
  parser.add_argument("overrides", nargs="*", help="more --config.FIELD=VALUE for every member (after --)")
  args = parser.parse_args()
  args.root = args.root.absolute()
  workdirs = [member(args, float(b), int(s)) for b in args.betas.split(",") for s in args.seeds.split(",")]
  subprocess.run([sys.executable, "-m", "aejax.curves", "--root", str(args.root), "--x", "beta",
                  "--y", ",".join(fields.DSPRITES_CURVES), "--wandb_mode", "disabled"], cwd=_REPO, check=True)
  rows = [row(w) for w in workdirs]
  print(" ".join(f"{k:>19}" for k in rows[0]))
  for r in rows:
    print(" ".join(f"{v:>19.4g}" for v in r.values()))
  print(json.dumps(rows))


if __name__ == "__main__":
  main()
