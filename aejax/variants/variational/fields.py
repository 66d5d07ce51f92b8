"""The config sections of the variational family, their defaults and checks: `config.vae` (the bound, prior,
posterior and layers of `vae` and `beta_vae`), `config.two_stage` (`two_stage_vae`), `config.tcvae` (`beta_tcvae`),
`config.capacity` (`beta_vae_capacity`), `config.factor` (`factor_vae`), `config.vq` (`vqvae`), `config.mmd`
(`wae_mmd`, `info_vae`) and `config.rae` (`rae`); the protocols experiments share: Burda et al.'s MNIST one
(`burda_protocol`), disentanglement_lib's dSprites one (`dsprites_protocol`) and the MNIST one of the
distribution-matching and regularised autoencoders (`ghosh_mnist_protocol`).

Light on purpose (no JAX): experiment files and the launchers import it. Each variant adds only its own section
(`registry.Variant.config_fields`).
"""
from ml_collections import config_dict

from aejax import config as config_lib
from aejax.errors import require

SAMPLINGS = ("mws", "mss")
BOUNDS = ("iwae", "miwae", "piwae", "ciwae")
PRIORS = ("normal", "mog", "vamp")
FLOWS = ("none", "planar", "iaf")
# What a dSprites sweep's curves plot against its swept weight: the disentanglement suite's metrics, reconstruction.
DSPRITES_CURVES = ["disentanglement/mig", "disentanglement/factor_vae_score", "disentanglement/dci_disentanglement",
                   "disentanglement/beta_vae_score", "disentanglement/sap", "test/recon_error"]


def add_vae(c: config_dict.ConfigDict) -> config_dict.ConfigDict:
  """`c` with `config.vae`: what `vae` and `beta_vae` train on, beside the shared `beta`, `kl_warmup_steps` and
  `iwae_samples` (k).

  `bound`: 'iwae' (Burda et al. 2016: log (1/k) Σ_i w_i; k = 1 is the ELBO, weighted by β), 'miwae' (the mean of
  `bound_estimates` = M IWAE bounds of k samples each), 'piwae' (the decoder and prior trained on the IWAE bound of
  all M·k samples, the encoder and flow on MIWAE(M, k)), 'ciwae' (`ciwae_beta` · ELBO + (1 - `ciwae_beta`) · IWAE),
  the three of Rainforth et al. (2018). `prior`: 'normal', 'mog' (`prior_components` learned Gaussians) or 'vamp'
  (VampPrior, `prior_components` learned pseudo-inputs; Tomczak & Welling 2018: 500 on MNIST; its mixture is of the
  Gaussian posterior before any flow). `flow`: 'none',
  'planar' (Rezende & Mohamed 2015) or 'iaf' (Kingma et al. 2016, MADEs of `flow_hidden` units reading the encoder's
  features), `flow_steps` of them after the Gaussian posterior; or `leapfrog_steps` > 0, the Hamiltonian VAE."""
  c.vae = config_dict.ConfigDict()
  c.vae.bound = "iwae"
  c.vae.bound_estimates = 1
  c.vae.ciwae_beta = 0.5
  c.vae.prior = "normal"
  c.vae.prior_components = 500
  c.vae.flow = "none"
  c.vae.flow_steps = 4
  c.vae.flow_hidden = (128, 128)
  # The Hamiltonian VAE (Caterini et al. 2018): `leapfrog_steps` K > 0 tempered leapfrog steps after the Gaussian
  # posterior, their step sizes and initial inverse temperature learned from these starts.
  c.vae.leapfrog_steps = 0
  c.vae.leapfrog_step_size = 0.01
  c.vae.leapfrog_beta0 = 0.3
  # 2: Burda et al.'s two stochastic layers, h1 of `latent_dim` units from the encoder, h2 of `top_latent_dim` above
  # it through MLPs of `top_widths` (the paper: 100 and 50 units, 100-100), under N(0, I) and Gaussian p(h1|h2).
  c.vae.stochastic_layers = 1
  c.vae.top_widths = (100, 100)
  c.vae.top_latent_dim = 50
  return c


def validate_vae(c: config_dict.ConfigDict) -> None:
  """Checks `config.vae` (and its bound's use of the shared β and warm-up); raises `ConfigError` on the first bad
  field."""
  v = c.vae
  require(v.bound in BOUNDS, "config.vae.bound", v.bound, f"use one of {', '.join(BOUNDS)}")
  require(isinstance(v.bound_estimates, int) and v.bound_estimates >= 1, "config.vae.bound_estimates",
           v.bound_estimates, "use M >= 1 bounds of iwae_samples each, e.g. 8 (MIWAE's and PIWAE's M)")
  require(v.bound_estimates == 1 or v.bound in ("miwae", "piwae"), "config.vae.bound_estimates", v.bound_estimates,
           f"M is MIWAE's and PIWAE's: use --config.vae.bound=miwae (or piwae), or 1 with bound={v.bound}")
  require(0 <= v.ciwae_beta <= 1, "config.vae.ciwae_beta", v.ciwae_beta, "use a weight in [0, 1], e.g. 0.05")
  require(isinstance(v.leapfrog_steps, int) and v.leapfrog_steps >= 0, "config.vae.leapfrog_steps", v.leapfrog_steps,
           "use K >= 1 leapfrog steps for the Hamiltonian VAE (e.g. 4), or 0 for none")
  require(v.leapfrog_step_size > 0, "config.vae.leapfrog_step_size", v.leapfrog_step_size,
           "use a positive initial step size, e.g. 0.01")
  require(0 < v.leapfrog_beta0 < 1, "config.vae.leapfrog_beta0", v.leapfrog_beta0,
           "use an initial inverse temperature in (0, 1), e.g. 0.3")
  require(not (v.leapfrog_steps and v.flow != "none"), "config.vae.flow", v.flow,
           "the Hamiltonian VAE moves the Gaussian posterior's draws itself: use --config.vae.flow=none with "
           "leapfrog_steps, or --config.vae.leapfrog_steps=0 with a flow")
  require(v.stochastic_layers in (1, 2), "config.vae.stochastic_layers", v.stochastic_layers,
           "use 1 (one Gaussian code) or 2 (Burda et al.'s two stochastic layers)")
  if v.stochastic_layers == 2:
    require(isinstance(v.top_latent_dim, int) and v.top_latent_dim >= 1, "config.vae.top_latent_dim",
             v.top_latent_dim, "use a positive number of units of the top layer, e.g. 50")
    require(len(v.top_widths) >= 1 and all(isinstance(w, int) and w >= 1 for w in v.top_widths),
             "config.vae.top_widths", tuple(v.top_widths), "use one or more positive widths, e.g. (100, 100)")
    plain = v.prior == "normal" and v.flow == "none" and not v.leapfrog_steps
    require(plain, "config.vae.stochastic_layers", 2, "two stochastic layers have their own prior and posterior: use "
             "them with --config.vae.prior=normal --config.vae.flow=none --config.vae.leapfrog_steps=0")
  if v.leapfrog_steps:
    field, value, what = "config.vae.leapfrog_steps", v.leapfrog_steps, "the Hamiltonian VAE's ELBO"
  elif v.bound != "iwae":
    field, value, what = "config.vae.bound", v.bound, f"the {v.bound.upper()} bound"
  else:
    field, value, what = "config.iwae_samples", c.iwae_samples, "the IWAE bound"
  if v.leapfrog_steps or v.bound != "iwae" or c.iwae_samples > 1:
    require(c.beta == 1 and not c.kl_warmup_steps, field, value,
             f"{what} has no KL weight: use it with --config.beta=1 --config.kl_warmup_steps=0, "
             "or --config.vae.bound=iwae --config.iwae_samples=1 for the β-VAE loss")
  require(v.prior in PRIORS, "config.vae.prior", v.prior, f"use one of {', '.join(PRIORS)}")
  require(isinstance(v.prior_components, int) and v.prior_components >= 1, "config.vae.prior_components",
           v.prior_components, "use K >= 1 mixture components or pseudo-inputs, e.g. 500")
  require(v.flow in FLOWS, "config.vae.flow", v.flow, f"use one of {', '.join(FLOWS)}")
  require(isinstance(v.flow_steps, int) and v.flow_steps >= 1, "config.vae.flow_steps", v.flow_steps,
           "use at least one flow step, e.g. 4")
  require(len(v.flow_hidden) >= 1 and all(isinstance(w, int) and w >= 1 for w in v.flow_hidden),
           "config.vae.flow_hidden", tuple(v.flow_hidden), "use one or more positive widths, e.g. (128, 128)")
  require(v.flow != "iaf" or c.latent_dim >= 2, "config.latent_dim", c.latent_dim,
           "an inverse autoregressive flow orders two or more code units: use latent_dim >= 2, or flow=planar")


def burda_protocol(c: config_dict.ConfigDict) -> config_dict.ConfigDict:
  """`c` (with `config.vae`) on Burda et al.'s (2016) MNIST protocol, one stochastic layer: 784-200-200-50 with tanh
  units, a Gaussian code of 50, a Bernoulli decoder; MNIST binarised dynamically (the test split sampled once);
  batch 20; Adam (0.9, 0.999). The paper trains 3,280 epochs, 3^i epochs at rate 1e-3·10^(-i/7) for i = 0..7; a
  cosine decay from 1e-3 over the same number of steps (9.84 M at 3,000 steps per epoch) stands in for that
  staircase. The run ends with the `nll` suite (k = 5,000)."""
  c.variant = "vae"
  c.latent_dim = 50
  c.model.encoder_widths = (200, 200)
  c.model.activation = "tanh"
  c.loss = "bce"
  c.data.binarize = "dynamic"
  c.learning_rate = 1e-3
  c.lr_schedule = "cosine"
  c.batch_size = 20
  c.num_steps = 9_840_000  # 3,280 epochs of 3,000 steps.
  c.eval_every = c.checkpoint_every = 300_000
  c.log_every = 1_000
  c.eval.suites = ("nll",)
  c.eval.nll_samples = 5_000
  return c


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


def add_vq(c: config_dict.ConfigDict) -> config_dict.ConfigDict:
  """`c` with `config.vq`: the VQ-VAE's (van den Oord et al. 2017) codebook of `num_codes` (K) vectors of `code_dim`
  (D), D the channels of a spatial code (`model.code_channels`) or a divisor of a vector code's `latent_dim`; the
  commitment weight `beta_commit` (the paper: 0.25); with `ema`, codes as moving averages of their assigned outputs,
  decay `decay` and Laplace smoothing `epsilon` (Razavi et al. 2019: 0.99, 1e-5) instead of the codebook loss; a
  code unused for `dead_after` steps counts as dead in the train metrics."""
  c.vq = config_dict.ConfigDict()
  c.vq.num_codes = 512
  c.vq.code_dim = 64
  c.vq.beta_commit = 0.25
  c.vq.ema = False
  c.vq.decay = 0.99
  c.vq.epsilon = 1e-5
  c.vq.dead_after = 100
  return c


def validate_vq(c: config_dict.ConfigDict) -> None:
  """Checks `config.vq` and the code it quantises; raises `ConfigError` on the first bad field."""
  q, m = c.vq, c.model
  require(isinstance(q.num_codes, int) and q.num_codes >= 2, "config.vq.num_codes", q.num_codes,
          "use a codebook of at least 2 codes, e.g. 512")
  require(isinstance(q.code_dim, int) and q.code_dim >= 1, "config.vq.code_dim", q.code_dim,
          "use a positive code size, e.g. 64")
  if m.spatial_code:
    require(q.code_dim == m.code_channels, "config.vq.code_dim", q.code_dim,
            f"the encoder's spatial code has model.code_channels={m.code_channels} channels, each position one code: "
            "set both to the same size")
  else:
    require(c.latent_dim % q.code_dim == 0, "config.vq.code_dim", q.code_dim,
            f"a vector code of latent_dim={c.latent_dim} units is quantised in groups of code_dim: use a divisor of "
            "latent_dim, or a spatial code (--config.model.kind=conv --config.model.spatial_code=True)")
  require(q.beta_commit >= 0, "config.vq.beta_commit", q.beta_commit, "use a weight >= 0, e.g. 0.25 (the paper's)")
  require(0 < q.decay < 1, "config.vq.decay", q.decay, "use a decay in (0, 1), e.g. 0.99")
  require(q.epsilon > 0, "config.vq.epsilon", q.epsilon, "use a small positive smoothing count, e.g. 1e-5")
  require(isinstance(q.dead_after, int) and q.dead_after >= 1, "config.vq.dead_after", q.dead_after,
          "use a number of steps >= 1, e.g. 100")
  require(c.iwae_samples == 1, "config.iwae_samples", c.iwae_samples,
          "the VQ-VAE has no importance-weighted bound: use --config.iwae_samples=1")


MMD_KERNELS = ("imq", "rbf")
RAE_REGULARIZERS = ("l2", "gp")


def add_mmd(c: config_dict.ConfigDict) -> config_dict.ConfigDict:
  """`c` with `config.mmd`: the MMD² term of `wae_mmd` and `info_vae` (aejax/variants/variational/mmd.py). `lambda_`:
  λ, WAE's weight of MMD² (Tolstikhin et al. on MNIST: 10 against 0.05 times the summed squared error, that is 200
  against aejax's summed error) and InfoVAE's λ (MMD² weighted by α + λ - 1); `alpha`: InfoVAE's α (the KL weighted
  by 1 - α; 1 drops it); `kernel`: 'imq', C / (C + ‖x - y‖²), or 'rbf', exp(-‖x - y‖² / C), at C = 2·d·σ² for codes of
  d units and each σ² of `scales`, their kernels summed (Tolstikhin et al.: σ² = 1, the prior's variance)."""
  c.mmd = config_dict.ConfigDict()
  c.mmd.lambda_ = 10.0
  c.mmd.alpha = 0.0
  c.mmd.kernel = "imq"
  c.mmd.scales = (1.0,)
  return c


def validate_mmd(c: config_dict.ConfigDict) -> None:
  """Checks `config.mmd` and the code it matches to N(0, I): vectors, unbounded for `wae_mmd`'s deterministic code;
  for `info_vae` also that its weights of the KL and MMD² are >= 0. Raises `ConfigError` on the first bad field."""
  m = c.mmd
  require(m.lambda_ >= 0, "config.mmd.lambda_", m.lambda_, "use a weight >= 0 of MMD², e.g. 10")
  require(m.kernel in MMD_KERNELS, "config.mmd.kernel", m.kernel, f"use one of {', '.join(MMD_KERNELS)}")
  require(len(m.scales) >= 1 and all(s > 0 for s in m.scales), "config.mmd.scales", tuple(m.scales),
          "use one or more positive multiples of the prior's variance, e.g. (1.0,)")
  require(not c.model.spatial_code, "config.model.spatial_code", c.model.spatial_code,
          "MMD² matches vector codes to N(0, I): use --config.model.spatial_code=false and set latent_dim")
  require(c.variant != "wae_mmd" or c.model.code_activation == "linear", "config.model.code_activation",
          c.model.code_activation, "the codes are matched to N(0, I), which a bounded or one-sided code cannot reach: "
          "use --config.model.code_activation=linear")
  if c.variant == "info_vae":
    require(c.iwae_samples == 1, "config.iwae_samples", c.iwae_samples,
            "InfoVAE trains its own objective at one draw per image: use --config.iwae_samples=1")
    require(m.alpha <= 1, "config.mmd.alpha", m.alpha, "InfoVAE weighs the KL by 1 - α: use α <= 1, e.g. 0 (1: no KL)")
    require(m.alpha + m.lambda_ >= 1, "config.mmd.lambda_", m.lambda_,
            f"InfoVAE weighs MMD² by α + λ - 1 = {m.alpha + m.lambda_ - 1:g}, and a negative weight pushes the codes "
            "away from the prior: use λ >= 1 - α, e.g. 1000")


def add_rae(c: config_dict.ConfigDict) -> config_dict.ConfigDict:
  """`c` with `config.rae`: the regularised autoencoder's (Ghosh et al. 2020; aejax/variants/variational/rae.py)
  decoder regulariser `regularizer`, 'l2' (‖θ_dec‖²) or 'gp' (the decoder's squared Jacobian norm in the code), and its
  weight `reg_weight` (λ; the code's ½‖z‖² is weighted by the shared `beta`); the ex-post density, a Gaussian mixture
  of `components` full-covariance components (the paper: 10) refitted to the train codes every `density_every`
  steps."""
  c.rae = config_dict.ConfigDict()
  c.rae.regularizer = "l2"
  c.rae.reg_weight = 1e-4
  c.rae.components = 10
  c.rae.density_every = 2_000
  return c


def validate_rae(c: config_dict.ConfigDict) -> None:
  """Checks `config.rae`; raises `ConfigError` on the first bad field."""
  r = c.rae
  require(r.regularizer in RAE_REGULARIZERS, "config.rae.regularizer", r.regularizer,
          f"use one of {', '.join(RAE_REGULARIZERS)}")
  require(r.reg_weight >= 0, "config.rae.reg_weight", r.reg_weight, "use a weight >= 0 of the decoder's penalty, "
          "e.g. 1e-4")
  require(isinstance(r.components, int) and r.components >= 1, "config.rae.components", r.components,
          "use one or more mixture components, e.g. 10 (the paper's)")
  require(c.data.num_train is None or r.components <= c.data.num_train, "config.rae.components", r.components,
          f"a mixture is fitted to data.num_train={c.data.num_train} codes: use at most that many components")
  require(isinstance(r.density_every, int) and r.density_every >= 1, "config.rae.density_every", r.density_every,
          "use the number of steps between refits of the density (at least 1), e.g. 2000")
  require(not c.model.spatial_code, "config.model.spatial_code", c.model.spatial_code,
          "the ex-post density is fitted to vector codes: use --config.model.spatial_code=false and set latent_dim")


def ghosh_mnist_protocol(c: config_dict.ConfigDict, arg: str | None) -> config_dict.ConfigDict:
  """`c` on the MNIST protocol of Ghosh et al.'s (2020) comparison of RAE, WAE and the VAE, which pythae's benchmark
  follows, then finalised with `arg`: a 16-d code, grey-level images, batches of 100 for 100 epochs (60,000 steps),
  Adam at 1e-3 decayed to 0 (cosine), the samples suite after training. The paper's nets (four 4x4 stride-2
  convolutions of 128 to 1024 channels with batch norm) are beyond this CPU: here `mnist_strided_net`'s two (32, 64)
  and Dense 256, and their mirror, scored by the squared error summed over pixels."""
  c = mnist_strided_net(c)
  c.latent_dim, c.loss, c.data.binarize = 16, "mse", "none"
  c.learning_rate = 1e-3
  c.lr_schedule = "cosine"
  c.batch_size = 100
  c.num_steps = 60_000
  c.eval_every = c.checkpoint_every = 6_000
  c.eval.suites = ("samples",)
  c.num_images = 10
  return config_lib.finalize(c, arg)


def add_two_stage(c: config_dict.ConfigDict) -> config_dict.ConfigDict:
  """`c` with `config.two_stage`: the two-stage VAE (Dai & Wipf 2019) learns the codes of the trained VAE run in
  `first_workdir` with a second VAE of `latent_dim` units whose encoder and decoder are ReLU MLPs of `widths` (the
  paper: three layers of 1024)."""
  c.two_stage = config_dict.ConfigDict()
  c.two_stage.first_workdir = config_dict.placeholder(str)
  c.two_stage.widths = (1024, 1024, 1024)
  return c


def validate_two_stage(c: config_dict.ConfigDict) -> None:
  """Checks `config.two_stage` (the first stage's run itself is checked by the variant); raises `ConfigError`."""
  t = c.two_stage
  require(bool(t.first_workdir), "config.two_stage.first_workdir", t.first_workdir,
           "give the --workdir of a trained VAE run, e.g. --config.two_stage.first_workdir=runs/vae")
  require(len(t.widths) >= 1 and all(isinstance(w, int) and w >= 1 for w in t.widths), "config.two_stage.widths",
           tuple(t.widths), "use one or more positive layer widths, e.g. (1024, 1024, 1024)")
