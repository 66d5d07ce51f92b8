"""I-AutoRec (Sedhain et al. 2015) on MovieLens 100K's explicit ratings, 90/10 random hold-out: each item's ratings
by the 943 users, 500 sigmoid hidden units, squared error on the observed ratings only plus L2 on the weights.

`--config.data.ratings.rows=users` trains U-AutoRec; `--config.data.ratings.protocol=kfold
--config.data.ratings.fold=K` holds out fold K of 5 (the folds every model of `benchmarks/recommend.py` shares).
Offline, `--config.data.manual_dir` names the folder of the GroupLens files (u.data); without it TFDS's
`movielens/100k-ratings` builder downloads them. The `recommend` suite (RMSE and MAE beside the means and, where
installed, scikit-surprise's SVD, SVD++ and KNNBaseline) runs after training.

    python -m aejax.main --config experiments/autorec.py --workdir runs/autorec
"""
from ml_collections import config_dict

from aejax import config as config_lib, sweep as sweep_lib
from aejax.variants.recommend import fields


def get_config(arg: str | None = None) -> config_dict.ConfigDict:
  c = fields.add(config_lib.base_config())
  c.variant = "autorec"
  c.data.name = "movielens_100k"
  c.recommend.hidden = 500
  c.recommend.l2 = 0.2  # λ and the rate: the best of a small grid on another split (data.ratings.split_seed=1).
  c.learning_rate = 3e-4
  c.batch_size = 64
  c.num_steps = 3_000
  c.log_every = 100
  c.eval_every = c.checkpoint_every = 1_000
  c.eval_batch_size = 512
  c.eval.suites = ("recommend",)
  c.wandb.tags = ("recommend", "autorec")
  return fields.ratings_smoke(c, arg)


def get_sweep() -> list[sweep_lib.Overrides]:
  """Hidden units × λ × seed, 2 × 3 × 2 = 12 runs; the 6 of each hidden size can train as one vmapped bundle (λ and
  the seed are per-member values; on an accelerator the launcher bundles them itself, on a CPU when asked):

      python -m launch.local --config experiments/autorec.py --root runs/autorec_sweep --bundle_size 6
  """
  return sweep_lib.product(sweep_lib.sweep("recommend.hidden", [300, 500]),
                           sweep_lib.sweep("recommend.l2", [0.1, 0.2, 0.4]), sweep_lib.sweep("seed", [0, 1]))


def get_curves() -> list[sweep_lib.Curve]:
  """λ against the held-out ratings' RMSE and MAE (the recommend suite's), drawn at the sweep's end."""
  return [("recommend.l2", ["recommend/rmse", "recommend/mae"])]
