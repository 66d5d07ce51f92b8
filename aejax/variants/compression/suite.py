"""The `compression` suite: a compressive_ae run's test images coded into real streams and decoded, beside PNG,
JPEG and WebP (Pillow) on the same images.

Metrics ('compression/...'): the bits per pixel estimated from the likelihoods ('bpp_estimated') and those of the
streams ('bpp', the whole stream; 'bpp_payload', without the 11-byte header), their gap ('gap_payload', the payload
over the estimate, minus 1: the entropy coder's cost plus the last word each stream rounds up to; 'gap_one_stream',
the same for every test code in one stream, where that word is spread thin), whether each decoded image equals the
model's reconstruction as the loop's evaluation computes it ('decoded_equal', the share that do: the codec's float64
alphabet and the model's float32 one agree), PSNR (dB, the mean of per-image figures) and SSIM of the
decoded images; for each baseline and quality the same figures ('jpeg_q10_bpp', ...), JPEG also as an abbreviated
stream without its tables ('jpeg_q10_bpp_no_tables': what JPEG costs when the decoder already holds them, the
fairest JPEG figure on small images), and the baselines' bits at the model's PSNR, interpolated along their curves
('jpeg_bpp_at_psnr', ...; NaN outside their range). Pictures: the rate–distortion plane (bpp against PSNR) with the
model's point and the baselines' curves, and input / decoded / JPEG and WebP at the nearest bits.
"""
import functools
import io
from typing import Any

import jax
import numpy as np
from PIL import Image

from aejax import images
from aejax.evaluation import batches
from aejax.variants import common
from aejax.variants.compression import codec as codec_lib
from aejax.variants.compression import entropy, models

Metrics = dict[str, float]


def _pil(x: np.ndarray) -> Image.Image:
  """An image (H, W, C) in [0, 1], 8-bit values, as a Pillow image ('L' for one channel, 'RGB' for three)."""
  pixels = np.rint(np.clip(x, 0, 1) * 255).astype(np.uint8)
  return Image.fromarray(pixels[..., 0] if pixels.shape[-1] == 1 else pixels)


def _pixels_of(data: bytes, channels: int) -> np.ndarray:
  decoded = np.asarray(Image.open(io.BytesIO(data)).convert("L" if channels == 1 else "RGB"), np.float64) / 255
  return decoded.reshape(*decoded.shape[:2], channels)


def pillow_codec(x: np.ndarray, fmt: str, quality: int | None = None,
                 tables: bool = True) -> tuple[np.ndarray, np.ndarray]:
  """Each image of `x` (N, H, W, C) in [0, 1] coded by Pillow as `fmt` ('PNG', 'JPEG', 'WEBP') at `quality`: the
  bits per pixel of each file and the decoded images. `tables=False` writes JPEG's abbreviated image stream (no
  quantisation or Huffman tables; decoded here with the tables of a file at the same quality)."""
  options = {} if quality is None else {"quality": quality}
  bits, decoded = [], []
  for image in x:
    buffer = io.BytesIO()
    _pil(image).save(buffer, fmt, **options)
    data = buffer.getvalue()
    size = len(data)
    if not tables:
      abbreviated = io.BytesIO()
      _pil(image).save(abbreviated, fmt, streamtype=2, **options)
      size = len(abbreviated.getvalue())
    bits.append(8 * size / (x.shape[1] * x.shape[2]))
    decoded.append(_pixels_of(data, x.shape[-1]))
  return np.array(bits), np.stack(decoded)


def _scores(prefix: str, bpp: np.ndarray, decoded: np.ndarray, x: np.ndarray) -> Metrics:
  from aejax.evaluation import metrics  # pylint: disable=g-import-not-at-top  (scikit-image: only when scoring)
  return {f"{prefix}bpp": float(bpp.mean()), f"{prefix}psnr": float(metrics.psnr(decoded, x).mean()),
          f"{prefix}ssim": metrics.mean_ssim(decoded, x)}


def baselines(x: np.ndarray, jpeg_qualities: tuple[int, ...], webp_qualities: tuple[int, ...]) -> Metrics:
  """PNG, JPEG (whole files and without tables) and WebP on images `x`: bpp, PSNR and SSIM at each quality."""
  out = _scores("png_", *pillow_codec(x, "PNG"), x)
  for q in jpeg_qualities:
    bpp, decoded = pillow_codec(x, "JPEG", q)
    out |= _scores(f"jpeg_q{q}_", bpp, decoded, x)
    out[f"jpeg_q{q}_bpp_no_tables"] = float(pillow_codec(x, "JPEG", q, tables=False)[0].mean())
  for q in webp_qualities:
    out |= _scores(f"webp_q{q}_", *pillow_codec(x, "WEBP", q), x)
  return out


def curve(out: Metrics, name: str, qualities: tuple[int, ...], bpp_of: str = "bpp") -> tuple[np.ndarray, np.ndarray]:
  """A baseline's (bpp, PSNR) points over its qualities, in order of PSNR."""
  bpp = np.array([out[f"{name}_q{q}_{bpp_of}"] for q in qualities])
  psnr = np.array([out[f"{name}_q{q}_psnr"] for q in qualities])
  order = np.argsort(psnr)
  return bpp[order], psnr[order]


def bpp_at(points: tuple[np.ndarray, np.ndarray], psnr: float) -> float:
  """The bits a curve spends at `psnr`, interpolated linearly between its points; NaN outside their range."""
  bpp, psnrs = points
  return float(np.interp(psnr, psnrs, bpp)) if psnrs[0] <= psnr <= psnrs[-1] else float("nan")


def draw_plane(out: Metrics, points: list[tuple[float, float]], jpeg_q: tuple[int, ...], webp_q: tuple[int, ...],
               title: str) -> Any:
  """The rate–distortion plane: the baselines' curves of `out` (the suite's metrics, unprefixed) and the model's
  (bpp, PSNR) `points`, joined in order of bits (the benchmark's λ sweep; the suite's one run). A pyplot figure."""
  figure, axis = images.pyplot().subplots(figsize=(6.5, 4.8), dpi=110)
  for name, qualities, bpp_of, style, label in (("jpeg", jpeg_q, "bpp", "o-", "JPEG"),
                                                ("jpeg", jpeg_q, "bpp_no_tables", "o--", "JPEG without its tables"),
                                                ("webp", webp_q, "bpp", "s-", "WebP")):
    axis.plot(*curve(out, name, qualities, bpp_of), style, label=label, markersize=4)
  axis.plot(*zip(*sorted(points)), "r*-", markersize=10, label="aejax compressive_ae (actual streams)")
  axis.set(xlabel="bits per pixel", ylabel="PSNR (dB)", title=title)
  axis.grid(alpha=0.3)
  axis.legend()
  figure.tight_layout()
  return figure


def compression(run: Any) -> tuple[Metrics, dict[str, images.Grid]]:
  """The suite (see the module docstring) on `run`'s test images."""
  from aejax.evaluation import metrics  # pylint: disable=g-import-not-at-top  (scikit-image: only when scoring)
  config, x = run.config, run.test_images
  s = config.compress
  codec = codec_lib.Codec(run.model, config, run.state.params)
  codes = codec.codes(x)
  streams = [codec.write(code) for code in codes]
  decoded_codes = np.stack([codec.read(stream) for stream in streams])
  decoded = codec.images(decoded_codes)
  model_path = jax.jit(lambda p, images: models.reconstruct(run.model, p, models.quantize(
      run.model, p, images, s.max_code, s.tail_mass)))  # What the loop's evaluation scores.
  reconstruction = batches.apply(functools.partial(model_path, run.state.params), x, config.eval_batch_size)
  likelihoods = jax.jit(lambda p, y: run.model.apply(p, y, method=run.model.likelihoods))
  bits = batches.apply(lambda y: entropy.bits(likelihoods(run.state.params, y)).sum(axis=(1, 2, 3)),
                       codes.astype(np.float32), config.eval_batch_size).astype(np.float64)
  pixels = x.shape[1] * x.shape[2]
  lengths = np.array([len(stream) for stream in streams], np.float64)
  payload = 8 * (lengths - codec_lib.HEADER.size)
  one_stream = codec.payload(codes.reshape(-1, *codes.shape[2:]))  # The codes one under the other.
  out = {"bpp_estimated": float(bits.mean() / pixels), "bpp": float(8 * lengths.mean() / pixels),
         "bpp_payload": float(payload.mean() / pixels), "gap_payload": float(payload.sum() / bits.sum() - 1),
         "gap_one_stream": float(8 * len(one_stream) / bits.sum() - 1),
         "decoded_equal": float(np.mean(np.all(decoded == reconstruction, axis=(1, 2, 3)))),
         "psnr": float(metrics.psnr(decoded, x).mean()), "ssim": metrics.mean_ssim(decoded, x)}
  out |= baselines(x, tuple(s.jpeg_qualities), tuple(s.webp_qualities))
  for name, qualities in (("jpeg", s.jpeg_qualities), ("webp", s.webp_qualities)):
    out[f"{name}_bpp_at_psnr"] = bpp_at(curve(out, name, tuple(qualities)), out["psnr"])
  out["jpeg_no_tables_bpp_at_psnr"] = bpp_at(curve(out, "jpeg", tuple(s.jpeg_qualities), "bpp_no_tables"),
                                             out["psnr"])
  pictures = {"rate_distortion": images.figure_picture(draw_plane(
      out, [(out["bpp"], out["psnr"])], tuple(s.jpeg_qualities), tuple(s.webp_qualities),
      f"{config.data.name}, λ={s.lmbda:g}"))}
  n = config.num_images
  rows = {"input": x[:n], "aejax": decoded[:n]}
  for name, fmt, qualities in (("jpeg", "JPEG", s.jpeg_qualities), ("webp", "WEBP", s.webp_qualities)):
    nearest = min(qualities, key=lambda q: abs(out[f"{name}_q{q}_bpp"] - out["bpp"]))
    rows[f"{name} q{nearest}"] = pillow_codec(x[:n], fmt, nearest)[1]
  pictures["decoded"] = common.image_grid(rows, n=n)
  return {f"compression/{k}": v for k, v in out.items()}, pictures
