"""The config schema every experiment starts from, and its validation.

Experiments in `experiments/` call `base_config()` and change fields; every field can be
overridden from the command line (`--config.beta=4`). `validate` runs before any work and
turns a bad value into one `ConfigError` line naming the field, the value and the fix.
"""
import importlib.machinery
import importlib.util
import json
import os
import pathlib
import re
import sys
import textwrap
import traceback
from collections.abc import Callable
from typing import Any

from absl import flags, logging
from ml_collections import config_dict

from aejax.data import catalog
from aejax.errors import ConfigError, require

NONFINITE = ("stop", "skip")
ACTIVATIONS = ("relu", "gelu", "elu", "leaky_relu", "swish", "tanh", "sigmoid", "linear")
LOSSES = ("mse", "bce")
NOISE_TYPES = ("gaussian", "mask", "poisson")
BINARIZE = ("none", "static", "dynamic")
OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULES = ("constant", "cosine")
MODEL_KINDS = ("mlp", "conv", "strided_conv")
UPSAMPLES = ("nearest", "transpose")
CONV_IMPLS = ("auto", "xla", "cpu")
WANDB_MODES = ("online", "offline", "disabled")
STACK_INPUTS = ("codes", "concat")
# The shared evaluation suites (aejax/evaluation/suites.py); a family may bring its own (`registry.Variant.suites`),
# and aejax/evaluation/selection.py checks `eval.suites` against both.
EVAL_SUITES = ("recon", "anomaly", "denoise", "impute", "generate", "nll", "samples", "disentanglement")
SAP_PREDICTORS = ("linear_svc", "threshold", "r2")  # aejax/evaluation/disentanglement.py's `sap`.
_MIN_FACTOR_SAMPLES = 100  # The disentanglement suite's fewest points per metric.
_MIN_SAMPLES = 10  # The samples suite's fewest samples and reference images: k-NN balls need k + 1 = 4 points.


def base_config() -> config_dict.ConfigDict:
  """Every field a run reads, with defaults; experiments override a few."""
  c = config_dict.ConfigDict()
  c.variant = "ae"
  c.latent_dim = 64
  # Reconstruction loss, summed over pixels per example and averaged over the batch:
  # 'mse' (squared error; for VAEs a Gaussian decoder with std `decoder_std`) or
  # 'bce' (binary cross-entropy from logits; for VAEs a Bernoulli decoder).
  c.loss = "mse"
  c.decoder_std = 1.0
  c.beta = 1.0
  c.kl_warmup_steps = 0
  # VAEs: k > 1 trains on the importance-weighted bound with k samples (IWAE, Burda et al. 2016), needs β = 1.
  c.iwae_samples = 1
  # Denoising corruption (aejax/data/corruption.py) at `noise_factor`: 'gaussian' (its standard deviation), 'mask'
  # (the fraction of pixels dropped) or 'poisson' (photon-count noise, 1 / the photons of a pixel of 1).
  c.noise_type = "gaussian"
  c.noise_factor = 0.0
  # Sparse AE (`sparse_ae`): loss = reconstruction + sparsity_weight (λ >= 0) · penalty on the code h.
  # 'l1': mean |h| over batch and code units; 'kl': Σ_j KL(ρ ‖ ρ̂_j), ρ = sparsity_target in (0, 1) and
  # ρ̂_j the batch mean of sigmoid code unit j (needs model.code_activation='sigmoid').
  c.sparsity = "l1"
  c.sparsity_weight = 0.0
  c.sparsity_target = 0.05
  # Contractive AE (`contractive_ae`): loss = reconstruction + contractive_weight · ‖∂h/∂x‖²_F, the squared
  # Frobenius norm of the code's Jacobian in the input, per example (>= 0; 0 is the plain autoencoder).
  c.contractive_weight = 0.0
  # Stacked AE (`stacked_ae`): layer k is pre-trained alone for `pretrain_steps` steps as a one-hidden-layer AE,
  # layer after layer, then the stack is fine-tuned end to end for the remaining steps (0: end to end only).
  # 'codes': layer k+1 learns to reconstruct layer k's code; 'concat': its input is layer k's input joined
  # with layer k's reconstruction (twice as wide, the seed's "implementation 1").
  c.pretrain_steps = 0
  c.stack_input = "codes"

  c.model = config_dict.ConfigDict()
  c.model.kind = "mlp"
  c.model.encoder_widths = (500, 300, 150, 100)
  c.model.decoder_widths = config_dict.placeholder(tuple)  # None: mirror of the encoder.
  c.model.activation = "relu"
  c.model.code_activation = "linear"
  # kind='conv': a 3x3 conv + 2x2 max-pool per entry, mirrored by the decoder. kind='strided_conv': a 4x4 stride-2
  # conv per entry, then Dense layers of `encoder_widths`, mirrored by the decoder (Dense layers, then stride-2
  # transposed convs); (32, 32, 64, 64) with encoder_widths (256,) on 64x64 images is the net disentanglement papers
  # share (Higgins et al. 2017; Locatello et al. 2019).
  c.model.conv_features = (32, 64)
  c.model.upsample = "nearest"  # Or 'transpose': stride-2 transposed convs in the conv decoder.
  # kind='conv': True makes the code spatial, the last pooled map through a 3x3 conv to `code_channels`
  # channels, with no Dense layer (`latent_dim`, the size of a vector code, is then unused); not for VAEs.
  c.model.spatial_code = False
  c.model.code_channels = 128
  # How convolutions run (same parameters, same results): 'auto' is 'cpu' on the CPU and 'xla' elsewhere;
  # 'xla' is XLA's convolution as it is; 'cpu' is the forms XLA:CPU runs fastest (aejax/nn/convolution.py).
  c.model.conv_impl = "auto"

  c.optimizer = "adam"
  c.learning_rate = 1e-3
  c.lr_schedule = "constant"
  c.warmup_steps = 0
  c.weight_decay = 0.0  # 'adamw': decoupled weight decay; 'sgd': an L2 cost on the weight matrices (not biases).
  c.momentum = 0.9  # 'sgd': the momentum of its updates (0: none).
  c.adam_b1 = 0.9  # 'adam', 'adamw': the decay rates of the first and second moment estimates (GANs: b1 0.5).
  c.adam_b2 = 0.999
  c.grad_clip_norm = 0.0  # 0 disables clipping.
  # A non-finite loss, gradient or parameter: 'stop' ends the run there, its last finite checkpoint kept (exit 1);
  # 'skip' leaves that step's update out (optax.apply_if_finite) and counts such steps in train/nonfinite.
  c.on_nonfinite = "stop"

  c.batch_size = 256
  c.num_steps = 10_000
  c.seed = 0

  c.data = config_dict.ConfigDict()
  # A data set of aejax/data/catalog.py: mnist, fashion_mnist, uci_digits, dsprites (dsprites_small: a sub-grid),
  # photo_patches; movielens_100k (ratings).
  c.data.name = "mnist"
  c.data.data_dir = config_dict.placeholder(str)  # TFDS data dir; None: $TFDS_DATA_DIR or TFDS default.
  # Folder with the four IDX .gz files (offline; IDX data sets), or with dSprites' original .npz, read instead of
  # rendering it.
  c.data.manual_dir = config_dict.placeholder(str)
  c.data.download = True  # Whether preparing may download the IDX files when manual_dir is None.
  # (height, width) of the images, one of the sizes the data set is prepared at (catalog.py: uci_digits' 8x8 at
  # (28, 28) or (32, 32)); None: its native size.
  c.data.resize = config_dict.placeholder(tuple)
  c.data.binarize = "none"
  c.data.num_train = config_dict.placeholder(int)  # None: the whole split.
  c.data.num_test = config_dict.placeholder(int)
  # Digits kept in the train split, e.g. (3,) for the one-class anomaly protocol; () keeps all. The test split
  # keeps every digit, so the others are the anomalies. num_train then counts the kept images.
  c.data.train_labels = ()
  # True: each batch also carries the train split's per-pixel mean and standard deviation ('pixel_mean',
  # 'pixel_std'), for models of standardised, real-valued pixels (a Gaussian–Bernoulli RBM); images stay in [0, 1].
  c.data.standardize = False
  # True: the train split also holds the test split's examples, after its own; the test split stays as it is. Deep
  # clustering's protocol (DEC, IDEC: all 70,000 MNIST images are clustered, labels unseen).
  c.data.with_test = False

  # The evaluation suite (`python -m aejax.evaluate`, or at the end of training for the suites named here).
  c.eval = config_dict.ConfigDict()
  c.eval.suites = ()  # Run after training: any of EVAL_SUITES (or the variant's own suites); () none.
  c.eval.num_train = 10_000  # Train images that PCA and the linear probe are fitted on.
  c.eval.noise_factors = (0.25, 0.5, 0.75)  # Denoising: corruption levels (config.noise_type) to score.
  c.eval.mask_fraction = 0.5  # Imputation: the fraction of pixels hidden by the random mask.
  c.eval.block_size = 12  # Imputation: the side of the hidden square, at a random place in each image.
  c.eval.nll_samples = 5_000  # Importance samples per image of the NLL estimate (5,000 as published).
  # The samples suite (generative variants): `sample_count` samples scored in the penultimate features of a digit
  # classifier that aejax trains once per data set for `classifier_steps` steps and caches in
  # <classifier_dir>/<data set>-<steps>steps, with the features of the first `reference_count` test images (the
  # reference) and train images (the train-vs-test floor).
  c.eval.sample_count = 10_000
  c.eval.reference_count = 10_000
  c.eval.classifier_dir = "~/.cache/aejax/classifiers"
  c.eval.classifier_steps = 1_872  # 4 epochs of MNIST (aejax/variants/classifier.py).
  # The disentanglement suite (data sets with ground-truth factors: dSprites): each metric's train points (BetaVAE,
  # FactorVAE, DCI, SAP; half as many to score) and MIG's samples, 10,000 in disentanglement_lib's published
  # configs. DCI's gradient-boosted trees take about 5 minutes of a 2-core CPU at 10,000.
  c.eval.factor_samples = 10_000
  c.eval.sap_predictor = "linear_svc"  # disentanglement_lib's; 'threshold' can reach 1 on dSprites' 32 positions.

  c.log_every = 100
  c.eval_every = 2_000
  c.checkpoint_every = 2_000
  c.keep_checkpoints = 3
  c.eval_batch_size = 1_000
  c.num_images = 8
  # '' disables JAX's persistent cache; JAX's own JAX_COMPILATION_CACHE_DIR, where set, is the default.
  c.compilation_cache_dir = os.environ.get("JAX_COMPILATION_CACHE_DIR", "~/.cache/aejax/jax")

  c.wandb = config_dict.ConfigDict()
  c.wandb.mode = "online"  # With no API key an 'online' run falls back to 'offline'.
  c.wandb.project = "aejax"
  c.wandb.entity = config_dict.placeholder(str)
  c.wandb.group = config_dict.placeholder(str)
  c.wandb.tags = ()
  c.wandb.name = config_dict.placeholder(str)
  return c


def smoke(c: config_dict.ConfigDict) -> config_dict.ConfigDict:
  """Shrinks a config to a run of a few seconds on a CPU (used by tests and `:smoke`)."""
  c.num_steps = 60
  c.batch_size = 64
  c.data.num_train = 2_048
  c.data.num_test = 512
  c.eval_batch_size = 256
  c.log_every = 20
  c.eval_every = 30
  c.checkpoint_every = 30
  c.warmup_steps = min(c.warmup_steps, 10)
  c.kl_warmup_steps = min(c.kl_warmup_steps, 20)
  c.eval.num_train = 512
  c.eval.nll_samples = 16
  c.eval.factor_samples = 500
  c.eval.sample_count = c.eval.reference_count = 512
  c.eval.classifier_steps = 100  # A classifier of its own, cached beside the full one.
  c.wandb.mode = "disabled"
  return c


def finalize(c: config_dict.ConfigDict, arg: str | None) -> config_dict.ConfigDict:
  """Applies the config-file argument (`experiments/x.py:smoke`): '' or None keeps `c`, 'smoke' shrinks it."""
  if arg in (None, ""):
    return c
  if arg == "smoke":
    return smoke(c)
  raise ConfigError(f"config argument {arg!r} is not known: use 'experiments/NAME.py' or 'experiments/NAME.py:smoke'")


def from_file(spec: str) -> config_dict.ConfigDict:
  """The config that `--config spec` gives, for scripts: 'experiments/vae.py' or 'experiments/vae.py:smoke'.

  A file that is not there, does not load, has no `get_config()`, fails in it or returns no ConfigDict is a
  `ConfigError` (`config_file_error`).
  """
  _check_exists(spec)
  path, _, arg = spec.partition(":")
  name = f"aejax_experiment_{pathlib.Path(path).stem}"
  loader = importlib.machinery.SourceFileLoader(name, path)  # Whatever the file's suffix, as ml_collections reads it.
  module_spec = importlib.util.spec_from_file_location(name, path, loader=loader)
  module = importlib.util.module_from_spec(module_spec)
  try:
    module_spec.loader.exec_module(module)
    config = module.get_config(arg) if arg else module.get_config()
  except Exception as e:  # pylint: disable=broad-except  (named by config_file_error, or raised as it is)
    message = config_file_error(spec, e)
    if message is None:
      raise
    raise ConfigError(message) from e
  _check_is_config(spec, config)
  return config


def _check_exists(spec: str) -> None:
  """A `ConfigError` unless config file `spec` ('path.py[:arg]') is a file."""
  path = pathlib.Path(spec.partition(":")[0])
  if not path.is_file():
    what = "is a folder" if path.is_dir() else "does not exist"
    raise ConfigError(f"--config={spec}: config file {str(path)!r} {what}: use a path such as experiments/vae.py")


def _check_is_config(spec: str, config: Any) -> None:
  """A `ConfigError` unless `config`, what config file `spec`'s `get_config()` returned, is a ConfigDict."""
  if not isinstance(config, config_dict.ConfigDict):
    raise ConfigError(f"--config={spec}: get_config() returned {type(config).__name__}, not a ConfigDict: return "
                      "config_lib.base_config() with your changes (see experiments/ae.py)")


def config_file_error(spec: str, error: BaseException) -> str | None:
  """The one line that says how config file `spec` ('path.py[:arg]') failed to give its config, when `error` (or
  the error it was raised from) is the file's own: a `ConfigError`, a syntax error, no `get_config()`, or any
  exception raised while the file runs (at import or in `get_config()`); None for an error from elsewhere."""
  while (error.__cause__ or error.__context__) is not None:  # ml_collections and absl wrap the file's error.
    error = error.__cause__ or error.__context__
  path = spec.partition(":")[0]
  if isinstance(error, ConfigError):
    return str(error)
  if isinstance(error, SyntaxError) and error.filename:
    return f"--config={spec}: {error.filename}, line {error.lineno}: {error.msg}: fix the config file"
  if isinstance(error, AttributeError) and error.name == "get_config":
    return (f"--config={spec}: {path} defines no get_config(): add one returning the config, e.g. "
            "def get_config(arg=None): return config_lib.base_config() (see experiments/ae.py)")
  frames = [f for f in traceback.extract_tb(error.__traceback__) if _same_file(f.filename, path)]
  if not frames:
    return None
  where = {"<module>": "loading it", "get_config": "get_config()"}.get(frames[-1].name, f"{frames[-1].name}()")
  return (f"--config={spec}: {where} raised {type(error).__name__}: {error} ({path}, line {frames[-1].lineno}): "
          "fix the config file")


def _same_file(a: str, b: str) -> bool:
  return pathlib.Path(a).absolute() == pathlib.Path(b).absolute()


_HELP_FLAGS = ("--help", "-h", "-?", "--helpshort")


def flags_parser(program: str, example: str | None = None) -> Callable[[list[str]], list[str]]:
  """The `app.run(..., flags_parser=...)` of an aejax command: a bad flag ends it with one line
  `PROGRAM: error: ...` (a bad value, a `--config` file that is not there or does not give a config
  (`config_file_error`), a bad config argument, a field that does not exist), not a traceback through the flag
  parser. `--help` (or -h) prints `usage(example)` and exits 0 before any flag is read. Without `--verbosity`,
  absl's INFO lines (orbax writes about a hundred per run) stay out of the progress bar's way."""

  def parse(argv: list[str]) -> list[str]:
    args = argv[1:argv.index("--")] if "--" in argv else argv[1:]
    if any(arg in _HELP_FLAGS for arg in args):
      print(usage(example))
      sys.exit(0)
    spec = _flag_value(args, "config") if "config" in flags.FLAGS else None
    logging.set_verbosity(logging.ERROR)  # ml_collections' warning of a get_config() that returns None, below.
    try:
      if spec is not None:
        _check_exists(spec)
      args = flags.FLAGS(argv)
      if spec is not None:
        _check_is_config(spec, flags.FLAGS["config"].value)
      if not flags.FLAGS["verbosity"].present:
        logging.set_verbosity(logging.WARNING)
      return args
    except OSError as e:  # ml_collections could not read the --config file.
      message = f"--config: {str(e).strip().splitlines()[-1].strip()}: give a config file, e.g. experiments/vae.py"
    except Exception as e:  # pylint: disable=broad-except  (named below, or raised as it is)
      message = (config_file_error(spec, e) if spec is not None else None) or _flag_error(e)
      if message is None:
        raise
    sys.exit(f"{program}: error: {message}")

  return parse


def _flag_error(error: Exception) -> str | None:
  """The line for a flag that absl or ml_collections rejected, None for any other error."""
  if isinstance(error, (AttributeError, KeyError)):  # ml_collections: a --config.FIELD override names no field.
    name, suggestion = re.search(r"'([\w.]+)", str(error)), re.search(r'mean "([\w.]+)"', str(error))
    return (f"the config has no field {name.group(1) if name else str(error)!r}"
            f"{f' (did you mean {suggestion.group(1)!r}?)' if suggestion else ''}: check the --config.FIELD flags "
            "against aejax/config.py and the experiment file")
  return str(error) if isinstance(error, flags.Error) else None


def _flag_value(args: list[str], name: str) -> str | None:
  """The value of flag `name` as absl reads it from `args` (`--name=V` or `--name V`; the last one wins)."""
  value = None
  for i, arg in enumerate(args):
    key, equals, rest = arg.partition("=")
    if key in (f"--{name}", f"-{name}"):
      value = rest if equals else (args[i + 1] if i + 1 < len(args) else None)
  return value


def usage(example: str | None = None) -> str:
  """What an aejax command's `--help` prints: the first line of its module docstring and the command line the
  docstring shows, the flags its main module defines or adopts (`flags.adopt_module_key_flags`), one line each,
  `example`, and where absl's own flags are. Reads only flags and the docstring: no JAX import."""
  doc = (sys.modules["__main__"].__doc__ or "").strip().splitlines()
  lines, command = doc[:1], []
  start = next((i for i, line in enumerate(doc) if line.lstrip().startswith("python -m ")), None)
  if start is not None:  # The command line block: its first line and the lines indented deeper below it.
    indent = _indent(doc[start])
    end = next((i for i in range(start + 1, len(doc)) if _indent(doc[i]) <= indent), len(doc))
    command = [line[indent:] for line in doc[start:end]]
    lines += ["", "usage:", *(f"  {line}" for line in command)]
  shown = re.findall(r"--(\w+)", " ".join(command))  # Flags in the order the command line shows them, then the rest.
  key_flags = sorted(flags.FLAGS.get_key_flags_for_module(sys.argv[0]),
                     key=lambda f: shown.index(f.name) if f.name in shown else len(shown))
  names = [f"--[no]{f.name}" if f.boolean and f.default else f"--{f.name}" for f in key_flags]
  width = max(map(len, names), default=0) + 2
  lines += ["", "flags:"]
  for name, f in zip(names, key_flags):
    default = "" if f.default in (None, False, "") else f" (default: {f.default})"
    lines += textwrap.wrap(f"{name:<{width}}{f.help}{default}", 118, initial_indent="  ",
                           subsequent_indent=" " * (width + 2), break_on_hyphens=False)
  if example:
    lines += ["", "example:", f"  {example}"]
  lines += ["", "absl's own flags (e.g. --verbosity=0 for INFO logs): --helpfull"]
  return "\n".join(lines)


def _indent(line: str) -> int:
  return len(line) - len(line.lstrip()) if line.strip() else 0


# Fields a run may change between its reruns in one workdir: its length, how often it logs, evaluates and
# checkpoints, where its data is, how its convolutions run (the same results), its W&B run and its evaluation
# suite. Any other change would make one run of two.
RESUMABLE_FIELDS = ("num_steps", "log_every", "eval_every", "checkpoint_every", "keep_checkpoints", "eval_batch_size",
                    "num_images", "compilation_cache_dir", "data.data_dir", "data.manual_dir", "data.download",
                    "model.conv_impl")
RESUMABLE_SECTIONS = ("wandb.", "eval.")


def changed_fields(saved_path: pathlib.Path, config: config_dict.ConfigDict) -> list[str]:
  """'field: saved -> now' for each field the config.json at `saved_path` holds ([] if there is none) where
  `config` differs from it, less those a rerun may change (`RESUMABLE_FIELDS`, `RESUMABLE_SECTIONS`).

  Fields the saved config lacks (added to aejax since the run started) count as unchanged.
  """
  if not saved_path.exists():
    return []
  saved, now = flatten(json.loads(saved_path.read_text())), flatten(json.loads(config.to_json_best_effort()))
  return [f"{k}: {saved[k]!r} -> {now.get(k)!r}" for k in sorted(saved) if saved[k] != now.get(k)
          and k not in RESUMABLE_FIELDS and not k.startswith(RESUMABLE_SECTIONS)]


def flatten(config: config_dict.ConfigDict | dict, prefix: str = "") -> dict[str, Any]:
  """{'model.encoder_widths': (500, 300), ...} of a config or its JSON, lists as tuples, so both compare."""
  flat = {}
  for key, value in config.items():
    if isinstance(value, (config_dict.ConfigDict, dict)):
      flat.update(flatten(value, f"{prefix}{key}."))
    else:
      flat[f"{prefix}{key}"] = tuple(value) if isinstance(value, list) else value
  return flat


def _choice(config: config_dict.ConfigDict, field: str, choices: tuple[str, ...]) -> None:
  value = config
  for part in field.split("."):
    value = value[part]
  require(value in choices, f"config.{field}", value, f"use one of {', '.join(choices)}")


def validate(config: config_dict.ConfigDict) -> None:
  """Checks the fields every variant shares; raises `ConfigError` on the first bad one."""
  for field, choices in (("loss", LOSSES), ("noise_type", NOISE_TYPES), ("optimizer", OPTIMIZERS),
                         ("lr_schedule", SCHEDULES), ("model.kind", MODEL_KINDS),
                         ("model.activation", ACTIVATIONS), ("model.code_activation", ACTIVATIONS),
                         ("model.upsample", UPSAMPLES), ("model.conv_impl", CONV_IMPLS),
                         ("data.binarize", BINARIZE), ("wandb.mode", WANDB_MODES), ("stack_input", STACK_INPUTS),
                         ("on_nonfinite", NONFINITE)):
    _choice(config, field, choices)
  if not catalog.is_ratings(config.data.name):  # The recommendation family checks its ratings data set itself.
    catalog.image_shape(config.data.name, config.data.resize)  # A known image data set, at a size it is prepared at.
  require(config.latent_dim > 0, "config.latent_dim", config.latent_dim,
           "the code size must be a positive integer, e.g. --config.latent_dim=32")
  require(config.beta >= 0, "config.beta", config.beta,
           "the KL weight must be >= 0 (1 is the plain VAE), e.g. --config.beta=4")
  require(config.noise_factor >= 0, "config.noise_factor", config.noise_factor,
           "the noise level must be >= 0 (0 turns corruption off), e.g. --config.noise_factor=0.5")
  require(config.noise_type != "mask" or config.noise_factor <= 1, "config.noise_factor",
           config.noise_factor, "with noise_type='mask' it is the fraction of pixels dropped: use a value in [0, 1]")
  require(config.decoder_std > 0, "config.decoder_std", config.decoder_std, "use a positive standard deviation")
  require(config.kl_warmup_steps >= 0, "config.kl_warmup_steps", config.kl_warmup_steps, "use 0 (off) or a step count")
  require(config.batch_size > 0, "config.batch_size", config.batch_size, "use a positive batch size, e.g. 256")
  require(config.num_steps > 0, "config.num_steps", config.num_steps, "train for at least one step")
  require(config.learning_rate > 0, "config.learning_rate", config.learning_rate, "use a positive rate, e.g. 1e-3")
  require(config.warmup_steps >= 0, "config.warmup_steps", config.warmup_steps, "use 0 (off) or a step count")
  require(config.lr_schedule != "cosine" or config.warmup_steps < config.num_steps, "config.warmup_steps",
           config.warmup_steps, f"the cosine schedule decays after the warm-up: use fewer than num_steps="
           f"{config.num_steps} warm-up steps")
  require(config.weight_decay >= 0, "config.weight_decay", config.weight_decay, "use 0 (off) or a positive decay")
  require(0 <= config.momentum < 1, "config.momentum", config.momentum, "use a momentum in [0, 1), e.g. 0.9")
  require(config.optimizer == "sgd" or config.momentum == 0.9, "config.momentum", config.momentum,
           f"only optimizer='sgd' reads it ({config.optimizer!r} has its own): add --config.optimizer=sgd, or drop it")
  for field in ("adam_b1", "adam_b2"):
    require(0 <= config[field] < 1, f"config.{field}", config[field], "use a decay rate in [0, 1), e.g. 0.9")
  require(config.optimizer != "sgd" or (config.adam_b1, config.adam_b2) == (0.9, 0.999), "config.adam_b1",
           (config.adam_b1, config.adam_b2), "only optimizer='adam' or 'adamw' reads adam_b1 and adam_b2: drop them")
  require(not config.data.standardize or "rbm" in config, "config.data.standardize", config.data.standardize,
           "only models of Gaussian pixels read the pixel statistics (rbm, dbn with --config.rbm.visible=gaussian): "
           "drop it")
  require(config.grad_clip_norm >= 0, "config.grad_clip_norm", config.grad_clip_norm,
           "use 0 (no clipping) or a positive global norm, e.g. 1.0")
  for field in ("log_every", "eval_every", "checkpoint_every", "keep_checkpoints", "eval_batch_size", "num_images"):
    require(config[field] > 0, f"config.{field}", config[field], "use a positive integer")
  widths = tuple(config.model.encoder_widths) + tuple(config.model.decoder_widths or ())
  require(all(w > 0 for w in widths), "config.model.encoder_widths/decoder_widths", widths,
           "every layer width must be a positive integer")
  require(config.iwae_samples >= 1, "config.iwae_samples", config.iwae_samples,
           "use 1 (the ELBO) or more importance samples, e.g. --config.iwae_samples=50")
  if not catalog.is_ratings(config.data.name):  # A ratings data set has no classes (the family says so).
    num_classes = catalog.get(config.data.name).num_classes
    labels = tuple(config.data.train_labels)
    require(all(isinstance(d, int) and 0 <= d < num_classes for d in labels) and len(set(labels)) == len(labels),
             "config.data.train_labels", labels, f"use distinct class labels in 0..{num_classes - 1}, e.g. "
             "--config.data.train_labels='(3,)', or () for all")
  if config.data.with_test:
    require(not catalog.is_ratings(config.data.name), "config.data.with_test", True,
            "a ratings data set's split is set by config.data.ratings: drop it")
    require(not config.data.train_labels, "config.data.with_test", True, "it appends the whole test split, every "
            "class, to a train split of config.data.train_labels: drop one of them")
    require(config.data.binarize != "dynamic", "config.data.with_test", True, "the test split is binarised once, the "
            "train split anew each batch: use --config.data.binarize=static or none with it")
  validate_eval(config.eval)
  m = config.model
  require(not m.spatial_code or m.kind == "conv", "config.model.spatial_code", m.spatial_code,
           "a spatial code needs the conv encoder: add --config.model.kind=conv")
  require(m.kind != "strided_conv" or m.conv_impl != "cpu", "config.model.conv_impl", m.conv_impl,
           "kind='strided_conv' runs XLA's convolution, and 'cpu' is for kind='conv': use auto or xla")
  require(m.code_channels > 0, "config.model.code_channels", m.code_channels, "use a positive channel count")
  require(len(m.conv_features) > 0 and all(f > 0 for f in m.conv_features), "config.model.conv_features",
           tuple(m.conv_features), "use one or more positive feature counts, e.g. '(32,64)'")


def validate_eval(e: config_dict.ConfigDict) -> None:
  """Checks `config.eval`; raises `ConfigError` on the first bad field."""
  require(e.num_train > 0, "config.eval.num_train", e.num_train, "use a positive number of train images, e.g. 10000")
  require(len(e.noise_factors) > 0 and all(f > 0 for f in e.noise_factors), "config.eval.noise_factors",
           tuple(e.noise_factors), "use one or more positive noise levels, e.g. '(0.25,0.5)'")
  require(0 < e.mask_fraction < 1, "config.eval.mask_fraction", e.mask_fraction, "use a fraction in (0, 1), e.g. 0.5")
  require(e.block_size > 0, "config.eval.block_size", e.block_size, "use a positive side in pixels, e.g. 12")
  require(e.nll_samples >= 1, "config.eval.nll_samples", e.nll_samples, "use at least one sample, e.g. 5000")
  for field in ("sample_count", "reference_count"):
    require(e[field] >= _MIN_SAMPLES, f"config.eval.{field}", e[field],
            f"precision and recall (balls to the 3rd nearest neighbour) need more: use at least {_MIN_SAMPLES}, "
            "e.g. 10000")
  require(e.classifier_steps > 0, "config.eval.classifier_steps", e.classifier_steps,
          "train the classifier for at least one step, e.g. 1872")
  require(e.factor_samples >= _MIN_FACTOR_SAMPLES, "config.eval.factor_samples", e.factor_samples,
          f"the metrics' classifiers need more points: use at least {_MIN_FACTOR_SAMPLES}, e.g. 10000")
  require(e.sap_predictor in SAP_PREDICTORS, "config.eval.sap_predictor", e.sap_predictor,
          f"use one of {', '.join(SAP_PREDICTORS)}")
  require(bool(e.classifier_dir), "config.eval.classifier_dir", e.classifier_dir,
          "name the folder that caches the classifier, e.g. ~/.cache/aejax/classifiers")
