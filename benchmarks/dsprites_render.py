"""How fast aejax renders dSprites (`aejax.data.dsprites`), in images/s on this machine:
- the whole grid, 737,280 images, as preparing the data set renders it (`tfds_builders._dsprites_rendered`: blocks
  of 32,768 consecutive images, each packed 8 pixels a byte);
- random subsets of `--subset` images (default 10,000) in one `render` call, as a metric draws images for chosen
  factors (most of the 720 shape, scale and orientation drawings are then needed at once);
- random batches of `--batch` images (default 64), `--subset` images in all, given `drawings()` made once.
Each is timed `--rounds` times (default 5) after one untimed run; medians with min and max.

  python benchmarks/dsprites_render.py
"""
import argparse
import json
import statistics
import time
from collections.abc import Callable

import numpy as np

from aejax.data import dsprites, tfds_builders


def _rates(run: Callable[[int], int], rounds: int) -> dict[str, float]:
  """Images/s of `run(round)` (which returns how many it rendered): median, min and max over `rounds`."""
  run(-1)
  rates = []
  for r in range(rounds):
    start = time.perf_counter()
    count = run(r)
    rates.append(count / (time.perf_counter() - start))
  return {"median": round(statistics.median(rates)), "min": round(min(rates)), "max": round(max(rates))}


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--subset", type=int, default=10_000)
  parser.add_argument("--batch", type=int, default=64)
  parser.add_argument("--rounds", type=int, default=5)
  args = parser.parse_args()

  everything = np.arange(dsprites.NUM_IMAGES)
  # pylint: disable-next=protected-access  (what preparing runs)
  whole = _rates(lambda r: len(tfds_builders._dsprites_rendered(everything)[0]), args.rounds)

  def subset(r: int) -> int:
    chosen = np.random.default_rng(r + 1).choice(dsprites.NUM_IMAGES, args.subset, replace=False)
    return len(dsprites.render(dsprites.to_factors(chosen)))

  random = _rates(subset, args.rounds)
  all_drawings = dsprites.drawings()

  def batches(r: int) -> int:
    rng = np.random.default_rng(r + 1)
    for _ in range(args.subset // args.batch):
      dsprites.render(dsprites.to_factors(rng.integers(0, dsprites.NUM_IMAGES, args.batch)), all_drawings)
    return args.subset // args.batch * args.batch

  batched = _rates(batches, args.rounds)
  results = {"whole_grid_images_per_s": whole, "random_subset_images_per_s": random,
             "batches_with_drawings_images_per_s": batched, "subset": args.subset, "batch": args.batch}
  print(f"whole grid ({dsprites.NUM_IMAGES:,} images, packed): {whole['median']:,} images/s "
        f"[{whole['min']:,}, {whole['max']:,}]")
  print(f"random subsets of {args.subset:,}: {random['median']:,} images/s [{random['min']:,}, {random['max']:,}]")
  print(f"random batches of {args.batch}, drawings made once: {batched['median']:,} images/s "
        f"[{batched['min']:,}, {batched['max']:,}]")
  print(json.dumps(results))


if __name__ == "__main__":
  main()
