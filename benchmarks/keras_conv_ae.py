"""Keras throughput of the seed's convolutional MNIST autoencoder.

Builds the seed's own Keras model, 28x28x1 -> Conv32-MaxPool2-Conv64-MaxPool2-Conv128 (the 7x7x128 code)
-> Conv64-UpSample2-Conv32-UpSample2-Conv1 (3x3, same padding, relu, sigmoid output, adam, binary
cross-entropy), and times `model.fit` on real MNIST train images as benchmarks/keras_ae.py does (whose
helpers it imports): a warm-up fit, then a timed fit of exactly `--steps` batches. It prints one JSON
line to stdout:

  {"framework": "keras", "tf_version": ..., "batch_size": ..., "steps": ..., "seconds": ...,
   "samples_per_s": ...}

It imports only TensorFlow/Keras, NumPy and the standard library, never aejax, so it runs in its own
virtualenv with TensorFlow installed. benchmarks/conv_throughput.py runs it interleaved with aejax:

  /work/kerasvenv/bin/python benchmarks/keras_conv_ae.py --mnist_dir DIR
"""
import sys

import keras_ae
from tensorflow import keras  # pylint: disable=g-import-not-at-top

_IMAGE_SHAPE = (28, 28, 1)


def build_model() -> keras.Model:
  """Returns the seed's compiled convolutional autoencoder."""
  conv = lambda features, activation="relu": keras.layers.Conv2D(features, (3, 3), activation=activation,
                                                                  padding="same")
  inputs = keras.Input(shape=_IMAGE_SHAPE)
  x = conv(32)(inputs)
  x = keras.layers.MaxPooling2D((2, 2), padding="same")(x)
  x = conv(64)(x)
  x = keras.layers.MaxPooling2D((2, 2), padding="same")(x)
  encoded = conv(128)(x)
  x = conv(64)(encoded)
  x = keras.layers.UpSampling2D((2, 2))(x)
  x = conv(32)(x)
  x = keras.layers.UpSampling2D((2, 2))(x)
  outputs = conv(1, "sigmoid")(x)
  model = keras.Model(inputs, outputs)
  model.compile(optimizer="adam", loss="binary_crossentropy")
  return model


if __name__ == "__main__":
  keras_ae.run(sys.argv[1:], __doc__.splitlines()[0], build_model, _IMAGE_SHAPE)
