"""Restricted Boltzmann machine on binarised MNIST: 784 visible, 500 hidden units, CD-1 (Hinton's practical guide).

Stochastically binarised digits (sampled afresh each batch), batches of 100, SGD with momentum 0.9, learning rate
0.05 and an L2 weight cost of 2e-4, 100 epochs. `--config.rbm.persistent=True --config.learning_rate=0.02
--config.lr_schedule=cosine` trains by PCD (at the constant 0.05, PCD's hidden units saturate: docs/results.md),
`--config.rbm.cd_steps=25` by CD-25 (Salakhutdinov & Murray 2008). The `ais` suite estimates the test
log-likelihood after training; `python -m aejax.evaluate --workdir RUN --suite ais` at any checkpoint.

    python -m aejax.main --config experiments/rbm.py --workdir runs/rbm
"""
from ml_collections import config_dict

from aejax import config as config_lib, sweep as sweep_lib
from aejax.variants.boltzmann import fields


def get_config(arg: str | None = None) -> config_dict.ConfigDict:
  c = fields.add(config_lib.base_config())
  c.variant = "rbm"
  c.latent_dim = 500
  c.data.binarize = "dynamic"
  c.optimizer = "sgd"
  c.momentum = 0.9
  c.learning_rate = 0.05
  c.weight_decay = 2e-4
  c.batch_size = 100
  c.num_steps = 60_000  # 100 epochs of 600 steps.
  c.log_every = 200
  c.eval_every = c.checkpoint_every = 6_000
  c.eval.suites = ("ais",)
  c.wandb.tags = ("rbm",)
  c = config_lib.finalize(c, arg)
  if arg == "smoke":
    c.latent_dim = 64
    c.eval.ais.runs = 16
    c.eval.ais.schedule = ((1.0, 1e-2),)
    c.rbm.sample_steps = 100
  return c


def get_sweep() -> list[sweep_lib.Overrides]:
  """Hidden units × k × CD/PCD, 3 × 2 × 2 = 12 runs:

      python -m launch.local --config experiments/rbm.py --root runs/rbm_sweep
  """
  return sweep_lib.product(sweep_lib.sweep("latent_dim", [100, 250, 500]), sweep_lib.sweep("rbm.cd_steps", [1, 10]),
                           sweep_lib.sweep("rbm.persistent", [False, True]))
