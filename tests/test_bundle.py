"""Bundles: each member trains as it would alone, resumes from its own checkpoints, trains the same with the
members split over 4 devices, and odd members are refused."""
import json
import os
import re
import shutil
import subprocess
import sys

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

from aejax import bundle, config as config_lib, signals, train
from aejax.errors import ConfigError

from conftest import REPO, once_per_session, xla_flags

# Three β-VAE members that differ in every per-member field: β (the variant's hparams), learning rate, seed.
MEMBERS = [dict(beta=1.0, learning_rate=1e-3, seed=0), dict(beta=4.0, learning_rate=3e-3, seed=1),
           dict(beta=2.0, learning_rate=5e-4, seed=0)]
FIELDS = {"num_steps": 20, "log_every": 10, "eval_every": 20, "checkpoint_every": 10, "data.num_train": 1_024,
          "data.num_test": 256, "model.encoder_widths": (128,)}
# A bundle trained over 4 CPU devices: 5 members (MEMBERS, then copies of the first two), padded with 3 dummies to 2
# members per device. (The 1-device bundles of the other tests split without padding.)
SHARDED = MEMBERS + MEMBERS[:2]


def _config(dirs, **fields):
  """experiments/beta_vae.py:smoke with FIELDS and `fields` (dotted names) on the session's MNIST."""
  config = config_lib.from_file(f"{REPO}/experiments/beta_vae.py:smoke")
  config.update_from_flattened_dict({**FIELDS, "data.data_dir": str(dirs[0]), "data.manual_dir": str(dirs[1]),
                                     **fields})
  return config


def _configs(dirs, **fields):
  return [_config(dirs, **m, **fields) for m in MEMBERS]


@pytest.fixture(scope="module")
def dirs(data_dir, mnist_manual_dir):
  return data_dir, mnist_manual_dir


def _latest(workdir):
  options = ocp.CheckpointManagerOptions(read_only=True)  # Maybe a folder the other worker reads too.
  with ocp.CheckpointManager(workdir / "checkpoints", options=options) as manager:
    return manager.restore(manager.latest_step())


def _rows(workdir):
  return [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]


def _assert_close(a, b, rtol=1e-4, atol=1e-6):
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
    np.testing.assert_allclose(x, y, rtol=rtol, atol=atol)


def train_sharded(root: str, data_dir: str, manual_dir: str) -> None:
  """Run in the 4-device subprocess: trains SHARDED in root/member<k>, and prints as JSON the partition spec and
  shard shapes of the first parameter of the state its step is compiled for, and the collectives in that step."""
  compile_within_memory, report = train.compile_within_memory, {}

  def spying(fn, args, *rest):
    compiled = compile_within_memory(fn, args, *rest)
    if not report:  # The train step, compiled first.
      leaf = jax.tree.leaves(args[0].params)[0]
      hlo = compiled.as_text()
      report.update(spec=list(leaf.sharding.spec), shards=[list(leaf.sharding.shard_shape(leaf.shape))] *
                    len(leaf.sharding.device_set),
                    collectives=[c for c in ("all-reduce", "all-gather", "all-to-all", "collective-permute")
                                 if c in hlo])
    return compiled

  train.compile_within_memory = spying
  bundle.train_bundle([_config((data_dir, manual_dir), **m) for m in SHARDED],
                      [f"{root}/member{k}" for k in range(len(SHARDED))])
  print(json.dumps(report))


@pytest.fixture(scope="module")
def trained_bundle(dirs, tmp_path_factory):
  """(workdirs, summaries) of the bundle trained once for the session: tests copy a workdir before they change it."""

  def make(root):
    workdirs = [root / f"member{k}" for k in range(len(MEMBERS))]
    return workdirs, bundle.train_bundle(_configs(dirs), workdirs)

  return once_per_session(tmp_path_factory, "bundle", make)


def test_member_ends_as_if_trained_alone(trained_bundle, dirs, tmp_path):
  workdirs, summaries = trained_bundle
  alone = train.train_and_evaluate(_config(dirs, **MEMBERS[1]), tmp_path / "alone")
  _assert_close(_latest(tmp_path / "alone"), _latest(workdirs[1]))
  for r_alone, r_bundle in zip(_rows(tmp_path / "alone"), _rows(workdirs[1]), strict=True):
    assert r_alone.keys() == r_bundle.keys()
    for k in r_alone.keys() - {"time", "train/samples_per_s"}:
      assert r_bundle[k] == pytest.approx(r_alone[k], rel=1e-4), k
  assert summaries[1]["test/loss"] == pytest.approx(alone["test/loss"], rel=1e-4)
  assert summaries[1]["checkpoint"] == str(workdirs[1].absolute() / "checkpoints" / "20")
  # The members really differ: different β, rate and seed give different parameters.
  first, second = (jax.tree.leaves(_latest(w)["params"])[0] for w in workdirs[:2])
  assert not np.allclose(first, second, rtol=1e-2)


def test_bundle_resumes_from_its_members_checkpoints(trained_bundle, dirs, tmp_path):
  workdirs, _ = trained_bundle
  resumed = [tmp_path / w.name for w in workdirs]
  for whole, part in zip(workdirs, resumed):  # As if stopped after the step-10 checkpoint.
    shutil.copytree(whole, part)
    shutil.rmtree(part / "checkpoints" / "20")
  summaries = bundle.train_bundle(_configs(dirs), resumed)
  assert [s["step"] for s in summaries] == [20] * len(MEMBERS)
  for whole, part in zip(workdirs, resumed):
    _assert_close(_latest(whole), _latest(part))
    rows = [_rows(w) for w in (whole, part)]
    assert [r["step"] for r in rows[1]] == [r["step"] for r in rows[0]]  # Rows past step 10 rewritten, once.
    loss = [[r.get("train/loss", r.get("test/loss")) for r in w] for w in rows]
    assert loss[1] == pytest.approx(loss[0], rel=1e-4)


def test_sigterm_checkpoints_every_member_and_the_rerun_ends_as_uninterrupted(trained_bundle, dirs, tmp_path,
                                                                             monkeypatch, preempt_at):
  workdirs, _ = trained_bundle
  resumed = [tmp_path / w.name for w in workdirs]
  preempt_at(15)  # Logged every 5 steps here, checkpointed every 10: step 15's checkpoint is the signal's.
  with pytest.raises(signals.Interrupted, match="at step 15; checkpoint saved"):
    bundle.train_bundle(_configs(dirs, log_every=5), resumed)
  monkeypatch.undo()
  assert all((w / "checkpoints" / "15").is_dir() for w in resumed)
  summaries = bundle.train_bundle(_configs(dirs, log_every=5), resumed)
  assert [s["step"] for s in summaries] == [20] * len(MEMBERS)
  for whole, part in zip(workdirs, resumed):
    _assert_close(_latest(whole), _latest(part))


def test_rerun_of_a_finished_bundle_trains_nothing_and_reports_the_same(trained_bundle, dirs, tmp_path):
  finished, summaries = trained_bundle
  workdirs = [tmp_path / w.name for w in finished]
  for source, workdir in zip(finished, workdirs):
    shutil.copytree(source, workdir)
  rows = [_rows(w) for w in workdirs]
  again = bundle.train_bundle(_configs(dirs), workdirs)
  assert [_rows(w) for w in workdirs] == rows
  for a, b in zip(again, summaries):
    assert a["test/loss"] == pytest.approx(b["test/loss"], rel=1e-5)


@pytest.mark.parametrize("fields, message", [
    (dict(latent_dim=8), "bundle member 1 (m1) differs from member 0 in config.latent_dim: within a bundle only "
                         "beta, kl_warmup_steps, learning_rate, seed, vae.ciwae_beta, wandb.name may differ; train the "
                         "others in another bundle"),
    ({"data.binarize": "static"}, "differs from member 0 in config.data.binarize:"),
])
def test_members_that_differ_in_other_fields_are_refused(dirs, fields, message):
  configs = [_config(dirs), _config(dirs, beta=2.0, **fields)]
  with pytest.raises(ConfigError, match=re.escape(message)):
    bundle.check_bundle(configs, ["m0", "m1"])


def test_members_need_their_own_workdirs(dirs, tmp_path):
  with pytest.raises(ConfigError, match="two bundle members share a workdir"):
    bundle.check_bundle([_config(dirs), _config(dirs, seed=1)], [tmp_path, tmp_path])
  with pytest.raises(ConfigError, match="a bundle needs one workdir per config: got 2 configs and 1 workdirs"):
    bundle.check_bundle([_config(dirs), _config(dirs, seed=1)], [tmp_path])


def test_members_split_over_four_devices_train_as_on_one(trained_bundle, dirs, tmp_path):
  """`train_sharded` in a subprocess, as JAX reads the device count when it starts (alone: two JAX processes on a
  few cores slow each other down more than they overlap); like every test's, it compiles with most of XLA's
  optimisations off (tests/conftest.py)."""
  workdirs, _ = trained_bundle
  code = f"import test_bundle; test_bundle.train_sharded({str(tmp_path)!r}, {str(dirs[0])!r}, {str(dirs[1])!r})"
  # XLA:CPU ends the process when a device's thread is 40 s late to a collective; on a loaded 2-core machine the four
  # devices' threads can be starved that long (seen twice in CI), so it waits up to 240 s here.
  flags = xla_flags("--xla_force_host_platform_device_count=4",
                    "--xla_cpu_collective_call_terminate_timeout_seconds=240",
                    "--xla_cpu_collective_call_warn_stuck_timeout_seconds=60")
  proc = subprocess.run([sys.executable, "-c", code], cwd=REPO / "tests", capture_output=True, text=True, timeout=300,
                        env={**os.environ, "XLA_FLAGS": flags})
  assert proc.returncode == 0, proc.stderr[-3000:]
  # Two members per device, and no traffic between the devices in a step.
  assert json.loads(proc.stdout.splitlines()[-1]) == {"spec": ["members"], "shards": [[2, 128]] * 4,
                                                      "collectives": []}
  for k, m in enumerate(SHARDED):
    _assert_close(_latest(workdirs[MEMBERS.index(m)]), _latest(tmp_path / f"member{k}"), rtol=1e-5, atol=1e-5)
  assert sorted(p.name for p in tmp_path.glob("member*")) == [f"member{k}" for k in range(len(SHARDED))]  # No dummy.
