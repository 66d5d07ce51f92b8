"""Rate–distortion of the compressive autoencoder beside JPEG and WebP, on the same test images, in one run.

Trains experiments/compressive_ae.py (MNIST) or compressive_ae_photos.py (64x64 patches of scikit-image's photos;
`--data photos`) once per λ, each run in <root>/lmbda_<λ> (a rerun resumes or reuses it), then runs the
compression suite on each: the test images coded into real range-coded streams and decoded (checked equal to the
model's reconstruction), and Pillow's PNG, JPEG and WebP at their qualities on the same images. Prints, per λ: the
streams' bits per pixel (header included) and the likelihoods' estimate, the gaps, PSNR and SSIM, and the bits
JPEG (whole files, and without their tables) and WebP spend at the same PSNR, interpolated along their curves;
draws every point and the baselines' curves in one plane (--figure).

    python benchmarks/rate_distortion.py --data mnist --steps 3000 --figure docs/figures/compression_mnist.png
    python benchmarks/rate_distortion.py --data photos --steps 3000 --figure docs/figures/compression_photos.png
"""
import argparse
import json
import pathlib

from aejax import config as config_lib, evaluate, train
from aejax.variants.compression import suite

REPO = pathlib.Path(__file__).resolve().parents[1]
SPECS = {"mnist": "experiments/compressive_ae.py", "photos": "experiments/compressive_ae_photos.py"}
LAMBDAS = {"mnist": "0.001,0.003,0.01,0.03", "photos": "0.0001,0.0003,0.001,0.003"}


def run(data: str, lmbda: float, steps: int, root: pathlib.Path, manual_dir: str) -> dict:
  """The compression suite's figures of the run of λ (trained first, unless it has finished)."""
  c = config_lib.from_file(str(REPO / SPECS[data]))
  c.compress.lmbda, c.num_steps, c.wandb.mode = lmbda, steps, "disabled"
  c.eval_every = c.checkpoint_every = min(steps, 1_000)
  if data == "mnist":
    c.data.manual_dir = manual_dir
  workdir = root / f"lmbda_{lmbda:g}"
  train.train_and_evaluate(c, workdir)
  return evaluate.evaluate_run(workdir, ["compression"])


def plane(results: dict[float, dict], config_spec: str, path: pathlib.Path, title: str) -> None:
  """Every λ's point and the baselines' curves (from the first run: the same images for all) in one plane."""
  c = config_lib.from_file(str(REPO / config_spec))
  out = {k.removeprefix("compression/"): v for k, v in next(iter(results.values())).items()}
  points = [(r["compression/bpp"], r["compression/psnr"]) for r in results.values()]
  figure = suite.draw_plane(out, points, tuple(c.compress.jpeg_qualities), tuple(c.compress.webp_qualities), title)
  path.parent.mkdir(parents=True, exist_ok=True)
  figure.savefig(path)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--data", choices=sorted(SPECS), default="mnist")
  parser.add_argument("--lambdas", default=None, help="comma-separated λ (default: per data set)")
  parser.add_argument("--steps", type=int, default=3_000)
  parser.add_argument("--root", default=None, help="runs' folder (default: runs/compression_<data>)")
  parser.add_argument("--manual_dir", default=str(REPO.parent / "shared" / "data" / "mnist"))
  parser.add_argument("--figure", default=None, help="where to save the rate–distortion plane (PNG)")
  args = parser.parse_args()
  root = pathlib.Path(args.root or f"runs/compression_{args.data}")
  lambdas = [float(v) for v in (args.lambdas or LAMBDAS[args.data]).split(",")]
  results = {lmbda: run(args.data, lmbda, args.steps, root, args.manual_dir) for lmbda in lambdas}
  print(f"{'λ':>8} {'bpp':>7} {'est.':>7} {'gap':>7} {'gap 1':>7} {'PSNR':>6} {'SSIM':>6} {'JPEG':>7} "
        f"{'JPEG-t':>7} {'WebP':>7} {'equal':>5}")
  for lmbda, r in results.items():
    g = {k.removeprefix("compression/"): v for k, v in r.items()}
    print(f"{lmbda:8g} {g['bpp']:7.3f} {g['bpp_estimated']:7.3f} {g['gap_payload']:7.2%} {g['gap_one_stream']:7.3%} "
          f"{g['psnr']:6.2f} {g['ssim']:6.3f} {g['jpeg_bpp_at_psnr']:7.3f} {g['jpeg_no_tables_bpp_at_psnr']:7.3f} "
          f"{g['webp_bpp_at_psnr']:7.3f} {g['decoded_equal']:5.2f}")
  print("bpp: the streams' (11-byte header included); est.: the likelihoods'; gap: payload / estimate - 1, one stream "
        "per image; gap 1: all codes in one stream; JPEG, JPEG-t (no tables), WebP: their bpp at the same PSNR.")
  if args.figure:
    plane(results, SPECS[args.data], pathlib.Path(args.figure), f"{args.data}: rate–distortion, test split")
  print(json.dumps({"data": args.data, "steps": args.steps,
                    "results": {str(k): {n: v for n, v in run_metrics.items() if isinstance(v, float)}
                                for k, run_metrics in results.items()}}, default=float))


if __name__ == "__main__":
  main()
