"""Deep belief net on binarised MNIST: RBMs 784-500-500-2000 trained greedily by CD-1 (Hinton, Osindero & Teh 2006).

Stochastically binarised digits (sampled afresh each batch); each RBM trains on the hidden probabilities of the one
below for 20 epochs (12,000 steps of 100 images) with SGD, momentum 0.9, learning rate 0.05 and an L2 weight cost of
2e-4, the optimiser restarting for each RBM (the settings of experiments/rbm.py). The network's generative
fine-tuning (up-down) and its label units are not here. `--config.rbm.persistent=True` trains each RBM by PCD,
`--config.model.code_activation=linear` gives the top RBM linear (Gaussian) hidden units. The `ais` suite ends the run:
log Z of the top RBM by AIS and the variational lower bound on the test log-likelihood (Salakhutdinov & Murray 2008).

    python -m aejax.main --config experiments/dbn.py --workdir runs/dbn
"""
from ml_collections import config_dict

from aejax import config as config_lib, sweep as sweep_lib
from aejax.variants.boltzmann import fields


def get_config(arg: str | None = None) -> config_dict.ConfigDict:
  c = fields.add(config_lib.base_config())
  c.variant = "dbn"
  c.model.encoder_widths = (500, 500)
  c.latent_dim = 2_000
  c.model.activation = c.model.code_activation = "sigmoid"
  c.data.binarize = "dynamic"
  c.optimizer = "sgd"
  c.momentum = 0.9
  c.learning_rate = 0.05
  c.weight_decay = 2e-4
  c.batch_size = 100
  c.pretrain_steps = 12_000  # 20 epochs of 600 steps per RBM.
  c.num_steps = 3 * 12_000
  c.log_every = 200
  c.eval_every = c.checkpoint_every = 6_000
  c.eval.suites = ("ais",)  # log Z of the top RBM, and the bound on the test log-likelihood.
  c.wandb.tags = ("dbn",)
  c = config_lib.finalize(c, arg)
  if arg == "smoke":
    c.model.encoder_widths = (64, 32)
    c.latent_dim = 16
    c.pretrain_steps = 20  # 3 RBMs x 20 = smoke's 60 steps.
    c.eval_every = c.checkpoint_every = 20
    c.rbm.sample_steps = 10
    c.eval.ais.runs = 16
    c.eval.ais.schedule = ((1.0, 1e-2),)
    c.eval.ais.bound_samples = 10
  return c


def get_sweep() -> list[sweep_lib.Overrides]:
  """Depth × k: one or two 500-unit RBMs under the 2000-unit top, CD-1 or CD-10, 2 × 2 = 4 runs (with one RBM
  below, the top RBM goes on training for the third stage's steps):

      python -m launch.local --config experiments/dbn.py --root runs/dbn_sweep
  """
  return sweep_lib.product(sweep_lib.sweep("model.encoder_widths", [(500,), (500, 500)]),
                           sweep_lib.sweep("rbm.cd_steps", [1, 10]))
