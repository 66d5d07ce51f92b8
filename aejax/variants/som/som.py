"""`som`: a self-organising map (Kohonen), rows x cols prototype vectors over the pixels or an autoencoder's codes.

Each step finds every sample's best-matching unit (BMU: the nearest prototype), in chunks of `som.chunk_size`
samples so that the distance matrix is never larger than chunk_size x units, and moves the prototypes:
- 'online': Δw_k = mean_i h(d(bmu_i, k)) (x_i - w_k), the Kohonen rule averaged over the batch (batch_size 1: the
  classic sample-by-sample rule);
- 'batch': Δw_k = Σ_i h(d(bmu_i, k)) x_i / Σ_i h(d(bmu_i, k)) - w_k, the batch SOM's neighbourhood-weighted mean;
  with batch_size the size of the train split, a step is one epoch over it.
The prototypes then move by α(t) Δw, through the run's optimiser (plain SGD at `learning_rate`, which the config
checks), so that bundle members may differ in their rate as in any variant: α(t) is learning_rate times a decay
from 1 to `som.final_rate`, and the neighbourhood radius σ(t) decays from `som.radius` to `som.final_radius`, both
over `num_steps` by `som.decay`. Grids, neighbourhoods and schedules: aejax/variants/som/grids.py.

Inputs: the pixels, or with `som.input_workdir` the codes of a trained autoencoder run, restored as
`aejax.evaluate` restores a run; its parameters ride in the SOM's (frozen, under 'autoencoder'), so a SOM run's
checkpoint holds what its prototypes mean. The initial prototypes come from the train inputs (`som.init`): a
plane through their mean along their first two principal axes (±1 standard deviation across the grid, the first
axis along the longer side), or N(mean, std²) per input dimension; `build_model` reads the train split once on the
host for these statistics (and restores the autoencoder), cached for the process.

Train metrics: `loss` = `quantization_error`, the batch's mean distance to its BMU before the step; `radius` σ(t)
and `rate_scale` (α(t) / learning_rate).

Measures, per test example: `quantization_error` (distance to the BMU), `topographic_error` (1 if the first and
second BMUs are not grid neighbours: 4 of them on a rectangular grid, 6 on a hexagonal one) and
`class_map_accuracy` (the BMU's majority class is the example's). The class map during training counts the train
labels at their BMUs over the steps since the last evaluation (params['hits']); the `som` suite recomputes it from
the train images under the final map, with the purity of the train split and both splits' errors.
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

from aejax import images as images_lib, registry
from aejax.data import catalog, input_pipeline
from aejax.errors import ConfigError
from aejax.registry import Batch, Config, HParams, Params
from aejax.variants import pretrained
from aejax.variants.som import fields, grids, pictures


@dataclasses.dataclass(frozen=True, eq=False)  # Compared (and hashed) by identity: it holds arrays.
class Inputs:
  """What the map's input vectors are: the frozen autoencoder whose codes it maps (None: the pixels) with its
  parameters, and the statistics of the train inputs that initialise the prototypes."""
  dim: int
  mean: np.ndarray
  std: np.ndarray
  axes: np.ndarray | None = None  # (2, dim): the first two principal axes; None unless som.init is 'pca'.
  scales: np.ndarray | None = None  # (2,): the standard deviation along each.
  autoencoder: nn.Module | None = None
  autoencoder_params: Any = None


class SOM(nn.Module):
  """A rows x cols map of prototypes over `inputs`. Its parameters (`init`): 'prototypes' (units, dim), 'hits'
  (units, classes) and, over codes, the frozen 'autoencoder'."""
  rows: int
  cols: int
  hexagonal: bool
  initialisation: str
  inputs: Inputs
  num_classes: int  # Of the data set: the class map's hits per unit and class.

  @property
  def units(self) -> int:
    return self.rows * self.cols


def input_vectors(model: SOM, params: Params, images: jax.Array) -> jax.Array:
  """(B, dim): the map's inputs for images: their pixels, or their autoencoder's codes (a VAE's posterior mean)."""
  autoencoder = model.inputs.autoencoder
  if autoencoder is None:
    return images.reshape(len(images), -1)
  code = autoencoder.apply(params["autoencoder"], images, method=autoencoder.encode)
  code = code[0] if isinstance(code, tuple) else code
  return code.reshape(len(code), -1)


@functools.lru_cache(maxsize=4)
def _inputs(data_json: str, input_workdir: str, pca: bool) -> Inputs:
  """`Inputs` of the train split `data_json` describes (cached: a run builds its model more than once)."""
  train, _ = input_pipeline.load(config_dict.ConfigDict(json.loads(data_json)))
  x = train.host_pixels().astype(np.float32) / 255.0
  autoencoder = params = None
  if input_workdir:
    from aejax import evaluate  # pylint: disable=g-import-not-at-top  (it imports the train loop, which imports us)
    run = evaluate.restore(input_workdir)
    autoencoder, params = run.model, jax.device_get(run.state.params)
    x = run.encode(x)
  return describe(x.reshape(len(x), -1), pca, autoencoder, params)


def describe(x: np.ndarray, pca: bool, autoencoder: nn.Module | None = None, params: Any = None) -> Inputs:
  """`Inputs` of train input vectors `x` (N, D): their mean and standard deviation, and with `pca` their first two
  principal axes and the standard deviation along each."""
  axes = scales = None
  if pca and x.shape[1] < 2:
    raise ConfigError(f"config.som.init='pca': the map's inputs have {x.shape[1]} dimension, and a PCA plane needs 2: "
                      "use --config.som.init=random")
  if pca:  # Once, on the host: scikit-learn's PCA by the eigenvectors of the D x D covariance (N >> D).
    from sklearn import decomposition  # pylint: disable=g-import-not-at-top  (only a PCA start pays its import)
    fitted = decomposition.PCA(n_components=2, svd_solver="covariance_eigh").fit(x)
    axes, scales = fitted.components_.astype(np.float32), np.sqrt(fitted.explained_variance_).astype(np.float32)
  return Inputs(x.shape[1], x.mean(0), x.std(0), axes, scales, autoencoder, params)


def build_model(config: Config, input_shape: tuple[int, ...]) -> SOM:
  """The map, with its inputs' statistics from the train split (and the autoencoder restored, over codes)."""
  del input_shape
  s = config.som
  inputs = _inputs(config.data.to_json(), s.input_workdir, s.init == "pca")
  return SOM(s.rows, s.cols, s.topology == "hexagonal", s.init, inputs, catalog.get(config.data.name).num_classes)


def pca_plane(model: SOM) -> np.ndarray:
  """(units, dim): the mean plus grid coordinates in [-1, 1] times the standard deviation along the first two
  principal axes, the first along the grid's longer side."""
  p = grids.positions(model.rows, model.cols, model.hexagonal)
  span = p.max(0) - p.min(0)
  coords = np.where(span > 0, (p - p.min(0)) / np.maximum(span, 1e-12) * 2 - 1, 0.0)
  if model.rows > model.cols:
    coords = coords[:, ::-1]
  s = model.inputs
  return s.mean + coords @ (s.scales[:, None] * s.axes)


def init(model: SOM, key: jax.Array, example: jax.Array) -> Params:
  """The initial prototypes (`som.init`), no hits, and the frozen autoencoder over codes."""
  del example
  s = model.inputs
  if model.initialisation == "pca":
    prototypes = jnp.asarray(pca_plane(model), jnp.float32)
  else:
    prototypes = s.mean + s.std * jax.random.normal(key, (model.units, s.dim))
  params = {"prototypes": prototypes, "hits": jnp.zeros((model.units, model.num_classes))}
  if s.autoencoder is not None:
    params["autoencoder"] = jax.tree.map(jnp.asarray, s.autoencoder_params)
  return params


def hparams(config: Config) -> dict[str, float]:
  """Named by their config fields, so that bundle members may differ in them."""
  return {"som.radius": config.som.radius, "som.final_radius": config.som.final_radius,
          "som.final_rate": config.som.final_rate}


def schedule(config: Config, hp: HParams, step: jax.Array) -> tuple[jax.Array, jax.Array]:
  """(σ, the rate's fraction of learning_rate) at `step`."""
  s = config.som
  radius = grids.decay(s.decay, hp["som.radius"], hp["som.final_radius"], step, config.num_steps)
  return radius, grids.decay(s.decay, 1.0, hp["som.final_rate"], step, config.num_steps)


def unit_statistics(model: SOM, config: Config, params: Params, batch: Batch, radius: jax.Array) -> dict:
  """Sums over the batch, chunk by chunk: per unit, 'moved' and 'weight' (online: Σ_i h_ik x_i and Σ_i h_ik; batch:
  the sum and count of the samples it wins), 'hits' (its winners' labels counted), and the 'quantization_error'
  summed over the samples."""
  w, kind, online = params["prototypes"], config.som.neighbourhood, config.som.mode == "online"
  parts, valid = grids.chunks({"image": batch["image"], "label": batch["label"]}, config.som.chunk_size)

  def add(totals: dict, chunk: tuple[dict, jax.Array]) -> tuple[dict, None]:
    part, ok = chunk
    ok = ok.astype(jnp.float32)
    x = input_vectors(model, params, part["image"])
    bmu, d2 = grids.best(x, w)
    if online:
      h = grids.neighbourhood(kind, grids.distances_from(bmu, model.rows, model.cols, model.hexagonal), radius)
      h = h * ok[:, None]
      moved, weight = h.T @ x, jnp.sum(h, 0)
    else:
      moved, weight = jax.ops.segment_sum(x * ok[:, None], bmu, model.units), jax.ops.segment_sum(ok, bmu, model.units)
    labels = jax.nn.one_hot(part["label"], model.num_classes) * ok[:, None]
    found = {"moved": moved, "weight": weight, "hits": jax.ops.segment_sum(labels, bmu, model.units),
             "quantization_error": jnp.sum(jnp.sqrt(d2) * ok)}
    return jax.tree.map(jnp.add, totals, found), None

  zeros = {"moved": jnp.zeros_like(w), "weight": jnp.zeros(model.units),
           "hits": jnp.zeros((model.units, model.num_classes)),
           "quantization_error": jnp.zeros(())}
  return jax.lax.scan(add, zeros, (parts, valid))[0]


def train_step(model: SOM, config: Config, state: Any, batch: Batch, key: jax.Array) -> tuple[Any, dict]:
  """One online or batch update of the prototypes (see the module's docstring), and the hits of the class map."""
  del key
  w = state.params["prototypes"]
  radius, rate = schedule(config, state.hparams, state.step)
  stats = unit_statistics(model, config, state.params, batch, radius)
  size = len(batch["image"])
  if config.som.mode == "online":
    move = (stats["moved"] - stats["weight"][:, None] * w) / size
  else:
    distances = grids.grid_distances(model.rows, model.cols, model.hexagonal)
    move = grids.batch_update(stats["moved"], stats["weight"], w, distances, config.som.neighbourhood, radius)
  grads = jax.tree.map(jnp.zeros_like, state.params)
  grads["prototypes"] = -rate * move  # SGD's step is -learning_rate times this.
  new_state = state.apply_gradients(grads=grads)
  hits = jnp.where(state.step % config.eval_every == 0, 0.0, state.params["hits"]) + stats["hits"]
  new_state = new_state.replace(params={**new_state.params, "hits": hits})
  error = stats["quantization_error"] / size
  return new_state, {"loss": error, "quantization_error": error, "radius": radius, "rate_scale": rate}


def per_example(model: SOM, config: Config, params: Params, images: jax.Array) -> dict[str, jax.Array]:
  """Per image, in chunks: its best and second-best units and the quantisation error (distance to the best)."""
  parts, _ = grids.chunks({"image": images}, config.som.chunk_size)

  def one(part: dict) -> dict:
    first, second, error = grids.best_two(input_vectors(model, params, part["image"]), params["prototypes"])
    return {"first": first, "second": second, "quantization_error": error}

  found = jax.lax.map(one, parts)
  return jax.tree.map(lambda v: v.reshape(-1)[:len(images)], found)


def topographic_errors(model: SOM, first: jax.Array, second: jax.Array) -> jax.Array:
  """1.0 where the first and second BMUs are not grid neighbours, else 0.0."""
  apart = grids.pair_distances(first, second, model.rows, model.cols, model.hexagonal)
  return 1.0 - grids.are_neighbours(apart).astype(jnp.float32)


def class_map_correct(hits: jax.Array, first: jax.Array, labels: jax.Array) -> jax.Array:
  """1.0 where the BMU's majority class among `hits` is the label (a unit without hits predicts none)."""
  predicted = jnp.where(jnp.sum(hits, -1) > 0, jnp.argmax(hits, -1), -1)
  return (predicted[first] == labels).astype(jnp.float32)


def evaluate(model: SOM, config: Config, params: Params, batch: Batch, key: jax.Array, hp: HParams) -> dict:
  """Per test example: quantisation and topographic error, and whether the training class map labels it right."""
  del key, hp
  found = per_example(model, config, params, batch["image"])
  return {"quantization_error": found["quantization_error"],
          "topographic_error": topographic_errors(model, found["first"], found["second"]),
          "class_map_accuracy": class_map_correct(params["hits"], found["first"], batch["label"])}


def prototype_images(model: SOM, params: Params, image_shape: tuple[int, ...]) -> jax.Array | None:
  """The prototypes as images: pixels as they are, codes through the autoencoder's decoder (None without one)."""
  autoencoder, w = model.inputs.autoencoder, params["prototypes"]
  if autoencoder is None:
    return w
  if not hasattr(autoencoder, "decode"):
    return None
  return jax.nn.sigmoid(autoencoder.apply(params["autoencoder"], w, method=autoencoder.decode))


def draw_map(model: SOM, params: Params, hits: jax.Array, image_shape: tuple[int, ...],
             prefix: str = "") -> dict[str, images_lib.Grid]:
  """The U-matrix, hit map and class map of `hits`, and the prototypes tiled on the grid, named with `prefix`."""
  distances = grids.grid_distances(model.rows, model.cols, model.hexagonal)
  drawn = pictures.map_pictures(grids.u_matrix(params["prototypes"], distances), hits, model.rows, model.cols,
                                model.hexagonal, prefix)
  tiles = prototype_images(model, params, image_shape)
  if tiles is not None:
    drawn[f"{prefix}prototypes"] = pictures.prototype_tiles(tiles, model.rows, model.cols, image_shape,
                                                            model.hexagonal)
  return drawn


def images(model: SOM, config: Config, params: Params, batch: Batch, key: jax.Array, hp: HParams) -> dict:
  """The map's pictures, its class and hit maps from the hits since the last evaluation."""
  del config, key, hp
  return draw_map(model, params, params["hits"], tuple(batch["image"].shape[1:]))


def som_suite(run: Any) -> tuple[dict[str, float], dict[str, images_lib.Grid]]:
  """The `som` suite: both splits' quantisation and topographic errors; the class map of the train images
  (`eval.num_train` of them) under the final map, its purity on them and its accuracy on the test split; the
  fraction of units that win a train image; and the map's pictures."""
  model, config, params = run.model, run.config, run.state.params
  find = jax.jit(lambda params, x: per_example(model, config, params, x))
  train, test = (jax.device_get(find(params, jnp.asarray(x))) for x in (run.train_images, run.test_images))
  hits = np.zeros((model.units, model.num_classes))
  np.add.at(hits, (train["first"], run.train_labels), 1.0)
  metrics = {"som/purity": float(hits.max(1).sum() / hits.sum()),
             "som/class_map_accuracy": float(np.mean(class_map_correct(hits, test["first"], run.test_labels))),
             "som/units_hit": float(np.mean(hits.sum(1) > 0))}
  for name, found in (("train", train), ("test", test)):
    metrics[f"som/{name}_quantization_error"] = float(np.mean(found["quantization_error"]))
    metrics[f"som/{name}_topographic_error"] = float(np.mean(topographic_errors(model, found["first"],
                                                                                  found["second"])))
  drawn = jax.jit(lambda params, hits: draw_map(model, params, hits, run.test_images.shape[1:], "eval_som_"))
  return metrics, jax.device_get(drawn(params, jnp.asarray(hits, jnp.float32)))


def validate(config: Config) -> None:
  """The family's fields, and an `input_workdir` that is a trained run of an autoencoder with a code."""
  fields.validate(config)
  fields.check_input_workdir(config)
  if config.som.input_workdir:
    pretrained.check_has_code(config.som.input_workdir, "config.som.input_workdir")


registry.register("som", registry.Variant(
    build_model=build_model, hparams=hparams, evaluate=evaluate, images=images, init=init,
    train_step=train_step, validate=validate, config_fields=fields.add, suites={"som": som_suite}))
