"""The compressive autoencoder's codec: an image to a bit stream and back, through `constriction`'s range coder.

A stream is a 9-byte header, then the range coder's 32-bit words. The header holds a magic byte, the model's
fingerprint (4 bytes of the SHA-256 of its code alphabet and probability tables: a stream from another model, or another state of
this one, is refused in one line) and the code's height and width (2 bytes each), so the fully convolutional model
codes images of any size whose sides 2^layers divides. The code's entries are coded channel after channel, each
channel with its own probabilities of the alphabet (`entropy.pmf`, renormalised over it); `constriction` quantises
them to fixed point with every symbol kept possible, so the stream costs the likelihoods' bits plus that rounding
and the coder's last word.
"""
import functools
import hashlib
import struct

import constriction
import jax
import numpy as np

from aejax.errors import ConfigError
from aejax.evaluation import batches
from aejax.registry import Config, Params
from aejax.variants.compression import models

HEADER = struct.Struct("<B4sHH")  # MAGIC, fingerprint, code height, code width
MAGIC = 0xAE  # The first byte of every stream (format 1).


class Codec:
  """Encodes images to streams and decodes them, for one model and its parameters (images and codes go through the
  networks in batches of `config.eval_batch_size`)."""

  def __init__(self, model: models.CompressiveAutoEncoder, config: Config, params: Params):
    self.model, self.params, self.batch_size = model, params, config.eval_batch_size
    max_code, tail_mass = config.compress.max_code, config.compress.tail_mass
    low, high = jax.jit(lambda p: model.apply(p, max_code, tail_mass, method=model.support))(params)
    self.low, self.high = int(low), int(high)
    probabilities = np.asarray(model.apply(params, self.low, self.high, method=model.pmf), np.float64)
    self.probabilities = probabilities / probabilities.sum(axis=1, keepdims=True)
    self._models = [constriction.stream.model.Categorical(p, perfect=False) for p in self.probabilities]
    tables = np.array([self.low, self.high], np.int64).tobytes() + self.probabilities.tobytes()
    self.fingerprint = hashlib.sha256(tables).digest()[:4]
    self._quantize = jax.jit(lambda p, x: models.quantize(model, p, x, max_code, tail_mass))
    self._reconstruct = jax.jit(lambda p, code: models.reconstruct(model, p, code))

  def codes(self, x: np.ndarray) -> np.ndarray:
    """The integer codes (int32, (N, h, w, code_channels)) of images `x` (N, H, W, C) in [0, 1]."""
    return batches.apply(functools.partial(self._quantize, self.params), x, self.batch_size).astype(np.int32)

  def images(self, codes: np.ndarray) -> np.ndarray:
    """The 8-bit images (in [0, 1]) of integer codes: the model's reconstruction."""
    return batches.apply(functools.partial(self._reconstruct, self.params), codes.astype(np.float32), self.batch_size)

  def payload(self, code: np.ndarray) -> bytes:
    """The range coder's words for an integer code (h, w, code_channels), without a header."""
    encoder = constriction.stream.queue.RangeEncoder()
    symbols = (code - self.low).astype(np.int32)
    for channel, model in enumerate(self._models):
      encoder.encode(np.ascontiguousarray(symbols[..., channel]).ravel(), model)
    return encoder.get_compressed().astype("<u4").tobytes()

  def write(self, code: np.ndarray) -> bytes:
    """The stream of one integer code (h, w, code_channels): the header, then `payload`."""
    height, width, _ = code.shape
    if max(height, width) >= 2**16:
      raise ConfigError(f"a code of {height}x{width} positions does not fit the stream's header (at most 65535 a "
                        "side): code the image in tiles")
    return HEADER.pack(MAGIC, self.fingerprint, height, width) + self.payload(code)

  def read(self, stream: bytes) -> np.ndarray:
    """The integer code (h, w, code_channels) of a stream `write` made; a `ConfigError` for a stream of another
    model or a damaged one."""
    if len(stream) < HEADER.size or (len(stream) - HEADER.size) % 4 or stream[0] != MAGIC:
      raise ConfigError(f"these {len(stream)} bytes are no aejax compressive_ae stream (a {HEADER.size}-byte header "
                        "and 32-bit words): the file is damaged or was not written by aejax.compress")
    _, fingerprint, height, width = HEADER.unpack_from(stream)
    if fingerprint != self.fingerprint:
      raise ConfigError(f"this stream was written by another model (fingerprint {fingerprint.hex()}, this run's is "
                        f"{self.fingerprint.hex()}): decode it with the run and checkpoint that wrote it")
    decoder = constriction.stream.queue.RangeDecoder(np.frombuffer(stream[HEADER.size:], "<u4").astype(np.uint32))
    channels = [decoder.decode(model, height * width).reshape(height, width) for model in self._models]
    return np.stack(channels, axis=-1).astype(np.int32) + self.low
