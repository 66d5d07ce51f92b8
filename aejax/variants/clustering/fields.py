"""The clustering family's config section (`config.cluster`), its defaults and checks.

Light on purpose (no JAX): experiment files and the launchers import it. DEC and IDEC start from a trained
autoencoder run (`cluster.pretrained_workdir`): its encoder (and, for IDEC, decoder) are fine-tuned, the cluster
centres start at k-means of its codes of the train split.
"""
from ml_collections import config_dict

from aejax.errors import require
from aejax.variants import pretrained

VARIANTS = ("dec", "idec")


def add(c: config_dict.ConfigDict) -> config_dict.ConfigDict:
  """`c` with the family's section added, at its defaults."""
  s = c.cluster = config_dict.ConfigDict()
  s.pretrained_workdir = ""  # The --workdir of a trained autoencoder run (experiments/dec.py:pretrain).
  s.clusters = 10
  s.alpha = 1.0  # The Student-t kernel's degrees of freedom (Xie et al.: 1).
  # The target distribution is recomputed over the whole train split every `update_every` steps (IDEC's T = 140 on
  # MNIST); there, if fewer than `tolerance` of the examples changed cluster since the last time, training has
  # converged: the parameters stay as they are and the run ends at the next logged step (IDEC's tol = 0.001).
  s.update_every = 140
  s.tolerance = 0.001
  s.gamma = 0.1  # IDEC: the clustering loss's weight beside the reconstruction loss (Guo et al.: 0.1).
  s.kmeans_inits = 20  # k-means restarts for the initial centres (Xie et al.: 20).
  s.pixel_baseline = True  # The clustering suite also runs k-means on the pixels (a minute on 70,000 images).
  return c


def validate(c: config_dict.ConfigDict) -> None:
  """Checks `config.cluster` (and the pretrained run's folder); a `ConfigError` on the first bad field."""
  s = c.cluster
  require(isinstance(s.clusters, int) and s.clusters >= 2, "config.cluster.clusters", s.clusters,
          "clustering needs 2 or more clusters, e.g. 10")
  require(s.alpha > 0, "config.cluster.alpha", s.alpha, "use positive degrees of freedom, e.g. 1")
  require(isinstance(s.update_every, int) and s.update_every >= 1, "config.cluster.update_every", s.update_every,
          "use a positive number of steps, e.g. 140")
  require(0 <= s.tolerance < 1, "config.cluster.tolerance", s.tolerance, "use a share in [0, 1), e.g. 0.001")
  require(s.gamma > 0, "config.cluster.gamma", s.gamma, "use a positive weight, e.g. 0.1")
  require(isinstance(s.kmeans_inits, int) and s.kmeans_inits >= 1, "config.cluster.kmeans_inits", s.kmeans_inits,
          "use 1 or more restarts, e.g. 20")
  require(bool(s.pretrained_workdir), "config.cluster.pretrained_workdir", s.pretrained_workdir,
          "DEC starts from a trained autoencoder: train one (python -m aejax.main --config "
          "experiments/dec.py:pretrain --workdir runs/dec_ae) and give --config.cluster.pretrained_workdir=runs/dec_ae")
  pretrained.check_run(s.pretrained_workdir, "config.cluster.pretrained_workdir", c.data, VARIANTS, "DEC run")
