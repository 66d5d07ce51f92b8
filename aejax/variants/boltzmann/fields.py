"""The Boltzmann family's config fields (`config.rbm`, `config.dbn`, `config.eval.ais`), their defaults and checks.

Light on purpose (no JAX): experiment files and the launchers import it. The number of hidden units is the shared
`latent_dim`, and a DBN's lower layers are `model.encoder_widths`, so sweeps name them as for any variant.
"""
from typing import Any

from ml_collections import config_dict

from aejax.errors import ConfigError, require

VISIBLE = ("bernoulli", "gaussian")
# Salakhutdinov & Murray (2008): β from 0 to 0.5 in steps of 1e-3, to 0.9 in steps of 1e-4, to 1 in steps of 1e-5.
PAPER_SCHEDULE = ((0.5, 1e-3), (0.9, 1e-4), (1.0, 1e-5))


def add(c: config_dict.ConfigDict) -> config_dict.ConfigDict:
  """`c` with the family's sections added, at their defaults."""
  c.rbm = config_dict.ConfigDict()
  # 'bernoulli': binary visibles (images in [0, 1] are their probabilities); 'gaussian': real-valued visibles of
  # unit variance, which needs --config.data.standardize=True (each pixel at zero mean, unit variance).
  c.rbm.visible = "bernoulli"
  c.rbm.cd_steps = 1  # k of CD-k / PCD-k: Gibbs steps of the negative phase.
  # False: CD-k, each negative chain starts at the batch; True: persistent CD (Tieleman 2008), chains carried from
  # step to step in the train state (checkpointed with it), one per example of a batch.
  c.rbm.persistent = False
  # Sparsity (Lee et al. 2008; Hinton's practical guide): with sparsity_cost > 0, a penalty of sparsity_cost times
  # the cross-entropy between the target and each hidden unit's activation pulls mean activations to the target.
  c.rbm.sparsity_target = 0.05
  c.rbm.sparsity_cost = 0.0
  c.rbm.init_scale = 0.01  # Standard deviation of the initial weights (Hinton's guide: 0.01).
  # Pictures: Gibbs steps of the sample chains, shown at 1, 10, 100, ... up to this many.
  c.rbm.sample_steps = 1_000

  # DBNs (`dbn`, `dbn_ae`): each RBM trains for the shared `pretrain_steps`, by the settings above. The top RBM's
  # learning rate is `learning_rate` times top_rate_scale (Hinton & Salakhutdinov 2006 train the top RBM's linear
  # code units at a rate 100 times smaller: 0.01); `dbn_ae` fine-tunes at `learning_rate` times finetune_rate_scale.
  c.dbn = config_dict.ConfigDict()
  c.dbn.top_rate_scale = 1.0
  c.dbn.finetune_rate_scale = 1.0

  c.eval.ais = config_dict.ConfigDict()
  c.eval.ais.runs = 100  # Parallel AIS runs behind each estimate of log Z.
  # The β schedule as (end, step) segments from β = 0; it must end at β = 1.
  c.eval.ais.schedule = PAPER_SCHEDULE
  # DBNs: samples of the up-pass q(h | v) per image behind the variational bound on log p(v).
  c.eval.ais.bound_samples = 100
  return c


def validate(c: config_dict.ConfigDict) -> None:
  """Checks `config.rbm`, `config.dbn` and `config.eval.ais`; raises `ConfigError` on the first bad field."""
  r = c.rbm
  require(r.visible in VISIBLE, "config.rbm.visible", r.visible, f"use one of {', '.join(VISIBLE)}")
  require(r.cd_steps >= 1, "config.rbm.cd_steps", r.cd_steps,
           "the negative phase needs at least one Gibbs step: use k >= 1, e.g. --config.rbm.cd_steps=1 (CD-1)")
  require(0 < r.sparsity_target < 1, "config.rbm.sparsity_target", r.sparsity_target,
           "use a mean hidden activation in (0, 1), e.g. 0.05")
  require(r.sparsity_cost >= 0, "config.rbm.sparsity_cost", r.sparsity_cost, "use 0 (off) or a positive cost")
  require(r.init_scale > 0, "config.rbm.init_scale", r.init_scale, "use a positive standard deviation, e.g. 0.01")
  require(r.sample_steps >= 1, "config.rbm.sample_steps", r.sample_steps, "use at least one Gibbs step")
  if r.visible == "gaussian":
    require(c.data.standardize, "config.data.standardize", c.data.standardize,
             "a Gaussian–Bernoulli RBM models visibles of zero mean and unit variance, which pixels in [0, 1] are "
             "not: add --config.data.standardize=True (each pixel standardised with the train split's statistics)")
    require(c.data.binarize == "none", "config.data.binarize", c.data.binarize,
             "Gaussian visibles are real-valued: use --config.data.binarize=none, or rbm.visible=bernoulli")
  elif c.data.standardize:
    raise ConfigError("config.data.standardize=True: Bernoulli visibles are probabilities in [0, 1]; drop it, or "
                      "use --config.rbm.visible=gaussian")
  for field in ("top_rate_scale", "finetune_rate_scale"):
    require(c.dbn[field] > 0, f"config.dbn.{field}", c.dbn[field], "use a positive multiple of learning_rate, e.g. 1")
  check_schedule(c.eval.ais.schedule)
  require(c.eval.ais.bound_samples >= 1, "config.eval.ais.bound_samples", c.eval.ais.bound_samples,
           "use at least one sample of q per image, e.g. 100")
  require(c.eval.ais.runs >= 2, "config.eval.ais.runs", c.eval.ais.runs,
           "the estimate and its spread need at least 2 runs, e.g. 100")


def check_schedule(schedule: Any) -> None:
  """A `ConfigError` unless `schedule` is (end, step) segments with increasing ends in (0, 1], positive steps, and
  the last end exactly 1 (AIS must arrive at the model itself)."""
  field = "config.eval.ais.schedule"
  is_pair = lambda s: isinstance(s, (tuple, list)) and len(s) == 2 and all(  # noqa: E731
      isinstance(x, (int, float)) and not isinstance(x, bool) for x in s)
  ok = isinstance(schedule, (tuple, list)) and len(schedule) > 0 and all(is_pair(s) for s in schedule)
  require(ok, field, schedule, "give (end, step) segments from β = 0, e.g. ((0.5, 1e-3), (0.9, 1e-4), (1.0, 1e-5)); "
           "one segment needs its trailing comma, e.g. '((1.0, 1e-3),)'")
  segments = tuple(tuple(s) for s in schedule)
  ends = [s[0] for s in segments]
  require(all(a < b for a, b in zip([0.0, *ends], ends)), field, segments,
           "the segments' ends must increase from 0, e.g. ((0.5, 1e-3), (0.9, 1e-4), (1.0, 1e-5))")
  require(all(s[1] > 0 for s in segments), field, segments, "each segment needs a positive β step")
  require(ends[-1] == 1.0, field, segments, f"the schedule ends at β = {ends[-1]}, not at the model (β = 1): "
           "end the last segment at 1.0, e.g. (1.0, 1e-5)")
