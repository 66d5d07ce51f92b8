"""The digit classifier that judges samples: trained by the one train loop on real MNIST, to its accuracy bar."""
import pytest

from aejax import train
from aejax.errors import ConfigError
from aejax.variants import classifier


def _config(data_dir, manual_dir, **fields):
  c = classifier.default_config()
  c.data.data_dir, c.data.manual_dir = str(data_dir), str(manual_dir)
  c.update_from_flattened_dict({field.replace("__", "."): value for field, value in fields.items()})
  return c


@pytest.mark.optimized
def test_a_short_training_already_classifies_most_digits(data_dir, mnist_manual_dir, tmp_path):
  # 150 steps of batch 128 (a third of an epoch), scored on 2,000 test images.
  config = _config(data_dir, mnist_manual_dir, num_steps=150, data__num_test=2_000)
  summary = train.train_and_evaluate(config, tmp_path)
  assert summary["test/accuracy"] > 0.9


@pytest.mark.slow
def test_the_default_classifier_reaches_99_percent_on_mnist(data_dir, mnist_manual_dir, tmp_path):
  summary = train.train_and_evaluate(_config(data_dir, mnist_manual_dir), tmp_path)
  assert summary["step"] == classifier.default_config().num_steps
  assert summary["test/accuracy"] >= 0.99  # On the whole test split of 10,000 images.


def test_the_classifier_learns_every_class(data_dir, mnist_manual_dir):
  with pytest.raises(ConfigError, match=r"config.data.train_labels=\(3,\): the classifier learns every class"):
    train.check_config(_config(data_dir, mnist_manual_dir, data__train_labels=(3,)))
