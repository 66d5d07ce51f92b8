"""The recommendation family's config sections, their defaults and checks: `config.data.ratings` (how a ratings data
set is split: `aejax.data.ratings`) and `config.recommend` (the models' own fields and the suite's baselines).

Light on purpose (no JAX): experiment files and the launchers import it. The shared fields keep their meaning:
`latent_dim` is the code (Mult-VAE/DAE's 200), `beta` Mult-VAE's β_max, reached over `kl_warmup_steps` (Liang et
al.'s annealing: β grows linearly from 0 and stays at β_max), `learning_rate`, `batch_size` (rows a step).
"""
from ml_collections import config_dict

from aejax.data import catalog, ratings
from aejax.errors import require

EXPLICIT = ("autorec",)  # Variants of explicit ratings (RMSE); the others rank items of implicit feedback.


def add(c: config_dict.ConfigDict) -> config_dict.ConfigDict:
  """`c` with the family's sections added, at their defaults."""
  r = c.data.ratings = config_dict.ConfigDict()
  r.protocol = "holdout"  # 'holdout', 'kfold' (explicit ratings) or 'strong' (implicit feedback, held-out users).
  r.rows = "items"  # Explicit: a row per item (I-AutoRec) or per user (U-AutoRec); 'strong' has a row per user.
  r.test_fraction = 0.1  # 'holdout': the share of the ratings held out.
  r.folds = 5  # 'kfold': the number of folds, and the one held out (0..folds-1).
  r.fold = 0
  r.split_seed = 0  # Draws the split: the same for every model compared, whatever config.seed.
  r.threshold = 4.0  # 'strong': ratings at or above it are the interactions (positives).
  r.heldout_fraction = 0.2  # 'strong': the share of the users held out for test.
  # 'strong': the share of the users held out for validation (none by default), drawn after the test users: the
  # test users stay the same, the train users are fewer.
  r.validation_fraction = 0.0
  r.score = "test"  # 'strong': which held-out users the run scores, 'test' or 'validation' (to choose settings).
  r.fold_in = 0.8  # 'strong': the share of a held-out user's interactions given as input; the rest are scored.
  r.min_interactions = 5  # 'strong': users with fewer interactions are dropped (Liang et al.'s 5).
  s = c.recommend = config_dict.ConfigDict()
  s.hidden = 500  # AutoRec's hidden units (sigmoid; the output layer is linear).
  # λ of an L2 cost λ/2 Σ‖W‖² on the weight matrices added to the loss's mean over a batch's rows: AutoRec's
  # regulariser (its paper's λ weighs the sum over the N train rows: N times this) and Mult-DAE's (Liang et al.'s
  # notebook's 0.01 / batch size, doubled, is about 4e-5 in these units).
  s.l2 = 0.0
  s.widths = (600,)  # Mult-VAE/DAE's hidden layers (tanh) between the items and the code; the decoder mirrors them.
  s.dropout = 0.5  # Mult-VAE/DAE: the share of the input dropped in training (the rest scaled up).
  # The recommend suite's EASE baseline: λ of its closed form (Steck 2019); 200 was the best of 50..1000 on
  # MovieLens 100K's strong-generalisation split of split_seed=1 (Steck used 500 on the larger ML-20M).
  s.ease_l2 = 200.0
  # The recommend suite also scores scikit-surprise's SVD, SVD++ and KNNBaseline on explicit ratings where that
  # package is installed (`pip install scikit-surprise`); False skips them (SVD++ takes minutes on 100K).
  s.surprise = True
  return c


def validate(c: config_dict.ConfigDict) -> None:
  """Checks the family's sections against the run's variant and data set; a `ConfigError` on the first bad field."""
  require(catalog.is_ratings(c.data.name), "config.data.name", c.data.name,
          f"{c.variant} learns from ratings: use one of "
          f"{', '.join(n for n in catalog.names() if catalog.is_ratings(n))}, e.g. --config.data.name=movielens_100k")
  r, s = c.data.ratings, c.recommend
  require(r.protocol in ratings.PROTOCOLS, "config.data.ratings.protocol", r.protocol,
          f"use one of {', '.join(ratings.PROTOCOLS)}")
  if c.variant in EXPLICIT:
    require(r.protocol != "strong", "config.data.ratings.protocol", r.protocol,
            f"{c.variant} predicts explicit ratings: use holdout or kfold ('strong' is for mult_vae and mult_dae)")
  else:
    require(r.protocol == "strong", "config.data.ratings.protocol", r.protocol,
            f"{c.variant} ranks items of implicit feedback over held-out users: use strong")
  require(r.rows in ratings.ROWS, "config.data.ratings.rows", r.rows, f"use one of {', '.join(ratings.ROWS)}")
  require(0 < r.test_fraction < 1, "config.data.ratings.test_fraction", r.test_fraction,
          "use a share in (0, 1), e.g. 0.1")
  require(isinstance(r.folds, int) and r.folds >= 2, "config.data.ratings.folds", r.folds, "use 2 or more, e.g. 5")
  require(isinstance(r.fold, int) and 0 <= r.fold < r.folds, "config.data.ratings.fold", r.fold,
          f"use a fold index in 0..{r.folds - 1} (folds={r.folds})")
  low, high = catalog.get(c.data.name).rating_scale
  require(low < r.threshold <= high, "config.data.ratings.threshold", r.threshold,
          f"{c.data.name}'s ratings run {low:g}..{high:g}: use a threshold above {low:g} and at most {high:g}, e.g. 4")
  require(0 < r.heldout_fraction < 1, "config.data.ratings.heldout_fraction", r.heldout_fraction,
          "use a share of the users in (0, 1), e.g. 0.2")
  require(0 <= r.validation_fraction < 1 - r.heldout_fraction, "config.data.ratings.validation_fraction",
          r.validation_fraction, f"use 0 (none) or a share of the users below 1 - heldout_fraction = "
          f"{1 - r.heldout_fraction:g}, e.g. 0.2")
  require(r.score in ("test", "validation"), "config.data.ratings.score", r.score, "use test or validation")
  require(r.score == "test" or r.validation_fraction > 0, "config.data.ratings.score", r.score,
          "there are no validation users: set --config.data.ratings.validation_fraction, e.g. 0.2")
  require(0 < r.fold_in < 1, "config.data.ratings.fold_in", r.fold_in, "use a share in (0, 1), e.g. 0.8")
  require(isinstance(r.min_interactions, int) and r.min_interactions >= 2, "config.data.ratings.min_interactions",
          r.min_interactions, "a held-out user needs one interaction to fold in and one to score: use 2 or more, "
          "e.g. 5")
  require(s.hidden > 0, "config.recommend.hidden", s.hidden, "use a positive number of units, e.g. 500")
  require(s.l2 >= 0, "config.recommend.l2", s.l2, "use 0 (off) or a positive weight, e.g. 1")
  require(all(isinstance(w, int) and w > 0 for w in s.widths), "config.recommend.widths", tuple(s.widths),
          "use positive layer widths, e.g. '(600,)', or () for none")
  require(0 <= s.dropout < 1, "config.recommend.dropout", s.dropout, "use a share in [0, 1), e.g. 0.5")
  require(s.ease_l2 > 0, "config.recommend.ease_l2", s.ease_l2, "use a positive weight, e.g. 500")
  for field, value, unset in (("binarize", c.data.binarize, "none"), ("train_labels", tuple(c.data.train_labels), ()),
                              ("resize", c.data.resize, None), ("num_train", c.data.num_train, None),
                              ("num_test", c.data.num_test, None)):
    require(value == unset, f"config.data.{field}", value, f"a ratings data set has no images or classes, and "
            f"config.data.ratings sets its split: leave it {unset!r}")


def row_width(c: config_dict.ConfigDict) -> int:
  """The length of a row of the ratings matrix: the users (a row per item) or the items (a row per user; 'strong'
  keeps only those the train users rated, so this bounds it)."""
  dataset = catalog.get(c.data.name)
  by_item = c.data.ratings.rows == "items" and c.data.ratings.protocol != "strong"
  return dataset.num_users if by_item else dataset.num_items


def dense_layers(c: config_dict.ConfigDict) -> tuple[int, ...]:
  """The widths of the encoder's layers, from a row to the code (the decoder mirrors them)."""
  if c.variant in EXPLICIT:
    return row_width(c), c.recommend.hidden
  return row_width(c), *c.recommend.widths, c.latent_dim


def strong_generalization(c: config_dict.ConfigDict) -> config_dict.ConfigDict:
  """`c` set to Liang et al.'s protocol on MovieLens 100K, as experiments/mult_vae.py and mult_dae.py share it:
  implicit feedback (ratings >= 4) over held-out users, a 200-unit code, half the input dropped in training, Adam
  at 1e-3, the recommend suite after training."""
  c.data.name = "movielens_100k"
  c.data.ratings.protocol = "strong"
  c.latent_dim = 200
  c.recommend.dropout = 0.5
  c.learning_rate = 1e-3
  c.batch_size = 64
  c.num_steps = 4_000
  c.log_every = 200
  c.eval_every = c.checkpoint_every = 1_000
  c.eval_batch_size = 512
  c.eval.suites = ("recommend",)
  c.wandb.tags = ("recommend", c.variant)
  return c


def ratings_smoke(c: config_dict.ConfigDict, arg: str | None) -> config_dict.ConfigDict:
  """`config_lib.finalize` for the family: a ratings split is set by data.ratings (num_train and num_test stay
  None), and ':smoke' also shrinks the networks and leaves out the slow baselines."""
  from aejax import config as config_lib  # pylint: disable=g-import-not-at-top  (light; the launchers import us)
  c = config_lib.finalize(c, arg)
  c.data.num_train = c.data.num_test = None
  if arg == "smoke":
    c.recommend.hidden = 32
    c.recommend.widths = tuple(min(w, 32) for w in c.recommend.widths)
    c.latent_dim = min(c.latent_dim, 16)
    c.recommend.surprise = False
  return c
