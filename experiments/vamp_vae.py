"""VampPrior (Tomczak & Welling 2018): the prior a mixture of the posterior at K = 500 learned pseudo-inputs; MNIST
binarised dynamically, a 40-d code, two hidden layers of 300 (the paper's are gated: sigmoid-gated linear units; here
ReLU), Adam at 5e-4, batch 100, the KL weight warmed up over 100 epochs, at most 2,000 epochs (the paper stops early
after 50 epochs without improvement). Published test NLL (5,000 importance samples): 85.57 nats (one stochastic
layer); pythae's reproduction 85.79. `--config.vae.prior=mog` is the mixture-of-Gaussians prior, `normal` the VAE.

    python -m aejax.main --config experiments/vamp_vae.py --workdir runs/vamp
"""
from ml_collections import config_dict

from aejax import config as config_lib, sweep as sweep_lib
from aejax.variants.variational import fields


def get_config(arg: str | None = None) -> config_dict.ConfigDict:
  c = fields.add_vae(config_lib.base_config())
  c.variant = "vae"
  c.vae.prior = "vamp"
  c.vae.prior_components = 500
  c.latent_dim = 40
  c.model.encoder_widths = (300, 300)
  c.loss = "bce"
  c.data.binarize = "dynamic"
  c.learning_rate = 5e-4
  c.batch_size = 100
  c.kl_warmup_steps = 60_000  # 100 epochs of 600 steps.
  c.num_steps = 1_200_000  # 2,000 epochs.
  c.eval_every = c.checkpoint_every = 60_000
  c.log_every = 1_000
  c.eval.suites = ("nll",)
  c.eval.nll_samples = 5_000
  c.wandb.tags = ("paper", "vamp_vae")
  c = config_lib.finalize(c, arg)
  if arg == "smoke":
    c.vae.prior_components = 16
  return c


def get_sweep() -> list[sweep_lib.Overrides]:
  """The prior (N(0, I), a mixture of 500 Gaussians, the VampPrior) × seeds {0, 1, 2}: 9 runs."""
  return sweep_lib.product(sweep_lib.sweep("vae.prior", ["normal", "mog", "vamp"]), sweep_lib.sweep("seed", [0, 1, 2]))
