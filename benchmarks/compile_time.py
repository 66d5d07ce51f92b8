"""Seconds XLA:CPU takes to compile, and then to run, the train steps of a few `:smoke` configs, with its fusion
emitters (XLA's default) and with its older loop emitters (`--xla_cpu_use_fusion_emitters=false`), each with
XLA's optimisations on (what a run compiles) and off (`JAX_DISABLE_MOST_OPTIMIZATIONS=1`, what the tests compile).

XLA reads its flags once per process, so each setting runs in a child process of its own, one round of every
setting in turn (`--rounds`, default 3); a child compiles each config's train step (no compilation cache),
runs it once, then times `--steps` more steps (default 30) on one batch of zeros. Printed: the medians over the
rounds of the summed compile and run seconds, per setting, and one JSON line with every round.

    python benchmarks/compile_time.py
    python benchmarks/compile_time.py --configs vae,conv_ae --rounds 5
"""
import argparse
import itertools
import json
import os
import pathlib
import statistics
import subprocess
import sys
import time

_REPO = pathlib.Path(__file__).resolve().parents[1]
# Named either way: the last of a flag given twice wins, and the caller's XLA_FLAGS may name it (the tests' do).
SETTINGS = {f"{emitters}, optimisations {'on' if optimized else 'off'}": (flag, optimized)
            for optimized, (emitters, flag) in itertools.product(
                (True, False), (("fusion emitters", "--xla_cpu_use_fusion_emitters=true"),
                                ("loop emitters", "--xla_cpu_use_fusion_emitters=false")))}


def child(configs: list[str], steps: int) -> dict[str, dict[str, float]]:
  """Compile and run seconds of each config's train step in this process, as XLA_FLAGS and the environment set."""
  import jax  # pylint: disable=g-import-not-at-top  (after the parent has set the environment)
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  from aejax import config as config_lib, train  # pylint: disable=g-import-not-at-top
  times = {}
  for name in configs:
    config = config_lib.from_file(f"{_REPO}/experiments/{name}.py:smoke")
    variant = train.check_config(config)
    model = variant.build_model(config, (28, 28, 1))
    batch = {"image": jnp.zeros((config.batch_size, 28, 28, 1)), "label": jnp.zeros((config.batch_size,), jnp.int32)}
    state = train.init_state(variant, model, config, jax.random.key(0), batch["image"][:1])
    key = jax.random.key(1)
    lowered = jax.jit(train.make_train_step(variant, model, config)).lower(state, batch, key)
    start = time.perf_counter()
    step = lowered.compile()
    compiled = time.perf_counter()
    state, _ = jax.block_until_ready(step(state, batch, key))
    warm = time.perf_counter()
    for _ in range(steps):
      state, _ = step(state, batch, key)
    jax.block_until_ready(state)
    times[name] = {"compile": compiled - start, "run": time.perf_counter() - warm}
  return times


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--configs", default="vae,ae,conv_ae,dcgan,stacked_ae", help="experiments/<name>.py:smoke")
  parser.add_argument("--rounds", type=int, default=3)
  parser.add_argument("--steps", type=int, default=30)
  parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
  args = parser.parse_args()
  configs = args.configs.split(",")
  if args.child:
    print(json.dumps(child(configs, args.steps)))
    return
  rounds = {name: [] for name in SETTINGS}
  for _ in range(args.rounds):
    for name, (flag, optimized) in SETTINGS.items():
      env = {k: v for k, v in os.environ.items() if k != "JAX_COMPILATION_CACHE_DIR"}  # Every program compiled.
      env.update(JAX_PLATFORMS="cpu", JAX_DISABLE_MOST_OPTIMIZATIONS="0" if optimized else "1",
                 XLA_FLAGS=f"{os.environ.get('XLA_FLAGS', '')} {flag}".strip())
      proc = subprocess.run([sys.executable, __file__, "--child", "--configs", args.configs, "--steps",
                             str(args.steps)], env=env, cwd=_REPO, capture_output=True, text=True)
      if proc.returncode != 0:
        sys.exit(f"compile_time: the child for {name!r} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
      rounds[name].append(json.loads(proc.stdout.splitlines()[-1]))
  print(f"{'setting':<40} {'compile s':>10} {'run s':>8}   (sums over {', '.join(configs)}; medians of "
        f"{args.rounds} rounds, {args.steps} steps each)")
  for name, results in rounds.items():
    compile_s = statistics.median(sum(r[c]["compile"] for c in configs) for r in results)
    run_s = statistics.median(sum(r[c]["run"] for c in configs) for r in results)
    print(f"{name:<40} {compile_s:>10.2f} {run_s:>8.2f}")
  print(json.dumps({"configs": configs, "steps": args.steps, "rounds": rounds}))


if __name__ == "__main__":
  main()
