"""How long reading a prepared data set takes: both splits of each data set of aejax/data/catalog.py, at each size
it is prepared at, through `aejax.data.input_pipeline.load` (what every run does at start: read, then on the
device), and what the splits hold on the device and the reading process's peak memory.

Each data set is prepared first, once, in a fresh data dir (`--data_dir`, default a temporary folder), and that
time is printed as well; then both splits are read `--rounds` times (default 10) after one untimed read; medians
with min and max. Each data set is read in a process of its own, whose peak resident memory (JAX's import
included, and the preparation's where that process prepared it: give a `--data_dir` that holds it to leave that
out) is printed. Data sets prepared from IDX files need `--mnist_dir` / `--fashion_mnist_dir` (folders of the
four IDX .gz files; mnist defaults to ../shared/data/mnist beside the checkout); one without its folder is left
out. `--names` picks some (preparing dsprites renders 737,280 images). Nothing is downloaded.

  python benchmarks/dataset_load.py
"""
import argparse
import json
import multiprocessing
import pathlib
import resource
import statistics
import tempfile
import time
from concurrent import futures
from typing import Any

import jax

from aejax import config as config_lib
from aejax.data import catalog, input_pipeline

_REPO = pathlib.Path(__file__).resolve().parents[1]


def _load(name: str, root: str, manual_dir: str | None, resize: catalog.Size | None) -> tuple[int, int]:
  """Reads both splits onto the device; returns the number of examples and the bytes the splits hold there."""
  data = config_lib.base_config().data
  data.name, data.data_dir, data.manual_dir, data.download, data.resize = name, root, manual_dir, False, resize
  splits = jax.block_until_ready(input_pipeline.load(data))
  return sum(split.size for split in splits), sum(leaf.nbytes for leaf in jax.tree.leaves(splits))


def _measure(name: str, root: str, manual_dir: str | None, resize: catalog.Size | None,
             rounds: int) -> dict[str, Any]:
  """The first read (with the preparation where needed), `rounds` timed reads, the device bytes, the peak memory."""
  start = time.perf_counter()
  count, device_bytes = _load(name, root, manual_dir, resize)
  first = time.perf_counter() - start
  times = []
  for _ in range(rounds):
    start = time.perf_counter()
    _load(name, root, manual_dir, resize)
    times.append(time.perf_counter() - start)
  return {"examples": count, "first_s": round(first, 3), "read_ms": round(1e3 * statistics.median(times), 2),
          "read_ms_min": round(1e3 * min(times), 2), "read_ms_max": round(1e3 * max(times), 2),
          "device_mib": round(device_bytes / 2**20, 1),
          "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}  # Linux: KiB.


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
        with futures.ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as own_process:
          got = own_process.submit(_measure, name, root, manual_dir, resize, args.rounds).result()
        results.append({"dataset": name, "size": f"{size[0]}x{size[1]}", **got})
  print(f"{'dataset':<14} {'size':>6} {'examples':>9} {'first (s)':>10} {'device MiB':>10} {'peak MiB':>8}   "
        "read both splits (ms): median [min, max]")
  for r in results:
    print(f"{r['dataset']:<14} {r['size']:>6} {r['examples']:>9,} {r['first_s']:>10.2f} {r['device_mib']:>10.1f} "
          f"{r['peak_rss_mib']:>8}   {r['read_ms']:.2f} [{r['read_ms_min']:.2f}, {r['read_ms_max']:.2f}]")
  print("(first: the first read, with the preparation unless --data_dir holds the data set already; device MiB: both "
        "splits as a run holds them, labels and factors included; peak MiB: the reading process's peak resident "
        "memory, the preparation's included where it prepared the data set)")
  print(json.dumps(results))


if __name__ == "__main__":
  main()
