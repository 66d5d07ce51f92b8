"""DEC and IDEC: the soft assignment and target distribution against their formulas in NumPy, the clustering loss
against KL(P ‖ Q) and its gradient sharpening assignments on a toy mixture; through the loop, the first target
against k-means of the pretrained codes recomputed in NumPy, training with refreshes, the clustering suite, resume
across a refresh, the run's end at the tolerance (alone and in a bundle), and bad fields by their message."""
import json
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from aejax import bundle, config as config_lib, evaluate, train, writers
from aejax.data import input_pipeline
from aejax.errors import ConfigError
from aejax.variants.clustering import assignments

from conftest import REPO, once_per_session, saved_checkpoint


@pytest.mark.parametrize("alpha", [1.0, 3.0])
def test_soft_assignment_and_target_match_their_formulas(alpha):
  rng = np.random.default_rng(0)
  z, centres = rng.normal(size=(20, 5)), rng.normal(size=(4, 5))
  kernel = np.array([[(1 + np.sum((zi - mu) ** 2) / alpha) ** (-(alpha + 1) / 2) for mu in centres] for zi in z])
  q = kernel / kernel.sum(axis=1, keepdims=True)
  got = np.asarray(assignments.soft_assignment(jnp.asarray(z, jnp.float32), jnp.asarray(centres, jnp.float32), alpha))
  np.testing.assert_allclose(got, q, rtol=1e-5)
  f = q.sum(axis=0)
  p = np.array([[q[i, j] ** 2 / f[j] for j in range(4)] for i in range(20)])
  p /= p.sum(axis=1, keepdims=True)
  np.testing.assert_allclose(assignments.target_distribution(jnp.asarray(q)), p, rtol=1e-5)
  kl = np.mean(np.sum(p * np.log(p / q), axis=1))
  np.testing.assert_allclose(assignments.clustering_loss(jnp.asarray(p), jnp.asarray(q)), kl, rtol=1e-4)


def test_the_target_is_sharper_than_q_and_the_loss_gradient_sharpens_assignments():
  """Three well-separated Gaussian clusters, centres started between them: steps down the KL gradient (P held
  fixed, refreshed every 10 steps, as DEC does) make the assignments more confident and keep them correct."""
  rng = np.random.default_rng(1)
  truth = np.repeat(np.arange(3), 50)
  means = np.array([[4.0, 0.0], [-4.0, 0.0], [0.0, 5.0]])
  z = jnp.asarray(means[truth] + rng.normal(size=(150, 2)), jnp.float32)
  centres = jnp.asarray(means * 0.5 + rng.normal(size=(3, 2)) * 0.3, jnp.float32)

  def loss(centres, p):
    return assignments.clustering_loss(p, assignments.soft_assignment(z, centres))

  q0 = assignments.soft_assignment(z, centres)
  p = assignments.target_distribution(q0)
  assert float(jnp.mean(jnp.max(p, axis=1))) > float(jnp.mean(jnp.max(q0, axis=1)))
  grad = jax.jit(jax.grad(loss))
  for step in range(100):
    if step % 10 == 0:
      p = assignments.target_distribution(assignments.soft_assignment(z, centres))
    centres = centres - 0.5 * grad(centres, p)
  q = assignments.soft_assignment(z, centres)
  assert float(jnp.mean(jnp.max(q, axis=1))) > float(jnp.mean(jnp.max(q0, axis=1))) + 0.1
  assert np.all(np.argmax(np.asarray(q), axis=1) == np.argmax(np.asarray(q0), axis=1))
  assert np.mean(np.argmax(np.asarray(q), axis=1) == truth) > 0.95  # The centres started near their clusters.
  before, after = jnp.argmax(q0, axis=1), jnp.argmax(q, axis=1)
  assert float(assignments.changed_fraction(before, after)) == 0.0
  assert float(assignments.changed_fraction(before, before[::-1])) == pytest.approx(np.mean(truth != truth[::-1]))


# DEC and IDEC through the loop ---------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def dec_config(data_dir, mnist_manual_dir):
  """`dec_config(arg, **dotted fields)`: experiments/dec.py:<arg>,smoke on the session's MNIST."""
  def make(arg, **flat):
    c = config_lib.from_file(f"{REPO}/experiments/dec.py:{arg},smoke")
    c.data.data_dir, c.data.manual_dir = str(data_dir), str(mnist_manual_dir)
    c.update_from_flattened_dict(flat)
    return c
  return make


@pytest.fixture(scope="module")
def pretrained(dec_config, tmp_path_factory):
  """A small autoencoder trained as experiments/dec.py:pretrain,smoke (train and test images together)."""

  def make(folder):
    train.train_and_evaluate(dec_config("pretrain", num_steps=40), folder / "ae")
    return str(folder / "ae")

  return once_per_session(tmp_path_factory, "dec-pretrained", make)


def test_with_test_appends_the_test_split_to_the_train_split(dec_config):
  c = dec_config("pretrain")
  train_split, test_split = input_pipeline.load(c.data)
  assert train_split.size == c.data.num_train + c.data.num_test == c.eval.num_train
  np.testing.assert_array_equal(train_split.images[c.data.num_train:], test_split.images)
  np.testing.assert_array_equal(train_split.labels[c.data.num_train:], test_split.labels)


def test_first_target_is_that_of_kmeans_of_the_pretrained_codes(dec_config, pretrained, tmp_path):
  """The checkpoint at step 20 (update_every 20) holds the target the loop computed at step 0: P of Q of the
  pretrained codes and the k-means centres, recomputed here from the pretrained run and scikit-learn in NumPy."""
  from sklearn import cluster  # pylint: disable=g-import-not-at-top
  c = dec_config("idec", num_steps=20, checkpoint_every=20, eval_every=20, **{"cluster.pretrained_workdir": pretrained})
  train.train_and_evaluate(c, tmp_path)
  run = evaluate.restore(pretrained)
  train_split, _ = input_pipeline.load(c.data)
  codes = run.encode(np.asarray(train_split.images, np.float32) / 255.0).astype(np.float64)
  centres = cluster.KMeans(10, n_init=c.cluster.kmeans_inits, random_state=c.seed).fit(codes).cluster_centers_
  kernel = 1 / (1 + ((codes[:, None] - centres[None]) ** 2).sum(-1))
  q = kernel / kernel.sum(1, keepdims=True)
  p = q**2 / q.sum(0)
  p /= p.sum(1, keepdims=True)
  carry = saved_checkpoint(tmp_path, 20)["carry"]
  np.testing.assert_allclose(carry["p"], p, atol=1e-4)
  np.testing.assert_array_equal(carry["labels"], np.argmax(q, axis=1))


def test_idec_trains_refreshes_and_scores_its_clusters(dec_config, pretrained, tmp_path):
  c = dec_config("idec", num_steps=60, **{"cluster.pretrained_workdir": pretrained})
  train.train_and_evaluate(c, tmp_path)
  rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
  logged = [r for r in rows if "train/kl" in r]
  assert logged[0]["train/changed"] == 0.0  # At step 0 the clusters are k-means' own.
  assert logged[-1]["train/recon"] > 0 and logged[-1]["train/changed"] > 0
  got = evaluate.evaluate_run(tmp_path, ["clustering"])
  assert got["clustering/accuracy"] > 0.2 and 0 < got["clustering/nmi"] < 1  # Chance: about 0.11.
  assert got["clustering/kmeans_codes_accuracy"] > 0.2
  p = saved_checkpoint(tmp_path, 60)["carry"]["p"]
  np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=1e-5)


def test_resumed_run_equals_uninterrupted_across_a_refresh(dec_config, pretrained, tmp_path):
  """Refreshes at steps 0 and 3: step 3 of the resumed run trains on the target it restored from step 2's
  checkpoint."""
  fields = {"num_steps": 4, "checkpoint_every": 2, "eval_every": 2, "log_every": 2, "cluster.update_every": 3,
            "cluster.pretrained_workdir": pretrained, "eval.suites": ()}
  train.train_and_evaluate(dec_config("idec", **fields), tmp_path / "whole")
  train.train_and_evaluate(dec_config("idec", **{**fields, "num_steps": 2}), tmp_path / "resumed")
  train.train_and_evaluate(dec_config("idec", **fields), tmp_path / "resumed")
  whole, resumed = saved_checkpoint(tmp_path / "whole", 4), saved_checkpoint(tmp_path / "resumed", 4)
  for x, y in zip(jax.tree.leaves(whole), jax.tree.leaves(resumed), strict=True):
    np.testing.assert_array_equal(x, y)


def test_a_run_ends_once_assignments_settle_and_a_rerun_counts_it_finished(dec_config, pretrained, tmp_path, capsys,
                                                                         monkeypatch):
  """With a tolerance no refresh can miss, the refresh before step 3 (update_every 2) declares convergence: step 3
  leaves the parameters as they were (its objective still logged), and the run ends at the logged step 3 of 12,
  evaluated (logged) and checkpointed there though neither is due, its summary saying so. A rerun trains nothing and
  the launchers count it finished; nor does it compile the train step. With tolerance 0 nothing converges and the
  run goes to num_steps."""
  c = dec_config("", num_steps=12, checkpoint_every=2, eval_every=12, log_every=3, **{
      "cluster.update_every": 2, "cluster.tolerance": 0.999, "cluster.pretrained_workdir": pretrained,
      "eval.suites": ()})
  summary = train.train_and_evaluate(c, tmp_path)
  assert summary["step"] == 3 and summary["converged"] is True and "test/loss" in summary
  assert "aejax: converged at step 3 of 12 (dec's stopping rule): the run ends here" in capsys.readouterr().err
  assert writers.latest_checkpoint(tmp_path) == 3
  saved = {step: saved_checkpoint(tmp_path, step) for step in (2, 3)}
  assert not bool(saved[2]["carry"]["converged"]) and bool(saved[3]["carry"]["converged"])
  for x, y in zip(jax.tree.leaves(saved[2]["params"]), jax.tree.leaves(saved[3]["params"]), strict=True):
    np.testing.assert_array_equal(x, y)
  rows = writers.read_rows(tmp_path / "metrics.jsonl")
  assert [r["train/converged"] for r in rows if "train/kl" in r] == [pytest.approx(1 / 3)]  # Step 3 of steps 1-3.
  assert all(r["train/kl"] > 0 for r in rows if "train/kl" in r)
  assert [r["step"] for r in rows if "test/loss" in r] == [3]
  assert writers.is_finished(tmp_path, c.num_steps, evaluated=False)
  compiled = []
  compile_within_memory = train.compile_within_memory
  monkeypatch.setattr(train, "compile_within_memory", lambda *a: compiled.append(a[3]) or compile_within_memory(*a))
  assert train.train_and_evaluate(c, tmp_path)["step"] == 3
  assert compiled == ["config.eval_batch_size"]  # The evaluation only.
  assert "converged" not in capsys.readouterr().err
  assert writers.latest_checkpoint(tmp_path) == 3 and writers.read_rows(tmp_path / "metrics.jsonl") == rows
  c.cluster.tolerance = 0.0
  summary = train.train_and_evaluate(c, tmp_path / "never")
  assert summary["step"] == 12 and summary["converged"] is False
  assert not writers.is_finished(tmp_path / "never", 14, evaluated=False)


def test_a_run_resumed_between_convergence_and_its_logged_end_ends_as_uninterrupted(dec_config, pretrained,
                                                                                     tmp_path):
  """Converged before step 3, logged every 2: uninterrupted, the run ends at step 4. Stopped at step 3 (here by
  num_steps, as a signal would stop it) and resumed, it goes on to step 4 and ends there in the same state."""
  fields = {"checkpoint_every": 2, "eval_every": 12, "log_every": 2, "cluster.update_every": 2,
            "cluster.tolerance": 0.999, "cluster.pretrained_workdir": pretrained, "eval.suites": ()}
  assert train.train_and_evaluate(dec_config("idec", num_steps=12, **fields), tmp_path / "whole")["step"] == 4
  train.train_and_evaluate(dec_config("idec", num_steps=3, **fields), tmp_path / "resumed")
  assert bool(saved_checkpoint(tmp_path / "resumed", 3)["carry"]["converged"])
  assert train.train_and_evaluate(dec_config("idec", num_steps=12, **fields), tmp_path / "resumed")["step"] == 4
  whole, resumed = saved_checkpoint(tmp_path / "whole", 4), saved_checkpoint(tmp_path / "resumed", 4)
  for x, y in zip(jax.tree.leaves(whole), jax.tree.leaves(resumed), strict=True):
    np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("converged, alive, ends", [
    ([True, True], [True, True], True), ([True, False], [True, True], False),
    ([True, False], [True, False], True),  # A diverged member does not hold the others back,
    ([False, False], [False, False], False),  # nor does a population of diverged members end by the rule.
])
def test_a_population_ends_when_every_live_member_has_converged(converged, alive, ends):
  assert train.all_converged(converged, alive) is ends


def test_a_bundle_ends_once_every_member_has_converged(dec_config, pretrained, tmp_path):
  """Members of different γ, both converging at the refresh before step 3: the bundle ends at the logged step 4,
  each member's checkpoint and summary there."""
  fields = {"num_steps": 8, "checkpoint_every": 8, "eval_every": 8, "log_every": 2, "cluster.update_every": 2,
            "cluster.tolerance": 0.999, "cluster.pretrained_workdir": pretrained, "eval.suites": ()}
  configs = [dec_config("idec", **fields, **{"cluster.gamma": gamma}) for gamma in (0.1, 0.3)]
  workdirs = [tmp_path / "a", tmp_path / "b"]
  summaries = bundle.train_bundle(configs, workdirs)
  assert [(s["step"], s["converged"]) for s in summaries] == [(4, True), (4, True)]
  assert [writers.latest_checkpoint(w) for w in workdirs] == [4, 4]
  assert all(writers.is_finished(w, 8, evaluated=False) for w in workdirs)


def test_a_bundle_of_seeds_is_refused_in_one_line(dec_config, pretrained, tmp_path):
  """k-means draws the start from the seed, and a bundle builds one model: its members may not differ in seed."""
  configs = [dec_config("idec", seed=k, **{"cluster.pretrained_workdir": pretrained}) for k in (0, 1)]
  with pytest.raises(ConfigError, match=r"^bundle member 1 .* differs from member 0 in config\.seed"):
    bundle.check_bundle(configs, [tmp_path / "a", tmp_path / "b"])


def test_bad_fields_are_named_in_one_line(dec_config, pretrained, tmp_path):
  cases = [({"cluster.clusters": 1}, "config.cluster.clusters=1: clustering needs 2 or more clusters"),
           ({"cluster.pretrained_workdir": ""}, "config.cluster.pretrained_workdir='': DEC starts from a trained "
            "autoencoder"),
           ({"cluster.pretrained_workdir": str(tmp_path)}, f"config.cluster.pretrained_workdir={str(tmp_path)!r}: no "
            "config.json there"),
           ({"data.resize": (32, 32), "data.name": "uci_digits"}, "config.cluster.pretrained_workdir="),
           ({"data.train_labels": (3,)}, "config.data.with_test=True: it appends the whole test split, every class"),
           ({"data.binarize": "dynamic"}, "config.data.with_test=True: the test split is binarised once")]
  for flat, message in cases:
    with pytest.raises(ConfigError, match="^" + re.escape(message)):
      train.check_config(dec_config("", **{"cluster.pretrained_workdir": pretrained, **flat}))
