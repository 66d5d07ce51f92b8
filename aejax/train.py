"""The one train loop (`train_population`): one jitted step `(state, split, perm, key) -> (state, metrics)` that
gathers its batch on device (`make_data_step` around a variant's `(state, batch, key)` step), for a variant that
needs it a refresh of its carry from the whole train split every few steps (`make_population_refresh`), evaluation,
checkpoints, logs, and the guards every run and bundle gets (memory, non-finite values, signals).

A single run is a population of one, compiled without a member axis; a bundle of sweep members is stacked on a
leading axis and vmapped (aejax/bundle.py chooses and checks them). Nothing here knows a variant: the model,
loss, evaluation and pictures come from `aejax.registry`.
"""
import contextlib
import errno
import functools
import math
import os
import pathlib
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax.training import train_state
from jax.sharding import Mesh
from ml_collections import config_dict
from tqdm import tqdm

import aejax.variants.all  # noqa: F401  (registers the variants)
from aejax import checkpoint, config as config_lib, locks, parallel, registry, signals, writers
from aejax.data import catalog, input_pipeline
from aejax.errors import ConfigError, check_folder
from aejax.evaluation import selection
from aejax.nn import convolution


class TrainState(train_state.TrainState):
  """flax's TrainState plus the variant's scalar hyper-parameters, carried as arrays, and what a variant's own
  step carries from step to step beside its parameters (`registry.Variant.carry`: persistent Gibbs chains)."""
  hparams: dict[str, jax.Array]
  carry: Any = flax.struct.field(default_factory=dict)


Metrics = dict[str, jax.Array]
Splits = tuple[input_pipeline.Split, input_pipeline.Split | None]  # An evaluated split and the one paired with it.
StepFn = Callable[[TrainState, registry.Batch, jax.Array], tuple[TrainState, Metrics]]  # (state, batch, key)
DataStepFn = Callable[[TrainState, input_pipeline.Split, jax.Array, jax.Array],
                      tuple[TrainState, Metrics]]  # (state, split, perm, key)


def configure_jax(directory: str) -> None:
  """JAX's settings for a command that trains: the persistent compilation cache in `directory` ('' leaves it off),
  so that a sweep's processes, which run programs of the same shapes, compile each once; and no Python source
  locations in the programs JAX lowers (0.2 s of a warm start's 2.7 on a 2-core CPU: `benchmarks/cold_start.py`),
  unless JAX_TRACEBACK_IN_LOCATIONS_LIMIT asks for them (op source lines in XLA dumps and profiles). The cache
  key leaves locations out either way."""
  if "JAX_TRACEBACK_IN_LOCATIONS_LIMIT" not in os.environ:
    jax.config.update("jax_traceback_in_locations_limit", 0)
  if directory:
    jax.config.update("jax_compilation_cache_dir", os.path.expanduser(directory))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


def make_optimizer(config: config_dict.ConfigDict) -> optax.GradientTransformation:
  """The optax optimiser and learning-rate schedule that `config` names."""
  lr = config.learning_rate
  if config.lr_schedule == "cosine":
    schedule = optax.warmup_cosine_decay_schedule(0.0, lr, config.warmup_steps, config.num_steps)
  else:
    schedule = optax.join_schedules(
        [optax.linear_schedule(0.0, lr, config.warmup_steps), optax.constant_schedule(lr)], [config.warmup_steps])
  if config.optimizer == "adamw":
    tx = optax.adamw(schedule, config.adam_b1, config.adam_b2, weight_decay=config.weight_decay)
  elif config.optimizer == "sgd":
    tx = optax.sgd(schedule, momentum=config.momentum or None)
    if config.weight_decay > 0:  # An L2 cost on the weight matrices, not the biases (Hinton's practical guide).
      weights_only = lambda params: jax.tree.map(lambda p: p.ndim > 1, params)  # noqa: E731
      tx = optax.chain(optax.add_decayed_weights(config.weight_decay, mask=weights_only), tx)
  else:
    tx = optax.adam(schedule, config.adam_b1, config.adam_b2)
  if config.grad_clip_norm > 0:
    tx = optax.chain(optax.clip_by_global_norm(config.grad_clip_norm), tx)
  if config.on_nonfinite == "skip":  # optax leaves params and optimiser state as they were, and counts.
    tx = optax.apply_if_finite(tx, max_consecutive_errors=2**31 - 1)
  return tx


def create_state(variant: registry.Variant, model: nn.Module, config: config_dict.ConfigDict,
                 key: jax.Array, example: jax.Array) -> TrainState:
  """Fresh parameters and optimiser state (call under `jax.jit`: eager init compiles every small op)."""
  params = variant.init(model, key, example)
  hparams = {k: jnp.asarray(v, jnp.float32) for k, v in variant.hparams(config).items()}
  tx = make_optimizer(config) if variant.optimizer is None else variant.optimizer(config, make_optimizer)
  return TrainState.create(apply_fn=model.apply, params=params, tx=tx, hparams=hparams,
                           carry=variant.carry(model, config, jax.random.fold_in(key, 1), example))


def init_state(variant: registry.Variant, model: nn.Module, config: config_dict.ConfigDict,
               key: jax.Array, example: jax.Array) -> TrainState:
  """`create_state` compiled once with XLA's cheapest optimisation level.

  Initialisation runs once, so compile time is what counts: eagerly every small op compiles on its
  own, and at the default level the random initialisers alone take seconds to compile on a CPU.
  """
  return compile_cheaply(functools.partial(create_state, variant, model, config), key, example)


CHEAPEST = {"xla_backend_optimization_level": 0}  # XLA's options for code that runs once (initialisation).


def compile_cheaply(fn: Callable[..., Any], *args: Any) -> Any:
  """`jax.jit(fn)(*args)` compiled at XLA's cheapest optimisation level: for code that runs once (initialisation)."""
  return jax.jit(fn).lower(*args).compile(compiler_options=CHEAPEST)(*args)


def all_finite(*trees: Any) -> jax.Array:
  """True if every array in `trees` is finite (no NaN, no ±inf)."""
  return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(trees)]))


def make_train_step(variant: registry.Variant, model: nn.Module, config: config_dict.ConfigDict) -> StepFn:
  """The pure step `(state, batch, key) -> (state, metrics)`: the variant's own, or one gradient step on its loss.

  Its metrics carry 'finite': 1 if the step's metrics, gradients (a variant's own step: the parameters it
  returns) and new parameters are all finite, else 0; the loop reads it with the metrics it fetches anyway.
  """
  if variant.train_step is not None:
    own_step = functools.partial(variant.train_step, model, config)

    def train_step(state: TrainState, batch: registry.Batch, key: jax.Array) -> tuple[TrainState, Metrics]:
      state, metrics = own_step(state, batch, key)
      return state, {**metrics, "finite": all_finite(metrics, state.params).astype(jnp.float32)}

    return train_step

  def gradient_step(state: TrainState, batch: registry.Batch, key: jax.Array) -> tuple[TrainState, Metrics]:
    def loss_fn(params):
      return variant.loss(model, config, params, batch, key, state.hparams, state.step)
    (loss, metrics), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    state = state.apply_gradients(grads=grads)
    metrics = {"loss": loss, **metrics}
    return state, {**metrics, "finite": all_finite(metrics, grads, state.params).astype(jnp.float32)}

  return gradient_step


def _sharded_over(mesh: Mesh | None):
  """The batch constraint of `mesh` (see aejax/parallel.py), or the identity without one."""
  return (lambda tree: tree) if mesh is None else functools.partial(parallel.shard_batch, mesh=mesh)


def _split_examples(batch: registry.Batch, sharded: Callable[[Any], Any]) -> registry.Batch:
  """`batch` with its per-example arrays split over the devices; its pixel statistics (one per pixel) whole."""
  per_pixel = {k: v for k, v in batch.items() if k.startswith("pixel_")}
  return {**sharded({k: v for k, v in batch.items() if k not in per_pixel}), **per_pixel}


def make_data_step(train_step: StepFn, split: input_pipeline.Split, config: config_dict.ConfigDict,
                   mesh: Mesh | None = None) -> DataStepFn:
  """Wraps `train_step` so the batch of `config.batch_size` is gathered on device from `split`, in the order
  `perm` gives, and Bernoulli-sampled when `config.data.binarize` is 'dynamic'.

  With `mesh`, each device gathers its slice of the batch and XLA averages the gradients over them.
  """
  batch_size, dynamic_binarize = config.batch_size, config.data.binarize == "dynamic"
  steps_per_epoch = split.size // batch_size
  sharded = _sharded_over(mesh)

  def step(state: TrainState, split: input_pipeline.Split, perm: jax.Array,
           key: jax.Array) -> tuple[TrainState, Metrics]:
    start = (state.step % steps_per_epoch) * batch_size
    batch_key, step_key = jax.random.split(jax.random.fold_in(key, state.step))
    indices = sharded(jax.lax.dynamic_slice(perm, (start,), (batch_size,)))
    batch = _split_examples(input_pipeline.make_batch(split, indices, batch_key, dynamic_binarize), sharded)
    return train_step(state, batch, step_key)

  return step


def make_eval_sums(variant: registry.Variant, model: nn.Module, config: config_dict.ConfigDict,
                   split: input_pipeline.Split, mesh: Mesh | None = None
                   ) -> tuple[Callable[[TrainState, Splits, jax.Array, jax.Array], Metrics], int]:
  """The pure `(state, (split, paired), index, key) -> {name: sum over batch index}` of the variant's evaluation,
  and the number of fixed-size batches that cover `split` (the last one padded and masked).

  With `mesh`, each batch is split over its devices, its size rounded up to a multiple of their number. With a
  `paired` split (the train split; None for none), each batch also holds as many of its images, 'train_image',
  the i-th test image beside the i-th train image, for metrics that compare the two (an RBM's free-energy gap);
  XLA drops the gather for a variant that does not read them.
  """
  batch_size = min(config.eval_batch_size, split.size)
  if mesh is not None:
    batch_size = parallel.round_up(batch_size, mesh)
  sharded = _sharded_over(mesh)

  def batch_sums(state: TrainState, splits: Splits, index: jax.Array, key: jax.Array) -> Metrics:
    split, paired = splits
    ids = sharded(index * batch_size + jnp.arange(batch_size))
    valid = (ids < split.size).astype(jnp.float32)
    batch = {**input_pipeline.make_batch(split, jnp.minimum(ids, split.size - 1), key, False), "valid": valid}
    if paired is not None:
      train_batch = input_pipeline.make_batch(paired, ids % paired.size, jax.random.fold_in(key, index),
                                              config.data.binarize == "dynamic")
      batch["train_image"] = train_batch["image"]
    batch = _split_examples(batch, sharded)
    per_example = variant.evaluate(model, config, state.params, batch, jax.random.fold_in(key, index), state.hparams)
    return {k: jnp.sum(v * valid) for k, v in per_example.items()}

  return batch_sums, -(-split.size // batch_size)


def free_memory() -> int | None:
  """Bytes the first local device can still allocate: the CPU's available memory (Linux), an accelerator's limit
  less what is in use; None where that is not known."""
  device = jax.local_devices()[0]
  if device.platform != "cpu":
    stats = device.memory_stats() or {}
    return stats["bytes_limit"] - stats.get("bytes_in_use", 0) if "bytes_limit" in stats else None
  try:
    with open("/proc/meminfo") as meminfo:
      return next(int(line.split()[1]) * 1024 for line in meminfo if line.startswith("MemAvailable:"))
  except (OSError, StopIteration):
    return None


def nbytes(tree: Any) -> int:
  """Bytes of the arrays (or `jax.ShapeDtypeStruct`s) in `tree` on one device: its shard of each, where sharded."""
  return sum(math.prod(x.sharding.shard_shape(x.shape) if getattr(x, "sharding", None) is not None else x.shape)
             * x.dtype.itemsize for x in jax.tree.leaves(tree))


def compile_within_memory(fn: Any, args: tuple, resident: int, field: str, value: Any, fix: str) -> Callable[..., Any]:
  """The jitted `fn` compiled for `args` (arrays, or `jax.ShapeDtypeStruct`s of arrays not yet allocated); a
  `ConfigError` naming `field` if `resident` bytes (the train state, allocated or not) and what one call needs
  beyond its inputs are more than the device has free, so that a size too large for the machine (a huge code,
  batch) ends with one line before any work instead of a hang or a kill by the OS mid-run."""
  compiled = fn.lower(*args).compile()
  stats, free = compiled.memory_analysis(), free_memory()
  if stats is not None and free is not None:
    need = resident + stats.temp_size_in_bytes + stats.output_size_in_bytes - stats.alias_size_in_bytes
    if need > free:
      raise ConfigError(f"{field}={value!r}: training needs {need / 2**20:,.0f} MiB (the train state "
                        f"{resident / 2**20:,.0f} MiB), more than the {free / 2**20:,.0f} MiB free here: {fix}")
  return compiled


def make_evaluate(variant: registry.Variant, model: nn.Module, config: config_dict.ConfigDict,
                  split: input_pipeline.Split, state: TrainState, mesh: Mesh | None = None
                  ) -> Callable[[TrainState, jax.Array], dict[str, float]]:
  """A function `(state, key) -> {name: mean over the split}` that runs the variant's evaluation in fixed batches,
  compiled now for states like `state` (a `ConfigError` if a batch does not fit in memory)."""
  batch_sums, num_batches = make_eval_sums(variant, model, config, split, mesh)
  batch_sums = compile_within_memory(jax.jit(batch_sums), (state, (split, None), 0, jax.random.key(0)), nbytes(state),
                                     "config.eval_batch_size", config.eval_batch_size,
                                     "use a smaller eval_batch_size, or a smaller model (latent_dim, widths)")
  wait_each = mesh is not None and parallel.sync_each_step(mesh)

  def evaluate(state: TrainState, key: jax.Array) -> dict[str, float]:
    totals = sum_batches(batch_sums, state, (split, None), key, num_batches, wait_each)
    return {k: float(v) / split.size for k, v in totals.items()}

  return evaluate


def sum_batches(batch_sums: Callable[..., Metrics], state: TrainState, splits: Splits, key: jax.Array,
                num_batches: int, wait_each: bool) -> dict[str, np.ndarray]:
  """The evaluation's sums over all `num_batches` batches, on the host; `wait_each` waits for each batch before
  dispatching the next (see `parallel.sync_each_step`)."""
  sums = []
  for i in range(num_batches):
    sums.append(batch_sums(state, splits, i, key))
    if wait_each:
      jax.block_until_ready(sums[-1])
  return jax.device_get(jax.tree.map(lambda *xs: sum(xs), *sums))


def check_batch_fits(config: config_dict.ConfigDict, split: input_pipeline.Split) -> None:
  """A `ConfigError` if one batch needs more images than the train split holds."""
  if config.batch_size > split.size:
    more = f", or more images (config.data.num_train={config.data.num_train})" if config.data.num_train else ""
    raise ConfigError(f"config.batch_size={config.batch_size} is larger than the {split.size} training "
                      f"{'rows' if split.is_ratings else 'images'} "
                      f"of {config.data.name!r}: use a batch size of at most {split.size}{more}")


def resume(ckpts: checkpoint.Checkpoints, state: Any, config: config_dict.ConfigDict, workdir: pathlib.Path,
           write_config: bool = True) -> Any:
  """`state` from the run's latest checkpoint (unchanged if none), then `config` saved as its config.json.

  A run with a checkpoint may change only the fields `config.RESUMABLE_FIELDS` and `RESUMABLE_SECTIONS` name:
  another change (β, the learning rate, a width) ends the run with one line naming the changed fields, and the
  run's config.json stays as it was, so that it always describes what trained the checkpoints.
  """
  changed = config_lib.changed_fields(workdir / "config.json", config)
  if ckpts.latest_step is not None and ckpts.latest_step > config.num_steps:
    raise ConfigError(f"--workdir={str(workdir)!r} holds checkpoint {ckpts.latest_step}, past config.num_steps="
                      f"{config.num_steps}: a run cannot be shortened; rerun with num_steps >= {ckpts.latest_step}, "
                      "or use a new --workdir")
  if changed and ckpts.latest_step is not None:
    raise ConfigError(f"--workdir={str(workdir)!r} was trained with other values (changed: {'; '.join(changed)}): "
                      "rerun it with the values it was started with, or use a new --workdir for this config")
  try:
    state = ckpts.restore_latest(state)  # Skips damaged steps with one line; a ConfigError if none is sound.
  except checkpoint.OtherModel as e:
    raise ConfigError(f"--workdir={str(workdir)!r} holds checkpoints of another model: use a new --workdir for "
                      "this config, or the values the run was started with") from e
  if write_config:
    writers.write_atomically(workdir / "config.json", config.to_json_best_effort(indent=2))
  return state


def check_config(config: config_dict.ConfigDict) -> registry.Variant:
  """The config's variant, once every check a run makes before any work has passed: the shared fields, the
  family's own sections there, the variant's checks, and the evaluation suites it names (run after training: one
  that cannot run fails now)."""
  config_lib.validate(config)
  variant = registry.get(config.variant)
  base = config_lib.flatten(config_lib.base_config())
  missing = sorted(set(config_lib.flatten(variant.config_fields(config_lib.base_config()))) - set(base)
                   - set(config_lib.flatten(config)))
  if missing:
    sections = ", ".join(sorted({f"config.{field.rpartition('.')[0]}" for field in missing}))
    raise ConfigError(f"config.variant={config.variant!r} reads {sections}, which this config lacks: add its "
                      f"family's fields to the config file (e.g. c = {variant.config_fields.__module__}."
                      f"{variant.config_fields.__name__}(c)), or start from an experiments/ file of that variant")
  if catalog.is_ratings(config.data.name) and "ratings" not in variant.config_fields(config_lib.base_config()).data:
    catalog.image_shape(config.data.name)  # A ratings data set for an image variant: says which variants read it.
  variant.validate(config)
  if config.eval.suites:
    selection.select(config, config.eval.suites)
  return variant


class Diverged(ConfigError):
  """A run (or bundle members) met a non-finite loss, gradient or parameter and stopped, its last finite
  checkpoint kept."""


# A population is what the one training loop trains: a single run (one config, compiled without a member axis, so
# nothing costs what a bundle would), or a bundle of sweep members stacked on a leading axis and vmapped (see
# aejax/bundle.py: the members differ only in scalar hyper-parameters, learning rate and seed).


def _scaled(tx: optax.GradientTransformation, rate: jax.Array) -> optax.GradientTransformation:
  """`tx` with its updates multiplied by `rate`; the same state."""

  def update(grads, state, params=None):
    updates, state = tx.update(grads, state, params)
    return jax.tree.map(lambda u: rate * u, updates), state

  return optax.GradientTransformation(tx.init, update)


def member(tree: Any, k: int) -> Any:
  """Member `k` of a stacked pytree (a bundle's state, metrics or pictures)."""
  return jax.tree.map(lambda x: x[k], tree)


def stack(trees: list[Any]) -> Any:
  """The trees stacked on a new leading (member) axis."""
  return jax.tree.map(lambda *xs: jnp.stack(xs), *trees)


def split_members(tree: Any, mesh: Mesh) -> Any:
  """`tree`'s stacked arrays split over `mesh`'s 'members' axis, padded to a multiple of its device count with
  copies of member 0: dummies, which train alongside and whose results are never read."""

  def pad(x: jax.Array) -> jax.Array:
    return jnp.concatenate([x, jnp.repeat(x[:1], parallel.round_up(len(x), mesh) - len(x), axis=0)])

  return jax.jit(lambda tree: jax.tree.map(pad, tree), out_shardings=parallel.member_sharded(mesh))(tree)


def stacked_base(configs: list[config_dict.ConfigDict]) -> config_dict.ConfigDict:
  """The config a bundle's program is built from: member 0's, at learning rate 1 (each member's rate scales its
  updates: every optimiser and schedule of `make_optimizer` is proportional to the rate, so this is the member's
  own optimiser, with the same state, and checkpoints are interchangeable with single runs)."""
  base = configs[0].copy_and_resolve_references()
  base.learning_rate = 1.0
  return base


def member_inputs(variant: registry.Variant, configs: list[config_dict.ConfigDict], stacked: bool,
                  mesh: Mesh | None = None) -> tuple[jax.Array, dict[str, jax.Array], jax.Array | None]:
  """The members' seeds, hyper-parameters and learning rates: scalars (rates None) for a single run; stacked and,
  with `mesh`, padded and split over its members for a bundle."""
  seeds = [c.seed for c in configs]
  hparams = [{k: jnp.asarray(v, jnp.float32) for k, v in variant.hparams(c).items()} for c in configs]
  if not stacked:
    return jnp.asarray(seeds[0]), hparams[0], None
  tree = (jnp.asarray(seeds), stack(hparams), jnp.asarray([c.learning_rate for c in configs], jnp.float32))
  return split_members(tree, mesh) if mesh is not None else tree


def _lift(fn: Callable[..., Any], stacked: bool, in_axes: tuple) -> Callable[..., Any]:
  """`fn` vmapped over the member axis of the arguments `in_axes` marks 0, for a bundle; `fn` itself otherwise."""
  return jax.vmap(fn, in_axes=in_axes) if stacked else fn


def make_keys(seeds: jax.Array, stacked: bool) -> list[jax.Array]:
  """Each member's init, train, data, eval and image keys, split from its seed."""
  keys = _lift(lambda seed: jax.random.split(jax.random.key(seed), 5), stacked, (0,))(seeds)
  return [keys[..., i] for i in range(5)]


def make_create(variant: registry.Variant, model: nn.Module, base: config_dict.ConfigDict,
                input_shape: tuple[int, ...], stacked: bool) -> Callable[[jax.Array, dict], TrainState]:
  """The pure `(init keys, hparams) -> fresh state(s)` of the population."""
  example = jnp.zeros((1, *input_shape), jnp.float32)
  return _lift(lambda key, hp: create_state(variant, model, base, key, example).replace(hparams=hp), stacked, (0, 0))


def make_population_step(variant: registry.Variant, model: nn.Module, base: config_dict.ConfigDict,
                         split: input_pipeline.Split, mesh: Mesh, stacked: bool) -> Callable[..., Any]:
  """The jitted `(states, rates, split, perms, train keys) -> (states, metrics)` (the states donated): a single
  run's data step over `mesh`'s data axis (rates None), or a bundle's, vmapped over its members, each member's
  updates scaled by its rate, the outputs split over `mesh`'s 'members' axis as the inputs."""
  data_step = make_data_step(make_train_step(variant, model, base), split, base, None if stacked else mesh)
  if stacked:
    def step(state, rate, split, perm, key):
      new, metrics = data_step(state.replace(tx=_scaled(state.tx, rate)), split, perm, key)
      return new.replace(tx=state.tx), metrics

    step = jax.vmap(step, in_axes=(0, 0, None, 0, 0))
    sharding = parallel.member_sharded(mesh)
  else:
    step = lambda state, rate, split, perm, key: data_step(state, split, perm, key)  # noqa: E731
    sharding = parallel.replicated(mesh)
  return jax.jit(step, donate_argnums=0, out_shardings=sharding, compiler_options=convolution.compiler_options(base))


def make_population_refresh(variant: registry.Variant, model: nn.Module, base: config_dict.ConfigDict,
                            mesh: Mesh, stacked: bool) -> Callable[..., Any] | None:
  """The jitted `(states, split) -> states` of the variant's `refresh` (vmapped over a bundle's members), or None
  for a variant with nothing to refresh."""
  if variant.refresh is None or variant.refresh_every(base) <= 0:
    return None
  refresh = functools.partial(variant.refresh, model, base)
  if stacked:
    refresh = jax.vmap(refresh, in_axes=(0, None))
  sharding = parallel.member_sharded(mesh) if stacked else parallel.replicated(mesh)
  return jax.jit(refresh, donate_argnums=0, out_shardings=sharding)


def make_population_converged(variant: registry.Variant, stacked: bool) -> Callable[..., Any] | None:
  """The jitted `states -> bool (per member)` of the variant's stopping rule, or None for a variant without one."""
  if variant.converged is None:
    return None
  return jax.jit(_lift(variant.converged, stacked, (0,)))


def all_converged(converged: list[bool], alive: list[bool]) -> bool:
  """Whether a population ends by its learners' stopping rule: some member is alive, and every live one has
  converged (a diverged member neither holds the others back nor ends them)."""
  return any(alive) and all(done for done, live in zip(converged, alive) if live)


def _per_member(tree: Any, n: int, stacked: bool) -> list[Any]:
  """A host tree of the population split into its `n` members' trees (a bundle's padding dummies left out)."""
  return [member(tree, k) for k in range(n)] if stacked else [tree]


def _window_row(rows: list[Metrics], steps: int) -> dict[str, float]:
  """The logged means of a member's first `steps` train rows, how many steps they are, and how many of them were
  not finite (their updates skipped: `on_nonfinite='skip'`)."""
  rows = rows[:steps]
  return {**{f"train/{k}": float(np.mean([row[k] for row in rows])) for k in rows[0] if k != "finite"},
          "train/steps": steps, "train/nonfinite": int(sum(row["finite"] == 0 for row in rows))}


def _nonfinite_message(row: Metrics) -> str:
  """What was not finite in a step's metrics row."""
  bad = [f"train/{k}={float(v)}" for k, v in row.items() if k != "finite" and not np.isfinite(v)]
  return ", ".join(bad) if bad else "its gradients or new parameters"


def train_population(configs: list[config_dict.ConfigDict], workdirs: list[str | pathlib.Path],
                     stacked: bool) -> list[dict[str, Any]]:
  """Trains `configs[k]` in `workdirs[k]` for every k, resuming from their checkpoints, and returns each one's
  summary: one config unstacked (`stacked` False, a run), or several as one vmapped program (a bundle).

  Before any buffer is allocated the train and evaluation steps are compiled against the state's shapes and
  their memory checked. A signal checkpoints every member and raises `signals.Interrupted`. A member whose
  loss, gradients or parameters stop being finite stops there (never checkpointed again, so its last finite
  checkpoint is kept) and the others go on; `Diverged` is raised at the end, after the others' summaries. A variant
  with a stopping rule (`registry.Variant.converged`) ends the run at the first logged step where every live member
  has met it, evaluated and checkpointed there.
  """
  variants = [check_config(c) for c in configs]
  variant, n = variants[0], len(configs)
  base = stacked_base(configs) if stacked else configs[0]
  mesh = parallel.member_mesh() if stacked else parallel.data_mesh()
  if not stacked:
    parallel.check_batch_size(base.batch_size, mesh)
  sharding = parallel.member_sharded(mesh) if stacked else parallel.replicated(mesh)
  workdirs = [pathlib.Path(w) for w in workdirs]
  for workdir in workdirs:
    check_folder(workdir, "member workdir" if stacked else "--workdir")
  second = variant.second_data(base) if variant.second_data is not None else None
  train_split, test_split = parallel.replicate(input_pipeline.load_domains(base.data, second), mesh)
  check_batch_fits(base, train_split)
  input_shape = train_split.image_shape
  model = variant.build_model(base, input_shape)

  seeds, hparams, rates = member_inputs(variant, configs, stacked, mesh)
  init_keys, train_keys, data_keys, eval_keys, image_keys = jax.jit(
      functools.partial(make_keys, stacked=stacked), out_shardings=sharding)(seeds)
  init = jax.jit(make_create(variant, model, base, input_shape, stacked)).lower(init_keys, hparams)  # Traced once.
  shapes = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding), init.out_info)
  permute = jax.jit(_lift(lambda key, epoch: input_pipeline.epoch_permutation(key, epoch, train_split.size), stacked,
                          (0, None)), out_shardings=sharding)
  steps_per_epoch = train_split.size // base.batch_size
  primary = jax.process_index() == 0
  for workdir in workdirs:
    workdir.mkdir(parents=True, exist_ok=True)
  with contextlib.ExitStack() as cleanup:
    cleanup.enter_context(_disk_full_is_one_line(workdirs[0]))  # Entered first: it sees what the others raise.
    if primary:  # The other processes of a multi-process run write nothing.
      for workdir in workdirs:
        cleanup.enter_context(locks.hold(workdir))
    ckpts = [cleanup.enter_context(contextlib.closing(checkpoint.Checkpoints(w, c.keep_checkpoints)))
             for c, w in zip(configs, workdirs)]
    state_bytes = nbytes(shapes)
    train_step = make_population_step(variant, model, base, train_split, mesh, stacked)
    refresh = make_population_refresh(variant, model, base, mesh, stacked)
    converged = make_population_converged(variant, stacked)
    ended = [ck.latest_step is not None and (ck.latest_step >= base.num_steps or writers.is_finished(
        w, base.num_steps, evaluated=False)) for ck, w in zip(ckpts, workdirs)]  # Finished, or converged.
    if not all(ended):  # Else nothing to train.
      train_step = compile_within_memory(
          train_step, (shapes, rates, train_split, permute(data_keys, 0), train_keys), state_bytes,
          "config.batch_size", base.batch_size, "use a smaller batch_size, or a smaller model (latent_dim, widths)")
    signals.raise_if_signalled()
    batch_sums, num_batches = make_eval_sums(variant, model, base, test_split, None if stacked else mesh)
    eval_splits = (test_split, None if train_split.is_ratings else train_split)  # Ratings rows pair with nothing.
    batch_sums = compile_within_memory(
        jax.jit(_lift(batch_sums, stacked, (0, None, None, 0))), (shapes, eval_splits, 0, eval_keys), state_bytes,
        "config.eval_batch_size", base.eval_batch_size, "use a smaller eval_batch_size, or a smaller model "
        "(latent_dim, widths)")
    signals.raise_if_signalled()

    state = jax.device_put(init.compile(compiler_options=CHEAPEST)(init_keys, hparams), sharding)
    if stacked:
      members = [resume(ck, member(state, k), c, w) for k, (ck, c, w) in enumerate(zip(ckpts, configs, workdirs))]
      steps = sorted({int(m.step) for m in members})
      if len(steps) > 1:
        raise ConfigError(f"the bundle's members were checkpointed at different steps ({', '.join(map(str, steps))})"
                          ": resume them alone with aejax.main, or remove the newer checkpoints")
      state = split_members(stack(members), mesh)
    else:
      state = resume(ckpts[0], state, configs[0], workdirs[0], write_config=primary)
    step = int(jax.device_get(state.step).flat[0]) if stacked else int(state.step)
    run_writers = [cleanup.enter_context(contextlib.closing(  # After the steps fit in memory: no W&B run otherwise.
        writers.MetricWriter(w, c, step) if primary else writers.NullWriter(w))) for c, w in zip(configs, workdirs)]
    pictures = jax.jit(_lift(lambda params, batch, key, hp: variant.images(model, base, params, batch, key, hp),
                             stacked, (0, None, 0, 0)))
    image_batch = input_pipeline.make_batch(test_split, jnp.arange(min(base.num_images, test_split.size)),
                                            jax.random.key(0), False)
    wait_each = not stacked and parallel.sync_each_step(mesh)  # A bundle's devices share no collectives.
    alive, diverged = [True] * n, {}

    def converged_members(state: TrainState) -> list[bool]:
      """Whether each member has met its variant's stopping rule (never, for a variant without one)."""
      if converged is None:
        return [False] * n
      return [bool(flag) for flag in _per_member(jax.device_get(converged(state)), n, stacked)]

    def evaluate_and_draw(state: TrainState, step: int, log: bool = True) -> tuple[list[dict], list[dict]]:
      totals = sum_batches(batch_sums, state, eval_splits, eval_keys, num_batches, wait_each)
      drawn = jax.device_get(pictures(state.params, image_batch, image_keys, state.hparams))
      metrics, paths = [], []
      for k, (writer, total, picture) in enumerate(zip(run_writers, _per_member(totals, n, stacked),
                                                       _per_member(drawn, n, stacked))):
        metrics.append({f"test/{name}": float(v) / test_split.size for name, v in total.items()})
        paths.append(writer.write_images(step, picture) if alive[k] else {})
        if log and alive[k]:
          writer.write_scalars(step, metrics[-1])
      return metrics, paths

    def save(step: int, state: TrainState) -> None:
      """Each live member's checkpoint: a bundle's members gathered to the host, each saved from this process's
      first device as a one-device run saves its state (so the files are those of a single run)."""
      if not stacked:
        ckpts[0].save(step, state)
        return
      host = jax.device_get(state)
      for k, ck in enumerate(ckpts):
        if alive[k]:
          ck.save(step, jax.device_put(member(host, k), jax.local_devices()[0]))

    def check() -> None:
      """Fetches the metrics of the steps not yet fetched (the loop's only waits on the device between
      evaluations), and marks each member whose steps there were not all finite as diverged at the first such
      step, with what was not finite (unless `on_nonfinite` is 'skip')."""
      first = len(fetched)
      fetched.extend(jax.device_get(pending[first:]))
      if base.on_nonfinite == "skip" or first == len(fetched):
        return
      flags = np.stack([row["finite"] for row in fetched[first:]]).reshape(len(fetched) - first, -1)  # (steps, n)
      for k in range(n):
        bad = np.flatnonzero(flags[:, k] == 0)
        if alive[k] and bad.size:
          alive[k] = False
          diverged[k] = (window_start + first + int(bad[0]) + 1,
                         _nonfinite_message(_per_member(fetched[first + bad[0]], n, stacked)[k]))

    def log_window(step: int, bar: tqdm) -> None:
      """Each member's means over the steps since the last logged one (a diverged member's up to its last finite
      step), from the rows `check` fetched."""
      nonlocal tick, window_start, pending, fetched
      now = time.perf_counter()
      samples_per_s = (step - window_start) * base.batch_size / (now - tick)  # Each member's own.
      for k, writer in enumerate(run_writers):
        finite_steps = diverged[k][0] - 1 - window_start if k in diverged else step - window_start
        if finite_steps > 0:
          writer.write_scalars(window_start + finite_steps, {
              **_window_row([_per_member(row, n, stacked)[k] for row in fetched], finite_steps),
              "train/samples_per_s": samples_per_s})
      bar.set_postfix(samples_per_s=f"{n * samples_per_s:.0f}",
                      **({} if stacked else {"loss": f"{float(fetched[-1]['loss']):.3f}"}))
      bar.update(step - bar.n)
      tick, window_start, pending, fetched = now, step, [], []

    test_metrics, image_paths, pending, fetched = [], [], [], []  # `fetched`: host copies of pending's first rows.
    tick, window_start = time.perf_counter(), step
    epoch, perm = -1, None
    # A run that ended by its stopping rule trains no further; one resumed from between the step it converged and
    # the logged step it would have ended at (a signal) goes on to that step, as it would have uninterrupted.
    first_step = step
    stop_rule = step % base.log_every == 0 and all_converged(converged_members(state), alive)
    signals.raise_if_signalled()
    desc = base.variant if not stacked else f"{base.variant} x{n}" + (f" on {mesh.size} devices" if mesh.size > 1
                                                                       else "")
    with signals.loop_signals() as stop_signal, tqdm(total=base.num_steps, initial=step, desc=desc, unit="step",
                                                     dynamic_ncols=True, disable=not primary) as bar:
      signum = None
      while step < base.num_steps and not stop_rule and any(alive) and not (signum := stop_signal(step)):
        if step // steps_per_epoch != epoch:
          epoch = step // steps_per_epoch
          perm = permute(data_keys, epoch)
        if refresh is not None and step % variant.refresh_every(base) == 0:
          state = refresh(state, train_split)
        state, metrics = train_step(state, rates, train_split, perm, train_keys)
        if wait_each:
          jax.block_until_ready(state)
        pending.append(metrics)
        step += 1
        log = step % base.log_every == 0 or step == base.num_steps
        evaluate = step % base.eval_every == 0 or step == base.num_steps
        save_now = step % base.checkpoint_every == 0 or step == base.num_steps
        if log or evaluate or save_now:  # Nothing non-finite is logged, evaluated or saved.
          check()
        if log:
          log_window(step, bar)
          stop_rule = all_converged(converged_members(state), alive)
        if (evaluate or stop_rule) and any(alive):
          test_metrics, image_paths = evaluate_and_draw(state, step)
        if (save_now or stop_rule) and any(alive):
          save(step, state)
      if stop_rule and first_step < step < base.num_steps and primary:
        bar.write(f"aejax: converged at step {step} of {base.num_steps} ({base.variant}'s stopping rule): the "
                  "run ends here", file=sys.stderr)
      if pending:  # Stopped between two logged steps (by divergence or a signal): check and log the steps before it,
        check()  # so that nothing non-finite is saved on a signal either.
        log_window(step, bar)
      if signum and any(alive):
        save(step, state)
        for ck in ckpts:
          ck.wait()
        raise signals.Interrupted(signum, step)
    if not test_metrics and any(alive):  # Rerun of a finished run: its final numbers, already in metrics.jsonl.
      test_metrics, image_paths = evaluate_and_draw(state, step, log=False)
    summaries, converged_flags = [], converged_members(state)
    for k, (ck, writer) in enumerate(zip(ckpts, run_writers)):
      ck.wait()
      if alive[k]:
        stopping = {"converged": converged_flags[k]} if converged is not None else {}
        summary = {"step": step, **stopping, **test_metrics[k], "checkpoint": str(ck.directory / str(ck.latest_step)),
                   "metrics": str(writer.metrics_path),
                   **{f"image/{name}": str(path) for name, path in image_paths[k].items()}}
        writer.write_summary(summary)
        summaries.append(summary)
    if diverged:
      raise Diverged(_diverged_message(base, workdirs, ckpts, diverged, stacked))
    return summaries


@contextlib.contextmanager
def _disk_full_is_one_line(workdir: pathlib.Path) -> Iterator[None]:
  """Turns the OS's 'no space left on device' (or 'disk quota exceeded') while writing a run's files (metrics,
  pictures, config.json) into the one line of `checkpoint.disk_full`."""
  try:
    yield
  except OSError as e:
    if e.errno not in (errno.ENOSPC, errno.EDQUOT):
      raise
    where = pathlib.Path(e.filename).parent if e.filename else workdir
    raise checkpoint.disk_full(where, f"writing {e.filename or 'a file'} failed") from e


def _diverged_message(base: config_dict.ConfigDict, workdirs: list[pathlib.Path], ckpts: list[checkpoint.Checkpoints],
                      diverged: dict[int, tuple[int, str]], stacked: bool) -> str:
  """One line: which runs stopped at which step on what, the checkpoints kept, and the usual fixes."""
  runs = "; ".join(f"{workdirs[k]} at step {s} ({what}; last finite checkpoint: "
                   f"{ckpts[k].latest_step if ckpts[k].latest_step is not None else 'none'})"
                   for k, (s, what) in sorted(diverged.items()))
  rate = "each member's learning_rate" if stacked else f"config.learning_rate={base.learning_rate!r}"
  return (f"training diverged, stopped: {runs}: lower {rate}, clip gradients (e.g. --config.grad_clip_norm=1), or "
          "skip non-finite updates (--config.on_nonfinite=skip), in a new --workdir")


def train_and_evaluate(config: config_dict.ConfigDict, workdir: str | pathlib.Path) -> dict[str, Any]:
  """Trains `config` in `workdir`, resuming from its latest checkpoint; returns the run's summary."""
  return train_population([config], [workdir], stacked=False)[0]
