"""`dec` and `idec`: deep embedded clustering (Xie et al. 2016) and its improved form that keeps the decoder (Guo et
al. 2017), on the code of a trained autoencoder run (`cluster.pretrained_workdir`).

The centres start at k-means (`cluster.kmeans_inits` restarts) of the pretrained codes of the whole train split.
Every `cluster.update_every` steps the loop refreshes the target distribution P over the whole train split
(`refresh`: each example's soft assignment q, then p = q² / f renormalised; `assignments`), kept in the train
state's carry with each example's hard assignment; each step then takes its batch's rows of P ('index') and
descends KL(P ‖ Q) in the encoder and the centres (DEC), plus the reconstruction loss with the clustering term
weighted by `cluster.gamma` (IDEC). Once a refresh finds fewer than `cluster.tolerance` of the examples changed
cluster, training has converged: the parameters stay as they are (the steps only evaluate the objective,
'converged' in the logs) and the run ends at the next logged step (`registry.Variant.converged`). Test metrics per
example: 'confidence' (its largest q), 'recon_error'. The clustering suite scores the clusters of the whole train
split (with `data.with_test`, all 70,000 MNIST images) by accuracy and NMI.

A bundle builds one model for its members, and the k-means start draws from `config.seed`: members may not differ
in seed (`registry.Variant.model_uses_seed`).
"""
import dataclasses
import functools
import json
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from ml_collections import config_dict

from aejax import registry
from aejax.data import input_pipeline
from aejax.nn import losses
from aejax.registry import Batch, Config, HParams, Params
from aejax.variants import common, pretrained
from aejax.variants.clustering import assignments, fields, suite


@dataclasses.dataclass(frozen=True, eq=False)
class Start:
  """What DEC starts from, computed once on the host: the pretrained autoencoder and its parameters, the k-means
  centres of its codes of the train split and each example's cluster under them."""
  autoencoder: nn.Module
  params: Any
  centres: np.ndarray  # (clusters, code size)
  labels: np.ndarray  # (train examples,) int32


@functools.lru_cache(maxsize=4)
def _start(data_json: str, workdir: str, clusters: int, inits: int, seed: int) -> Start:
  """`Start` of the train split `data_json` describes (cached: a run builds its model more than once)."""
  from aejax import evaluate  # pylint: disable=g-import-not-at-top  (it imports the train loop, which imports us)
  from sklearn import cluster  # pylint: disable=g-import-not-at-top
  run = evaluate.restore(workdir)
  train, _ = input_pipeline.load(config_dict.ConfigDict(json.loads(data_json)))
  codes = run.encode(train.host_pixels().astype(np.float32) / 255.0)
  codes = codes.reshape(len(codes), -1)
  kmeans = cluster.KMeans(clusters, n_init=inits, random_state=seed).fit(codes)
  return Start(run.model, jax.device_get(run.state.params), kmeans.cluster_centers_.astype(np.float32),
               kmeans.labels_.astype(np.int32))


class DEC(nn.Module):
  """The pretrained autoencoder (its parameters under 'autoencoder') and the cluster centres ('centres')."""
  start: Start
  alpha: float

  def setup(self):
    self.autoencoder = self.start.autoencoder
    self.centres = self.param("centres", lambda key: jnp.asarray(self.start.centres))

  def _code(self, x: jax.Array) -> jax.Array:
    z = self.autoencoder.encode(x)
    return z[0] if isinstance(z, tuple) else z  # A VAE's code is its posterior mean.

  def assignment(self, x: jax.Array) -> jax.Array:
    """q (B, clusters): the soft assignment of each image's code."""
    z = self._code(x)
    return assignments.soft_assignment(z.reshape(len(z), -1), self.centres, self.alpha)

  def __call__(self, x: jax.Array) -> dict[str, jax.Array]:
    """q and the decoder's logits of the code (`init` traces every layer through it)."""
    z = self._code(x)
    return {"q": assignments.soft_assignment(z.reshape(len(z), -1), self.centres, self.alpha),
            "logits": self.autoencoder.decode(z)}


def build_model(config: Config, input_shape: tuple[int, ...]) -> DEC:
  del input_shape
  s = config.cluster
  return DEC(_start(config.data.to_json(), s.pretrained_workdir, s.clusters, s.kmeans_inits, config.seed), s.alpha)


def init(model: DEC, key: jax.Array, example: jax.Array) -> Params:
  """The pretrained parameters and the k-means centres (no random draws)."""
  del key, example
  return {"params": {"autoencoder": model.start.params["params"], "centres": jnp.asarray(model.start.centres)}}


def carry(model: DEC, config: Config, key: jax.Array, example: jax.Array) -> dict:
  """The target distribution (filled by the first refresh), each example's cluster (k-means' at the start), the
  share that changed at the last refresh, and whether training has converged."""
  del key, example
  n = len(model.start.labels)
  return {"p": jnp.zeros((n, config.cluster.clusters), jnp.float32), "labels": jnp.asarray(model.start.labels),
          "changed": jnp.zeros((), jnp.float32), "converged": jnp.zeros((), jnp.bool_)}


def hparams(config: Config) -> dict[str, float]:
  return {"cluster.gamma": float(config.cluster.gamma)}


def refresh(model: DEC, config: Config, state: Any, split: input_pipeline.Split) -> Any:
  """The carry recomputed over the whole train split, in chunks of `eval_batch_size` images."""
  size = min(config.eval_batch_size, split.size)
  chunks = -(-split.size // size)
  ids = jnp.minimum(jnp.arange(chunks * size), split.size - 1).reshape(chunks, size)  # The last chunk repeats.
  q = jax.lax.map(lambda i: model.apply(state.params, split.pixels(i).astype(jnp.float32) / 255.0,
                                         method=model.assignment), ids).reshape(chunks * size, -1)[:split.size]
  labels = jnp.argmax(q, axis=1).astype(jnp.int32)
  changed = assignments.changed_fraction(state.carry["labels"], labels)
  converged = state.carry["converged"] | ((state.step > 0) & (changed < config.cluster.tolerance))
  return state.replace(carry={"p": assignments.target_distribution(q), "labels": labels, "changed": changed,
                              "converged": converged})


def _objective(model: DEC, config: Config, params: Params, *, batch: Batch, p: jax.Array, gamma: jax.Array,
               idec: bool) -> tuple[jax.Array, dict]:
  x = batch["image"]
  out = model.apply(params, x)
  kl = assignments.clustering_loss(p, out["q"])
  if not idec:
    return kl, {"kl": kl}
  # Per pixel, as Guo et al.'s Keras 'mse' averages it, so that γ weighs the two terms as in their paper (aejax's
  # reconstruction losses sum over the pixels).
  recon = common.reconstruction_loss(config, out["logits"], x).mean() / x[0].size
  return recon + gamma * kl, {"kl": kl, "recon": recon}


def train_step(model: DEC, config: Config, state: Any, batch: Batch, key: jax.Array, *,
               idec: bool) -> tuple[Any, dict]:
  """One gradient step on the batch's KL(P ‖ Q) (IDEC: plus reconstruction); once converged, only the objective's
  value (`lax.cond`; a bundle's vmap computes both branches)."""
  del key
  p = state.carry["p"][batch["index"]]
  objective = functools.partial(_objective, model, config, batch=batch, p=p, gamma=state.hparams["cluster.gamma"],
                                idec=idec)

  def step(state):
    (value, metrics), grads = jax.value_and_grad(objective, has_aux=True)(state.params)
    return state.apply_gradients(grads=grads), {"loss": value, **metrics}

  def frozen(state):
    value, metrics = objective(state.params)
    return state.replace(step=state.step + 1), {"loss": value, **metrics}

  state, metrics = jax.lax.cond(state.carry["converged"], frozen, step, state)
  carried = state.carry
  return state, {**metrics, "changed": carried["changed"], "converged": carried["converged"].astype(jnp.float32)}


def evaluate(model: DEC, config: Config, params: Params, batch: Batch, key: jax.Array, hp: HParams) -> dict:
  del key, hp
  x = batch["image"]
  out = model.apply(params, x)
  return {"loss": common.reconstruction_loss(config, out["logits"], x), "confidence": jnp.max(out["q"], axis=1),
          "recon_error": losses.squared_error(jax.nn.sigmoid(out["logits"]), x)}


def images(model: DEC, config: Config, params: Params, batch: Batch, key: jax.Array, hp: HParams) -> dict:
  del key, hp
  x = batch["image"]
  recon = jax.nn.sigmoid(model.apply(params, x)["logits"])
  return {"reconstruction": common.image_grid({"input": x, "reconstruction": recon}, n=config.num_images)}


def validate(config: Config) -> None:
  fields.validate(config)
  pretrained.check_has_code(config.cluster.pretrained_workdir, "config.cluster.pretrained_workdir")


def _variant(idec: bool) -> registry.Variant:
  return registry.Variant(
      build_model=build_model, hparams=hparams, evaluate=evaluate, images=images, init=init, carry=carry,
      train_step=functools.partial(train_step, idec=idec), validate=validate, config_fields=fields.add,
      suites={"clustering": suite.clustering}, refresh=refresh, refresh_every=lambda c: c.cluster.update_every,
      model_uses_seed=True, converged=lambda state: state.carry["converged"])


registry.register("dec", _variant(idec=False))
registry.register("idec", _variant(idec=True))
