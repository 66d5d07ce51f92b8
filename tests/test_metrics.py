"""Evaluation metrics on cases with known answers, and against independent computations."""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from skimage import metrics as sk_metrics
from sklearn import decomposition
from sklearn import metrics as sk_classification

from aejax import config as config_lib
from aejax.evaluation import metrics
from aejax.variants import common
from aejax.variants.variational import fields as vae_fields, vae


def test_auroc_is_one_when_separated_zero_when_reversed_half_when_all_tied():
  scores = np.array([0.1, 0.2, 0.3, 0.7, 0.8])
  positive = np.array([False, False, False, True, True])
  assert metrics.auroc(scores, positive) == 1.0
  assert metrics.auroc(-scores, positive) == 0.0
  assert metrics.auroc(np.ones(5), positive) == 0.5


def test_auroc_equals_sklearn_on_random_scores_with_ties():
  rng = np.random.default_rng(0)
  scores = rng.integers(0, 6, 500).astype(float)  # Six values: many ties.
  positive = rng.random(500) < 0.3 + 0.1 * scores
  assert metrics.auroc(scores, positive) == pytest.approx(sk_classification.roc_auc_score(positive, scores), abs=1e-12)


def test_auroc_needs_both_classes():
  with pytest.raises(ValueError, match="needs both classes: got 3 positive and 0 negative"):
    metrics.auroc(np.arange(3.0), np.ones(3, bool))


def test_psnr_is_capped_for_identical_images_and_known_for_a_constant_offset():
  x = np.random.default_rng(0).random((4, 28, 28, 1))
  np.testing.assert_array_equal(metrics.psnr(x, x), np.full(4, metrics.PSNR_CAP_DB))
  np.testing.assert_allclose(metrics.psnr(x + 0.1, x), np.full(4, 20.0))  # MSE 0.01 at peak 1.
  np.testing.assert_allclose(metrics.psnr(x * 255 + 5.1, x * 255, peak=255.0), np.full(4, 20 * np.log10(50.0)))


def test_mean_ssim_is_the_mean_of_scikit_images_per_image_ssim():
  rng = np.random.default_rng(1)
  x = rng.random((5, 28, 28, 1))
  y = np.clip(x + 0.2 * rng.standard_normal(x.shape), 0, 1)
  per_image = [sk_metrics.structural_similarity(a[..., 0], b[..., 0], data_range=1.0) for a, b in zip(y, x)]
  assert metrics.mean_ssim(y, x) == pytest.approx(np.mean(per_image), rel=1e-10)
  assert metrics.mean_ssim(x, x) == pytest.approx(1.0)
  colour_x, colour_y = rng.random((3, 16, 16, 3)), rng.random((3, 16, 16, 3))
  per_image = [sk_metrics.structural_similarity(a, b, data_range=1.0, channel_axis=-1)
               for a, b in zip(colour_y, colour_x)]
  assert metrics.mean_ssim(colour_y, colour_x) == pytest.approx(np.mean(per_image), rel=1e-10)


def test_clustering_accuracy_matches_clusters_to_labels_one_to_one():
  labels = np.array([0, 0, 1, 1, 2, 2])
  # Best map: 5 -> 0 (2 right), 7 -> 1 (1 right), 9 -> 2 (2 right); 5 cannot also serve label 1.
  assert metrics.clustering_accuracy(labels, np.array([5, 5, 5, 7, 9, 9])) == pytest.approx(5 / 6)
  assert metrics.clustering_accuracy(labels, np.zeros(6)) == pytest.approx(2 / 6)


def test_clustering_accuracy_is_invariant_to_relabelling_the_clusters():
  rng = np.random.default_rng(2)
  labels = rng.integers(0, 10, 300)
  clusters = np.where(rng.random(300) < 0.7, labels, rng.integers(0, 10, 300))
  relabelled = rng.permutation(10)[clusters] + 100
  assert metrics.clustering_accuracy(labels, relabelled) == metrics.clustering_accuracy(labels, clusters)
  assert metrics.clustering_accuracy(labels, labels) == 1.0


def test_kmeans_and_linear_probe_find_separated_blobs_and_not_random_labels():
  rng = np.random.default_rng(3)
  labels = np.repeat(np.arange(4), 50)
  centres = 10 * rng.standard_normal((4, 8))
  features = centres[labels] + rng.standard_normal((200, 8))
  assert metrics.kmeans_accuracy(features, labels) == 1.0
  assert metrics.linear_probe_accuracy(features[::2], labels[::2], features[1::2], labels[1::2]) == 1.0
  noise = rng.standard_normal((400, 8))
  random_labels = rng.integers(0, 4, 400)
  assert metrics.linear_probe_accuracy(noise[:200], random_labels[:200], noise[200:], random_labels[200:]) < 0.4


def test_pca_error_is_the_discarded_variance_and_matches_sklearn():
  rng = np.random.default_rng(4)
  x = rng.standard_normal((300, 12)) @ rng.standard_normal((12, 12))
  mean, axes = metrics.pca_fit(x, 5)
  recon = metrics.pca_decode(metrics.pca_encode(x, mean, axes), mean, axes, (12,))
  eigenvalues = np.sort(np.linalg.eigvalsh(np.cov(x.T, bias=True)))[::-1]
  assert np.square(recon - x).sum(axis=1).mean() == pytest.approx(eigenvalues[5:].sum())
  reference = decomposition.PCA(5).fit(x)
  np.testing.assert_allclose(recon, reference.inverse_transform(reference.transform(x)), atol=1e-8)
  full_mean, full_axes = metrics.pca_fit(x, 12)
  np.testing.assert_allclose(metrics.pca_decode(metrics.pca_encode(x, full_mean, full_axes), full_mean, full_axes,
                                                (12,)), x, atol=1e-8)


@pytest.fixture(scope="module")
def tiny_vae():
  """A VAE with one latent unit on 2x2 binary images, randomly initialised: log p(x) is a 1-D integral."""
  config = vae_fields.add_vae(config_lib.base_config())
  config.variant, config.loss, config.latent_dim = "vae", "bce", 1
  config.model.encoder_widths = (8,)
  model = vae.build_model(config, (2, 2, 1))
  params = jax.jit(lambda key: vae.init(model, key, jnp.zeros((1, 2, 2, 1))))(jax.random.key(0))
  params = jax.tree.map(lambda w: 1.5 * w, params)  # A sharper decoder: the posterior is far from q, the gap clear.
  images = jnp.asarray(np.unpackbits(np.arange(16, dtype=np.uint8)[:, None], axis=1)[:, 4:], jnp.float32)
  return model, config, params, images.reshape(16, 2, 2, 1)


def _exact_nll(model, config, params, x):
  """-log ∫ p(x|z) N(z; 0, 1) dz per image, by the trapezoid rule on a fine grid of z."""
  z = np.linspace(-12.0, 12.0, 24_001)

  @jax.jit
  def log_px_z(z):
    logits = model.apply(params, z[:, None], method=model.decode)
    return jax.vmap(lambda xi: -common.decoder_nll(config, logits, jnp.broadcast_to(xi, logits.shape)), out_axes=1)(x)

  log_joint = np.asarray(log_px_z(jnp.asarray(z, jnp.float32)), np.float64) - 0.5 * z[:, None] ** 2 \
      - 0.5 * np.log(2 * np.pi)
  peak = log_joint.max(axis=0)
  return -(peak + np.log(np.trapezoid(np.exp(log_joint - peak), z, axis=0)))


def test_iwae_nll_estimate_is_below_the_elbo_tightens_with_k_and_reaches_the_exact_nll(tiny_vae):
  model, config, params, x = tiny_vae
  exact = _exact_nll(model, config, params, x).mean()
  log_weights = jax.jit(functools.partial(vae.log_weights, model, config), static_argnums=3)
  draws = log_weights(params, x, jax.random.key(1), 64_000)  # Split below into 64_000 / k estimates with k samples.
  means = {k: float(-vae.iwae_bound(draws.reshape(k, -1)).mean()) for k in (1, 10, 1_000)}  # k = 1: the -ELBO.
  assert means[1] > means[10] + 1.0 and means[10] > means[1_000] + 0.03, means
  assert means[10] > exact and means[1_000] == pytest.approx(exact, abs=0.01), (means, exact)


def test_iwae_nll_in_chunks_equals_one_logsumexp_over_all_samples(tiny_vae):
  model, config, params, x = tiny_vae
  key = jax.random.key(5)
  chunked = jax.jit(functools.partial(vae.importance_weighted_nll, model, config, num_samples=10, chunk_size=4))(
      params, x, key)  # Chunks of 4, 4 and the first 2 of 4.
  log_weights = jax.jit(functools.partial(vae.log_weights, model, config, num_samples=4))
  drawn = jnp.concatenate([log_weights(params, x, jax.random.fold_in(key, i)) for i in range(3)])[:10]
  np.testing.assert_allclose(chunked, -vae.iwae_bound(drawn), rtol=1e-6)
