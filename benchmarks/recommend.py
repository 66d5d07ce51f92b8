"""MovieLens 100K: aejax's recommenders beside the classical ones, each measured on the same splits in one run.

Explicit ratings, 5-fold cross-validation over the 100,000 ratings (`data.ratings.protocol=kfold`, the folds of
`split_seed` 0 shared by every model): I-AutoRec and U-AutoRec (experiments/autorec.py, trained by `aejax.train`
on each fold's 80,000 train ratings) beside the global, user and item means and scikit-surprise's SVD, SVD++ and
KNNBaseline at their defaults (fitted on the same train ratings, scored on the same held-out ones). RMSE and MAE
per model: mean ± standard deviation over the folds; the time to train (aejax: the whole `train_and_evaluate`,
compilation included; surprise: fit and predict).

Implicit feedback, strong generalisation (experiments/mult_vae.py, mult_dae.py; ratings >= 4, 20 % of the users
held out, split_seed 0): Mult-VAE and Mult-DAE over `--seeds` beside the popularity ranking and EASE (λ =
`recommend.ease_l2`); Recall@20, Recall@50 and NDCG@100 over the held-out users. The hyper-parameters in the
experiment files were chosen on another split (split_seed 1), not on these.

Training throughput: rows (items or users) per second of each aejax model's last logged steps on this CPU.

    pip install scikit-surprise
    python benchmarks/recommend.py [--manual_dir ../shared/data/ml-100k --folds 5 --seeds 0,1,2]
"""
import argparse
import json
import os
import pathlib
import statistics
import tempfile
import time

import numpy as np
import jax.numpy as jnp

from aejax import config as config_lib, train
from aejax.data import catalog, ratings
from aejax.variants.recommend import baselines, metrics

REPO = pathlib.Path(__file__).resolve().parents[1]


def _train(spec: str, manual_dir: str, **fields) -> tuple[dict, float, float]:
  """Trains `spec` with `fields` in a temporary folder: its summary, seconds and rows/s of its last logged steps."""
  c = config_lib.from_file(str(REPO / spec))
  c.data.manual_dir = manual_dir
  c.wandb.mode = "disabled"
  c.eval.suites = ()
  c.update_from_flattened_dict(fields)
  with tempfile.TemporaryDirectory(prefix="aejax-recommend-") as workdir:
    start = time.perf_counter()
    summary = train.train_and_evaluate(c, workdir)
    seconds = time.perf_counter() - start
    rows = [json.loads(line) for line in (pathlib.Path(workdir) / "metrics.jsonl").read_text().splitlines()]
  speeds = [r["train/samples_per_s"] for r in rows if "train/samples_per_s" in r][-5:]
  return summary, seconds, statistics.median(speeds)


def _spread(values: list[float]) -> str:
  return f"{statistics.mean(values):.4f} ± {statistics.stdev(values) if len(values) > 1 else 0.0:.4f}"


def explicit(manual_dir: str, folds: int) -> dict:
  """Each model's RMSE, MAE and seconds per fold."""
  dataset = catalog.get("movielens_100k")
  results: dict[str, dict[str, list[float]]] = {}

  def add(name: str, rmse: float, mae: float, seconds: float, rows_per_s: float = 0.0) -> None:
    entry = results.setdefault(name, {"rmse": [], "mae": [], "seconds": [], "rows_per_s": []})
    for key, value in (("rmse", rmse), ("mae", mae), ("seconds", seconds), ("rows_per_s", rows_per_s)):
      entry[key].append(value)

  triples = ratings.read("movielens_100k", manual_dir)
  for fold in range(folds):
    split = {"data.ratings.protocol": "kfold", "data.ratings.folds": folds, "data.ratings.fold": fold}
    for name, rows in (("I-AutoRec", "items"), ("U-AutoRec", "users")):
      summary, seconds, speed = _train("experiments/autorec.py", manual_dir, **split, **{"data.ratings.rows": rows})
      add(name, float(np.sqrt(summary["test/mse"])), summary["test/mae"], seconds, speed)
    r = config_lib.from_file(str(REPO / "experiments/autorec.py")).data.ratings
    r.update_from_flattened_dict({k.removeprefix("data.ratings."): v for k, v in split.items()})
    held = ratings.test_mask(len(triples.ratings), r)
    train_triples = (triples.users[~held], triples.items[~held], triples.ratings[~held].astype(np.float64))
    test_pairs, truth = (triples.users[held], triples.items[held]), triples.ratings[held].astype(np.float64)
    start = time.perf_counter()
    means = baselines.mean_predictions(train_triples, test_pairs, dataset.num_users, dataset.num_items)
    took = time.perf_counter() - start
    fitted = baselines.surprise_predictions(train_triples, test_pairs, dataset.rating_scale, seed=0)
    if fitted is None:
      raise SystemExit("benchmarks/recommend.py: scikit-surprise is not installed: pip install scikit-surprise")
    for name, (predicted, seconds) in {**{k: (v, took) for k, v in means.items()}, **fitted}.items():
      error = predicted - truth
      add(name, float(np.sqrt(np.mean(error**2))), float(np.mean(np.abs(error))), seconds)
    print(f"fold {fold}: " + ", ".join(f"{k} {v['rmse'][-1]:.4f}" for k, v in results.items()), flush=True)
  return results


def implicit(manual_dir: str, seeds: list[int]) -> dict:
  """Each model's Recall@20, Recall@50, NDCG@100 (per seed for aejax's) and the baselines'."""
  results: dict[str, dict[str, list[float]]] = {}
  names = [f"recall@{k}" for k in metrics.RECALL_AT] + [f"ndcg@{metrics.NDCG_AT}"]
  for label, spec in (("Mult-VAE", "experiments/mult_vae.py"), ("Mult-DAE", "experiments/mult_dae.py")):
    for seed in seeds:
      summary, seconds, speed = _train(spec, manual_dir, seed=seed)
      entry = results.setdefault(label, {**{n: [] for n in names}, "seconds": [], "rows_per_s": []})
      for n in names:
        entry[n].append(summary[f"test/{n}"])
      entry["seconds"].append(seconds)
      entry["rows_per_s"].append(speed)
  c = config_lib.from_file(str(REPO / "experiments/mult_vae.py"))
  c.data.manual_dir = manual_dir
  m = ratings.matrices(c.data)
  seen, train_x = (m.test_inputs > 0).astype(np.float32), (m.train > 0).astype(np.float32)
  for label, fit in (("popularity", lambda: np.broadcast_to(baselines.popularity(train_x), seen.shape)),
                     ("EASE", lambda: seen @ baselines.ease(train_x, c.recommend.ease_l2))):
    start = time.perf_counter()
    scores = fit()
    seconds = time.perf_counter() - start
    top = metrics.rank_top(jnp.asarray(scores, jnp.float32), seen, max(*metrics.RECALL_AT, metrics.NDCG_AT))
    scored = metrics.ranking(top, m.test_targets, metrics.RECALL_AT, metrics.NDCG_AT)
    results[label] = {**{n: [float(np.mean(scored[n]))] for n in names}, "seconds": [seconds]}
  return results


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--manual_dir", default=str(REPO.parent / "shared" / "data" / "ml-100k"))
  parser.add_argument("--folds", type=int, default=5)
  parser.add_argument("--seeds", default="0,1,2")
  parser.add_argument("--skip", choices=("explicit", "implicit"), default=None)
  args = parser.parse_args()
  print(f"load average before: {os.getloadavg()[0]:.2f}", flush=True)
  report = {}
  if args.skip != "explicit":
    report["explicit"] = explicit(args.manual_dir, args.folds)
    print(f"\nMovieLens 100K, explicit, {args.folds}-fold (split_seed 0):")
    print(f"{'model':14} {'RMSE':>17} {'MAE':>17} {'seconds/fold':>13} {'rows/s':>9}")
    for name, r in sorted(report["explicit"].items(), key=lambda kv: statistics.mean(kv[1]["rmse"])):
      speed = f"{statistics.median(r['rows_per_s']):9.0f}" if any(r["rows_per_s"]) else f"{'':9}"
      print(f"{name:14} {_spread(r['rmse']):>17} {_spread(r['mae']):>17} {statistics.mean(r['seconds']):13.1f} {speed}")
  if args.skip != "implicit":
    report["implicit"] = implicit(args.manual_dir, [int(s) for s in args.seeds.split(",")])
    print("\nMovieLens 100K, implicit, strong generalisation (split_seed 0; aejax's over seeds " + args.seeds + "):")
    print(f"{'model':12} {'Recall@20':>17} {'Recall@50':>17} {'NDCG@100':>17} {'seconds':>8} {'rows/s':>7}")
    for name, r in report["implicit"].items():
      speed = f"{statistics.median(r['rows_per_s']):7.0f}" if "rows_per_s" in r else f"{'':7}"
      print(f"{name:12} {_spread(r['recall@20']):>17} {_spread(r['recall@50']):>17} {_spread(r['ndcg@100']):>17} "
            f"{statistics.mean(r['seconds']):8.1f} {speed}")
  print(f"load average after: {os.getloadavg()[0]:.2f}")
  print(json.dumps(report))


if __name__ == "__main__":
  main()
