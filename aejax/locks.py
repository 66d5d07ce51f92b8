"""One process at a time in a run's workdir: an OS lock on `<workdir>/.lock`.

A run (`aejax.main`, `aejax.bundle`) holds it while it trains, so that a second command in the same workdir
stops with one line instead of racing the first one's checkpoints. A launcher holds it for a member while it
decides to run it and while its child runs; it passes the descriptor to the child and names the workdir in
`$AEJAX_LOCKED_WORKDIRS`, so the child knows the lock it would wait for is its own.
"""
import contextlib
import fcntl
import os
import pathlib
import time
from collections.abc import Iterator, Sequence

from aejax.errors import ConfigError

LOCK_FILE = ".lock"
HELD_BY_PARENT = "AEJAX_LOCKED_WORKDIRS"  # os.pathsep-separated resolved workdirs whose lock the parent holds.


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


def parent_env(workdirs: Sequence[pathlib.Path], env: dict[str, str] | None = None) -> dict[str, str]:
  """`env` (default: this process's) for a child that inherits the locks of `workdirs` from this process."""
  return {**(os.environ if env is None else env),
          HELD_BY_PARENT: os.pathsep.join(str(pathlib.Path(w).resolve()) for w in workdirs)}


@contextlib.contextmanager
def hold(workdir: pathlib.Path) -> Iterator[None]:
  """Holds `workdir`'s lock while a run trains there (unless the parent holds it for this process); a
  `ConfigError` if another process holds it."""
  if str(workdir.resolve()) in os.environ.get(HELD_BY_PARENT, "").split(os.pathsep):
    yield
    return
  with lock(workdir, patience_s=1.0) as fd:
    if fd is None:
      raise ConfigError(f"--workdir={str(workdir)!r} is in use by another process (a run or a launcher): wait for "
                        "it to end, or use another --workdir")
    yield
