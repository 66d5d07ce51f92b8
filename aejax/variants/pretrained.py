"""A trained autoencoder run that another learner builds on (a SOM of its codes, DEC's clusters of them): the checks
of its folder, which read only its config.json and checkpoint folder (light: experiment files and launchers import
the families' fields), and of its code, which builds its model."""
import json
import pathlib
from typing import Any

from aejax.errors import ConfigError, require


def check_run(workdir: str, field: str, data: Any, not_from: tuple[str, ...], title: str) -> None:
  """A `ConfigError` naming `field` unless `workdir` is a trained run (a config.json, a checkpoint) on the images of
  `data` (the learner's `config.data`: the same data set at the same size) whose variant is none of `not_from` (the
  learner's own variants, called `title` in the message)."""
  path = pathlib.Path(workdir)
  require((path / "config.json").is_file(), field, workdir,
          "no config.json there: give the --workdir of a trained autoencoder run")
  saved = json.loads((path / "config.json").read_text())
  steps = [p for p in (path / "checkpoints").glob("*") if p.name.isdigit()] if (path / "checkpoints").is_dir() else []
  require(bool(steps), field, workdir, "that run has no checkpoint yet: train it first (python -m aejax.main "
          f"--workdir {workdir} --config ...)")
  require(saved.get("variant") not in not_from, field, workdir, f"that run is a {title}, not an autoencoder: give an "
          "autoencoder's run (ae, dae, vae, ...)")
  name = saved.get("data", {}).get("name")
  require(name == data.name, field, workdir, f"that run was trained on {name!r}, this run reads {data.name!r} "
          f"images: use --config.data.name={name} or a run of {data.name!r}")
  resize = saved["data"].get("resize")
  now = None if data.resize is None else list(data.resize)
  require(resize == now, field, workdir, f"that run's images were resized to {resize}, this run's to {now}: give both "
          "the same config.data.resize")


def check_has_code(workdir: str, field: str) -> None:
  """A `ConfigError` naming `field` unless the run in `workdir` (checked by `check_run`) has an encoder."""
  from aejax import evaluate, registry  # pylint: disable=g-import-not-at-top  (the train loop imports the families)
  from aejax.data import catalog  # pylint: disable=g-import-not-at-top
  saved = evaluate.load_config(pathlib.Path(workdir))
  autoencoder = registry.get(saved.variant).build_model(saved, catalog.image_shape(saved.data.name, saved.data.resize))
  if not hasattr(autoencoder, "encode"):
    raise ConfigError(f"{field}={workdir!r}: that run's variant {saved.variant!r} has no code: give an autoencoder's "
                      "run (ae, dae, vae, ...)")
