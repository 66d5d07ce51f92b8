"""SIGTERM and SIGINT, from a command's first instant to its last: one line and exit code 128 + the signal.

Outside the training loop a signal raises `Stopped`, a `BaseException` as `KeyboardInterrupt` is, so that the
`except Exception` of a library (JAX's compilation-cache reader, say) cannot swallow it. Python drops what a
garbage-collector callback raises, whatever its type, so the handler also records the signal, and the commands
check for it at their safe points (`raise_if_signalled`): between steps, compilations and evaluation chunks.

Inside the loop (`loop_signals`) a signal is only recorded: the loop checkpoints at the next step and raises
`Interrupted`. Signals are process-wide by nature; the record is the one piece of state this module keeps.
"""
import contextlib
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, NoReturn

# SIGINT first: Python's own handler (KeyboardInterrupt) holds it until replaced, so once SIGTERM is caught both are
# ours, which is what a test reading /proc/<pid>/status (SigCgt) can see.
SIGNALS = (signal.SIGINT, signal.SIGTERM)
_received: list[int] = []  # Signals this process received and has not yet acted on.
_guards: list[tuple[str, str]] = []  # (program, what its rerun does) of each active `exit_on_signals`.
_JOIN_S = 30.0  # How long a stopped command waits for threads still writing before it exits.


class Stopped(BaseException):
  """SIGTERM/SIGINT arrived outside the training loop (start-up, compilation, evaluation): nothing to save."""

  def __init__(self, signum: int):
    super().__init__(f"stopped by signal {signum}")
    self.signum = signum


class Interrupted(Exception):
  """SIGTERM/SIGINT arrived in the training loop, which wrote a checkpoint at `step` first."""

  def __init__(self, signum: int, step: int):
    super().__init__(f"stopped by signal {signum} at step {step}; checkpoint saved, rerun the same command to resume")
    self.signum = signum


def _stopped_line(program: str, e: Stopped, rerun: str) -> str:
  return f"{program}: {e}; nothing was lost: rerun the same command {rerun}"


def _importing(frame: Any) -> bool:
  """Whether `frame` runs inside an import (a module's top level, maybe a C extension's initialisation)."""
  while frame is not None:
    if frame.f_code.co_filename.startswith("<frozen importlib"):
      return True
    frame = frame.f_back
  return False


def install(program: str) -> None:
  """From now on SIGTERM and SIGINT raise `Stopped` inside `exit_on_signals`. Outside it (the command's own
  imports, where nothing could catch an exception) and inside any import (an exception raised into a C
  extension's initialisation can crash the interpreter: jaxlib's did), they end the process at once with the
  one line: an import has nothing to save. Call first thing in a command."""

  def stop(signum: int, frame: Any) -> None:
    _received.append(signum)
    if not _guards or _importing(frame):
      rerun = _guards[-1][1] if _guards else "to start it again"
      print(_stopped_line(_guards[-1][0] if _guards else program, Stopped(signum), rerun), file=sys.stderr)
      _flush_output()
      os._exit(128 + signum)  # pylint: disable=protected-access  (no cleanup: nothing has started)
    raise Stopped(signum)

  for s in SIGNALS:
    signal.signal(s, stop)
  # A `Stopped` that Python drops (in a garbage-collector callback), or that C code prints and drops (numpy's
  # import), is acted on at the next safe point: quietly, the one line comes then.
  report_unraisable, report = sys.unraisablehook, sys.excepthook
  sys.unraisablehook = lambda unraisable: (
      None if isinstance(unraisable.exc_value, Stopped) else report_unraisable(unraisable))
  sys.excepthook = lambda kind, value, trace: None if isinstance(value, Stopped) else report(kind, value, trace)


def _flush_output() -> None:
  """Flushes stdout and stderr where they still can be (a closed pipe, a stream set to None: nothing to do)."""
  for stream in (sys.stdout, sys.stderr):
    try:
      stream.flush()
    except (AttributeError, OSError, ValueError):
      pass


def _exit_now(code: int) -> NoReturn:
  """Ends the process with `code` without the interpreter's shutdown, whose destructors can crash once a signal
  has cut an XLA compilation short (SIGSEGV, exit code -11 instead of 128 + the signal). What that shutdown
  would have waited for is done first: the output flushed, threads still writing (a checkpoint's seal, orbax's
  commit) joined, for at most `_JOIN_S` in all (an idle worker that only the shutdown would have ended must not
  hang a command that now ignores further signals; an unsealed checkpoint is skipped by the rerun), and a
  multi-process run's `jax.distributed` client shut down."""
  _flush_output()
  deadline = time.monotonic() + _JOIN_S
  for thread in threading.enumerate():
    if thread is not threading.current_thread() and not thread.daemon:
      thread.join(max(0.0, deadline - time.monotonic()))
  if "jax" in sys.modules:
    try:
      sys.modules["jax"].distributed.shutdown()
    except Exception:  # pylint: disable=broad-exception-caught  (exiting anyway: the peers see the process go)
      pass
  _flush_output()
  os._exit(code)  # pylint: disable=protected-access


def _ignore_further_signals() -> None:
  """While the command says its line and exits: a second signal (a launcher's SIGTERM after the terminal's SIGINT)
  must not turn the exit into another one."""
  for s in SIGNALS:
    signal.signal(s, signal.SIG_IGN)


def raise_if_signalled() -> None:
  """Raises `Stopped` if a signal arrived whose exception was lost (in a callback that Python ignores)."""
  if _received:
    raise Stopped(_received[0])


@contextlib.contextmanager
def exit_on_signals(program: str, rerun: str = "to resume from the last checkpoint") -> Iterator[None]:
  """For a command's whole run: `Interrupted` or `Stopped` end it with one line on stderr and exit code
  128 + the signal; the line says what rerunning the command does (the command calls `install` first).
  `Stopped` ends the process through `_exit_now`, not the interpreter's shutdown."""
  _guards.append((program, rerun))
  try:
    yield
    raise_if_signalled()
  except Interrupted as e:
    _ignore_further_signals()
    _received.clear()
    print(f"{program}: {e}", file=sys.stderr)
    sys.exit(128 + e.signum)
  except Stopped as e:
    _ignore_further_signals()
    print(_stopped_line(program, e, rerun), file=sys.stderr)
    _exit_now(128 + e.signum)
  except BaseException:  # pylint: disable=broad-exception-caught
    if not _received or isinstance(sys.exception(), SystemExit):
      raise
    # A C extension turns what a handler raises into its own error (jaxlib: an ImportError): the signal's doing.
    _ignore_further_signals()
    print(_stopped_line(program, Stopped(_received[0]), rerun), file=sys.stderr)
    _exit_now(128 + _received[0])
  finally:
    _guards.pop()


def _is_multiprocess() -> bool:
  import jax  # pylint: disable=g-import-not-at-top  (imported by the caller already; not at start-up)
  return jax.process_count() > 1


@contextlib.contextmanager
def loop_signals() -> Iterator[Callable[[int], int | None]]:
  """Catches SIGTERM/SIGINT for the loop, which calls the yielded `stop_signal(step)` before each step: the signal
  that asks it to checkpoint and stop there, or None. A signal that arrived just before the loop counts.

  Several processes (`jax.distributed`) must all stop at the same step, or those still training wait forever
  on the collectives of those that stopped: JAX's preemption service catches SIGTERM in any of them (a
  scheduler sends it to each at its own moment) and agrees on the step; SIGINT is passed on to it as SIGTERM.
  """
  if _is_multiprocess():
    from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
    previous = signal.signal(signal.SIGINT, lambda signum, frame: os.kill(os.getpid(), signal.SIGTERM))
    try:
      yield lambda step: signal.SIGTERM if multihost_utils.reached_preemption_sync_point(step) else None
    finally:
      signal.signal(signal.SIGINT, previous)
    return
  previous = {s: signal.signal(s, lambda signum, frame: _received.append(signum)) for s in SIGNALS}
  try:
    yield lambda step: _received.pop(0) if _received else None  # Taken by the loop, which stops on it.
  finally:
    for s, h in previous.items():
      signal.signal(s, h)
