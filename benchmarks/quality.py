"""Quality figures on full MNIST, each from a real `train_and_evaluate` run of a default config.

- `ae`: `experiments/ae.py` with `latent_dim` 30: test squared error per image (summed over the 784
  pixels of [0, 1] images), beside PCA with the same number of components fitted on the train split.
  Hinton & Salakhutdinov (2006) report 3.00 for their 30-d deep autoencoder and 13.87 for PCA-30.
- `vae`: `experiments/vae.py` (β = 1, 784-500-20, Bernoulli decoder, static binarisation) trained for
  10 epochs: test negative ELBO in nats per image (the flax VAE example reports about 104).

  python benchmarks/quality.py --workdir runs/quality [--only ae|vae]
"""
import argparse
import json
import pathlib
import sys
import time

import numpy as np

from aejax import config as config_lib
from aejax import train
from aejax.data import datasets

_REPO = pathlib.Path(__file__).resolve().parents[1]
_DEFAULT_MNIST_DIR = _REPO.parent / "shared" / "data" / "mnist"


def pca_test_error(train_images: np.ndarray, test_images: np.ndarray, components: int) -> float:
  """Mean over test images of the squared error (summed over pixels) of the rank-`components` PCA reconstruction."""
  x = train_images.reshape(len(train_images), -1).astype(np.float64) / 255.0
  y = test_images.reshape(len(test_images), -1).astype(np.float64) / 255.0
  mean = x.mean(axis=0)
  _, vectors = np.linalg.eigh(np.cov(x - mean, rowvar=False))
  basis = vectors[:, -components:]  # eigh sorts eigenvalues in ascending order.
  reconstruction = (y - mean) @ basis @ basis.T + mean
  return float(np.mean(np.sum((reconstruction - y) ** 2, axis=1)))


def run_experiment(spec: str, workdir: pathlib.Path, args: argparse.Namespace, **fields) -> tuple[dict, float]:
  """Trains experiment file `spec` (fields overridden, W&B off) in `workdir`; returns its summary and seconds."""
  config = config_lib.from_file(str(_REPO / spec))
  config.data.manual_dir, config.data.data_dir, config.wandb.mode = args.mnist_dir, args.data_dir, "disabled"
  config.update(fields)
  start = time.perf_counter()
  summary = train.train_and_evaluate(config, workdir)
  return summary, time.perf_counter() - start


def ae_figures(args: argparse.Namespace) -> dict:
  summary, seconds = run_experiment("experiments/ae.py", args.workdir / "ae_latent30", args, latent_dim=30)
  train_images, _ = datasets.load_split("mnist", "train", data_dir=args.data_dir, manual_dir=args.mnist_dir)
  test_images, _ = datasets.load_split("mnist", "test", data_dir=args.data_dir, manual_dir=args.mnist_dir)
  return {"ae_latent30_test_squared_error": summary["test/recon_error"],
          "pca30_test_squared_error": pca_test_error(train_images, test_images, 30),
          "ae_steps": summary["step"], "ae_train_seconds": seconds}


def vae_figures(args: argparse.Namespace) -> dict:
  ten_epochs = 10 * (60_000 // 128)
  summary, seconds = run_experiment("experiments/vae.py", args.workdir / "vae_10_epochs", args, num_steps=ten_epochs,
                          eval_every=ten_epochs, checkpoint_every=ten_epochs)
  return {"vae_10_epochs_test_neg_elbo": summary["test/neg_elbo"], "vae_test_kl": summary["test/kl"],
          "vae_steps": summary["step"], "vae_train_seconds": seconds}


def main(argv: list[str]) -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--workdir", type=pathlib.Path, required=True, help="runs go to WORKDIR/ae_latent30 etc.")
  parser.add_argument("--only", choices=("ae", "vae"), default=None)
  parser.add_argument("--mnist_dir", default=str(_DEFAULT_MNIST_DIR), help="the four MNIST IDX .gz files")
  parser.add_argument("--data_dir", default=None, help="TFDS data dir (default: $TFDS_DATA_DIR or TFDS's own)")
  args = parser.parse_args(argv)
  figures = {}
  if args.only in (None, "ae"):
    figures.update(ae_figures(args))
  if args.only in (None, "vae"):
    figures.update(vae_figures(args))
  for name, value in figures.items():
    print(f"{name:<36} {value:.2f}" if isinstance(value, float) else f"{name:<36} {value}")
  print(json.dumps(figures))


if __name__ == "__main__":
  main(sys.argv[1:])
