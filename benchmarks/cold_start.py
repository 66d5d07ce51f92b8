"""Seconds from launching `python -m aejax.main` to its first finished train step, cold and warm compilation cache.

Runs `--config`'s `:smoke` variant for one step (`--config.num_steps=1 --config.log_every=1`) 1 + `--warm_runs`
times (default 1 + 2), each in a fresh workdir and all with the same `--config.compilation_cache_dir`, which is
empty before the first run (cold) and filled by it for the others (warm); it prints each run and the median of
the warm ones, with the machine's load average (`os.getloadavg`) before and after, since other processes on the
machine slow every figure. The first step counts as finished at the
`time` of the first row of `<workdir>/metrics.jsonl` (written once that step's metrics are on the host);
the clock starts just before `subprocess.Popen`. The process time adds evaluation, pictures, the
checkpoint and exit. Only the compilation cache is cold: the dataset is prepared in the data dir before the
first run, and the OS file cache is not dropped.

With `--sweep`, run i is the config's i-th sweep member (`get_sweep()`, its overrides added to the command
as `launch.local` adds them): the start-up of a sweep's members, which share one compilation cache.

  python benchmarks/cold_start.py
  python benchmarks/cold_start.py --warm_runs 8
  python benchmarks/cold_start.py --config experiments/beta_vae.py --sweep
"""
import argparse
import json
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time

from aejax import config as config_lib
from aejax import sweep as sweep_lib
from aejax.data import datasets
from launch import common

_REPO = pathlib.Path(__file__).resolve().parents[1]
_DEFAULT_MNIST_DIR = _REPO.parent / "shared" / "data" / "mnist"


def prepare_data(config_path: pathlib.Path, manual_dir: str, data_dir: str | None) -> None:
  """Prepares the experiment's dataset in `data_dir` now, so that no timed run pays for it."""
  data = config_lib.from_file(f"{config_path}:smoke").data
  datasets.load_split(data.name, "test", data_dir=data_dir, manual_dir=manual_dir, download=data.download,
                      num_examples=1, resize=data.resize)


def time_run(config: str, workdir: pathlib.Path, cache_dir: pathlib.Path, manual_dir: str,
             data_dir: str | None, overrides: dict) -> dict[str, float]:
  """Runs one step of `config`:smoke with `overrides`; returns seconds to its first finished step and to exit."""
  command = [sys.executable, "-m", "aejax.main", f"--config={config}:smoke", f"--workdir={workdir}",
             "--config.log_every=1", "--config.num_steps=1", f"--config.data.manual_dir={manual_dir}",
             f"--config.compilation_cache_dir={cache_dir}", *(common.flag(k, v) for k, v in overrides.items())]
  if data_dir is not None:
    command.append(f"--config.data.data_dir={data_dir}")
  log = workdir.with_suffix(".log")
  with log.open("w") as out:
    start = time.time()
    returncode = subprocess.Popen(command, cwd=_REPO, stdout=out, stderr=subprocess.STDOUT).wait()
    end = time.time()
  if returncode != 0:
    sys.exit(f"cold_start: {' '.join(command)} failed ({returncode}):\n{log.read_text()[-2000:]}")
  with (workdir / "metrics.jsonl").open() as f:
    first_row = json.loads(f.readline())
  return {"first_step_s": first_row["time"] - start, "process_s": end - start}


def parse_args(argv: list[str]) -> argparse.Namespace:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--config", default="experiments/ae.py", help="experiment file, relative to the repo root")
  parser.add_argument("--mnist_dir", default=str(_DEFAULT_MNIST_DIR),
                      help="folder with the four IDX .gz files (config.data.manual_dir)")
  parser.add_argument("--data_dir", default=None,
                      help="TFDS data dir for config.data.data_dir (default: $TFDS_DATA_DIR or TFDS's own)")
  parser.add_argument("--warm_runs", type=int, default=2, help="runs after the cold one, with the cache it filled")
  parser.add_argument("--sweep", action="store_true", help="run the config's first 1 + warm_runs sweep members")
  return parser.parse_args(argv)


def main(argv: list[str]) -> None:
  args = parse_args(argv)
  # The runs start in the repo root: pass them absolute paths.
  args.mnist_dir = str(pathlib.Path(args.mnist_dir).resolve())
  args.data_dir = args.data_dir and str(pathlib.Path(args.data_dir).resolve())
  prepare_data(_REPO / args.config, args.mnist_dir, args.data_dir)
  caches = ["cold"] + ["warm"] * args.warm_runs
  members = list(sweep_lib.load(f"{_REPO / args.config}:smoke").values()) if args.sweep else [{}] * len(caches)
  if len(members) < len(caches):
    sys.exit(f"cold_start: {args.config}'s sweep has {len(members)} members; --sweep needs {len(caches)}")
  runs = []
  load_before = os.getloadavg()
  with tempfile.TemporaryDirectory(prefix="aejax-cold-start-") as tmp:
    cache_dir = pathlib.Path(tmp) / "jax_cache"
    cache_dir.mkdir()
    for i, (cache, overrides) in enumerate(zip(caches, members)):
      runs.append({"cache": cache, "member": sweep_lib.run_id(overrides),
                   **time_run(args.config, pathlib.Path(tmp) / f"run{i}", cache_dir, args.mnist_dir, args.data_dir,
                              overrides)})

  load_after = os.getloadavg()
  warm = [run for run in runs if run["cache"] == "warm"]
  median = {k: statistics.median(run[k] for run in warm) for k in ("first_step_s", "process_s")} if warm else {}

  print(f"{args.config}:smoke, one step; seconds from launch")
  print(f"{'run':<5}{'cache':<7}{'member':<16}{'first step':>12}{'process':>10}")
  for i, run in enumerate(runs):
    print(f"{i + 1:<5}{run['cache']:<7}{run['member']:<16}{run['first_step_s']:>12.2f}{run['process_s']:>10.2f}")
  if median:
    print(f"{'median of the warm runs':<28}{median['first_step_s']:>12.2f}{median['process_s']:>10.2f}")
  print(f"load average (1, 5, 15 min): {' '.join(f'{x:.2f}' for x in load_before)} before, "
        f"{' '.join(f'{x:.2f}' for x in load_after)} after")
  print(json.dumps({"config": args.config, "runs": runs, "warm_median": median, "load_before": load_before,
                    "load_after": load_after}))


if __name__ == "__main__":
  main(sys.argv[1:])
