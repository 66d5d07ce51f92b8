"""The adversarial family's config section (`config.gan`), its defaults and checks.

Light on purpose (no JAX): experiment files and the launchers import it. The generator's noise has the shared
`latent_dim` dimensions; the discriminator's hidden layers are `model.encoder_widths` (MLP) or `model.conv_features`
(conv), and the generator's the mirror image (`model.decoder_widths` where given), so sweeps name them as for any
variant. The generator trains at `learning_rate`, the discriminator at `learning_rate` times `gan.d_rate_scale`.
"""

from ml_collections import config_dict

from aejax.errors import require

# Losses (Goodfellow et al. 2014; Lim & Ye 2017; Mao et al. 2017; Gulrajani et al. 2017), of D's raw output d(x):
# 'non_saturating' and 'minimax' share D's cross-entropy and differ in G's: -log σ(d(G(z))) against log(1 - σ(d(G(z))));
# 'hinge', 'least_squares' and 'wasserstein' (a critic, which needs gan.gp_weight > 0: WGAN-GP).
LOSSES = ("non_saturating", "minimax", "hinge", "least_squares", "wasserstein")


def add(c: config_dict.ConfigDict) -> config_dict.ConfigDict:
  """`c` with the family's section added, at its defaults (DCGAN's: Adam with b1 = 0.5 is set by the experiments)."""
  c.gan = config_dict.ConfigDict()
  c.gan.loss = "non_saturating"
  # Discriminator updates per generator update, each on the step's real batch (not a fresh one per update, as in
  # WGAN-GP's paper: the loop gathers one batch a step) against fresh fakes.
  c.gan.d_steps = 1
  c.gan.d_rate_scale = 1.0  # The discriminator's learning rate over the generator's (TTUR: e.g. 4).
  # WGAN-GP's penalty λ·(‖∇ₓd(x̂)‖ - 1)² at random points x̂ between real and fake images (λ = 10 in the paper).
  c.gan.gp_weight = 0.0
  # R1 (Mescheder et al. 2018): (γ/2)·‖∇ₓd(x)‖² on real images, for any loss; 0 leaves it off.
  c.gan.r1_weight = 0.0
  # An exponential moving average of the generator's weights (Karras et al. 2018; Yazıcı et al. 2019) with this
  # decay per step, kept beside them; samples, pictures and evaluation then use it. 0 leaves it off.
  c.gan.ema_decay = 0.0
  c.gan.leaky_slope = 0.2  # The discriminator's leaky ReLU (DCGAN: 0.2); the generator's layers use ReLU.
  # 'embedding': the label's learned embedding joins G's noise and D's input features; 'projection' (Miyato &
  # Koyama 2018): D's output gains <embed(y), φ(x)> of its last features φ(x). Conditional variants only.
  c.gan.conditioning = "projection"
  # `stylegan`: layers of the mapping network z -> w (w has `latent_dim` dimensions, as z), and the probability that
  # a training batch's styles switch to a second z's from a random layer on (style mixing regularisation).
  c.gan.mapping_layers = 4
  c.gan.style_mixing = 0.9
  # `cyclegan`: domain A is `config.data`, domain B this data set at this size (None: native), unpaired. The
  # translators' loss adds cycle_weight·(‖G_BA(G_AB(a)) - a‖₁ + ‖G_AB(G_BA(b)) - b‖₁) and identity_weight·(‖G_BA(a) -
  # a‖₁ + ‖G_AB(b) - b‖₁) (means over pixels; Zhu et al. 2017: 10 and 5) to the adversarial terms.
  c.gan.domain_b = "uci_digits"
  c.gan.domain_b_resize = (28, 28)
  c.gan.cycle_weight = 10.0
  c.gan.identity_weight = 5.0
  c.gan.residual_blocks = 2
  # `aae`: the discriminator on codes, leaky-ReLU layers of these widths (Makhzani et al. 2016: 1000, 1000). The
  # shared `beta` weighs the encoder's adversarial term against the reconstruction, as β weighs a VAE's KL term.
  c.gan.code_widths = (512, 512)
  return c


def validate(c: config_dict.ConfigDict) -> None:
  """Checks `config.gan`; raises `ConfigError` on the first bad field."""
  g = c.gan
  require(g.loss in LOSSES, "config.gan.loss", g.loss, f"use one of {', '.join(LOSSES)}")
  require(isinstance(g.d_steps, int) and g.d_steps >= 1, "config.gan.d_steps", g.d_steps,
           "the discriminator needs at least one update per generator update: use d_steps >= 1, e.g. 1 (5 for WGAN-GP)")
  require(g.d_rate_scale > 0, "config.gan.d_rate_scale", g.d_rate_scale,
           "use a positive multiple of learning_rate, e.g. 1")
  require(g.gp_weight >= 0, "config.gan.gp_weight", g.gp_weight, "use 0 (off) or a positive weight, e.g. 10")
  require(g.gp_weight == 0 or g.loss == "wasserstein", "config.gan.gp_weight", g.gp_weight,
           f"the gradient penalty keeps a Wasserstein critic 1-Lipschitz, and gan.loss={g.loss!r} has none: use "
           "--config.gan.loss=wasserstein, or --config.gan.r1_weight for a penalty on real images with any loss")
  require(g.loss != "wasserstein" or g.gp_weight > 0, "config.gan.loss", g.loss,
           "an unconstrained Wasserstein critic grows without bound: add --config.gan.gp_weight=10 (WGAN-GP)")
  require(g.r1_weight >= 0, "config.gan.r1_weight", g.r1_weight, "use 0 (off) or a positive weight, e.g. 10")
  require(0 <= g.ema_decay < 1, "config.gan.ema_decay", g.ema_decay, "use 0 (off) or a decay in (0, 1), e.g. 0.999")
  require(0 <= g.leaky_slope < 1, "config.gan.leaky_slope", g.leaky_slope, "use a slope in [0, 1), e.g. 0.2")
  require(g.mapping_layers >= 1, "config.gan.mapping_layers", g.mapping_layers, "use at least one layer, e.g. 4")
  require(0 <= g.style_mixing <= 1, "config.gan.style_mixing", g.style_mixing,
           "use a probability in [0, 1], e.g. 0.9 (0: off)")
  for field in ("cycle_weight", "identity_weight", "residual_blocks"):
    require(g[field] >= 0, f"config.gan.{field}", g[field], "use 0 (off) or a positive value")
  require(len(g.code_widths) >= 1 and all(w >= 1 for w in g.code_widths), "config.gan.code_widths", g.code_widths,
           "use one or more positive layer widths, e.g. (512, 512)")
  require(g.conditioning in ("embedding", "projection"), "config.gan.conditioning", g.conditioning,
           "use 'embedding' or 'projection'")
