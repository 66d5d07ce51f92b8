"""One process at a time in a run's workdir: an OS lock on `<workdir>/.lock`.

A run (`aejax.main`, `aejax.bundle`) holds it while it trains and evaluates, so that a second command in the
same workdir stops with one line instead of racing the first one's checkpoints. A launcher holds it for a
member while it decides to run it and while its child runs, and passes the descriptor on to the child: a
process that finds the lock file among the descriptors it inherited holds the lock already.
"""
import contextlib
import fcntl
import os
import pathlib
import time
from collections.abc import Iterator

from aejax.errors import ConfigError

LOCK_FILE = ".lock"


@contextlib.contextmanager
def lock(workdir: pathlib.Path, patience_s: float = 0.0) -> Iterator[int | None]:
  """Holds `<workdir>/.lock`: yields its file descriptor, or None if another process held it throughout
  `patience_s` seconds (`is_locked` holds it for an instant: a launcher gives such probes time to let go).

  The OS drops the lock when every process holding the descriptor has ended, so a crash never leaves it stale.
  """
  workdir.mkdir(parents=True, exist_ok=True)
  fd = os.open(workdir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
  deadline = time.monotonic() + patience_s
  try:
    while True:
      try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        break
      except BlockingIOError:
        if time.monotonic() >= deadline:
          yield None
          return
        time.sleep(0.05)
    yield fd
  finally:
    os.close(fd)


def is_locked(workdir: pathlib.Path) -> bool:
  """True while some process holds `<workdir>/.lock` (a run or a launcher is at work there)."""
  if not (workdir / LOCK_FILE).exists():
    return False
  with lock(workdir) as fd:
    return fd is None


def _inherited(path: pathlib.Path) -> bool:
  """Whether this process has `path` open already: a lock a launcher passed on to it (`subprocess`'s
  `pass_fds`), which it then holds as well."""
  if not path.exists():
    return False
  target = path.stat()
  for name in os.listdir("/dev/fd"):
    try:
      opened = os.fstat(int(name))
    except OSError:  # The descriptor that listed the folder, closed since.
      continue
    if (opened.st_dev, opened.st_ino) == (target.st_dev, target.st_ino):
      return True
  return False


@contextlib.contextmanager
def hold(workdir: pathlib.Path) -> Iterator[None]:
  """Holds `workdir`'s lock while a run is at work there (unless a launcher passed it on to this process); a
  `ConfigError` if another process holds it."""
  if _inherited(workdir / LOCK_FILE):
    yield
    return
  with lock(workdir, patience_s=1.0) as fd:
    if fd is None:
      raise ConfigError(f"--workdir={str(workdir)!r} is in use by another process (a run or a launcher): wait for "
                        "it to end, or use another --workdir")
    yield
