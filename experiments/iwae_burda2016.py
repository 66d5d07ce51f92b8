"""Burda, Grosse & Salakhutdinov (2016), Importance Weighted Autoencoders, Table 1: MNIST, one stochastic layer.

Published test NLL (k = 5,000 importance samples): VAE (k = 1) 86.76 nats; IWAE trained with k = 50: 84.78.
The protocol (net, dynamic binarisation, batch 20, 3,280 epochs, a cosine decay standing in for the paper's
staircase): `aejax.variants.variational.fields.burda_protocol`. The run ends with the `nll` suite
(`nll/iwae_nll`, k = `eval.nll_samples` = 5,000).

    python -m aejax.main --config experiments/iwae_burda2016.py --workdir runs/burda_vae
    python -m aejax.main --config experiments/iwae_burda2016.py --workdir runs/burda_iwae50 --config.iwae_samples=50

A shorter budget: `--config.num_steps=N` (the schedule follows it); then
`python -m aejax.evaluate --workdir RUN --suite nll --nll_samples 5000`.
"""
from ml_collections import config_dict

from aejax import config as config_lib
from aejax.variants.variational import fields


def get_config(arg: str | None = None) -> config_dict.ConfigDict:
  c = fields.burda_protocol(fields.add_vae(config_lib.base_config()))
  c.wandb.tags = ("paper", "iwae_burda2016")
  return config_lib.finalize(c, arg)
