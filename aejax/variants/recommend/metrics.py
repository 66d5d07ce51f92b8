"""Per-row measures of predicted ratings and of rankings, in jax.numpy (they run inside the evaluation step and on
the host alike): squared and absolute errors over the scored entries, and Recall@k and NDCG@k with Liang et al.'s
normalisations."""
import jax
import jax.numpy as jnp
import numpy as np

RECALL_AT, NDCG_AT = (20, 50), 100  # Liang et al.'s cut-offs: the implicit variants' test metrics and the suite's.


def rating_errors(predicted: jax.Array, targets: jax.Array) -> dict[str, jax.Array]:
  """Per row: the sums of squared and absolute errors over its scored entries (targets > 0), and their count."""
  scored = targets > 0
  error = jnp.where(scored, predicted - targets, 0.0)
  return {"squared": jnp.sum(error**2, axis=-1), "absolute": jnp.sum(jnp.abs(error), axis=-1),
          "count": jnp.sum(scored, axis=-1).astype(jnp.float32)}


def rank_top(scores: jax.Array, seen: jax.Array, k: int) -> jax.Array:
  """The indices (B, k) of each row's k highest scores among the items not `seen` (seen > 0), best first."""
  return jax.lax.top_k(jnp.where(seen > 0, -jnp.inf, scores), k)[1]


def ranking(top: jax.Array, targets: jax.Array, recall_at: tuple[int, ...], ndcg_at: int) -> dict[str, jax.Array]:
  """Per row, of a ranking `top` (B, >= the largest cut-off) against the held-out items (targets > 0):
  Recall@k = hits in the top k / min(k, held-out items) and NDCG@k = DCG@k / the DCG of a perfect ranking; 0 for a
  row with nothing held out."""
  relevant = targets > 0
  hits = jnp.take_along_axis(relevant, top, axis=-1).astype(jnp.float32)
  count = jnp.sum(relevant, axis=-1).astype(jnp.float32)
  out = {f"recall@{k}": jnp.sum(hits[:, :k], axis=-1) / jnp.maximum(jnp.minimum(count, k), 1.0) for k in recall_at}
  discount = 1.0 / np.log2(np.arange(2, ndcg_at + 2))
  dcg = hits[:, :ndcg_at] @ discount
  ideal = jnp.cumsum(discount)[jnp.clip(jnp.minimum(count, ndcg_at).astype(jnp.int32) - 1, 0)]
  out[f"ndcg@{ndcg_at}"] = jnp.where(count > 0, dcg / ideal, 0.0)
  return out
