"""Tests run on the CPU, whatever accelerators the machine has."""
import contextlib
import fcntl
import json
import os
import pathlib
import pickle
import signal
import socket
import tempfile
from collections.abc import Callable, Iterator
from typing import TypeVar

os.environ["JAX_PLATFORMS"] = "cpu"
# Runs in one session share compiled programs, as the members of a sweep do: pytest-xdist's workers too (one folder
# per test run, named by the id its workers share).
_SESSION = os.environ.get("PYTEST_XDIST_TESTRUNUID") or f"{os.getpid()}-{os.urandom(4).hex()}"
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR",
                      os.path.join(tempfile.gettempdir(), f"aejax-test-jax-cache-{_SESSION}"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
# XLA's settings as runs get them outside the tests (`users_environment`): kept in the environment by the first
# process that imports this file, since pytest-xdist's workers inherit the settings below.
_USERS = json.loads(os.environ.setdefault("AEJAX_TESTS_USERS_XLA", json.dumps(
    {name: os.environ.get(name) for name in ("JAX_DISABLE_MOST_OPTIMIZATIONS", "XLA_FLAGS")})))
# Most tests run a few steps of many small programs, so XLA's optimisation passes cost more than they save: off
# (here and in the runs tests start as subprocesses), which took the suite from 809 s to 646 s on 2026-12-07. Tests
# that run one program for long are marked `optimized` and compile with them (`_optimized` below).
os.environ.setdefault("JAX_DISABLE_MOST_OPTIMIZATIONS", "1")
# Compilation was about a third of the tests' time, and XLA:CPU's loop emitters compile 3.2 times faster than its
# default fusion emitters with the optimisations off (steps 12 % slower): 612 s to 540 s for the test command, with
# the SIGTERM drill's lighter reference (docs/performance.md, benchmarks/compile_time.py). XLA reads its flags once
# per process: every test has them, unless XLA_FLAGS names the emitters already.
if "xla_cpu_use_fusion_emitters" not in os.environ.get("XLA_FLAGS", ""):  # Not again in pytest-xdist's workers.
  os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} --xla_cpu_use_fusion_emitters=false".strip()

import pytest  # noqa: E402

T = TypeVar("T")

# The real MNIST IDX files: beside the checkout (here and in CI), or wherever AEJAX_MNIST_DIR says.
MNIST_DIR = pathlib.Path(os.environ.get("AEJAX_MNIST_DIR",
                                        pathlib.Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"))


@pytest.fixture(scope="session")
def mnist_manual_dir() -> pathlib.Path:
  """The four real MNIST IDX files that sit beside the checkout (here and in CI)."""
  if not (MNIST_DIR / "train-images-idx3-ubyte.gz").exists():
    pytest.fail(f"real MNIST IDX files not found at {MNIST_DIR}: put them in ../shared/data/mnist beside the "
                "checkout or set AEJAX_MNIST_DIR")
  return MNIST_DIR

REPO = pathlib.Path(__file__).resolve().parents[1]


def _session_dir(tmp_path_factory, name: str) -> pathlib.Path:
  """A folder of this test session that pytest-xdist's workers share (their temp folders sit side by side), so the
  prepared MNIST and the samples suite's classifiers are made once, not once per worker: aejax's own locks make
  the second worker wait for the first (or take what it left)."""
  base = tmp_path_factory.getbasetemp()
  root = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
  path = root / name
  path.mkdir(exist_ok=True)
  return path


def once_per_session(tmp_path_factory, name: str, make: Callable[[pathlib.Path], T]) -> T:
  """`make(folder)`'s result, computed once per test session: the first pytest-xdist worker to ask runs it, under
  a lock, in a fresh folder inside the session's folder `name` (unique to the caller) and pickles the result
  there; the other waits (without a timeout) and unpickles it. A `make` that fails leaves no result: the next
  worker to ask tries again, in another fresh folder.

  For a module fixture that trains and whose tests only read what it made (a test that changes it copies it
  first): xdist spreads a module's tests over both workers, so a plain module fixture trains twice. Its result
  may come from the other worker's process, so a test comparing it bit for bit with a run of its own relies on the
  same program giving the same numbers in two processes (as the kill -9 drill does)."""
  folder = _session_dir(tmp_path_factory, name)
  result = folder / "result.pickle"
  with (folder / "lock").open("w") as lock:
    fcntl.flock(lock, fcntl.LOCK_EX)  # Released when the file closes, or the process dies.
    if not result.exists():
      result.write_bytes(pickle.dumps(make(pathlib.Path(tempfile.mkdtemp(prefix="try-", dir=folder)))))
    return pickle.loads(result.read_bytes())


def saved_checkpoint(workdir: pathlib.Path, step: int) -> dict:
  """The whole train state a run in `workdir` checkpointed at `step`, as orbax restores it (nested dicts of arrays)."""
  import orbax.checkpoint as ocp  # pylint: disable=g-import-not-at-top
  options = ocp.CheckpointManagerOptions(read_only=True)  # It may be a folder other tests read at the same time.
  with ocp.CheckpointManager(workdir / "checkpoints", options=options) as manager:
    return manager.restore(step)


def xla_flags(*flags: str) -> str:
  """XLA_FLAGS for a command a test starts: the tests' own (above) and `flags`."""
  return " ".join([os.environ.get("XLA_FLAGS", ""), *flags]).strip()


def users_environment() -> dict[str, str]:
  """This process's environment with XLA's settings as a run gets them outside the tests (optimisations on, the
  fusion emitters), for a command that checks that setting works."""
  env = dict(os.environ)
  for name, value in _USERS.items():
    if value is None:
      env.pop(name, None)
    else:
      env[name] = value
  return env


@contextlib.contextmanager
def network_blocked() -> Iterator[list]:
  """Within it, any connection attempt fails at once and is recorded in the list it yields (empty: none made)."""
  attempts = []

  def no_network(*args, **kwargs):
    attempts.append(args)
    raise RuntimeError("network blocked by test")  # Not OSError, which the TFDS downloader retries for minutes.

  with pytest.MonkeyPatch.context() as mp:
    mp.setattr(socket.socket, "connect", no_network)
    mp.setattr(socket, "getaddrinfo", no_network)
    yield attempts


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory, mnist_manual_dir) -> pathlib.Path:
  """A TFDS data dir with aejax_mnist prepared once per session from the IDX files, with the network blocked."""
  from aejax.data import datasets  # pylint: disable=g-import-not-at-top
  root = _session_dir(tmp_path_factory, "tfds")
  with network_blocked() as attempts:
    datasets.load_split("mnist", "test", data_dir=str(root), manual_dir=str(mnist_manual_dir), num_examples=1)
  assert not attempts
  return root


@pytest.fixture(scope="session")  # A pure factory: module fixtures may train with it.
def smoke_config(data_dir, mnist_manual_dir, tmp_path_factory):
  """`smoke_config(name, **fields)`: `experiments/<name>.py:smoke` on the session's MNIST, with fields overridden;
  the samples suite's classifiers are cached in a folder of the session, not the user's."""
  from aejax import config as config_lib  # pylint: disable=g-import-not-at-top
  classifier_dir = _session_dir(tmp_path_factory, "classifiers")

  def make(name: str, **fields):
    c = config_lib.from_file(f"{REPO}/experiments/{name}.py:smoke")
    c.data.data_dir, c.data.manual_dir = str(data_dir), str(mnist_manual_dir)
    c.eval.classifier_dir = str(classifier_dir)
    for field, value in fields.items():
      target = c
      *parents, leaf = field.split("__")
      for p in parents:
        target = target[p]
      target[leaf] = value
    return c

  return make


@pytest.fixture()
def preempt_at(monkeypatch):
  """`preempt_at(step)`: a run sends itself one SIGTERM once it has logged `step` (a bundle: its first member has),
  as a scheduler would, until `monkeypatch.undo()`."""
  from aejax import writers  # pylint: disable=g-import-not-at-top
  write_scalars = writers.MetricWriter.write_scalars

  def arm(step: int) -> None:
    sent = []

    def write_then_preempt(self, logged, scalars):
      write_scalars(self, logged, scalars)
      if logged == step and not sent:
        sent.append(step)
        os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(writers.MetricWriter, "write_scalars", write_then_preempt)

  return arm


@pytest.fixture(autouse=True)
def _optimized(request, monkeypatch) -> Iterator[None]:
  """A test marked `optimized` compiles what it runs, and the commands it starts theirs, with XLA's optimisations
  (on for aejax's users; the loop emitters above stay); fixtures of a wider scope have compiled theirs without.
  JAX's in-memory caches do not key on the setting: cleared at each switch, so that the test's programs are
  compiled with it and later tests do not reuse them."""
  if request.node.get_closest_marker("optimized") is None:
    yield
    return
  import jax  # pylint: disable=g-import-not-at-top
  before = jax.config.read("jax_disable_most_optimizations")
  jax.config.update("jax_disable_most_optimizations", False)
  monkeypatch.setenv("JAX_DISABLE_MOST_OPTIMIZATIONS", "0")
  jax.clear_caches()
  try:
    yield
  finally:
    jax.config.update("jax_disable_most_optimizations", before)
    jax.clear_caches()
