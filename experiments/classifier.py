"""The digit classifier that judges generative models' samples (the samples suite trains it once per data set and
caches it; this file trains the same one on its own): conv 16-32, 128 features, softmax cross-entropy.

    python -m aejax.main --config experiments/classifier.py --workdir runs/classifier
"""
from ml_collections import config_dict

from aejax import config as config_lib
from aejax.variants import classifier


def get_config(arg: str | None = None) -> config_dict.ConfigDict:
  return config_lib.finalize(classifier.default_config(), arg)
