"""Deep clustering of all 70,000 MNIST images (train and test splits together, labels unseen): DEC (Xie et al.
2016) and IDEC (Guo et al. 2017) on the code of a d-500-500-2000-10 autoencoder, as Guo et al. set them: the
autoencoder pre-trained end to end (ReLU, linear 10-d code, squared error, Adam, batch 256, 200 epochs), then the
centres from k-means (20 restarts) of its codes, the target distribution refreshed every 140 steps, the run ended
once fewer than 0.1 % of the images change cluster; IDEC keeps the decoder, the clustering term weighted 0.1.

    python -m aejax.main --config experiments/dec.py:pretrain --workdir runs/dec_ae
    python -m aejax.main --config experiments/dec.py:idec --workdir runs/idec \\
        --config.cluster.pretrained_workdir=runs/dec_ae
    python -m aejax.main --config experiments/dec.py --workdir runs/dec --config.cluster.pretrained_workdir=runs/dec_ae

Arguments: 'pretrain' (the autoencoder), '' (DEC), 'idec', each with ',smoke'.
"""
from ml_collections import config_dict

from aejax import config as config_lib, sweep as sweep_lib
from aejax.errors import ConfigError
from aejax.variants.clustering import fields

STEPS_PER_EPOCH = 70_000 // 256


def get_config(arg: str | None = None) -> config_dict.ConfigDict:
  options = set((arg or "").split(",")) - {""}
  if options - {"pretrain", "idec", "smoke"} or {"pretrain", "idec"} <= options:
    raise ConfigError(f"config argument {arg!r} is not known: use '', 'idec' or 'pretrain', each with ',smoke'")
  c = fields.add(config_lib.base_config())
  c.data.with_test = True
  c.loss = "mse"
  c.batch_size = 256
  c.learning_rate = 1e-3
  c.log_every = 140
  c.eval.num_train = 70_000  # The clustering suite scores every image.
  if "pretrain" in options:
    c.variant = "ae"
    c.model.encoder_widths, c.latent_dim = (500, 500, 2000), 10
    c.num_steps = 200 * STEPS_PER_EPOCH
    c.eval_every = c.checkpoint_every = 20 * STEPS_PER_EPOCH
    c.wandb.tags = ("clustering", "pretrain")
  else:
    c.variant = "idec" if "idec" in options else "dec"
    c.num_steps = 200 * STEPS_PER_EPOCH  # At most: the run ends at the tolerance, usually far earlier.
    c.eval_every = c.checkpoint_every = 10 * STEPS_PER_EPOCH
    c.eval.suites = ("clustering",)
    c.wandb.tags = ("clustering", c.variant)
  c = config_lib.finalize(c, "smoke" if "smoke" in options else None)
  if "smoke" in options:
    c.data.num_test = 512
    c.eval.num_train = c.data.num_train + c.data.num_test
    c.model.encoder_widths, c.latent_dim = (64,), 4
    c.cluster.update_every = 20
    c.cluster.kmeans_inits = 2
    c.cluster.pixel_baseline = False
  return c


def get_sweep() -> list[sweep_lib.Overrides]:
  """5 seeds (the published figures are means over runs): each member clusters from the same pretrained run, give
  it with --config.cluster.pretrained_workdir."""
  return sweep_lib.sweep("seed", [0, 1, 2, 3, 4])
