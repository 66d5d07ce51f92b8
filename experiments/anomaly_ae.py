"""One-class anomaly detection: an autoencoder trained on one digit, scored on all 10,000 test images.

Protocol: for each normal digit d in 0..9, train on the train split's images of d only (about 6,000) and
score every test image by its reconstruction error (squared error and BCE per image); the other nine digits
are the anomalies. The figure is the AUROC of each run (`anomaly/auroc_squared_error` in eval.json), and the
table is the ten AUROCs with their mean. Net: the seed's 784-500-300-150-100 encoder, a 32-unit code, Adam
1e-3 with a cosine schedule, 50 epochs of 23 steps at batch 256.

    for d in 0 1 2 3 4 5 6 7 8 9; do
      python -m aejax.main --config experiments/anomaly_ae.py --workdir runs/anomaly_ae/$d \\
          --config.data.train_labels="($d,)"
    done

Each run ends with the `recon` and `anomaly` suites (`eval.suites`), written to runs/anomaly_ae/$d/eval.json.
"""
from ml_collections import config_dict

from aejax import config as config_lib


def get_config(arg: str | None = None) -> config_dict.ConfigDict:
  c = config_lib.base_config()
  c.variant = "ae"
  c.latent_dim = 32
  c.model.encoder_widths = (500, 300, 150, 100)
  c.loss = "mse"
  c.data.train_labels = (0,)
  c.learning_rate = 1e-3
  c.lr_schedule = "cosine"
  c.batch_size = 256
  c.num_steps = 1_150  # 50 epochs of the ~5,900 images of one digit.
  c.eval_every = c.checkpoint_every = 575
  c.eval.suites = ("recon", "anomaly")
  c.wandb.tags = ("anomaly",)
  c.wandb.group = "anomaly_ae"
  return config_lib.finalize(c, arg)
