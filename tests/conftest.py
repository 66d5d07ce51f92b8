"""Tests run on the CPU, whatever accelerators the machine has."""
import os
import pathlib

os.environ["JAX_PLATFORMS"] = "cpu"

import pytest  # noqa: E402

MNIST_DIR = pathlib.Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mnist"


@pytest.fixture(scope="session")
def mnist_manual_dir() -> pathlib.Path:
  """The four real MNIST IDX files that sit beside the checkout (here and in CI)."""
  if not (MNIST_DIR / "train-images-idx3-ubyte.gz").exists():
    pytest.fail(f"real MNIST IDX files not found at {MNIST_DIR}; set up ../shared/data/mnist beside the checkout")
  return MNIST_DIR
