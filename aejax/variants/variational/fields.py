"""The config sections of the VAEs that target disentanglement, their defaults and checks: `config.tcvae`
(`beta_tcvae`), `config.capacity` (`beta_vae_capacity`) and `config.factor` (`factor_vae`); and the dSprites
protocol their experiments share (`dsprites_protocol`).

Light on purpose (no JAX): experiment files and the launchers import it. Each variant adds only its own section
(`registry.Variant.config_fields`).
"""
from ml_collections import config_dict

from aejax import config as config_lib
from aejax.errors import require

SAMPLINGS = ("mws", "mss")
# What a dSprites sweep's curves plot against its swept weight: the disentanglement suite's metrics, reconstruction.
DSPRITES_CURVES = ["disentanglement/mig", "disentanglement/factor_vae_score", "disentanglement/dci_disentanglement",
                   "disentanglement/beta_vae_score", "disentanglement/sap", "test/recon_error"]


def add_tcvae(c: config_dict.ConfigDict) -> config_dict.ConfigDict:
  """`c` with `config.tcvae`: β-TCVAE (Chen et al. 2018) weighs the index-code mutual information by `alpha`, the
  total correlation by the shared `beta` and the dimension-wise KL by `gamma` (the paper: 1, β, 1)."""
  c.tcvae = config_dict.ConfigDict()
  c.tcvae.alpha = 1.0
  c.tcvae.gamma = 1.0
  # How log q(z) is estimated from a batch: minibatch-weighted ('mws') or minibatch-stratified ('mss') sampling.
  c.tcvae.sampling = "mws"
  # N, the number of train images q(z) = (1/N) Σ_n q(z|x_n) averages over; None: data.num_train.
  c.tcvae.dataset_size = config_dict.placeholder(int)
  return c


def add_capacity(c: config_dict.ConfigDict) -> config_dict.ConfigDict:
  """`c` with `config.capacity`: the annealed-capacity β-VAE (Burgess et al. 2018) minimises recon + γ·|KL - C|,
  C growing linearly from `c_min` to `c_max` nats over the first `steps` steps (the paper, dSprites: γ = 1000,
  0 to 25 nats over 100,000 steps)."""
  c.capacity = config_dict.ConfigDict()
  c.capacity.gamma = 1_000.0
  c.capacity.c_min = 0.0
  c.capacity.c_max = 25.0
  c.capacity.steps = 100_000
  return c


def add_factor(c: config_dict.ConfigDict) -> config_dict.ConfigDict:
  """`c` with `config.factor`: FactorVAE (Kim & Mnih 2018) adds γ times the total correlation, estimated by a
  discriminator of codes against dimension-wise permuted codes, to the VAE's loss (the paper sweeps γ from 10 to
  100). The discriminator: leaky-ReLU layers of `d_widths`, trained by Adam at `d_rate_scale` times the learning
  rate with b1 `d_adam_b1` and b2 `d_adam_b2` (the paper: six layers of 1000, 1e-4 for both players, 0.5 and 0.9)."""
  c.factor = config_dict.ConfigDict()
  c.factor.gamma = 30.0
  c.factor.d_widths = (1_000,) * 6
  c.factor.d_leaky_slope = 0.2
  c.factor.d_rate_scale = 1.0
  c.factor.d_adam_b1 = 0.5
  c.factor.d_adam_b2 = 0.9
  return c


def validate_tcvae(c: config_dict.ConfigDict) -> None:
  """Checks `config.tcvae`; raises `ConfigError` on the first bad field."""
  t = c.tcvae
  for field in ("alpha", "gamma"):
    require(t[field] >= 0, f"config.tcvae.{field}", t[field], "use a weight >= 0, e.g. 1 (the paper's)")
  require(t.sampling in SAMPLINGS, "config.tcvae.sampling", t.sampling, f"use one of {', '.join(SAMPLINGS)}")
  size = dataset_size(c)
  require(size is not None, "config.tcvae.dataset_size", size,
           "estimating q(z) needs the number of train images: set it (e.g. 60000 for MNIST), or set data.num_train")
  require(size >= 2, "config.tcvae.dataset_size", size, "use the number of train images, at least 2")
  most = max(c.batch_size, c.eval_batch_size)
  require(t.sampling != "mss" or size >= most, "config.tcvae.dataset_size", size,
           f"stratified sampling weighs a batch of {most} (batch_size, eval_batch_size) as a part of the data set, "
           "which must be at least as large: check the size, or use smaller batches")


def dataset_size(c: config_dict.ConfigDict) -> int | None:
  """N of β-TCVAE's estimates: `tcvae.dataset_size`, else `data.num_train` (None if neither is set)."""
  return c.tcvae.dataset_size if c.tcvae.dataset_size is not None else c.data.num_train


def validate_capacity(c: config_dict.ConfigDict) -> None:
  """Checks `config.capacity`; raises `ConfigError` on the first bad field."""
  k = c.capacity
  require(k.gamma > 0, "config.capacity.gamma", k.gamma, "use a positive weight of |KL - C|, e.g. 1000")
  require(k.c_min >= 0, "config.capacity.c_min", k.c_min, "the capacity is a KL in nats: use >= 0, e.g. 0")
  require(k.c_max >= k.c_min, "config.capacity.c_max", k.c_max,
           f"the capacity grows from c_min={k.c_min!r}: use c_max >= c_min, e.g. 25")
  require(isinstance(k.steps, int) and k.steps >= 1, "config.capacity.steps", k.steps,
           "use the number of steps C takes to grow (at least 1), e.g. 100000")


def validate_factor(c: config_dict.ConfigDict) -> None:
  """Checks `config.factor`; raises `ConfigError` on the first bad field."""
  f = c.factor
  require(f.gamma >= 0, "config.factor.gamma", f.gamma, "use a weight >= 0 of the total correlation, e.g. 30")
  require(len(f.d_widths) >= 1 and all(w >= 1 for w in f.d_widths), "config.factor.d_widths", tuple(f.d_widths),
           "use one or more positive layer widths, e.g. (1000,) * 6")
  require(0 <= f.d_leaky_slope < 1, "config.factor.d_leaky_slope", f.d_leaky_slope, "use a slope in [0, 1), e.g. 0.2")
  require(f.d_rate_scale > 0, "config.factor.d_rate_scale", f.d_rate_scale,
           "use a positive multiple of learning_rate, e.g. 1")
  for field in ("d_adam_b1", "d_adam_b2"):
    require(0 <= f[field] < 1, f"config.factor.{field}", f[field], "use a decay rate in [0, 1), e.g. 0.5 and 0.9")
  require(c.optimizer in ("adam", "adamw"), "config.optimizer", c.optimizer,
           "factor_vae's discriminator trains with Adam (factor.d_adam_b1, d_adam_b2): use adam or adamw")


def mnist_strided_net(c: config_dict.ConfigDict) -> config_dict.ConfigDict:
  """`c` with the disentangling VAEs' MNIST setting: a 10-d code and a Bernoulli decoder (dynamically binarised
  images) behind two of the papers' 4x4 stride-2 convolutions (32, 64) and Dense 256, the most 28x28 images take."""
  c.latent_dim = 10
  c.model.kind = "strided_conv"
  c.model.conv_features = (32, 64)
  c.model.encoder_widths = (256,)
  c.loss = "bce"
  c.data.binarize = "dynamic"
  return c


def dsprites_protocol(c: config_dict.ConfigDict, arg: str | None) -> config_dict.ConfigDict:
  """`c` on disentanglement_lib's dSprites protocol (Locatello et al. 2019), then finalised with `arg`: all 737,280
  images (rendered by aejax), the papers' net (four 4x4 stride-2 convolutions 32-32-64-64, Dense 256, a 10-d
  Gaussian code, a Bernoulli decoder), Adam at 1e-4 (its `shared.gin`), batch 64, 300,000 steps, scored by the
  disentanglement suite.
  `:smoke`: a few steps of a narrower net on `dsprites_small` (1,920 of the images), scored on few samples."""
  c.data.name = "dsprites"
  c.data.num_train = 737_280  # All of them: also the N that β-TCVAE's q(z) averages over.
  c.data.binarize = "none"  # Its images are binary already.
  c.latent_dim = 10
  c.model.kind = "strided_conv"
  c.model.conv_features = (32, 32, 64, 64)
  c.model.encoder_widths = (256,)
  c.loss = "bce"
  c.learning_rate = 1e-4
  c.batch_size = 64
  c.num_steps = 300_000
  c.eval_every = c.checkpoint_every = 20_000
  c.eval_batch_size = 512
  c.eval.suites = ("disentanglement",)
  c.num_images = 10
  c = config_lib.finalize(c, arg)
  if arg == "smoke":
    c.data.name = "dsprites_small"
    c.data.num_train, c.data.num_test = 1_920, 480
    c.model.conv_features = (8, 8, 16, 16)
    c.model.encoder_widths = (32,)
  return c
