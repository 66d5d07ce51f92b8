"""Hinton & Salakhutdinov (2006), Science 313:504: the deep MNIST autoencoder 784-1000-500-250-30, two protocols.

Published: test squared error per image 3.00 for the deep autoencoder, 13.87 for PCA with 30 components
(the `recon` suite reports both, as `recon/squared_error` and `recon/pca_squared_error`).

End to end (the default): the same widths and a linear 30-unit code, trained end to end from a random initialisation
on the cross-entropy of the logistic outputs, as in the paper's fine-tuning, with Adam and a cosine schedule for 200
epochs (234 steps each). Differences from the paper: no pre-training, ReLU hidden units instead of logistic ones,
Adam instead of conjugate gradients.

    python -m aejax.main --config experiments/hinton2006.py --workdir runs/hinton2006

RBM pre-training (`:rbm`, the paper's protocol; variant `dbn_ae`): the grey-level digits (pixel intensities as the
binary visibles' probabilities), a stack of RBMs 784-1000-500-250-30 of binary hidden units but the top RBM's 30
linear code units (unit-variance Gaussian noise), each trained greedily on the hidden probabilities of the one below
for 10 epochs (6,000 steps of 100 images) by CD-1 with SGD, momentum 0.9, learning rate 0.1 and an L2 weight cost of
2e-4, the top RBM at a rate 100 times smaller (as Hinton's mnistdeepauto.m); then unrolled into an encoder and a
decoder of logistic units (the decoder's weights the encoder's transposed, then untied) and fine-tuned end to end on
the cross-entropy of the logistic outputs for 200 epochs with the same SGD at learning rate 0.01
(`dbn.finetune_rate_scale` = 0.1). Differences from the paper: CD samples the reconstruction's visibles (mnistdeepauto.m
takes their probabilities), momentum is 0.9 from the first step, and fine-tuning is SGD on batches of 100 instead of
conjugate gradients on batches of 1,000.

    python -m aejax.main --config experiments/hinton2006.py:rbm --workdir runs/hinton2006_rbm

`:smoke` and `:rbm,smoke` shrink either protocol to a run of seconds.
"""
from ml_collections import config_dict

from aejax import config as config_lib, sweep as sweep_lib
from aejax.errors import ConfigError
from aejax.variants.boltzmann import fields

OPTIONS = ("rbm", "smoke")


def get_config(arg: str | None = None) -> config_dict.ConfigDict:
  options = set(arg.split(",")) if arg else set()
  if not options <= set(OPTIONS):
    raise ConfigError(f"config argument {arg!r} is not known: use experiments/hinton2006.py, or append any of "
                      f"{', '.join(OPTIONS)} after a colon, comma-separated, e.g. experiments/hinton2006.py:rbm,smoke")
  c = rbm_pretraining() if "rbm" in options else end_to_end()
  c.latent_dim = 30
  c.model.encoder_widths = (1000, 500, 250)
  c.model.code_activation = "linear"
  c.loss = "bce"
  c.eval.suites = ("recon",)
  c.wandb.tags = ("paper", "hinton2006", *(("rbm",) if "rbm" in options else ()))
  c = config_lib.finalize(c, "smoke" if "smoke" in options else None)
  if "smoke" in options and "rbm" in options:
    c.pretrain_steps = 10  # 4 RBMs x 10 steps, then 20 steps of fine-tuning.
  return c


def end_to_end() -> config_dict.ConfigDict:
  c = config_lib.base_config()
  c.variant = "ae"
  c.learning_rate = 1e-3
  c.lr_schedule = "cosine"
  c.batch_size = 256
  c.num_steps = 46_800  # 200 epochs of 234 steps.
  c.eval_every = c.checkpoint_every = 4_680
  return c


def rbm_pretraining() -> config_dict.ConfigDict:
  c = fields.add(config_lib.base_config())
  c.variant = "dbn_ae"
  c.model.activation = "sigmoid"
  c.optimizer = "sgd"
  c.momentum = 0.9
  c.learning_rate = 0.1
  c.weight_decay = 2e-4
  c.batch_size = 100
  c.pretrain_steps = 6_000  # 10 epochs of 600 steps per RBM.
  c.dbn.top_rate_scale = 0.01
  c.dbn.finetune_rate_scale = 0.1
  c.num_steps = 4 * 6_000 + 120_000  # Then 200 epochs of fine-tuning.
  c.log_every = 200
  c.eval_every = c.checkpoint_every = 12_000
  return c


def get_sweep() -> list[sweep_lib.Overrides]:
  """Three seeds of either protocol, to see how much of a difference between them is the seed's:

      python -m launch.local --config experiments/hinton2006.py:rbm --root runs/hinton2006_rbm_seeds
  """
  return sweep_lib.sweep("seed", [0, 1, 2])
