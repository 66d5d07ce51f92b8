"""Mult-VAE (Liang et al. 2018) on MovieLens 100K as implicit feedback, strong generalisation: ratings >= 4 are the
interactions, 20 % of the users are held out and scored on 20 % of their interactions from the other 80 %.

Items -> 600 tanh -> a 200-dimensional Gaussian code -> 600 tanh -> a multinomial over the items; half the input
dropped in training; β annealed linearly to 0.2 (`beta`) over `kl_warmup_steps`. `experiments/mult_dae.py` is the
denoising autoencoder of the same paper. The `recommend` suite (Recall@20, Recall@50, NDCG@100 beside popularity
and EASE) runs after training; offline, `--config.data.manual_dir` names the folder of the GroupLens files.

    python -m aejax.main --config experiments/mult_vae.py --workdir runs/mult_vae
"""
from ml_collections import config_dict

from aejax import config as config_lib, sweep as sweep_lib
from aejax.variants.recommend import fields


def get_config(arg: str | None = None) -> config_dict.ConfigDict:
  c = fields.add(config_lib.base_config())
  c.variant = "mult_vae"
  c = fields.strong_generalization(c)
  c.recommend.widths = (600,)
  c.recommend.l2 = 0.0
  c.beta = 0.2  # β_max (Liang et al.'s anneal cap).
  c.kl_warmup_steps = 2_000
  c.learning_rate = 3e-4  # The rate and steps: the best of a small grid on another split (split_seed=1).
  c.num_steps = 2_000
  c.eval_every = c.checkpoint_every = 500
  return fields.ratings_smoke(c, arg)


def get_sweep() -> list[sweep_lib.Overrides]:
  """β_max × dropout × seed, 3 × 2 × 2 = 12 runs that can train as one vmapped bundle (all three are per-member
  values; on an accelerator the launcher bundles them itself, on a CPU when asked):

      python -m launch.local --config experiments/mult_vae.py --root runs/mult_vae_sweep --bundle_size 12
  """
  return sweep_lib.product(sweep_lib.sweep("beta", [0.1, 0.2, 0.4]), sweep_lib.sweep("recommend.dropout", [0.3, 0.5]),
                           sweep_lib.sweep("seed", [0, 1]))


def get_curves() -> list[sweep_lib.Curve]:
  """β_max against the held-out users' NDCG@100 and Recall@20 (the recommend suite's), beside EASE's, drawn at the
  sweep's end."""
  return [("beta", ["recommend/ndcg@100", "recommend/recall@20", "recommend/ease_ndcg@100"])]
