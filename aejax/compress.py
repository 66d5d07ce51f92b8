"""Image files to bit streams and back, with a trained compressive_ae run: a real codec.

    python -m aejax.compress --workdir RUN photo.png [more.png ...]     # writes photo.aejx beside each
    python -m aejax.compress --workdir RUN --decode photo.aejx [...]   # writes photo.aejx.png beside each

An image is read in the model's channels (grayscale for a model of one channel: Pillow's 'L'); the fully
convolutional model codes any size whose sides 2^compress.layers divides. Each stream starts with the model's
fingerprint (`aejax.variants.compression.codec`): a stream from another run, or another checkpoint of this one, is
refused in one line. Decoding gives the model's reconstruction exactly, as 8-bit PNG.
"""
import pathlib
import sys

import numpy as np
from absl import app, flags
from PIL import Image

from aejax import config as config_lib, evaluate, signals
from aejax.data import catalog
from aejax.errors import ConfigError
from aejax.variants.compression import codec as codec_lib

SUFFIX = ".aejx"


def load_codec(workdir: str | pathlib.Path) -> codec_lib.Codec:
  """The codec of the compressive_ae run in `workdir`, at its latest checkpoint."""
  workdir = pathlib.Path(workdir)
  config = evaluate.load_config(workdir)
  if config.variant != "compressive_ae":
    raise ConfigError(f"--workdir={str(workdir)!r} is a {config.variant} run: aejax.compress needs a compressive_ae "
                      "run (experiments/compressive_ae.py)")
  shape = catalog.image_shape(config.data.name, config.data.resize)
  _, model, state = evaluate.restore_state(workdir, config, shape)
  return codec_lib.Codec(model, config, state.params)


def read_image(path: pathlib.Path, channels: int, multiple: int) -> np.ndarray:
  """Image file `path` as float32 (1, H, W, channels) in [0, 1]; a `ConfigError` if it cannot be read or its sides
  are not multiples of `multiple`."""
  try:
    with Image.open(path) as image:
      pixels = np.asarray(image.convert("L" if channels == 1 else "RGB"), np.float32) / 255
  except (OSError, ValueError) as e:
    raise ConfigError(f"{str(path)!r} is not an image Pillow reads ({e}): give a PNG, JPEG, ... file") from e
  height, width = pixels.shape[:2]
  if height % multiple or width % multiple:
    raise ConfigError(f"{str(path)!r} is {height}x{width}: this model codes images whose sides are multiples of "
                      f"{multiple} (2^compress.layers): crop or pad it, e.g. to "
                      f"{height // multiple * multiple or multiple}x{width // multiple * multiple or multiple}")
  return pixels.reshape(1, height, width, channels)


def compress(codec: codec_lib.Codec, image: pathlib.Path, out: pathlib.Path) -> float:
  """Writes image file `image`'s stream to `out`; returns its bits per pixel (header included)."""
  x = read_image(image, codec.model.image_channels, 2**codec.model.layers)
  stream = codec.write(codec.codes(x)[0])
  out.write_bytes(stream)
  return 8 * len(stream) / (x.shape[1] * x.shape[2])


def decompress(codec: codec_lib.Codec, stream: pathlib.Path, out: pathlib.Path) -> np.ndarray:
  """Decodes stream file `stream` to an 8-bit PNG at `out`; returns the image (H, W, C) in [0, 1]."""
  image = codec.images(codec.read(stream.read_bytes())[None])[0]
  pixels = np.rint(image * 255).astype(np.uint8)
  Image.fromarray(pixels[..., 0] if pixels.shape[-1] == 1 else pixels).save(out)
  return image


def main(argv: list[str]) -> None:
  files = [pathlib.Path(a) for a in argv[1:]]
  if not _WORKDIR.value or not files:
    sys.exit("aejax.compress: error: give --workdir RUN (a trained compressive_ae run) and one or more files, e.g. "
             "python -m aejax.compress --workdir runs/compressive_ae digit.png")
  try:
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
      raise ConfigError(f"no such file: {', '.join(missing)}")
    codec = load_codec(_WORKDIR.value)
    for f in files:
      if _DECODE.value:
        out = f.with_name(f.name + ".png")
        image = decompress(codec, f, out)
        print(f"aejax.compress: {f} -> {out} ({image.shape[0]}x{image.shape[1]})")
      else:
        out = f.with_suffix(SUFFIX)
        bpp = compress(codec, f, out)
        print(f"aejax.compress: {f} -> {out} ({out.stat().st_size} bytes, {bpp:.3f} bits per pixel)")
  except ConfigError as e:
    sys.exit(f"aejax.compress: error: {e}")


if __name__ == "__main__":
  _WORKDIR = flags.DEFINE_string("workdir", None, "The folder of a trained compressive_ae run.")
  _DECODE = flags.DEFINE_bool("decode", False, "Decode .aejx streams to PNG instead of compressing images.")
  signals.install("aejax.compress")
  with signals.exit_on_signals("aejax.compress", rerun="to run it again"):
    app.run(main, flags_parser=config_lib.flags_parser(
        "aejax.compress", example="python -m aejax.compress --workdir runs/compressive_ae digit.png"))
