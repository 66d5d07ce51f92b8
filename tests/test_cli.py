"""The command line: overrides, one-line errors before any work, SIGTERM checkpoints, W&B without a key."""
import json
import os
import re
import signal
import subprocess
import sys
import time
import types

import pytest
from absl import logging

from aejax import config as config_lib
from aejax import train, writers
from aejax.errors import ConfigError

from conftest import REPO, users_environment


def _command(name, workdir, data_dir, manual_dir, cache_dir, *overrides):
  return [sys.executable, "-m", "aejax.main", f"--config=experiments/{name}.py:smoke", f"--workdir={workdir}",
          f"--config.data.data_dir={data_dir}", f"--config.data.manual_dir={manual_dir}",
          f"--config.compilation_cache_dir={cache_dir}", *overrides]


@pytest.fixture()
def cli(data_dir, mnist_manual_dir, tmp_path_factory):
  cache_dir = tmp_path_factory.getbasetemp() / "cli-jax-cache"

  def run(name, workdir, *overrides, env=None, **popen):
    command = _command(name, workdir, data_dir, mnist_manual_dir, cache_dir, *overrides)
    if popen:
      return subprocess.Popen(command, cwd=REPO, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    return subprocess.run(command, cwd=REPO, text=True, capture_output=True, timeout=300, env=env)

  return run


def test_overrides_reach_the_run(cli, tmp_path):
  """With XLA compiling as it does for users (the other tests change its settings to compile faster)."""
  result = cli("vae", tmp_path, "--config.beta=2", "--config.latent_dim=5", "--config.seed=3",
               "--config.num_steps=30", "--config.model.encoder_widths=(64,32)", "--config.checkpoint_every=10",
               "--config.keep_checkpoints=2", env=users_environment())
  assert result.returncode == 0, result.stderr
  saved = json.loads((tmp_path / "config.json").read_text())
  assert (saved["beta"], saved["latent_dim"], saved["seed"], saved["num_steps"]) == (2.0, 5, 3, 30)
  assert saved["model"]["encoder_widths"] == [64, 32]
  assert "aejax: finished" in result.stdout and "test/neg_elbo" in result.stdout
  assert str(tmp_path / "checkpoints" / "30") in result.stdout
  assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir() if p.name.isdigit()) == ["20", "30"]
  assert not re.findall(r"^I\d{4} .*", result.stderr, re.M)  # absl's INFO lines (orbax's) only with --verbosity.


@pytest.mark.parametrize("overrides,message", [
    (["--config.variant=vqgan"], "config.variant='vqgan' is not a known variant: use one of aae, ae, autorec, "
     "beta_tcvae, beta_vae, "),
    (["--config.beta=-1"], "config.beta=-1.0: the KL weight must be >= 0"),
    # Flags that fail while they are parsed, in ml_collections.
    (["--config=experiments/vae.py:smok"], "config argument 'smok' is not known: use 'experiments/NAME.py' or"),
    (["--config=experiments/vea.py"], "--config=experiments/vea.py: config file 'experiments/vea.py' does not exist: "
     "use a path such as experiments/vae.py"),
    (["--config.betta=4"], "the config has no field 'betta' (did you mean 'beta'?): check the --config.FIELD flags"),
    (["--config.model.widthz=4"], "the config has no field 'widthz': check the --config.FIELD flags"),
    (["--config.modle.encoder_widths=(3,)"], "the config has no field 'modle' (did you mean 'model'?): check the"),
])
def test_bad_field_is_one_line_without_traceback(cli, tmp_path, overrides, message):
  result = cli("vae", tmp_path / "run", *overrides)
  assert result.returncode == 1
  lines = result.stderr.strip().splitlines()
  assert len(lines) == 1 and lines[0].startswith(f"aejax: error: {message}"), result.stderr
  assert not (tmp_path / "run").exists()  # Nothing was started.


@pytest.mark.parametrize("name,fields,message", [
    ("ae", dict(variant="convae"), "config.variant='convae' is not a known variant: use one of"),
    ("ae", dict(latent_dim=0), "config.latent_dim=0: the code size must be a positive integer"),
    ("vae", dict(beta=-0.5), "config.beta=-0.5: the KL weight must be >= 0"),
    ("dae", dict(noise_factor=-0.1), "config.noise_factor=-0.1: the noise level must be >= 0"),
    ("dae", dict(noise_factor=0.0), "config.noise_factor=0.0: a denoising autoencoder needs noise"),
    ("dae", dict(noise_type="mask", noise_factor=1.5), "config.noise_factor=1.5: with noise_type='mask'"),
    ("ae", dict(batch_size=5000), "config.batch_size=5000 is larger than the 2048 training images of 'mnist': use a "
     "batch size of at most 2048, or more images (config.data.num_train=2048)"),
    ("ae", dict(loss="l1"), "config.loss='l1': use one of mse, bce"),
    ("ae", dict(lr_schedule="cosine", warmup_steps=60),
     "config.warmup_steps=60: the cosine schedule decays after the warm-up: use fewer than num_steps=60"),
    ("ae", dict(weight_decay=-0.1), "config.weight_decay=-0.1: use 0 (off) or a positive decay"),
    ("ae", dict(grad_clip_norm=-1.0), "config.grad_clip_norm=-1.0: use 0 (no clipping)"),
    ("ae", dict(num_images=0), "config.num_images=0: use a positive integer"),
    ("ae", dict(wandb__mode="sometimes"), "config.wandb.mode='sometimes': use one of online, offline, disabled"),
    ("vae", dict(decoder_std=0.0), "config.decoder_std=0.0: use a positive standard deviation"),
    ("vae", dict(kl_warmup_steps=-5), "config.kl_warmup_steps=-5: use 0 (off) or a step count"),
    ("ae", dict(batch_size=0), "config.batch_size=0: use a positive batch size"),
    ("ae", dict(num_steps=0), "config.num_steps=0: train for at least one step"),
    ("ae", dict(learning_rate=-1e-3), "config.learning_rate=-0.001: use a positive rate"),
    ("ae", dict(warmup_steps=-1), "config.warmup_steps=-1: use 0 (off) or a step count"),
    ("ae", dict(eval_every=0), "config.eval_every=0: use a positive integer"),
    ("ae", dict(model__encoder_widths=(64, 0)),
     "config.model.encoder_widths/decoder_widths=(64, 0): every layer width must be a positive integer"),
    ("ae", dict(model__spatial_code=True), "config.model.spatial_code=True: a spatial code needs the conv encoder"),
    ("ae", dict(model__kind="conv", model__code_channels=0), "config.model.code_channels=0: use a positive channel"),
    ("ae", dict(model__kind="conv", model__conv_features=()), "config.model.conv_features=(): use one or more"),
    ("ae", dict(eval__num_train=0), "config.eval.num_train=0: use a positive number of train images"),
    ("ae", dict(eval__noise_factors=(0.5, -1.0)), "config.eval.noise_factors=(0.5, -1.0): use one or more positive"),
    ("ae", dict(eval__block_size=0), "config.eval.block_size=0: use a positive side in pixels"),
])
def test_bad_fields_are_named_with_value_and_fix(smoke_config, tmp_path, name, fields, message):
  with pytest.raises(ConfigError, match="^" + message.replace("(", r"\(").replace(")", r"\)").replace(".", r"\.")
                     .replace("[", r"\[")):
    train.train_and_evaluate(smoke_config(name, **fields), tmp_path / "run")
  assert not (tmp_path / "run").exists()


def test_missing_data_dir_without_download_is_named(smoke_config, tmp_path):
  config = smoke_config("ae", data__data_dir=str(tmp_path / "nowhere"), data__download=False)
  config.data.manual_dir = None
  with pytest.raises(ConfigError, match=r"^data\.data_dir='.*nowhere' does not exist and download is off"):
    train.train_and_evaluate(config, tmp_path / "run")


def test_folders_under_a_file_are_named(smoke_config, tmp_path):
  blocker = tmp_path / "afile"
  blocker.write_text("")
  with pytest.raises(ConfigError, match=r"^--workdir='.*afile/run': '.*afile' is a file, not a folder"):
    train.train_and_evaluate(smoke_config("ae"), blocker / "run")
  with pytest.raises(ConfigError, match=r"^data\.data_dir='.*afile/tfds': '.*afile' is a file, not a folder"):
    train.train_and_evaluate(smoke_config("ae", data__data_dir=str(blocker / "tfds")), tmp_path / "run")
  assert not (tmp_path / "run").exists()


def test_wrong_manual_dir_is_named(smoke_config, tmp_path):
  config = smoke_config("ae", data__data_dir=str(tmp_path / "fresh"), data__manual_dir=str(tmp_path))
  with pytest.raises(ConfigError, match=r"^data\.manual_dir='.*' has no train-images-idx3-ubyte\.gz"):
    train.train_and_evaluate(config, tmp_path / "run")


def test_a_run_imports_only_what_it_uses(data_dir, mnist_manual_dir, tmp_path):
  """`ae.py:smoke` (W&B disabled, no evaluation suite) from a prepared data dir: W&B, the evaluation's libraries,
  matplotlib and TFDS (with requests, which only preparing uses) stay unimported, sparing start-up their time."""
  script = ("import atexit, json, sys, runpy\n"
            "atexit.register(lambda: print(json.dumps(sorted({m.split('.')[0] for m in sys.modules}))))\n"
            "sys.argv[0] = 'aejax.main'\n"
            "runpy.run_module('aejax.main', run_name='__main__')\n")
  command = _command("ae", tmp_path, data_dir, mnist_manual_dir, tmp_path / "cache", "--config.num_steps=2")
  result = subprocess.run([sys.executable, "-c", script, *command[3:]], cwd=REPO, text=True, capture_output=True,
                          timeout=300)
  assert result.returncode == 0 and "aejax: finished" in result.stdout, result.stderr
  imported = set(json.loads(result.stdout.splitlines()[-1]))
  assert {"jax", "flax", "optax", "orbax"} <= imported  # What the run does use.
  assert not imported & {"wandb", "sklearn", "skimage", "scipy", "matplotlib", "tensorflow_datasets", "requests"}


def test_sigterm_writes_a_checkpoint_and_the_rerun_resumes(cli, tmp_path):
  process = cli("ae", tmp_path, "--config.num_steps=1000000", "--config.log_every=10", popen=True)
  metrics = tmp_path / "metrics.jsonl"
  deadline = time.time() + 240
  while not (metrics.exists() and metrics.read_text().strip()) and process.poll() is None and time.time() < deadline:
    time.sleep(0.2)
  process.send_signal(signal.SIGTERM)
  _, stderr = process.communicate(timeout=120)
  assert process.returncode == 128 + signal.SIGTERM, stderr
  assert "checkpoint saved, rerun the same command to resume" in stderr
  saved = [int(p.name) for p in (tmp_path / "checkpoints").iterdir() if p.name.isdigit()]
  assert len(saved) == 1 and saved[0] >= 10
  result = cli("ae", tmp_path, f"--config.num_steps={saved[0] + 20}", "--config.log_every=10")
  assert result.returncode == 0, result.stderr
  steps = [json.loads(line)["step"] for line in metrics.read_text().splitlines()]
  assert steps == sorted(steps) and steps[-1] == saved[0] + 20


@pytest.mark.parametrize("verbosity", [0, 1])
def test_wandb_without_api_key_logs_offline_and_says_where_in_one_line(smoke_config, tmp_path, monkeypatch, capfd,
                                                                        verbosity):
  monkeypatch.delenv("WANDB_API_KEY", raising=False)
  monkeypatch.setenv("HOME", str(tmp_path))  # No ~/.netrc either.
  monkeypatch.setenv("WANDB_DISABLE_GIT", "true")
  monkeypatch.setattr(logging, "get_verbosity", lambda: verbosity)  # What --verbosity sets.
  train.train_and_evaluate(smoke_config("ae", num_steps=20, wandb__mode="online"), tmp_path / "run")
  runs = list((tmp_path / "run" / "wandb").glob("offline-run-*"))
  assert len(runs) == 1 and any(runs[0].glob("*.wandb"))
  said = capfd.readouterr().err.splitlines()
  assert f"aejax: W&B run saved offline in {runs[0]} (upload it with `wandb sync {runs[0]}`)" in said
  wandb_lines = [line for line in said if line.startswith("wandb:")]
  if verbosity == 0:
    assert not wandb_lines, wandb_lines
  else:  # --verbosity=1 asks for W&B's own lines, its run summary among them.
    assert "wandb: Run summary:" in wandb_lines


class _WandbRun:
  """Records what a W&B run is given: its init arguments, logged rows and summary."""

  offline = True
  settings = types.SimpleNamespace(sync_dir="run-folder")

  def __init__(self, **init_args):
    self.init_args, self.rows, self.summary = init_args, {}, {}

  def log(self, row, step):
    self.rows.setdefault(step, {}).update(row)

  def finish(self):
    pass


def test_wandb_gets_the_config_every_scalar_picture_and_summary_and_a_rerun_resumes_its_run(smoke_config, tmp_path,
                                                                                         monkeypatch):
  started = []
  monkeypatch.setattr(writers, "start_wandb", lambda mode, **init_args: started.append(_WandbRun(**init_args))
                      or started[-1])
  config = smoke_config("ae", num_steps=20, log_every=10, eval_every=20, wandb__mode="offline",
                        wandb__project="proj", wandb__group="grp", wandb__tags=("a", "b"))
  summary = train.train_and_evaluate(config, tmp_path / "run")
  (run,) = started
  assert run.init_args["config"] == config.to_dict() and run.init_args["name"] == "run"
  assert (run.init_args["project"], run.init_args["group"], run.init_args["tags"]) == ("proj", "grp", ["a", "b"])
  for row in (json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()):
    assert run.rows[row["step"]].items() >= {k: v for k, v in row.items() if k not in ("step", "time")}.items()
  assert any(k.startswith("images/") for k in run.rows[20])
  assert run.summary["test/loss"] == summary["test/loss"]

  config.num_steps = 30  # Extended in the same workdir: the same W&B run, resumed.
  train.train_and_evaluate(config, tmp_path / "run")
  assert started[1].init_args["id"] == run.init_args["id"] and started[1].init_args["resume"] == "allow"
  assert 30 in started[1].rows and 10 not in started[1].rows


@pytest.mark.parametrize("module,user_flags,imports_jax", [
    ("aejax.main", ["config", "workdir"], False),
    ("aejax.evaluate", ["workdir", "suite", "nll_samples"], True),  # Its suites' module imports JAX at the top.
    ("aejax.bundle", ["config", "root", "members"], True),
    ("aejax.curves", ["root", "x", "y", "wandb_mode"], True),
    ("launch.local", ["config", "root", "workers", "devices", "bundle_size", "name", "dry_run"], False),
    ("launch.slurm", ["config", "root", "partition", "gpus_per_task", "cpus_per_task", "timeout_min",
                      "array_parallelism", "bundle_size", "wait", "local", "name", "dry_run"], False),
])
def test_help_lists_the_flags_a_user_types_with_an_example(module, user_flags, imports_jax):
  result = subprocess.run([sys.executable, "-X", "importtime", "-m", module, "--help"], cwd=REPO, text=True,
                          capture_output=True, timeout=120)
  assert result.returncode == 0, result.stderr
  assert re.findall(r"^  --(\w+) ", result.stdout, re.M) == user_flags  # One entry each, as the usage orders them.
  assert re.search(rf"^example:\n  python -m {re.escape(module)} --\w+", result.stdout, re.M), result.stdout
  for noise in ("logtostderr", "--flagfile", "--undefok", "only_check_args", "Try --helpfull", "absl.logging"):
    assert noise not in result.stdout
  assert "--helpfull" in result.stdout.splitlines()[-1]
  assert imports_jax or not re.search(r"\|\s+jax$", result.stderr, re.M)  # --help imports no JAX where it can.


def test_short_help_is_the_same_and_helpfull_keeps_absl_flags():
  def run(*args):
    return subprocess.run([sys.executable, "-m", "launch.local", *args], cwd=REPO, text=True, capture_output=True,
                          timeout=120)
  assert run("-h").stdout == run("--help").stdout
  assert "--[no]logtostderr" in run("--helpfull").stdout


# Config files that cannot give a config, by file name.
_BAD_CONFIG_FILES = {
    "syntax.py": "def get_config(:\n  pass\n",
    "raises.py": "def get_config(arg=None):\n  raise ValueError('no such model')\n",
    "no_get_config.py": "CONFIG = {}\n",
    "import_error.py": "import no_such_module_anywhere\n",
    "returns_none.py": "def get_config(arg=None):\n  del arg\n",
    "bad_sweep.py": ("from aejax import config as config_lib\n\n\ndef get_config(arg=None):\n"
                     "  return config_lib.finalize(config_lib.base_config(), arg)\n\n\ndef get_sweep():\n"
                     "  return [{'seed': 1 // 0}]\n"),
    "afile": "",
}
_BETA = "experiments/beta_vae.py:smoke"

# Every bad input tried on the command line, with the one line it gets (`{tmp}`: the test's folder, which holds
# `_BAD_CONFIG_FILES`). Each is a real command, run as a user would, with no GPU visible (CUDA_VISIBLE_DEVICES='').
BAD_INPUTS = [
    ("aejax.main", ["--config={tmp}/syntax.py", "--workdir={tmp}/run"],
     "aejax: error: --config={tmp}/syntax.py: {tmp}/syntax.py, line 1: "),
    ("aejax.main", ["--config={tmp}/raises.py", "--workdir={tmp}/run"],
     "aejax: error: --config={tmp}/raises.py: get_config() raised ValueError: no such model ({tmp}/raises.py, "
     "line 2): fix the config file"),
    ("aejax.main", ["--config={tmp}/no_get_config.py", "--workdir={tmp}/run"],
     "aejax: error: --config={tmp}/no_get_config.py: {tmp}/no_get_config.py defines no get_config(): add one "
     "returning the config, e.g. def get_config(arg=None): return config_lib.base_config() (see experiments/ae.py)"),
    ("aejax.main", ["--config={tmp}/import_error.py", "--workdir={tmp}/run"],
     "aejax: error: --config={tmp}/import_error.py: loading it raised ModuleNotFoundError: No module named "
     "'no_such_module_anywhere' ({tmp}/import_error.py, line 1): fix the config file"),
    ("aejax.main", ["--config={tmp}/returns_none.py", "--workdir={tmp}/run"],
     "aejax: error: --config={tmp}/returns_none.py: get_config() returned NoneType, not a ConfigDict: return "
     "config_lib.base_config() with your changes (see experiments/ae.py)"),
    ("aejax.main", ["--config={tmp}", "--workdir={tmp}/run"],
     "aejax: error: --config={tmp}: config file '{tmp}' is a folder: use a path such as experiments/vae.py"),
    ("aejax.main", ["--config={tmp}/raises.py:smoke", "--config.beta=2", "--workdir={tmp}/run"],
     "aejax: error: --config={tmp}/raises.py:smoke: get_config() raised ValueError: no such model"),
    ("launch.local", ["--config={tmp}/raises.py", "--root={tmp}/run", "--dry_run"],
     "launch.local: error: --config={tmp}/raises.py: get_config() raised ValueError: no such model"),
    ("launch.local", [f"--config={_BETA}", "--root={tmp}/afile"],
     "launch.local: error: --root='{tmp}/afile': '{tmp}/afile' is a file, not a folder: use a folder path"),
    ("launch.local", [f"--config={_BETA}", "--root={tmp}/afile", "--dry_run"],
     "launch.local: error: --root='{tmp}/afile': '{tmp}/afile' is a file, not a folder: use a folder path"),
    ("launch.local", [f"--config={_BETA}", "--root={tmp}/afile/sweep", "--dry_run"],
     "launch.local: error: --root='{tmp}/afile/sweep': '{tmp}/afile' is a file, not a folder: use a folder path"),
    ("launch.slurm", [f"--config={_BETA}", "--root={tmp}/afile", "--local"],
     "launch.slurm: error: --root='{tmp}/afile': '{tmp}/afile' is a file, not a folder: use a folder path"),
    ("launch.slurm", [f"--config={_BETA}", "--root={tmp}/afile", "--dry_run"],
     "launch.slurm: error: --root='{tmp}/afile': '{tmp}/afile' is a file, not a folder: use a folder path"),
    ("launch.local", ["--config={tmp}/bad_sweep.py", "--root={tmp}/run", "--dry_run"],
     "launch.local: error: --config={tmp}/bad_sweep.py: get_sweep() raised ZeroDivisionError: integer division or "
     "modulo by zero ({tmp}/bad_sweep.py, line 9): fix the config file"),
    ("launch.local", [f"--config={_BETA}", "--root={tmp}/run", "--devices=0,1", "--dry_run"],
     "launch.local: error: --devices=0,1: no GPU visible: CUDA_VISIBLE_DEVICES is empty: leave --devices out to "
     "train on the CPU (--workers N trains N members at once)"),
    ("launch.slurm", [f"--config={_BETA}", "--root={tmp}/run", "--local", "--gpus_per_task=1", "--dry_run"],
     "launch.slurm: error: --gpus_per_task=1 with --local: no GPU visible: CUDA_VISIBLE_DEVICES is empty: leave "
     "--gpus_per_task out for CPU tasks"),
]


@pytest.mark.parametrize("module,args,line", BAD_INPUTS)
def test_bad_input_is_one_line_naming_the_flag_and_the_fix(tmp_path, module, args, line):
  for name, text in _BAD_CONFIG_FILES.items():
    (tmp_path / name).write_text(text)
  result = subprocess.run([sys.executable, "-m", module, *(a.format(tmp=tmp_path) for a in args)], cwd=REPO,
                          text=True, capture_output=True, timeout=120, env={**os.environ, "CUDA_VISIBLE_DEVICES": ""})
  assert result.returncode == 1 and result.stdout == ""
  assert result.stderr.count("\n") == 1 and result.stderr.startswith(line.format(tmp=tmp_path)), result.stderr
  assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("name,message", [
    ("syntax.py", r"--config=.*syntax\.py: .*syntax\.py, line 1: "),
    ("raises.py", r"--config=.*raises\.py: get_config\(\) raised ValueError: no such model \(.*raises\.py, line 2\)"),
    ("no_get_config.py", r"--config=.*no_get_config\.py: .*no_get_config\.py defines no get_config\(\)"),
    ("import_error.py", r"--config=.*import_error\.py: loading it raised ModuleNotFoundError"),
    ("returns_none.py", r"--config=.*returns_none\.py: get_config\(\) returned NoneType, not a ConfigDict"),
    ("nowhere.py", r"--config=.*nowhere\.py: config file '.*nowhere\.py' does not exist"),
])
def test_from_file_names_what_is_wrong_with_the_config_file(tmp_path, name, message):
  for file, text in _BAD_CONFIG_FILES.items():
    (tmp_path / file).write_text(text)
  with pytest.raises(ConfigError, match="^" + message):
    config_lib.from_file(str(tmp_path / name))
