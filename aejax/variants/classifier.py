"""`classifier`: a digit classifier, the judge of the samples suite (aejax/evaluation/judge.py).

A small conv net (3x3 conv + relu + 2x2 max-pool per `model.conv_features`, then a Dense layer of `latent_dim`
relu units, the penultimate features the suite measures distances in, then the class logits) or, with
`model.kind='mlp'`, Dense layers of `model.encoder_widths`. Loss: softmax cross-entropy; test metrics: `accuracy`
and the cross-entropy. It trains through the one train loop like any variant, so its checkpoints, resume and logs
are those of any run: `default_config()` is what the samples suite trains once per data set (and
experiments/classifier.py trains on its own).
"""
import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from ml_collections import config_dict

from aejax import config as config_lib, registry
from aejax.data import catalog
from aejax.errors import ConfigError
from aejax.nn import models
from aejax.registry import Batch, Config, HParams, Params


class Classifier(nn.Module):
  """Images -> penultimate features (`features`) -> class logits."""
  backbone: nn.Module
  width: int
  num_classes: int

  def setup(self):
    self.hidden = nn.Dense(self.width)
    self.head = nn.Dense(self.num_classes)

  def features(self, x: jax.Array) -> jax.Array:
    """The penultimate layer's activations (B, width): the space the samples suite compares images in."""
    return nn.relu(self.hidden(self.backbone(x)))

  def __call__(self, x: jax.Array) -> jax.Array:
    return self.head(self.features(x))


def default_config() -> config_dict.ConfigDict:
  """The classifier the samples suite trains on each data set: conv 16-32 (3x3, 2x2 max-pool), 128 features, Adam
  at 3e-3 decayed by a cosine, batch 128, on the whole train split in grey levels, for `eval.classifier_steps`
  steps (4 epochs of MNIST: above 99 % test accuracy at the least CPU time of the settings tried)."""
  c = config_lib.base_config()
  c.variant = "classifier"
  c.model.kind = "conv"
  c.model.conv_features = (16, 32)
  c.latent_dim = 128
  c.learning_rate = 3e-3
  c.lr_schedule = "cosine"
  c.batch_size = 128
  c.num_steps = c.eval.classifier_steps
  c.log_every = 117
  c.eval_every = c.checkpoint_every = 936  # Every 2 epochs.
  c.wandb.mode = "disabled"
  c.wandb.tags = ("classifier",)
  return c


def build_model(config: Config, input_shape: tuple[int, ...]) -> Classifier:
  backbone, _ = models.build_backbone(config, input_shape)
  return Classifier(backbone, config.latent_dim, catalog.get(config.data.name).num_classes)


def hparams(config: Config) -> dict[str, float]:
  del config
  return {}


def _cross_entropy(model: Classifier, params: Params, batch: Batch) -> tuple[jax.Array, jax.Array]:
  """Per example: the softmax cross-entropy of the labels (nats) and whether the top class is the label."""
  logits = model.apply(params, batch["image"])
  labels = batch["label"]
  return (optax.softmax_cross_entropy_with_integer_labels(logits, labels),
          (jnp.argmax(logits, axis=-1) == labels).astype(jnp.float32))


def loss(model: Classifier, config: Config, params: Params, batch: Batch, key: jax.Array, hp: HParams,
         step: jax.Array) -> tuple[jax.Array, dict]:
  del config, key, hp, step
  cross_entropy, correct = _cross_entropy(model, params, batch)
  return cross_entropy.mean(), {"accuracy": correct.mean()}


def evaluate(model: Classifier, config: Config, params: Params, batch: Batch, key: jax.Array, hp: HParams) -> dict:
  del config, key, hp
  cross_entropy, correct = _cross_entropy(model, params, batch)
  return {"loss": cross_entropy, "accuracy": correct}


def images(model: Classifier, config: Config, params: Params, batch: Batch, key: jax.Array, hp: HParams) -> dict:
  """None: a classifier's output is its accuracy."""
  del model, config, params, batch, key, hp
  return {}


def validate(config: Config) -> None:
  if config.model.spatial_code:
    raise ConfigError("config.model.spatial_code=True: the classifier ends in Dense layers; use "
                      "--config.model.spatial_code=False")
  if tuple(config.data.train_labels):
    raise ConfigError(f"config.data.train_labels={tuple(config.data.train_labels)!r}: the classifier learns every "
                      "class; use --config.data.train_labels='()'")


registry.register("classifier", registry.Variant(build_model=build_model, hparams=hparams, loss=loss,
                                                 evaluate=evaluate, images=images, validate=validate))
