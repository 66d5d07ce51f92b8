"""Burda, Grosse & Salakhutdinov (2016), Importance Weighted Autoencoders, Table 1: MNIST, one stochastic layer.

Published test NLL (k = 5,000 importance samples): VAE (k = 1) 86.76 nats; IWAE trained with k = 50: 84.78.

Net: 784-200-200-50 with tanh units, Gaussian code of 50, Bernoulli decoder; MNIST binarised dynamically (a
new sample per batch; the test split sampled once); batch 20; Adam (β1 0.9, β2 0.999). The paper trains
3,280 epochs, 3^i epochs at rate 1e-3·10^(-i/7) for i = 0..7; here a cosine decay from 1e-3 over the same
number of steps (9.84 M at 3,000 steps per epoch) stands in for that staircase. The run ends with the `nll`
suite (`nll/iwae_nll`, k = `eval.nll_samples` = 5,000).

    python -m aejax.main --config experiments/iwae_burda2016.py --workdir runs/burda_vae
    python -m aejax.main --config experiments/iwae_burda2016.py --workdir runs/burda_iwae50 --config.iwae_samples=50

A shorter budget: `--config.num_steps=N` (the schedule follows it); then
`python -m aejax.evaluate --workdir RUN --suite nll --nll_samples 5000`.
"""
from ml_collections import config_dict

from aejax import config as config_lib


def get_config(arg: str | None = None) -> config_dict.ConfigDict:
  c = config_lib.base_config()
  c.variant = "vae"
  c.latent_dim = 50
  c.model.encoder_widths = (200, 200)
  c.model.activation = "tanh"
  c.loss = "bce"
  c.data.binarize = "dynamic"
  c.iwae_samples = 1
  c.learning_rate = 1e-3
  c.lr_schedule = "cosine"
  c.batch_size = 20
  c.num_steps = 9_840_000  # 3,280 epochs of 3,000 steps.
  c.eval_every = c.checkpoint_every = 300_000
  c.log_every = 1_000
  c.eval.suites = ("nll",)
  c.eval.nll_samples = 5_000
  c.wandb.tags = ("paper", "iwae_burda2016")
  return config_lib.finalize(c, arg)
