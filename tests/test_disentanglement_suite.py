"""The disentanglement suite end to end on a smoke β-VAE of dsprites_small: its figures against the metrics computed
here from the restored model's posterior means of freshly rendered images, its pictures, which runs it fits, and
its one-line errors."""
import functools
import re
import zlib

import jax
import numpy as np
import pytest
from sklearn import metrics as sklearn_metrics

from aejax import config as config_lib, evaluate, sweep as sweep_lib, train
from aejax.data import datasets, dsprites
from aejax.errors import ConfigError
from aejax.evaluation import disentanglement, selection, suites

from conftest import REPO, once_per_session

_FEW = dict(data__manual_dir=None, num_steps=10, log_every=5, eval_every=10, checkpoint_every=10,
            eval__factor_samples=100, num_images=4)


@pytest.fixture(scope="module")
def run(smoke_config, tmp_path_factory):
  """A smoke β-VAE of dsprites_small, restored, and what the suite gives for it (DCI's boosted trees cut from 100
  rounds to 10: these tests check the suite's wiring; tests/test_disentanglement.py scores DCI itself)."""

  def make(folder):
    train.train_and_evaluate(smoke_config("dsprites_beta_vae", **_FEW), folder / "beta_vae")
    with pytest.MonkeyPatch.context() as mp:
      mp.setattr(disentanglement.ensemble, "GradientBoostingClassifier",
                 functools.partial(disentanglement.ensemble.GradientBoostingClassifier, n_estimators=10))
      return folder / "beta_vae", *suites.disentanglement(evaluate.restore(folder / "beta_vae"))

  workdir, report, pictures = once_per_session(tmp_path_factory, "disentanglement-suite", make)
  return evaluate.restore(workdir), report, pictures


def test_mig_and_the_unit_labels_follow_sklearns_mutual_information_of_the_posterior_means(run):
  restored, report, pictures = run
  model, params = restored.model, restored.state.params
  mean = jax.jit(lambda x: model.apply(params, x, method=model.encode)[0])
  # The suite's MIG draws: 100 factor combinations from the run's seed and the metric's name.
  factors = disentanglement.sample_factors((3, 6, 40, 32, 32), (100,),
                                           np.random.default_rng([restored.config.seed, zlib.crc32(b"mig")]))
  codes = np.asarray(mean(dsprites.render(factors)[..., None].astype(np.float32)), np.float64)
  bins = [np.digitize(c, np.histogram(c, 20)[1][:-1]) for c in codes.T]  # 20 equal-width bins per unit.
  entropy = [sklearn_metrics.mutual_info_score(factors[:, f], factors[:, f]) for f in range(5)]
  information = np.array([[sklearn_metrics.mutual_info_score(b, factors[:, f]) / entropy[f] for f in range(5)]
                          for b in bins])
  top_two = np.sort(information, axis=0)[-2:]
  assert report["disentanglement/mig"] == pytest.approx(np.mean(top_two[1] - top_two[0]), rel=1e-6, abs=1e-9)
  names = ("shape", "scale", "orientation", "position_x", "position_y")
  assert pictures["eval_factor_traversals"].labels == tuple(
      f"z{i}: {names[f]} {information[i, f]:.2f}" for i, f in enumerate(information.argmax(axis=1)))


def test_beta_vae_score_is_the_metric_of_the_posterior_means_on_the_suites_draws(run):
  restored, report, _ = run
  model, params = restored.model, restored.state.params
  mean = jax.jit(lambda x: model.apply(params, x, method=model.encode)[0])
  truth = disentanglement.GroundTruth((3, 6, 40, 32, 32), lambda f: dsprites.render(f)[..., None].astype(np.float32))
  rng = np.random.default_rng([restored.config.seed, zlib.crc32(b"beta_vae")])
  score = disentanglement.beta_vae_score(truth, lambda x: np.asarray(mean(x)), rng, num_train=100, num_eval=50)
  assert report["disentanglement/beta_vae_score"] == pytest.approx(score["eval_accuracy"], abs=1e-9)


def test_a_run_of_the_original_file_is_scored_on_its_images(smoke_config, monkeypatch):
  """The ground truth of a run that read the original file looks each combination up in that file's train split,
  read packed (here a stand-in: every combination, shuffled, each image's bits its index in 3 big-endian bytes, the
  rest of its 4,096 pixels 0)."""
  order = np.random.default_rng(0).permutation(dsprites.NUM_IMAGES)
  bits = order.astype(">u4").view(np.uint8).reshape(-1, 4)[:, 1:]  # 737,280 < 2^24: 3 bytes hold each index.
  original = {"factors": dsprites.to_factors(order), "image": bits}
  asked = []
  monkeypatch.setattr(datasets, "load_examples", lambda name, split, *args, **kwargs: asked.append(kwargs) or original)
  truth = suites.ground_truth(smoke_config("dsprites_beta_vae", data__name="dsprites", data__manual_dir="/original"))
  assert asked == [{"packed": True}]
  factors = np.array([[0, 0, 0, 0, 0], [2, 5, 39, 31, 31], [1, 3, 17, 4, 29]])
  observed = truth.observe(factors)
  assert observed.shape == (3, 64, 64, 1) and observed.dtype == np.float32
  flat = observed.reshape(3, -1)
  assert set(np.unique(flat)) <= {0.0, 1.0} and not flat[:, 24:].any()
  found = np.packbits(flat[:, :24].astype(np.uint8), axis=1)
  np.testing.assert_array_equal(found.astype(np.int64) @ [65536, 256, 1], dsprites.to_index(factors))


def test_a_part_of_the_original_file_is_one_line(smoke_config, monkeypatch):
  part = {"factors": dsprites.to_factors(np.arange(1_920)), "image": np.zeros((1_920, 1, 1, 1), np.uint8)}
  monkeypatch.setattr(datasets, "load_examples", lambda name, split, *args, **kwargs: part)
  with pytest.raises(ConfigError, match=r"^config.data.name='dsprites_small' from the original file holds 1,920 of "
                                        r"dSprites' 737,280 factor combinations, and the disentanglement metrics draw "
                                        r"any: score a run of dsprites, or drop data.manual_dir"):
    suites.ground_truth(smoke_config("dsprites_beta_vae", data__manual_dir="/original"))


def test_suite_reports_each_metric_in_its_range_and_draws_its_pictures(run):
  restored, report, pictures = run
  for name in ("beta_vae_score", "factor_vae_score", "mig", "dci_disentanglement", "dci_completeness",
               "dci_informativeness", "sap"):
    assert 0.0 <= report[f"disentanglement/{name}"] <= 1.0, name
  assert 0 <= report["disentanglement/active_units"] <= restored.config.latent_dim
  traversals = pictures["eval_factor_traversals"]
  assert traversals.rows.shape == (restored.config.latent_dim, restored.config.num_images, 64, 64, 1)
  heat_map = pictures["eval_factor_information"].rows
  assert heat_map.shape[:2] == (1, 1) and heat_map.shape[-1] == 3 and heat_map.std() > 0


def test_the_suite_fits_runs_of_a_data_set_with_factors_and_a_unit_for_each(smoke_config):
  assert "disentanglement" in selection.select(smoke_config("dsprites_beta_vae"), None)
  assert "disentanglement" in selection.select(smoke_config("dsprites_beta_tcvae"), None)
  assert "disentanglement" not in selection.select(smoke_config("vae"), None)  # MNIST: no factors.
  assert "disentanglement" not in selection.select(smoke_config("dsprites_beta_vae", latent_dim=4), None)


@pytest.mark.parametrize("name,fields,message", [
    ("vae", {}, "config.data.name='mnist' has no ground-truth factors, which the disentanglement metrics score codes "
                "against: use a data set generated by known factors (such as dSprites)"),
    ("dsprites_beta_vae", {"latent_dim": 4}, "config.latent_dim=4: the disentanglement suite (MIG, SAP, FactorVAE) "
                                             "ranks code units against each of the 5 ground-truth factors and needs at "
                                             "least 5 units: use --config.latent_dim=5 or more"),
    ("dsprites_beta_vae", {"model__kind": "conv", "model__spatial_code": True},
     "config.model.spatial_code=True: the disentanglement metrics score a flat code's units"),
])
def test_a_run_the_suite_cannot_score_is_one_line(smoke_config, name, fields, message):
  with pytest.raises(ConfigError, match="^" + re.escape(message)):
    selection.select(smoke_config(name, **fields), ("disentanglement",))


@pytest.mark.parametrize("field,value,message", [
    ("eval.factor_samples", 50, "config.eval.factor_samples=50: the metrics' classifiers need more points: use at "
                                "least 100"),
    ("eval.sap_predictor", "svm", "config.eval.sap_predictor='svm': use one of linear_svc, threshold, r2"),
])
def test_bad_suite_fields_are_one_line(field, value, message):
  c = config_lib.from_file(f"{REPO}/experiments/dsprites_beta_vae.py:smoke")
  c.update_from_flattened_dict({field: value})
  with pytest.raises(ConfigError, match="^" + re.escape(message)):
    train.check_config(c)


@pytest.mark.parametrize("name", ["dsprites_beta_vae", "dsprites_beta_tcvae"])
def test_every_member_of_each_dsprites_sweep_passes_the_checks(name):
  members = sweep_lib.load(f"{REPO}/experiments/{name}.py")  # Each member checked as a run would be.
  assert sorted({m["beta"] for m in members.values()}) == [1, 2, 4, 6, 8, 16] and len(members) == 18
  assert sweep_lib.load_curves(f"{REPO}/experiments/{name}.py")[0] == ("beta", [
      "disentanglement/mig", "disentanglement/factor_vae_score", "disentanglement/dci_disentanglement",
      "disentanglement/beta_vae_score", "disentanglement/sap", "test/recon_error"])
