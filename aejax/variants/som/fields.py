"""The SOM family's config section (`config.som`), its defaults and checks.

Light on purpose (no JAX): experiment files and the launchers import it. The SOM's initial learning rate is the
shared `learning_rate`, applied through the run's optimiser (plain SGD on minus the SOM's update), so that bundle
members may differ in it as in any variant; `check_optimizer` keeps that optimiser the identity it must be.
"""
from ml_collections import config_dict

from aejax.errors import require
from aejax.variants import pretrained

MODES = ("online", "batch")
TOPOLOGIES = ("rectangular", "hexagonal")
NEIGHBOURHOODS = ("gaussian", "bubble", "mexican_hat")
DECAYS = ("linear", "exponential", "inverse_time")
INITS = ("pca", "random")


def add(c: config_dict.ConfigDict) -> config_dict.ConfigDict:
  """`c` with the family's section added, at its defaults."""
  c.som = config_dict.ConfigDict()
  c.som.rows = 10
  c.som.cols = 10
  c.som.topology = "rectangular"  # 'hexagonal': odd rows shifted by half a unit, six neighbours at distance 1.
  # 'online': each step moves every prototype towards each sample of its batch, weighted by the neighbourhood of
  # that sample's best-matching unit (the Kohonen rule, averaged over the batch: batch_size 1 is the classic one).
  # 'batch': each step sets every prototype to the neighbourhood-weighted mean of its batch (learning_rate 1; less
  # moves it part of the way); with batch_size the size of the train split, one step is one epoch of batch SOM.
  c.som.mode = "online"
  c.som.neighbourhood = "gaussian"  # h(d) of the grid distance d: exp(-d²/2σ²); 1 for d <= σ; (1 - d²/σ²) exp(-d²/2σ²).
  c.som.radius = 5.0  # σ at step 0, in grid units (neighbouring units are 1 apart).
  c.som.final_radius = 1.0  # σ at the last step.
  c.som.final_rate = 0.01  # The learning rate at the last step, as a fraction of learning_rate.
  c.som.decay = "exponential"  # How σ and the rate go from their start to their end over num_steps.
  c.som.init = "pca"  # 'pca': a plane along the train inputs' first two principal axes; 'random': N(mean, std²).
  # Samples whose distances to every unit are computed at once: the search holds chunk_size x units floats.
  c.som.chunk_size = 8_192
  # A trained autoencoder's --workdir: the SOM maps that run's codes of the images (the autoencoder frozen, its
  # parameters kept in the SOM's checkpoints); '' maps the pixels.
  c.som.input_workdir = ""
  return c


def validate(c: config_dict.ConfigDict) -> None:
  """Checks `config.som` and the optimiser settings the SOM's update needs; raises `ConfigError` on the first bad
  field."""
  s = c.som
  for field, choices in (("mode", MODES), ("topology", TOPOLOGIES), ("neighbourhood", NEIGHBOURHOODS),
                         ("decay", DECAYS), ("init", INITS)):
    require(s[field] in choices, f"config.som.{field}", s[field], f"use one of {', '.join(choices)}")
  require(s.rows >= 1 and s.cols >= 1 and s.rows * s.cols >= 2, "config.som.rows x cols", (s.rows, s.cols),
           "a map needs at least 2 units, e.g. --config.som.rows=10 --config.som.cols=10")
  require(s.radius > 0, "config.som.radius", s.radius, "use a positive neighbourhood radius in grid units, e.g. 5")
  require(s.final_radius > 0, "config.som.final_radius", s.final_radius,
           "use a positive final radius, e.g. 1 (the decay schedules need it above 0)")
  require(0 < s.final_rate <= 1, "config.som.final_rate", s.final_rate,
           "use a fraction of learning_rate in (0, 1], e.g. 0.01 (1 keeps the rate constant)")
  require(s.chunk_size >= 1, "config.som.chunk_size", s.chunk_size, "use a positive number of samples, e.g. 8192")
  require(not (s.mode == "batch" and s.neighbourhood == "mexican_hat"), "config.som.neighbourhood", s.neighbourhood,
           "the batch update is a weighted mean, which the Mexican hat's negative weights can make divide by 0: use "
           "gaussian or bubble, or --config.som.mode=online")
  check_optimizer(c)


def check_optimizer(c: config_dict.ConfigDict) -> None:
  """A `ConfigError` unless the optimiser applies the SOM's update as it is, times `learning_rate`: plain SGD at a
  constant rate (the SOM decays it itself, `som.decay`)."""
  for field, wanted in (("optimizer", "sgd"), ("momentum", 0), ("weight_decay", 0), ("grad_clip_norm", 0),
                        ("lr_schedule", "constant"), ("warmup_steps", 0)):
    require(c[field] == wanted, f"config.{field}", c[field], "a SOM's update is applied as it is, times "
             f"learning_rate, and decayed by config.som.decay: use --config.{field}={wanted}, or start from "
             "experiments/som.py")


def check_input_workdir(c: config_dict.ConfigDict) -> None:
  """A `ConfigError` unless `som.input_workdir` (when set) is a trained run of an autoencoder, on the SOM's dataset.
  Reads only its config.json and checkpoint folder."""
  if c.som.input_workdir:
    pretrained.check_run(c.som.input_workdir, "config.som.input_workdir", c.data, ("som",), "SOM")
