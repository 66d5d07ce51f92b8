"""Partition functions of Bernoulli–Bernoulli RBMs: exact by enumeration, estimated by annealed importance sampling.

An RBM is `weights` (V, H), `visible_bias` b (V,) and `hidden_bias` c (H,), with energy
E(v, h) = -v·b - h·c - vᵀWh and p(v, h) = exp(-E(v, h)) / Z. Summing the hiddens out gives the free energy
F(v) = -v·b - Σ_j softplus(c_j + (vᵀW)_j), so log p(v) = -F(v) - log Z; everything here is in nats.

Z sums 2^(V+H) states. `log_partition_exact` sums 2^H of them explicitly (the visibles analytically), which is
feasible for H <= 20. Beyond that, `ais_log_partition` estimates log Z by annealed importance sampling (Neal 2001)
from a base-rate RBM as in Salakhutdinov & Murray (2008), "On the quantitative analysis of deep belief networks".
"""
import math
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
import numpy.typing as npt

from aejax.errors import ConfigError
from aejax.variants.boltzmann import fields

MAX_EXACT_HIDDEN = 20
_EXACT_CHUNK_ELEMENTS = 2**22  # (hidden states, V) elements per chunk of `log_partition_exact`: 16 MiB in float32.


def free_energy(weights: jax.Array, visible_bias: jax.Array, hidden_bias: jax.Array, v: jax.Array) -> jax.Array:
  """F(v) = -v·b - Σ_j softplus(c_j + (vᵀW)_j) of each row of `v` (B, V): (B,), in nats.

  -F(v) is log Σ_h exp(-E(v, h)): the unnormalised log-probability of v with the hiddens summed out.
  """
  return -v @ visible_bias - jnp.sum(jax.nn.softplus(hidden_bias + v @ weights), axis=-1)


def log_likelihood(weights: jax.Array, visible_bias: jax.Array, hidden_bias: jax.Array, log_z: jax.Array,
                   v: jax.Array) -> jax.Array:
  """log p(v) = -F(v) - log Z of each row of `v` (B, V): (B,), in nats, given an exact or estimated `log_z`."""
  return -free_energy(weights, visible_bias, hidden_bias, v) - log_z


def log_partition_exact(weights: jax.Array, visible_bias: jax.Array, hidden_bias: jax.Array) -> jax.Array:
  """log Z exactly: log Σ_h exp(h·c + Σ_i softplus(b_i + (Wh)_i)) over all 2^H hidden states h.

  The visibles are summed out analytically, so the cost is 2^H·V·H; the states are enumerated in chunks of
  about 2^22 / V, whose log-sum-exps are combined at the end, so memory stays small even at H = 20.
  """
  num_hidden = weights.shape[1]
  if num_hidden > MAX_EXACT_HIDDEN:
    raise ConfigError(f"log_partition_exact enumerates 2**H hidden states and allows H <= {MAX_EXACT_HIDDEN}, got "
                      f"H={num_hidden}: estimate log Z with ais_log_partition instead")
  return _log_partition_exact(weights, visible_bias, hidden_bias)


@jax.jit
def _log_partition_exact(weights: jax.Array, visible_bias: jax.Array, hidden_bias: jax.Array) -> jax.Array:
  num_visible, num_hidden = weights.shape
  chunk = min(2**num_hidden, max(1, 2**int(math.log2(max(1, _EXACT_CHUNK_ELEMENTS // num_visible)))))
  bits = jnp.arange(num_hidden)

  def chunk_log_sum(start: jax.Array) -> jax.Array:
    h = ((start + jnp.arange(chunk))[:, None] >> bits & 1).astype(weights.dtype)  # Binary digits of the indices.
    return jax.nn.logsumexp(h @ hidden_bias + jnp.sum(jax.nn.softplus(visible_bias + h @ weights.T), axis=1))

  return jax.nn.logsumexp(jax.lax.map(chunk_log_sum, jnp.arange(0, 2**num_hidden, chunk)))


def base_rate_bias(images: npt.ArrayLike, eps: float = 0.05) -> np.ndarray:
  """Visible biases log(p / (1 - p)) of the base-rate RBM: p is each pixel's mean over `images` (N, ...), smoothed.

  The base-rate RBM (W = 0, these visible biases, zero hidden biases) is the (smoothed) maximum-likelihood fully
  factorised model of the training pixels, the starting point of AIS. A pixel that is always 0 (or 1) would get an
  infinite bias, so p = (mean + eps) / (1 + 2·eps): `eps`·N pseudo-images all 0 and as many all 1. Salakhutdinov's
  MATLAB base_rate.m adds 5 pseudo-ones per batch of 100 images instead, p = (count + 0.05 N) / (1.05 N), which
  keeps never-on pixels at p ≈ 0.048 (eps = 0.05 here gives 0.045) but leaves always-on pixels at p = 1.
  """
  if not eps > 0:
    raise ConfigError(f"base_rate_bias eps={eps!r}: a pixel constant over the data would get an infinite bias; use "
                      "eps > 0 (default 0.05)")
  images = np.asarray(images).reshape(len(images), -1)
  p = (images.mean(axis=0, dtype=np.float64) + eps) / (1 + 2 * eps)
  return np.log(p / (1 - p)).astype(np.float32)


def base_log_partition(base_visible_bias: jax.Array, num_hidden: int) -> jax.Array:
  """log Z_A = Σ_i softplus(b_A,i) + H·log 2 of the base-rate RBM: factorised visibles, H free hidden units."""
  return jnp.sum(jax.nn.softplus(base_visible_bias)) + num_hidden * math.log(2)


def betas(segments: Sequence[tuple[float, float]]) -> np.ndarray:
  """The values of β along `segments`, (end, step) pairs from β = 0 (`config.eval.ais.schedule`; checked by
  `fields.check_schedule`): each segment from the previous end in steps of about its step (a whole number of
  them, at least one), each value once, ending at exactly 1."""
  fields.check_schedule(segments)
  parts, start = [], 0.0
  for end, step in segments:
    parts.append(np.linspace(start, end, max(1, round((end - start) / step)), endpoint=False))
    start = end
  return np.concatenate([*parts, [1.0]])


def default_betas() -> np.ndarray:
  """Salakhutdinov & Murray's 14,501 values of β: 0 to 0.5 by 1e-3, to 0.9 by 1e-4, to 1 by 1e-5.

  Their MATLAB script repeats 0.5 and 0.9 where the segments meet; here each β appears once.
  """
  return betas(fields.PAPER_SCHEDULE)


def schedule(num_steps: int) -> np.ndarray:
  """`num_steps` + 1 values of β from 0 to exactly 1: the paper's three segments with their shares of the steps
  (500, 4,000 and 10,000 of 14,500, rounded, at least one each), so a short schedule for tests keeps the paper's
  shape, its finest steps near β = 1."""
  ends = [end for end, _ in fields.PAPER_SCHEDULE]
  starts = (0.0, *ends[:-1])
  counts = [round((end - start) / step) for start, (end, step) in zip(starts, fields.PAPER_SCHEDULE)]
  if num_steps < len(counts):
    raise ConfigError(f"AIS schedule num_steps={num_steps} is too few for its {len(counts)} segments: use "
                      f"num_steps >= {len(counts)} (the paper's is {sum(counts)})")
  scaled = [max(1, round(num_steps * n / sum(counts))) for n in counts[:-1]]
  scaled.append(num_steps - sum(scaled))
  return betas([(end, (end - start) / n) for start, end, n in zip(starts, ends, scaled)])


def check_betas(betas: npt.ArrayLike) -> np.ndarray:
  """`betas` as a float array, or a `ConfigError` unless it is a finite non-decreasing sequence from 0 to 1."""
  betas = np.asarray(betas, np.float64)
  fix = "e.g. aejax.variants.boltzmann.ais.default_betas() or schedule(num_steps)"
  if betas.ndim != 1 or len(betas) < 2:
    raise ConfigError(f"AIS betas must be a sequence of at least 2 values from 0 to 1, got shape {betas.shape}: use "
                      f"{fix}")
  if not np.all(np.isfinite(betas)):
    raise ConfigError(f"AIS betas must be finite, betas[{np.argmin(np.isfinite(betas))}] is not: use {fix}")
  if betas[0] != 0:
    raise ConfigError(f"AIS betas must start at 0 (the base-rate model), got betas[0]={betas[0]}: prepend 0.0")
  decreasing = np.flatnonzero(np.diff(betas) < 0)
  if decreasing.size:
    k = decreasing[0] + 1
    raise ConfigError(f"AIS betas must be non-decreasing, got betas[{k}]={betas[k]} < betas[{k - 1}]={betas[k - 1]}: "
                      "sort them")
  if betas[-1] != 1:
    raise ConfigError(f"AIS betas must end at 1 (the target RBM), got betas[-1]={betas[-1]}: append 1.0")
  return betas


def ais_log_partition(weights: jax.Array, visible_bias: jax.Array, hidden_bias: jax.Array,
                      base_visible_bias: jax.Array, betas: npt.ArrayLike, num_runs: int,
                      key: jax.Array) -> tuple[jax.Array, jax.Array]:
  """AIS estimate of log Z of the RBM, and the `num_runs` log importance weights: (scalar, (num_runs,)).

  The path runs from the base-rate RBM A (W = 0, `base_visible_bias`, H hidden units with zero bias; Z_A known,
  `base_log_partition`) to the target B through p_β(v, h_A, h_B) ∝ exp((1-β)·(-E_A(v, h_A)) + β·(-E_B(v, h_B)))
  as in Salakhutdinov & Murray. Summing both sets of hiddens out,
    log p*_β(v) = (1-β)·v·b_A + β·v·b_B + Σ_j softplus(β·(c_j + (vᵀW)_j)) + H·log 2,
  where H·log 2 is A's hiddens (their energy is 0 at every β) and cancels in every ratio. At β = 0 the
  normaliser is Z_A·2^H, at β = 1 it is Z_B·2^H, so the weights estimate Z_B / Z_A.

  Each run starts from an exact sample of A; at each β_k (k = 1..K for `betas` β_0 = 0 <= ... <= β_K = 1) it adds
  log p*_k(v) - log p*_{k-1}(v) to its log-weight, then (for k < K) takes one Gibbs step that leaves p_k
  invariant: h_B ~ p(h_B | v) = sigmoid(β·(c + vᵀW)), v ~ sigmoid((1-β)·b_A + β·(b_B + W h_B)) (h_A does not
  touch v since W_A = 0, so it is never drawn). The runs are the batch, the β loop one jitted `lax.scan` whose
  carry is v (num_runs, V), c + vᵀW (num_runs, H) and the log-weights, summed in float32 with Kahan's
  compensation (`_add_compensated`; tests/test_ais.py checks the sum over `default_betas` against float64).

  log Ẑ_B = log Z_A + log mean exp(log_weights); `log_z_spread(log_weights, log Z_A)` brackets it. `betas` must
  be concrete (checked by `check_betas`), so call this outside `jax.jit`; it compiles its own loop.
  """
  if num_runs < 1:
    raise ConfigError(f"ais_log_partition num_runs={num_runs}: use num_runs >= 1 (the paper uses 100)")
  betas = jnp.asarray(check_betas(betas), weights.dtype)
  log_weights = _ais_log_weights(weights, visible_bias, hidden_bias, base_visible_bias, betas, key, num_runs)
  log_z_base = base_log_partition(base_visible_bias, weights.shape[1])
  return log_z_base + jax.nn.logsumexp(log_weights) - math.log(num_runs), log_weights


@jax.jit(static_argnames="num_runs")
def _ais_log_weights(weights: jax.Array, visible_bias: jax.Array, hidden_bias: jax.Array,
                     base_visible_bias: jax.Array, betas: jax.Array, key: jax.Array, num_runs: int) -> jax.Array:
  bias_gap = visible_bias - base_visible_bias

  def increment(v: jax.Array, x: jax.Array, beta: jax.Array, beta_prev: jax.Array) -> jax.Array:
    """log p*_β(v) - log p*_β'(v), with x = c + vᵀW.

    The two softplus values are of order |x|, so their difference carries float32 roundings of |x|·6e-8; these are
    random in sign: on a 784-500 RBM with N(0, 0.3²) weights, 10 runs over `default_betas` ended within 1.2e-3 nat
    of the same runs with a cancellation-free log1p(sigmoid(β'x)·expm1((β-β')x)), so the plain form is kept.
    """
    hidden_terms = jax.nn.softplus(beta * x) - jax.nn.softplus(beta_prev * x)
    return (beta - beta_prev) * (v @ bias_gap) + jnp.sum(hidden_terms, axis=-1)

  def step(carry, inputs):
    v, x, log_w = carry
    beta_prev, beta, step_key = inputs
    log_w = _add_compensated(log_w, increment(v, x, beta, beta_prev))
    hidden_key, visible_key = jax.random.split(step_key)
    h = jax.random.bernoulli(hidden_key, jax.nn.sigmoid(beta * x)).astype(x.dtype)
    v_logits = (1 - beta) * base_visible_bias + beta * (visible_bias + h @ weights.T)
    v = jax.random.bernoulli(visible_key, jax.nn.sigmoid(v_logits)).astype(v.dtype)
    return (v, hidden_bias + v @ weights, log_w), None

  start_key, key = jax.random.split(key)
  v = jax.random.bernoulli(start_key, jax.nn.sigmoid(base_visible_bias), (num_runs, len(visible_bias)))
  v = v.astype(weights.dtype)
  carry = (v, hidden_bias + v @ weights, (jnp.zeros(num_runs, weights.dtype),) * 2)
  num_transitions = len(betas) - 2  # At β_1 .. β_{K-1}; β_0 = 0 starts exactly, β_K = 1 only adds its increment.
  inputs = (betas[:-2], betas[1:-1], jax.random.split(key, num_transitions))
  (v, x, log_w), _ = jax.lax.scan(step, carry, inputs)
  total, error = _add_compensated(log_w, increment(v, x, betas[-1], betas[-2]))
  return total - error


def _add_compensated(sum_and_error: tuple[jax.Array, jax.Array], term: jax.Array) -> tuple[jax.Array, jax.Array]:
  """Kahan's compensated sum: (sum, error) after adding `term`; the true total is sum - error.

  A plain float32 sum of the 14,500 increments of `default_betas` ended 0.17 nat below float64's 1,393.96 (W = 0,
  H = 500 hidden biases N(0, 10²), tests/test_ais.py's case): each addition rounds at the total's scale, and the
  roundings did not cancel. The compensated sum ended 3e-5 nat from it, float32's precision of the total.
  """
  total, error = sum_and_error
  corrected = term - error
  new_total = total + corrected
  return new_total, (new_total - total) - corrected


def log_z_spread(log_weights: jax.Array, log_z_base: float = 0.0) -> tuple[jax.Array, jax.Array]:
  """log(mean w - 3σ/√R) and log(mean w + 3σ/√R) + `log_z_base`: the bracket that Salakhutdinov & Murray report.

  w are the R = len(log_weights) importance weights exp(log_weights), σ their sample standard deviation (R - 1 in
  the denominator, as MATLAB's `std` in their scripts), so σ/√R estimates the standard error of mean w. Computed
  relative to the largest weight so nothing overflows. Where mean w - 3σ/√R <= 0 (a few runs dominate) the lower
  end is -inf, never NaN. Pass log Z_A as `log_z_base` to bracket log Ẑ_B itself.
  """
  num_runs = log_weights.shape[0]
  if num_runs < 2:
    raise ConfigError(f"log_z_spread needs the standard deviation of the weights, so at least 2 AIS runs, got "
                      f"{num_runs}: use num_runs >= 2 (the paper uses 100)")
  shift = jnp.max(log_weights)
  w = jnp.exp(log_weights - shift)
  mean, half_width = jnp.mean(w), 3 * jnp.std(w, ddof=1) / math.sqrt(num_runs)
  return (log_z_base + shift + jnp.log(jnp.maximum(mean - half_width, 0.0)),
          log_z_base + shift + jnp.log(mean + half_width))
