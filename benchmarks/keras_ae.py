"""Keras throughput of the seed's dense MNIST autoencoder.

Builds the seed's own Keras model, 784 -> 500-300-150-100-64 -> 100-150-300-500
-> 784 (relu, sigmoid output, adam, MSE), and measures the training throughput
of `model.fit` on real MNIST train images. A warm-up fit runs first so that
tracing and compilation are excluded; then a fit of exactly `--steps` batches is
timed with `time.perf_counter`. It prints one JSON line to stdout:

  {"framework": "keras", "tf_version": ..., "batch_size": ..., "steps": ...,
   "seconds": ..., "samples_per_s": ...}

It imports only TensorFlow/Keras, NumPy and the standard library, never aejax,
so it runs in its own virtualenv with TensorFlow installed. benchmarks/
throughput.py runs it with that venv's python, interleaved with the aejax runs:

  /work/kerasvenv/bin/python benchmarks/keras_ae.py --mnist_dir DIR
"""

import argparse
import gzip
import json
import os
import sys
import time
from collections.abc import Callable

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # pylint: disable=g-import-not-at-top
import tensorflow as tf  # pylint: disable=g-import-not-at-top
from tensorflow import keras  # pylint: disable=g-import-not-at-top

_TRAIN_IMAGES = "train-images-idx3-ubyte.gz"
_IDX_HEADER_BYTES = 16
_IMAGE_SIZE = 28 * 28
_ENCODER_WIDTHS = (500, 300, 150, 100, 64)
_DECODER_WIDTHS = (100, 150, 300, 500)


def load_mnist_train(mnist_dir: str) -> np.ndarray:
  """Returns the MNIST train images as float32 in [0, 1], shape (60000, 784)."""
  with gzip.open(os.path.join(mnist_dir, _TRAIN_IMAGES), "rb") as f:
    data = np.frombuffer(f.read(), dtype=np.uint8, offset=_IDX_HEADER_BYTES)
  return (data.astype(np.float32) / 255.0).reshape(-1, _IMAGE_SIZE)


def build_model() -> keras.Model:
  """Returns the seed's compiled dense autoencoder."""
  inputs = keras.Input(shape=(_IMAGE_SIZE,))
  x = inputs
  for width in _ENCODER_WIDTHS + _DECODER_WIDTHS:
    x = keras.layers.Dense(width, activation="relu")(x)
  outputs = keras.layers.Dense(_IMAGE_SIZE, activation="sigmoid")(x)
  model = keras.Model(inputs, outputs)
  model.compile(optimizer="adam", loss="mse")
  return model


def take_batches(x: np.ndarray, steps: int, batch_size: int) -> np.ndarray:
  """Returns exactly `steps` full batches of `x`, wrapping around if needed."""
  n = steps * batch_size
  if n <= len(x):
    return x[:n]
  return x[np.arange(n) % len(x)]


def fit_seconds(model: keras.Model, x: np.ndarray, batch_size: int) -> float:
  """Runs one epoch of `model.fit` on `x` and returns its wall time."""
  start = time.perf_counter()
  model.fit(x, x, batch_size=batch_size, epochs=1, shuffle=True, verbose=0)
  return time.perf_counter() - start


def parse_args(argv: list[str], description: str) -> argparse.Namespace:
  """Parses the command line."""
  parser = argparse.ArgumentParser(description=description)
  parser.add_argument("--mnist_dir", required=True,
                      help=f"folder holding {_TRAIN_IMAGES}")
  parser.add_argument("--batch_size", type=int, default=256)
  parser.add_argument("--steps", type=int, default=200,
                      help="number of timed train steps")
  parser.add_argument("--warmup_steps", type=int, default=30,
                      help="untimed train steps run first")
  parser.add_argument("--threads", type=int, default=None,
                      help="intra- and inter-op threads (TF defaults if unset)")
  return parser.parse_args(argv)


def run(argv: list[str], description: str, build: Callable[[], keras.Model],
        image_shape: tuple[int, ...]) -> None:
  """Times `model.fit` of `build()` on MNIST train images of `image_shape`; prints the JSON line."""
  args = parse_args(argv, description)
  if args.threads is not None:
    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.threads)
  keras.utils.set_random_seed(0)

  images = load_mnist_train(args.mnist_dir).reshape(-1, *image_shape)
  model = build()
  fit_seconds(model,
              take_batches(images, max(args.warmup_steps, 1), args.batch_size),
              args.batch_size)
  seconds = fit_seconds(model,
                        take_batches(images, args.steps, args.batch_size),
                        args.batch_size)

  print(json.dumps({
      "framework": "keras",
      "tf_version": tf.__version__,
      "batch_size": args.batch_size,
      "steps": args.steps,
      "seconds": round(seconds, 4),
      "samples_per_s": round(args.steps * args.batch_size / seconds, 1),
  }))


def main(argv: list[str]) -> None:
  run(argv, __doc__.splitlines()[0], build_model, (_IMAGE_SIZE,))


if __name__ == "__main__":
  main(sys.argv[1:])
