"""Bundles: sweep members that differ only in scalar hyper-parameters train together as one compiled program.

The members' parameters, optimiser states and hyper-parameters (the variant's `hparams`, the learning
rate, the seed's keys) are stacked on a leading axis and `aejax.train`'s data step is `vmap`ped over them:
one dispatch per step for the whole bundle, which pays off for small nets and on accelerators. Each
member keeps its own workdir, exactly as `train.train_and_evaluate` writes it (config.json, orbax
checkpoints, metrics.jsonl, pictures, W&B run), so a bundle resumes from its members' checkpoints and a
member's files read like those of a single run.

Devices: the stacked members are split over all of this process's devices (`parallel.member_mesh`), the data
replicated, so each device trains its share of whole members with no traffic between devices. A bundle whose
size does not divide by the device count is padded with copies of member 0, dummies whose results are never
read or saved (at most one fewer than the devices, and no slower: the devices work in parallel); an error
would instead make the researcher regroup the sweep. Each checkpoint gathers its member's slice to the host.

Per-member learning rates: the optimiser is built once at rate 1 and each member's updates are scaled
by its rate. Every optimiser and schedule of `train.make_optimizer` is proportional to the rate, so
this is the member's own optimiser, with the same state (checkpoints are interchangeable with single runs).

Command line (what the launchers in `launch/` run for a bundle of sweep members; each member's workdir is
ROOT/<run id>, its overrides those of the config file's `get_sweep()`):

    python -m aejax.bundle --config experiments/beta_vae.py[:smoke] --root ROOT --members ID1,ID2,...
        [--config.FIELD=VALUE ...]

SIGTERM or SIGINT checkpoints every member and exits with 128 + the signal number, as aejax.main does.
"""
import contextlib
import functools
import pathlib
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from absl import app, flags
from jax.sharding import Mesh
from ml_collections import config_dict, config_flags
from tqdm import tqdm

from aejax import (checkpoint, config as config_lib, convolution, input_pipeline, locks, parallel, registry,
                   sweep as sweep_lib, train, writers)
from aejax.errors import ConfigError, check_folder

MEMBER_FIELDS = ("seed", "learning_rate", "wandb.name")  # May differ within a bundle, beside the variant's hparams.

# The bundle size the launchers choose (see `auto_size`).
ACCELERATOR_SIZE = 64  # One MNIST model uses a few percent of a GPU; 64 splits over 1, 2, 4, 8... GPUs unpadded.
CPU_SIZE = 4  # dae.py on 2 cores, 4 members: 1.25x and 0.98x back-to-back's samples/s, and 3 start-ups saved.
SMALL_NET_MACS = 250_000  # Multiply-adds per image of a "small" dense net: dae.py's 784-128-64-32 and back, 221k.
_PIXELS = 28 * 28  # MNIST and Fashion-MNIST.


def _per_member(config: config_dict.ConfigDict) -> set[str]:
  """The fields in which members of one bundle may differ."""
  return set(MEMBER_FIELDS) | set(registry.get(config.variant).hparams(config))


def bundle_key(config: config_dict.ConfigDict) -> tuple[tuple[str, Any], ...]:
  """Equal for configs that can share a bundle (see `check_bundle`): the config without its per-member fields."""
  per_member = _per_member(config)
  flat = config_lib.flatten(config.copy_and_resolve_references())
  return tuple(sorted((field, value) for field, value in flat.items() if field not in per_member))


def _dense_macs(config: config_dict.ConfigDict) -> int:
  """Multiply-adds per image of a dense encoder and decoder (the decoder mirrors the encoder unless given)."""
  encoder = (_PIXELS, *config.model.encoder_widths, config.latent_dim)
  decoder = (config.latent_dim, *(config.model.decoder_widths or config.model.encoder_widths[::-1]), _PIXELS)
  return sum(a * b for layers in (encoder, decoder) for a, b in zip(layers, layers[1:]))


def auto_size(config: config_dict.ConfigDict, accelerator: bool) -> int:
  """The most members of `config`'s kind to bundle when the launcher chooses: never slower than running them
  back to back.

  1 for variants with their own train step (bundles are measured for one gradient step on a loss). Else on an
  accelerator `ACCELERATOR_SIZE`; on the CPU `CPU_SIZE` for dense nets of at most `SMALL_NET_MACS` multiply-adds
  per image, and 1 for larger or convolutional nets, which already keep the cores busy alone.
  """
  if registry.get(config.variant).train_step is not None:
    return 1
  if accelerator:
    return ACCELERATOR_SIZE
  small = config.model.kind == "mlp" and _dense_macs(config) <= SMALL_NET_MACS
  return CPU_SIZE if small else 1


def check_bundle(configs: Sequence[config_dict.ConfigDict], workdirs: Sequence[str | pathlib.Path]) -> None:
  """A `ConfigError` unless the configs can share one program: they may differ only in the variant's scalar
  hyper-parameters, `learning_rate`, `seed` and `wandb.name`, and each has a workdir of its own."""
  if not configs or len(configs) != len(workdirs):
    raise ConfigError(f"a bundle needs one workdir per config: got {len(configs)} configs and {len(workdirs)} "
                      "workdirs")
  resolved = [pathlib.Path(w).resolve() for w in workdirs]
  if len(set(resolved)) != len(resolved):
    raise ConfigError("two bundle members share a workdir: give each member its own")
  allowed = _per_member(configs[0])
  reference = config_lib.flatten(configs[0])
  for k, config in enumerate(configs[1:], 1):
    flat = config_lib.flatten(config)
    differing = sorted(f for f in reference.keys() | flat.keys()
                       if f not in allowed and reference.get(f) != flat.get(f))
    if differing:
      raise ConfigError(f"bundle member {k} ({workdirs[k]}) differs from member 0 in "
                        f"{', '.join(f'config.{f}' for f in differing)}: within a bundle only "
                        f"{', '.join(sorted(allowed))} may differ; train the others in another bundle")


def _scaled(tx: optax.GradientTransformation, rate: jax.Array) -> optax.GradientTransformation:
  """`tx` with its updates multiplied by `rate`; the same state."""

  def update(grads, state, params=None):
    updates, state = tx.update(grads, state, params)
    return jax.tree.map(lambda u: rate * u, updates), state

  return optax.GradientTransformation(tx.init, update)


def split_members(tree: Any, mesh: Mesh) -> Any:
  """`tree`'s stacked arrays split over `mesh`'s 'members' axis, padded to a multiple of its device count with
  copies of member 0: dummies, which train alongside and whose results are never read."""

  def pad(x: jax.Array) -> jax.Array:
    return jnp.concatenate([x, jnp.repeat(x[:1], parallel.round_up(len(x), mesh) - len(x), axis=0)])

  return jax.jit(lambda tree: jax.tree.map(pad, tree), out_shardings=parallel.member_sharded(mesh))(tree)


def member(tree: Any, k: int) -> Any:
  """Member `k` of a stacked pytree (a bundle's state, metrics or pictures)."""
  return jax.tree.map(lambda x: x[k], tree)


def _stack(trees: Sequence[Any]) -> Any:
  return jax.tree.map(lambda *xs: jnp.stack(xs), *trees)


def init_bundle(variant: registry.Variant, model: nn.Module, configs: Sequence[config_dict.ConfigDict],
                base: config_dict.ConfigDict, input_shape: tuple[int, ...]
                ) -> tuple[train.TrainState, jax.Array, tuple[jax.Array, ...]]:
  """The stacked fresh states of `configs`' members, their learning rates (N,), and their train, data, eval and
  image keys (N,) each, split from each member's seed as `train.train_and_evaluate` splits them."""
  seed_keys = jax.vmap(lambda seed: jax.random.split(jax.random.key(seed), 5))(
      jnp.asarray([c.seed for c in configs]))
  init_keys, *keys = (seed_keys[:, i] for i in range(5))
  hparams = _stack([{k: jnp.asarray(v, jnp.float32) for k, v in variant.hparams(c).items()} for c in configs])
  example = jnp.zeros((1, *input_shape), jnp.float32)
  state = train.compile_cheaply(
      jax.vmap(lambda key, hp: train.create_state(variant, model, base, key, example).replace(hparams=hp)),
      init_keys, hparams)
  return state, jnp.asarray([c.learning_rate for c in configs], jnp.float32), tuple(keys)


def make_bundle_step(variant: registry.Variant, model: nn.Module, base: config_dict.ConfigDict,
                     split: input_pipeline.Split, mesh: Mesh) -> Callable[..., tuple[train.TrainState, train.Metrics]]:
  """`train.make_data_step` vmapped over the members and jitted (the state donated):
  `(states, rates, split, perms, keys) -> (states, metrics)`, each member's updates scaled by its rate, the
  outputs split over `mesh`'s 'members' axis as the inputs (see `split_members`)."""
  data_step = train.make_data_step(train.make_train_step(variant, model, base), split, base)

  def member_step(state: train.TrainState, rate: jax.Array, split: input_pipeline.Split, perm: jax.Array,
                  key: jax.Array) -> tuple[train.TrainState, train.Metrics]:
    new, metrics = data_step(state.replace(tx=_scaled(state.tx, rate)), split, perm, key)
    return new.replace(tx=state.tx), metrics

  return jax.jit(jax.vmap(member_step, in_axes=(0, 0, None, 0, 0)), donate_argnums=0,
                 out_shardings=parallel.member_sharded(mesh), compiler_options=convolution.compiler_options(base))


def base_config(configs: Sequence[config_dict.ConfigDict]) -> config_dict.ConfigDict:
  """The config the bundle's program is built from: member 0's, at learning rate 1 (the members' rates scale
  the updates)."""
  base = configs[0].copy_and_resolve_references()
  base.learning_rate = 1.0
  return base


def _save(ckpts: Sequence[checkpoint.Checkpoints], step: int, state: train.TrainState) -> None:
  """Each member's slice of `state` into its own checkpoints, gathered to the host and saved from this process's
  first device as a one-device run saves its state (so the files are those of a single run)."""
  host = jax.device_get(state)
  for k, ck in enumerate(ckpts):
    ck.save(step, jax.device_put(member(host, k), jax.local_devices()[0]))


def train_bundle(configs: Sequence[config_dict.ConfigDict],
                 workdirs: Sequence[str | pathlib.Path]) -> list[dict[str, Any]]:
  """Trains `configs[k]` in `workdirs[k]` for every k as one vmapped program, resuming from the members'
  checkpoints; returns each member's summary, as `train.train_and_evaluate` would."""
  for config in configs:
    train.check_config(config)
  check_bundle(configs, workdirs)
  variant = registry.get(configs[0].variant)
  base = base_config(configs)
  workdirs = [pathlib.Path(w) for w in workdirs]
  for workdir in workdirs:
    check_folder(workdir, "member workdir")
  n = len(configs)
  mesh = parallel.member_mesh()
  train_split, test_split = parallel.replicate(input_pipeline.load(base.data), mesh)
  train.check_batch_fits(base, train_split)
  model = variant.build_model(base, tuple(train_split.images.shape[1:]))

  state, rates, (train_keys, data_keys, eval_keys, image_keys) = init_bundle(
      variant, model, configs, base, tuple(train_split.images.shape[1:]))

  with contextlib.ExitStack() as cleanup:
    ckpts, members = [], []
    for k, (config, workdir) in enumerate(zip(configs, workdirs)):
      workdir.mkdir(parents=True, exist_ok=True)
      cleanup.enter_context(locks.hold(workdir))
      ckpts.append(cleanup.enter_context(contextlib.closing(checkpoint.Checkpoints(workdir, config.keep_checkpoints))))
      members.append(train.resume(ckpts[-1], member(state, k), config, workdir))
    steps = sorted({int(m.step) for m in members})
    if len(steps) > 1:
      raise ConfigError(f"the bundle's members were checkpointed at different steps ({', '.join(map(str, steps))}): "
                        "resume them alone with aejax.main, or remove the newer checkpoints")
    state, rates, train_keys, data_keys, eval_keys, image_keys = split_members(
        (_stack(members), rates, train_keys, data_keys, eval_keys, image_keys), mesh)
    step = steps[0]
    bundle_writers = [cleanup.enter_context(contextlib.closing(writers.MetricWriter(w, c, step)))
                      for c, w in zip(configs, workdirs)]

    bundle_step = make_bundle_step(variant, model, base, train_split, mesh)
    permute = jax.jit(jax.vmap(lambda key, epoch: input_pipeline.epoch_permutation(key, epoch, train_split.size),
                               in_axes=(0, None)), out_shardings=parallel.member_sharded(mesh))
    batch_sums, num_batches = train.make_eval_sums(variant, model, base, test_split)
    member_sums = jax.jit(jax.vmap(batch_sums, in_axes=(0, None, None, 0)))
    pictures = jax.jit(jax.vmap(lambda params, batch, key, hp: variant.images(model, base, params, batch, key, hp),
                                in_axes=(0, None, 0, 0)))
    image_batch = input_pipeline.make_batch(test_split, jnp.arange(min(base.num_images, test_split.size)),
                                            image_keys[0], False)
    steps_per_epoch = train_split.size // base.batch_size

    def evaluate_and_draw(state: train.TrainState, step: int, log: bool = True):
      sums = [member_sums(state, test_split, i, eval_keys) for i in range(num_batches)]
      totals = jax.device_get(jax.tree.map(lambda *xs: sum(xs), *sums))
      drawn = jax.device_get(pictures(state.params, image_batch, image_keys, state.hparams))
      metrics, paths = [], []
      for k, writer in enumerate(bundle_writers):
        metrics.append({f"test/{name}": float(v[k]) / test_split.size for name, v in totals.items()})
        if log:
          writer.write_scalars(step, metrics[-1])
        paths.append(writer.write_images(step, member(drawn, k)))
      return metrics, paths

    desc = f"{base.variant} x{n}" + (f" on {mesh.size} devices" if mesh.size > 1 else "")
    test_metrics, image_paths, pending = [], [], []
    tick, tick_step = time.perf_counter(), step
    epoch, perm = -1, None
    with train.stop_signals() as stop_signal, tqdm(
        total=base.num_steps, initial=step, desc=desc, unit="step", dynamic_ncols=True) as bar:
      signum = None
      while step < base.num_steps and not (signum := stop_signal(step)):
        if step // steps_per_epoch != epoch:
          epoch = step // steps_per_epoch
          perm = permute(data_keys, epoch)
        state, metrics = bundle_step(state, rates, train_split, perm, train_keys)
        pending.append(metrics)
        step += 1
        if step % base.log_every == 0 or step == base.num_steps:
          rows = jax.device_get(pending)
          now = time.perf_counter()
          samples_per_s = (step - tick_step) * base.batch_size / (now - tick)  # Each member's own.
          tick, tick_step, pending = now, step, []
          for k, writer in enumerate(bundle_writers):
            means = {f"train/{name}": float(np.mean([row[name][k] for row in rows])) for name in rows[0]}
            writer.write_scalars(step, {**means, "train/samples_per_s": samples_per_s})
          bar.set_postfix(samples_per_s=f"{n * samples_per_s:.0f}")
          bar.update(step - bar.n)
        if step % base.eval_every == 0 or step == base.num_steps:
          test_metrics, image_paths = evaluate_and_draw(state, step)
        if step % base.checkpoint_every == 0 or step == base.num_steps:
          _save(ckpts, step, state)
      if signum:
        _save(ckpts, step, state)
        for ck in ckpts:
          ck.wait()
        raise train.Interrupted(signum, step)
    if not test_metrics:  # Rerun of a finished bundle: report its final numbers, already in metrics.jsonl.
      test_metrics, image_paths = evaluate_and_draw(state, step, log=False)
    summaries = []
    for ck, writer, metrics, paths in zip(ckpts, bundle_writers, test_metrics, image_paths):
      ck.wait()
      summary = {"step": step, **metrics, "checkpoint": str(ck.directory / str(ck.latest_step)),
                 "metrics": str(writer.metrics_path), **{f"image/{k}": str(p) for k, p in paths.items()}}
      writer.write_summary(summary)
      summaries.append(summary)
    return summaries


def sweep_members(spec: str, config: config_dict.ConfigDict, run_ids: Sequence[str]) -> list[config_dict.ConfigDict]:
  """The configs of the sweep members `run_ids` of config file `spec` (its `get_sweep()`), from `config`, each
  named by its run id in W&B."""
  members = sweep_lib.load(spec, config)
  unknown = [run_id for run_id in run_ids if run_id not in members]
  if unknown:
    raise ConfigError(f"--members: {', '.join(unknown)} not in {spec.partition(':')[0]}'s get_sweep(), whose run "
                      f"ids are {', '.join(members)}")
  return [sweep_lib.override(config, {**members[run_id], "wandb.name": run_id}) for run_id in run_ids]


def main(argv: list[str], config_flag: flags.FlagHolder, root: flags.FlagHolder, run_ids: flags.FlagHolder) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  if config_flag.value is None or not root.value or not run_ids.value:
    sys.exit("aejax: error: --config, --root and --members are required, e.g. --config experiments/beta_vae.py "
             "--root runs/beta_sweep --members beta1-seed0,beta1-seed1")
  train.use_compilation_cache(config_flag.value.compilation_cache_dir)
  spec = flags.FLAGS["config"].serialize().partition("=")[2]
  workdirs = [pathlib.Path(root.value) / run_id for run_id in run_ids.value]
  with train.exit_on_signals("aejax"):
    try:
      configs = sweep_members(spec, config_flag.value, run_ids.value)
      summaries = train_bundle(configs, workdirs)
    except ConfigError as e:
      sys.exit(f"aejax: error: {e}")
    print("aejax: finished bundle")
    for run_id, summary in zip(run_ids.value, summaries):
      metrics = ", ".join(f"{k} {v:.4f}" for k, v in summary.items() if k.startswith("test/"))
      print(f"  {run_id}  step {summary['step']}  {metrics}", flush=True)
    if config_flag.value.eval.suites:  # As aejax.main: the suites the config names, on each member's last checkpoint.
      from aejax import evaluate  # pylint: disable=g-import-not-at-top  (scikit-learn and friends, only when used)
      for workdir in workdirs:
        try:
          with locks.hold(workdir):  # Still at work there: a launcher must not start it.
            evaluate.evaluate_run(workdir, config_flag.value.eval.suites)
        except ConfigError as e:
          sys.exit(f"aejax: error: {e}")
        print(f"aejax: evaluated {workdir.name}: {workdir / 'eval.json'}", flush=True)


if __name__ == "__main__":
  app.run(functools.partial(
      main,
      config_flag=config_flags.DEFINE_config_file(
          "config", None, "Experiment config file with a get_sweep() (append ':smoke' for tiny members).",
          lock_config=True),
      root=flags.DEFINE_string("root", None, "Sweep folder: member ID trains in ROOT/ID."),
      run_ids=flags.DEFINE_list("members", None, "Run ids of the sweep members to train together.")),
      flags_parser=config_lib.flags_parser(
          "aejax", example="python -m aejax.bundle --config experiments/beta_vae.py:smoke --root runs/beta_smoke "
          "--members beta1-seed0,beta2-seed0"))
