"""Mult-DAE (Liang et al. 2018) on MovieLens 100K as implicit feedback, strong generalisation (as
experiments/mult_vae.py): items -> a 200-unit tanh code -> a multinomial over the items, half the input dropped in
training, L2 on the weights.

    python -m aejax.main --config experiments/mult_dae.py --workdir runs/mult_dae
"""
from ml_collections import config_dict

from aejax import config as config_lib, sweep as sweep_lib
from aejax.variants.recommend import fields


def get_config(arg: str | None = None) -> config_dict.ConfigDict:
  c = fields.add(config_lib.base_config())
  c.variant = "mult_dae"
  c = fields.strong_generalization(c)
  c.recommend.widths = ()  # Liang et al.'s DAE: [items, 200, items].
  c.recommend.l2 = 0.01  # Liang et al.'s is about 4e-5 here (on ML-20M); 0.01 matched EASE on split_seed 1.
  return fields.ratings_smoke(c, arg)


def get_sweep() -> list[sweep_lib.Overrides]:
  """λ × dropout × seed, 3 × 2 × 2 = 12 runs that can train as one vmapped bundle (as mult_vae.py's):

      python -m launch.local --config experiments/mult_dae.py --root runs/mult_dae_sweep --bundle_size 12
  """
  return sweep_lib.product(sweep_lib.sweep("recommend.l2", [0.001, 0.01, 0.1]),
                           sweep_lib.sweep("recommend.dropout", [0.3, 0.5]), sweep_lib.sweep("seed", [0, 1]))


def get_curves() -> list[sweep_lib.Curve]:
  """λ against the held-out users' NDCG@100 and Recall@20, beside EASE's, drawn at the sweep's end."""
  return [("recommend.l2", ["recommend/ndcg@100", "recommend/recall@20", "recommend/ease_ndcg@100"])]
