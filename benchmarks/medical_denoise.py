"""Medical-image denoising: the blind patch denoiser beside non-local means, total variation, wavelets and BM3D, on
the same noisy held-out images, in one run.

Trains experiments/medical_dae.py (Gaussian noise, σ up to 0.2) and medical_dae.py:poisson (photon noise, 10 to 100
photons at a pixel of 1), each in <root>/<noise> (a rerun resumes or reuses it), then runs the medical_denoise
suite on each: the held-out retinal detail (microaneurysms, 102x102) and Shepp–Logan phantom (400x400), each level
of eval.noise_factors, PSNR and SSIM per method (BM3D where `pip install bm3d` has put it). Prints one table per
noise type: a row per image and level (and their mean), the best denoiser's PSNR marked '*'.

    python benchmarks/medical_denoise.py [--root runs/medical] [--steps N]
"""
import argparse
import json
import pathlib

from aejax import config as config_lib, evaluate, train

REPO = pathlib.Path(__file__).resolve().parents[1]
METHODS = ("noisy", "model", "nlm", "tv", "wavelet", "bm3d")


def run(noise: str, steps: int | None, root: pathlib.Path, data_dir: str | None) -> dict:
  """The medical_denoise suite's figures of the run of `noise` (trained first, unless it has finished)."""
  c = config_lib.from_file(f"{REPO}/experiments/medical_dae.py" + (":poisson" if noise == "poisson" else ""))
  c.num_steps, c.wandb.mode = steps or c.num_steps, "disabled"
  if data_dir:
    c.data.data_dir = data_dir
  train.train_and_evaluate(c, root / noise)
  return evaluate.evaluate_run(root / noise, ["medical_denoise"])


def table(noise: str, got: dict) -> None:
  images = sorted({k.split("/")[1] for k in got if k.count("/") == 3})
  levels = sorted({k.split("/")[2] for k in got if k.count("/") == 3}, key=float)
  methods = [m for m in METHODS if any(k.endswith(f"psnr_{m}") for k in got)]
  print(f"\n{noise}: PSNR (dB) / SSIM per image and level; * the best PSNR")
  print(f"{'image':<22}{'level':>7}" + "".join(f"{m:>16}" for m in methods))
  for image in [*images, "mean"]:
    for level in levels:
      prefix = f"medical_denoise/{level}/" if image == "mean" else f"medical_denoise/{image}/{level}/"
      psnr = {m: got[f"{prefix}psnr_{m}"] for m in methods}
      best = max((m for m in methods if m != "noisy"), key=psnr.get)
      cells = "".join(f"{psnr[m]:>9.2f}{'*' if m == best else ' '}/{got[f'{prefix}ssim_{m}']:.3f}" for m in methods)
      print(f"{image:<22}{level:>7}{cells}")


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--root", default="runs/medical")
  parser.add_argument("--steps", type=int, default=None, help="train steps (default: the config's num_steps)")
  parser.add_argument("--data_dir", default=None, help="TFDS data dir (default: TFDS's)")
  parser.add_argument("--noise", default="gaussian,poisson")
  args = parser.parse_args()
  results = {noise: run(noise, args.steps, pathlib.Path(args.root), args.data_dir) for noise in args.noise.split(",")}
  for noise, got in results.items():
    table(noise, got)
  print(json.dumps({noise: {k: v for k, v in got.items() if isinstance(v, float)} for noise, got in results.items()}))


if __name__ == "__main__":
  main()
