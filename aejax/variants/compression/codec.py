"""The compressive autoencoder's codec: an image to a bit stream and back, through `constriction`'s range coder.

A stream is an 11-byte header, then the range coder's 32-bit words. The header holds a magic byte, the model's
fingerprint (4 bytes of the SHA-256 of its code alphabet and probability tables: a stream from another model, or
another state of this one, is refused in one line), the code's height and width (2 bytes each), so that the fully
convolutional model codes images of any size whose sides 2^layers divides, and a CRC-16 of the payload (a damaged
stream is refused, not decoded into garbage). The code's entries are coded channel after channel, each channel with
its own probabilities of the alphabet (`entropy.numpy_pmf`: float64, renormalised over the alphabet and rounded to
multiples of 2^-40, so that encoder and decoder build the same tables on any machine); `constriction` quantises them
to fixed point with every symbol kept possible, so a stream costs the likelihoods' bits plus that rounding and the
coder's last word.
"""
import binascii
import functools
import hashlib
import struct

import constriction
import jax
import numpy as np

from aejax.errors import ConfigError
from aejax.evaluation import batches
from aejax.registry import Config, Params
from aejax.variants.compression import entropy, models

HEADER = struct.Struct("<B4sHHH")  # MAGIC, fingerprint, code height, code width, CRC-16 of the payload
MAGIC = 0xAE  # The first byte of every stream (format 1).
PRECISION = 2**40  # The tables' probabilities are rounded to multiples of 1 / PRECISION before anything uses them.


class Codec:
  """Encodes images to streams and decodes them, for one model and its parameters (images and codes go through the
  networks in batches of `config.eval_batch_size`)."""

  def __init__(self, model: models.CompressiveAutoEncoder, config: Config, params: Params):
    self.model, self.params, self.batch_size = model, params, config.eval_batch_size
    density = jax.device_get(params["params"]["density"])
    self.low, self.high = entropy.numpy_support(density, config.compress.max_code, config.compress.tail_mass)
    mass = entropy.numpy_pmf(density, self.low, self.high)
    counts = np.maximum(np.round(mass / mass.sum(axis=1, keepdims=True) * PRECISION), 1).astype(np.int64)
    self.probabilities = counts / counts.sum(axis=1, keepdims=True)
    self._models = [constriction.stream.model.Categorical(p, perfect=False) for p in self.probabilities]
    tables = np.array([self.low, self.high], np.int64).tobytes() + counts.tobytes()
    self.fingerprint = hashlib.sha256(tables).digest()[:4]
    self._encode = jax.jit(lambda p, x: model.apply(p, x, method=model.encode))
    self._reconstruct = jax.jit(lambda p, code: models.reconstruct(model, p, code))

  def codes(self, x: np.ndarray) -> np.ndarray:
    """The integer codes (int32, (N, h, w, code_channels)) of images `x` (N, H, W, C) in [0, 1]: rounded, clipped to
    the codec's alphabet."""
    y = batches.apply(functools.partial(self._encode, self.params), x, self.batch_size)
    return np.clip(np.round(y), self.low, self.high).astype(np.int32)

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
    payload = self.payload(code)
    return HEADER.pack(MAGIC, self.fingerprint, height, width, binascii.crc_hqx(payload, 0)) + payload

  def read(self, stream: bytes) -> np.ndarray:
    """The integer code (h, w, code_channels) of a stream `write` made; a `ConfigError` for a stream of another
    model, or one damaged (its length, header or payload's checksum wrong)."""
    if len(stream) < HEADER.size or (len(stream) - HEADER.size) % 4 or stream[0] != MAGIC:
      raise ConfigError(f"these {len(stream)} bytes are no aejax compressive_ae stream (a {HEADER.size}-byte header "
                        "and 32-bit words): the file is damaged or was not written by aejax.compress")
    _, fingerprint, height, width, checksum = HEADER.unpack_from(stream)
    if fingerprint != self.fingerprint:
      raise ConfigError(f"this stream was written by another model (fingerprint {fingerprint.hex()}, this run's is "
                        f"{self.fingerprint.hex()}): decode it with the run and checkpoint that wrote it")
    payload = stream[HEADER.size:]
    if binascii.crc_hqx(payload, 0) != checksum:
      raise ConfigError(f"this stream's {len(payload)}-byte payload fails its checksum: the file is damaged")
    decoder = constriction.stream.queue.RangeDecoder(np.frombuffer(payload, "<u4").astype(np.uint32))
    channels = [decoder.decode(model, height * width).reshape(height, width) for model in self._models]
    return np.stack(channels, axis=-1).astype(np.int32) + self.low
