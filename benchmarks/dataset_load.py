"""How long reading a prepared data set takes: both splits of each data set of aejax/data/catalog.py, at each size
it is prepared at, through `aejax.data.datasets.load_split` (what every run does at start).

Each data set is prepared first, once, in a fresh data dir (`--data_dir`, default a temporary folder), and that
time is printed as well; then both splits are read `--rounds` times (default 10) after one untimed read; medians
with min and max. Data sets prepared from IDX files need `--mnist_dir` / `--fashion_mnist_dir` (folders of the
four IDX .gz files; mnist defaults to ../shared/data/mnist beside the checkout); one without its folder is left
out. `--names` picks some (preparing dsprites renders 737,280 images). Nothing is downloaded.

  python benchmarks/dataset_load.py
"""
import argparse
import json
import pathlib
import statistics
import tempfile
import time

from aejax.data import catalog, datasets

_REPO = pathlib.Path(__file__).resolve().parents[1]


def _load(name: str, root: str, manual_dir: str | None, resize: catalog.Size | None) -> int:
  """Reads both splits; returns the number of examples."""
  return sum(len(datasets.load_split(name, split, data_dir=root, manual_dir=manual_dir, download=False,
                                     resize=resize)[1]) for split in ("train", "test"))


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--data_dir", default=None)
  parser.add_argument("--mnist_dir", default=str(_REPO.parent / "shared" / "data" / "mnist"))
  parser.add_argument("--fashion_mnist_dir", default=None)
  parser.add_argument("--rounds", type=int, default=10)
  parser.add_argument("--names", nargs="*", default=catalog.image_names(), choices=catalog.image_names())
  args = parser.parse_args()

  manual_dirs = {"mnist": args.mnist_dir, "fashion_mnist": args.fashion_mnist_dir}
  results = []
  with tempfile.TemporaryDirectory() as scratch:
    root = args.data_dir or scratch
    for name in args.names:
      dataset = catalog.get(name)
      manual_dir = manual_dirs.get(name)
      if dataset.source == catalog.IDX and not (manual_dir and pathlib.Path(manual_dir).is_dir()):
        continue
      for size in dataset.sizes or (dataset.image_shape[:2],):
        resize = None if size == dataset.image_shape[:2] else size
        start = time.perf_counter()
        count = _load(name, root, manual_dir, resize)
        first = time.perf_counter() - start
        times = []
        for _ in range(args.rounds):
          start = time.perf_counter()
          _load(name, root, manual_dir, resize)
          times.append(time.perf_counter() - start)
        results.append({"dataset": name, "size": f"{size[0]}x{size[1]}", "examples": count,
                        "first_s": round(first, 3), "read_ms": round(1e3 * statistics.median(times), 2),
                        "read_ms_min": round(1e3 * min(times), 2), "read_ms_max": round(1e3 * max(times), 2)})
  print(f"{'dataset':<14} {'size':>6} {'examples':>9} {'first (s)':>10}   read both splits (ms): median [min, max]")
  for r in results:
    print(f"{r['dataset']:<14} {r['size']:>6} {r['examples']:>9,} {r['first_s']:>10.2f}   "
          f"{r['read_ms']:.2f} [{r['read_ms_min']:.2f}, {r['read_ms_max']:.2f}]")
  print("(first: the first read, with the preparation unless --data_dir holds the data set already)")
  print(json.dumps(results))


if __name__ == "__main__":
  main()
