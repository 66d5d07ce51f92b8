"""What sealing each checkpoint with a digest costs: a save of experiments/ae.py's full-size train state with orbax
alone and with aejax.checkpoint (orbax, then the digest of the step's files), and the digest's writing and
checking alone. The state's float arrays are filled with random values, as incompressible as a trained state's.

Each round saves one step with each, in turn, into its own folder (both keep 3 steps, so both also delete one
step per save once full), and times:
- blocking: until `save` returns (what the training loop waits for; both then write in the background);
- total: until the step is written (orbax: `wait_until_finished`; aejax: `Checkpoints.wait`, which also seals);
- write_digest: hashing a finished step's files and writing its digest (inside aejax's total);
- check_digest: checking a step against its digest, what a restore adds before orbax reads it.
Medians over `--rounds` (default 10) after one untimed round, with min and max. Last, the throughput of the
hashes hashlib offers for such a digest, on 64 MiB of random bytes (why SHA-256).

  python benchmarks/checkpoint_digest.py
"""
import argparse
import hashlib
import json
import os
import pathlib
import statistics
import tempfile
import time

import jax
import jax.numpy as jnp
import orbax.checkpoint as ocp

from aejax import checkpoint, config as config_lib, registry, train

_REPO = pathlib.Path(__file__).resolve().parents[1]


def _noise(x: jax.Array) -> jax.Array:
  """Random values for a float array: a trained state's do not compress as fresh zeros (Adam's moments) do."""
  return jax.random.normal(jax.random.key(x.size), x.shape, x.dtype) if jnp.issubdtype(x.dtype, jnp.inexact) else x


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--config", default=str(_REPO / "experiments" / "ae.py"))
  parser.add_argument("--rounds", type=int, default=10)
  args = parser.parse_args()

  config = config_lib.from_file(args.config)
  variant = registry.get(config.variant)
  model = variant.build_model(config, (28, 28, 1))
  state = train.init_state(variant, model, config, jax.random.key(0), jnp.zeros((1, 28, 28, 1), jnp.float32))
  state = state.replace(params=jax.tree.map(_noise, state.params), opt_state=jax.tree.map(_noise, state.opt_state))
  arrays = {"step": state.step, "params": state.params, "opt_state": state.opt_state}
  times = {name: [] for name in ("orbax_blocking", "orbax_total", "aejax_blocking", "aejax_total", "write_digest",
                                 "check_digest")}
  with tempfile.TemporaryDirectory() as root:
    root = pathlib.Path(root)
    orbax = ocp.CheckpointManager(root / "orbax" / "checkpoints", item_handlers=ocp.StandardCheckpointHandler(),
                                  options=ocp.CheckpointManagerOptions(max_to_keep=3, create=True))
    aejax = checkpoint.Checkpoints(root / "aejax", keep=3)
    for step in range(args.rounds + 1):
      for name, save, wait in (
          ("orbax", lambda: orbax.save(step, args=ocp.args.StandardSave(arrays), force=True),
           orbax.wait_until_finished),
          ("aejax", lambda: aejax.save(step, state), aejax.wait)):
        start = time.perf_counter()
        save()
        blocking = time.perf_counter()
        wait()
        if step:  # Round 0 is the untimed warm-up.
          times[f"{name}_blocking"].append(blocking - start)
          times[f"{name}_total"].append(time.perf_counter() - start)

      folder = aejax.directory / str(step)
      start = time.perf_counter()
      checkpoint.write_digest(folder)
      middle = time.perf_counter()
      assert checkpoint.check_digest(folder)
      end = time.perf_counter()
      if step:
        times["write_digest"].append(middle - start)
        times["check_digest"].append(end - middle)
    orbax.close()
    aejax.close()
    size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())

  print(f"{args.config}: {size / 1e6:.1f} MB per checkpoint, {args.rounds} rounds, {jax.devices()[0].platform}")
  medians = {name: statistics.median(ts) for name, ts in times.items()}
  for name, ts in times.items():
    print(f"  {name:<16} {1e3 * medians[name]:8.1f} ms  (min {1e3 * min(ts):.1f}, max {1e3 * max(ts):.1f})")
  print(f"  digest's share of a save's total: {medians['write_digest'] / medians['orbax_total']:.1%}")
  data = os.urandom(64 << 20)
  throughput = {}
  for name in ("sha256", "blake2b", "sha1"):
    start = time.perf_counter()
    hashlib.new(name, data).hexdigest()
    throughput[name] = len(data) / (time.perf_counter() - start) / 1e9
  print("  hashes: " + ", ".join(f"{name} {gbs:.2f} GB/s" for name, gbs in throughput.items()))
  print(json.dumps({"megabytes": size / 1e6, **{f"{k}_ms": 1e3 * v for k, v in medians.items()},
                    **{f"{k}_gb_per_s": v for k, v in throughput.items()}}))


if __name__ == "__main__":
  main()
