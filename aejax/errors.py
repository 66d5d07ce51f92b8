"""The one error type a user sees: bad input, reported as a single line; and the folder check inputs share."""
import pathlib
from typing import Any


class ConfigError(ValueError):
  """A config field or input path is wrong; the message names the field, the value and the fix."""


def require(ok: bool, field: str, value: Any, fix: str) -> None:
  """A `ConfigError` 'field=value: fix' unless `ok`: the shape of every config check's message."""
  if not ok:
    raise ConfigError(f"{field}={value!r}: {fix}")


def check_folder(path: pathlib.Path, shown: str) -> None:
  """A `ConfigError` naming `shown` (the flag or field) if `path` cannot be a folder: it, or one above it, is a
  file. Checked before any work, since the folder itself is only created once there is something to write."""
  for part in (path, *path.parents):
    if part.exists():
      if not part.is_dir():
        raise ConfigError(f"{shown}={str(path)!r}: {str(part)!r} is a file, not a folder: use a folder path")
      return
