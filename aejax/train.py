"""The train loop: one jitted step `(state, split, perm, key) -> (state, metrics)` that gathers its batch on device
(`make_data_step` around a variant's `(state, batch, key)` step), evaluation, checkpoints, logs.

Nothing here knows a variant: the model, loss, evaluation and pictures come from `aejax.registry`.
"""
import contextlib
import functools
import os
import pathlib
import signal
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax.training import train_state
from jax.experimental import multihost_utils
from jax.sharding import Mesh
from ml_collections import config_dict
from tqdm import tqdm

import aejax.variants  # noqa: F401  (registers the variants)
from aejax import checkpoint, config as config_lib, convolution, input_pipeline, locks, parallel, registry
from aejax import suites, writers
from aejax.errors import ConfigError, check_folder


class TrainState(train_state.TrainState):
  """flax's TrainState plus the variant's scalar hyper-parameters, carried as arrays."""
  hparams: dict[str, jax.Array]


Metrics = dict[str, jax.Array]
StepFn = Callable[[TrainState, registry.Batch, jax.Array], tuple[TrainState, Metrics]]  # (state, batch, key)
DataStepFn = Callable[[TrainState, input_pipeline.Split, jax.Array, jax.Array],
                      tuple[TrainState, Metrics]]  # (state, split, perm, key)


class Interrupted(Exception):
  """SIGTERM/SIGINT arrived; a checkpoint was written at `step`."""

  def __init__(self, signum: int, step: int):
    super().__init__(f"stopped by signal {signum} at step {step}; checkpoint saved, rerun the same command to resume")
    self.signum = signum


class Stopped(Exception):
  """SIGTERM/SIGINT arrived outside the training loop (at start-up, or in an evaluation)."""

  def __init__(self, signum: int):
    super().__init__(f"stopped by signal {signum}")
    self.signum = signum


@contextlib.contextmanager
def exit_on_signals(program: str, rerun: str = "to resume from the last checkpoint") -> Iterator[None]:
  """For a command's whole run: SIGTERM or SIGINT ends it with one line and exit code 128 + the signal, in the
  training loop (which checkpoints first, `stop_signals`) or outside it (where there is nothing to save; the
  line says what rerunning the command does).

  A process of several (`jax.distributed`) leaves SIGTERM outside the loop to JAX's preemption service.
  """
  def stop(signum: int, frame: Any) -> None:
    raise Stopped(signum)

  previous = {s: signal.signal(s, stop) for s in (signal.SIGTERM, signal.SIGINT)} if jax.process_count() == 1 else {}
  try:
    yield
  except Interrupted as e:
    print(f"{program}: {e}", file=sys.stderr)
    sys.exit(128 + e.signum)
  except Stopped as e:
    print(f"{program}: {e}; nothing was lost: rerun the same command {rerun}", file=sys.stderr)
    sys.exit(128 + e.signum)
  finally:
    for s, handler in previous.items():
      signal.signal(s, handler)


def use_compilation_cache(directory: str) -> None:
  """Turns on JAX's persistent compilation cache in `directory` ('' leaves it off): a sweep's processes, which
  run programs of the same shapes, then compile each once."""
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
    tx = optax.adamw(schedule, weight_decay=config.weight_decay)
  elif config.optimizer == "sgd":
    tx = optax.sgd(schedule, momentum=0.9)
  else:
    tx = optax.adam(schedule)
  if config.grad_clip_norm > 0:
    tx = optax.chain(optax.clip_by_global_norm(config.grad_clip_norm), tx)
  return tx


def create_state(variant: registry.Variant, model: nn.Module, config: config_dict.ConfigDict,
                 key: jax.Array, example: jax.Array) -> TrainState:
  """Fresh parameters and optimiser state (call under `jax.jit`: eager init compiles every small op)."""
  params = variant.init(model, key, example)
  hparams = {k: jnp.asarray(v, jnp.float32) for k, v in variant.hparams(config).items()}
  return TrainState.create(apply_fn=model.apply, params=params, tx=make_optimizer(config), hparams=hparams)


def init_state(variant: registry.Variant, model: nn.Module, config: config_dict.ConfigDict,
               key: jax.Array, example: jax.Array) -> TrainState:
  """`create_state` compiled once with XLA's cheapest optimisation level.

  Initialisation runs once, so compile time is what counts: eagerly every small op compiles on its
  own, and at the default level the random initialisers alone take seconds to compile on a CPU.
  """
  return compile_cheaply(functools.partial(create_state, variant, model, config), key, example)


def compile_cheaply(fn: Callable[..., Any], *args: Any) -> Any:
  """`jax.jit(fn)(*args)` compiled at XLA's cheapest optimisation level: for code that runs once (initialisation)."""
  return jax.jit(fn).lower(*args).compile(compiler_options={"xla_backend_optimization_level": 0})(*args)


def make_train_step(variant: registry.Variant, model: nn.Module, config: config_dict.ConfigDict) -> StepFn:
  """The pure step `(state, batch, key) -> (state, metrics)`: the variant's own, or one gradient step on its loss."""
  if variant.train_step is not None:
    return functools.partial(variant.train_step, model, config)

  def train_step(state: TrainState, batch: registry.Batch, key: jax.Array) -> tuple[TrainState, dict]:
    def loss_fn(params):
      return variant.loss(model, config, params, batch, key, state.hparams, state.step)
    (loss, metrics), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    return state.apply_gradients(grads=grads), {"loss": loss, **metrics}

  return train_step


def _sharded_over(mesh: Mesh | None):
  """The batch constraint of `mesh` (see aejax/parallel.py), or the identity without one."""
  return (lambda tree: tree) if mesh is None else functools.partial(parallel.shard_batch, mesh=mesh)


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
    batch = sharded(input_pipeline.make_batch(split, indices, batch_key, dynamic_binarize))
    return train_step(state, batch, step_key)

  return step


def make_eval_sums(variant: registry.Variant, model: nn.Module, config: config_dict.ConfigDict,
                   split: input_pipeline.Split, mesh: Mesh | None = None
                   ) -> tuple[Callable[[TrainState, input_pipeline.Split, jax.Array, jax.Array], Metrics], int]:
  """The pure `(state, split, index, key) -> {name: sum over batch index}` of the variant's evaluation, and the
  number of fixed-size batches that cover `split` (the last one padded and masked).

  With `mesh`, each batch is split over its devices, its size rounded up to a multiple of their number.
  """
  batch_size = min(config.eval_batch_size, split.size)
  if mesh is not None:
    batch_size = parallel.round_up(batch_size, mesh)
  sharded = _sharded_over(mesh)

  def batch_sums(state: TrainState, split: input_pipeline.Split, index: jax.Array, key: jax.Array) -> Metrics:
    ids = sharded(index * batch_size + jnp.arange(batch_size))
    valid = (ids < split.size).astype(jnp.float32)
    batch = sharded({**input_pipeline.make_batch(split, jnp.minimum(ids, split.size - 1), key, False),
                     "valid": valid})
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


def compile_within_memory(fn: Any, args: tuple, field: str, value: Any, fix: str) -> Callable[..., Any]:
  """The jitted `fn` compiled for `args`; a `ConfigError` naming `field` if one call needs more memory beyond its
  inputs than the device has free, so that a size too large for the machine (a huge code, batch) ends with one
  line before any work instead of a kill by the OS mid-run."""
  compiled = fn.lower(*args).compile()
  stats, free = compiled.memory_analysis(), free_memory()
  if stats is not None and free is not None:
    need = stats.temp_size_in_bytes + stats.output_size_in_bytes - stats.alias_size_in_bytes
    if need > free:
      raise ConfigError(f"{field}={value!r}: one call needs {need / 2**20:,.0f} MiB beyond its inputs, more than the "
                        f"{free / 2**20:,.0f} MiB free here: {fix}")
  return compiled


def make_evaluate(variant: registry.Variant, model: nn.Module, config: config_dict.ConfigDict,
                  split: input_pipeline.Split, state: TrainState, mesh: Mesh | None = None
                  ) -> Callable[[TrainState, jax.Array], dict[str, float]]:
  """A function `(state, key) -> {name: mean over the split}` that runs the variant's evaluation in fixed batches,
  compiled now for states like `state` (a `ConfigError` if a batch does not fit in memory)."""
  batch_sums, num_batches = make_eval_sums(variant, model, config, split, mesh)
  batch_sums = compile_within_memory(jax.jit(batch_sums), (state, split, 0, jax.random.key(0)),
                                     "config.eval_batch_size", config.eval_batch_size,
                                     "use a smaller eval_batch_size, or a smaller model (latent_dim, widths)")
  wait_each = mesh is not None and parallel.sync_each_step(mesh)

  def evaluate(state: TrainState, key: jax.Array) -> dict[str, float]:
    sums = []
    for i in range(num_batches):
      sums.append(batch_sums(state, split, i, key))
      if wait_each:
        jax.block_until_ready(sums[-1])
    totals = jax.device_get(jax.tree.map(lambda *xs: sum(xs), *sums))
    return {k: float(v) / split.size for k, v in totals.items()}

  return evaluate


@contextlib.contextmanager
def stop_signals() -> Iterator[Callable[[int], int | None]]:
  """Catches SIGTERM/SIGINT for the loop, which calls the yielded `stop_signal(step)` before each step: the signal
  that asks it to checkpoint and stop there, or None.

  One process records the signals itself. Several processes (`jax.distributed`) must all stop at the same
  step, or those still training wait forever on the collectives of those that stopped: JAX's preemption
  service catches SIGTERM in any of them (a scheduler sends it to each at its own moment) and agrees on
  the step; SIGINT is passed on to it as SIGTERM.
  """
  if jax.process_count() > 1:
    previous = signal.signal(signal.SIGINT, lambda signum, frame: os.kill(os.getpid(), signal.SIGTERM))
    try:
      yield lambda step: signal.SIGTERM if multihost_utils.reached_preemption_sync_point(step) else None
    finally:
      signal.signal(signal.SIGINT, previous)
    return
  received: list[int] = []
  handler = lambda signum, frame: received.append(signum)  # noqa: E731
  previous = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGINT)}
  try:
    yield lambda step: received[0] if received else None
  finally:
    for s, h in previous.items():
      signal.signal(s, h)


def check_batch_fits(config: config_dict.ConfigDict, split: input_pipeline.Split) -> None:
  """A `ConfigError` if one batch needs more images than the train split holds."""
  if config.batch_size > split.size:
    more = f", or more images (config.data.num_train={config.data.num_train})" if config.data.num_train else ""
    raise ConfigError(f"config.batch_size={config.batch_size} is larger than the {split.size} training images "
                      f"of {config.data.name!r}: use a batch size of at most {split.size}{more}")


def resume(ckpts: checkpoint.Checkpoints, state: Any, config: config_dict.ConfigDict, workdir: pathlib.Path,
           write_config: bool = True) -> Any:
  """`state` from the run's latest checkpoint (unchanged if none), then `config` saved as its config.json.

  A run with a checkpoint may change only the fields `config.RESUMABLE_FIELDS` and `RESUMABLE_SECTIONS` name:
  another change (β, the learning rate, a width) ends the run with one line naming the changed fields, and the
  run's config.json stays as it was, so that it always describes what trained the checkpoints.
  """
  changed = config_lib.changed_fields(workdir / "config.json", config)
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
  variant's own, and the evaluation suites it names (run after training: one that cannot run fails now)."""
  config_lib.validate(config)
  variant = registry.get(config.variant)
  variant.validate(config)
  if config.eval.suites:
    suites.select(config, config.eval.suites)
  return variant


def train_and_evaluate(config: config_dict.ConfigDict, workdir: str | pathlib.Path) -> dict[str, Any]:
  """Trains `config` in `workdir`, resuming from its latest checkpoint; returns the run's summary."""
  variant = check_config(config)
  mesh = parallel.data_mesh()
  parallel.check_batch_size(config.batch_size, mesh)
  workdir = pathlib.Path(workdir)
  check_folder(workdir, "--workdir")
  train_split, test_split = parallel.replicate(input_pipeline.load(config.data), mesh)
  check_batch_fits(config, train_split)
  model = variant.build_model(config, tuple(train_split.images.shape[1:]))

  init_key, train_key, data_key, eval_key, image_key = jax.random.split(jax.random.key(config.seed), 5)
  example = jnp.zeros((1, *train_split.images.shape[1:]), jnp.float32)
  state = parallel.replicate(init_state(variant, model, config, init_key, example), mesh)
  primary = jax.process_index() == 0
  workdir.mkdir(parents=True, exist_ok=True)
  with contextlib.ExitStack() as cleanup:
    if primary:  # The other processes of a multi-process run write nothing.
      cleanup.enter_context(locks.hold(workdir))
    ckpts = cleanup.enter_context(contextlib.closing(checkpoint.Checkpoints(workdir, config.keep_checkpoints)))
    state = resume(ckpts, state, config, workdir, write_config=primary)
    step = int(state.step)
    permute = jax.jit(input_pipeline.epoch_permutation, static_argnums=2, out_shardings=parallel.replicated(mesh))
    steps_per_epoch = train_split.size // config.batch_size
    epoch = step // steps_per_epoch
    perm = permute(data_key, epoch, train_split.size)
    train_step = jax.jit(make_data_step(make_train_step(variant, model, config), train_split, config, mesh),
                         donate_argnums=0, out_shardings=parallel.replicated(mesh),
                         compiler_options=convolution.compiler_options(config))
    if step < config.num_steps:  # A finished run's rerun trains nothing: nothing to compile.
      train_step = compile_within_memory(train_step, (state, train_split, perm, train_key), "config.batch_size",
                                         config.batch_size, "use a smaller batch_size, or a smaller model (latent_dim, "
                                         "widths)")
    evaluate = make_evaluate(variant, model, config, test_split, state, mesh)
    writer = cleanup.enter_context(contextlib.closing(  # After the steps fit in memory: no W&B run otherwise.
        writers.MetricWriter(workdir, config, step) if primary else writers.NullWriter(workdir)))
    pictures = jax.jit(lambda params, batch, key, hp: variant.images(model, config, params, batch, key, hp))
    image_batch = input_pipeline.make_batch(test_split, jnp.arange(min(config.num_images, test_split.size)),
                                            image_key, False)
    sync_each_step = parallel.sync_each_step(mesh)

    def evaluate_and_draw(state: TrainState, step: int, log: bool = True):
      metrics = {f"test/{k}": v for k, v in evaluate(state, eval_key).items()}
      if log:
        writer.write_scalars(step, metrics)
      paths = writer.write_images(step, jax.device_get(pictures(state.params, image_batch, image_key, state.hparams)))
      return metrics, paths

    test_metrics, image_paths, pending = {}, {}, []
    tick, tick_step = time.perf_counter(), step
    with stop_signals() as stop_signal, tqdm(total=config.num_steps, initial=step, desc=config.variant,
                                              unit="step", dynamic_ncols=True, disable=not primary) as bar:
      signum = None
      while step < config.num_steps and not (signum := stop_signal(step)):
        if step // steps_per_epoch != epoch:
          epoch = step // steps_per_epoch
          perm = permute(data_key, epoch, train_split.size)
        state, metrics = train_step(state, train_split, perm, train_key)
        if sync_each_step:
          jax.block_until_ready(state)
        pending.append(metrics)
        step += 1
        if step % config.log_every == 0 or step == config.num_steps:
          rows = jax.device_get(pending)  # The loop's only wait on the device between evaluations.
          means = {f"train/{k}": float(np.mean([row[k] for row in rows])) for k in rows[0]}
          now = time.perf_counter()
          means["train/samples_per_s"] = (step - tick_step) * config.batch_size / (now - tick)
          tick, tick_step, pending = now, step, []
          writer.write_scalars(step, means)
          bar.set_postfix(loss=f"{means['train/loss']:.3f}", samples_per_s=f"{means['train/samples_per_s']:.0f}")
          bar.update(step - bar.n)
        if step % config.eval_every == 0 or step == config.num_steps:
          test_metrics, image_paths = evaluate_and_draw(state, step)
        if step % config.checkpoint_every == 0 or step == config.num_steps:
          ckpts.save(step, state)
      if signum:
        ckpts.save(step, state)
        ckpts.wait()
        raise Interrupted(signum, step)
    if not test_metrics:  # Rerun of a finished run: report its final numbers, already in metrics.jsonl.
      test_metrics, image_paths = evaluate_and_draw(state, step, log=False)
    ckpts.wait()
    summary = {"step": step, **test_metrics, "checkpoint": str(ckpts.directory / str(ckpts.latest_step)),
               "metrics": str(writer.metrics_path), **{f"image/{k}": str(p) for k, p in image_paths.items()}}
    writer.write_summary(summary)
    return summary
