"""Sweep definitions: the helpers against plain loops, run ids, the experiments' sweeps, and bad sweeps named."""
import itertools
import re

import pytest

from aejax import config as config_lib
from aejax import sweep as sweep_lib
from aejax.errors import ConfigError

from conftest import REPO


def test_product_is_every_combination_last_fastest():
  betas, seeds = [1, 2, 4], [0, 1]
  members = sweep_lib.product(sweep_lib.sweep("beta", betas), sweep_lib.sweep("seed", seeds))
  assert members == [{"beta": b, "seed": s} for b in betas for s in seeds]
  assert list(members[0]) == ["beta", "seed"]  # The id reads in the order the factors were given.


def test_zipit_pairs_members_and_chain_appends():
  zipped = sweep_lib.zipit(sweep_lib.sweep("latent_dim", [2, 8]), sweep_lib.sweep("learning_rate", [1e-2, 1e-3]))
  assert zipped == [{"latent_dim": 2, "learning_rate": 1e-2}, {"latent_dim": 8, "learning_rate": 1e-3}]
  chained = sweep_lib.chain(zipped, sweep_lib.sweep("seed", [5]))
  assert chained == zipped + [{"seed": 5}]
  nested = sweep_lib.product(zipped, sweep_lib.sweep("seed", [0, 1, 2]))
  assert len(nested) == 6 and nested[3] == {"latent_dim": 8, "learning_rate": 1e-3, "seed": 0}


def test_zipit_of_unequal_lengths_and_a_field_set_twice_are_errors():
  with pytest.raises(ConfigError, match=r"^zipit needs sweeps of equal lengths, got \[2, 3\]"):
    sweep_lib.zipit(sweep_lib.sweep("beta", [1, 2]), sweep_lib.sweep("seed", [0, 1, 2]))
  with pytest.raises(ConfigError, match=r"^sweep field 'beta' is set by two factors"):
    sweep_lib.product(sweep_lib.sweep("beta", [1]), sweep_lib.sweep("beta", [2]))


@pytest.mark.parametrize("overrides,expected", [
    ({"beta": 4, "seed": 1}, "beta4-seed1"),
    ({"beta": 4.0, "seed": 1}, "beta4-seed1"),  # The float field and the int literal name one run.
    ({"noise_factor": 0.25}, "noise_factor0.25"),
    ({"learning_rate": 3e-4}, "learning_rate0.0003"),
    ({"model.encoder_widths": (256, 128)}, "model.encoder_widths256x128"),
    ({"data.manual_dir": "/a b/c"}, "data.manual_dir_a_b_c"),
    ({"beta": -1, "seed": 0}, "beta_1-seed0"),  # '-' only separates fields.
    ({}, "base"),
])
def test_run_id_is_readable_and_safe_in_file_names(overrides, expected):
  assert sweep_lib.run_id(overrides) == expected
  assert re.fullmatch(r"[A-Za-z0-9._+-]+", expected)


def test_beta_vae_sweep_is_beta_by_seed_with_unique_ids():
  members = sweep_lib.load(f"{REPO}/experiments/beta_vae.py")
  expected = [{"beta": b, "seed": s} for b, s in itertools.product([1, 2, 4, 8, 16], [0, 1, 2])]
  assert list(members.values()) == expected
  assert list(members) == [f"beta{b}-seed{s}" for b, s in itertools.product([1, 2, 4, 8, 16], [0, 1, 2])]
  assert members == sweep_lib.load(f"{REPO}/experiments/beta_vae.py:smoke")  # Stable: the same ids every time.


@pytest.mark.parametrize("name,field,count", [("dae", "noise_factor", 5), ("sparse_ae", "sparsity_weight", 4),
                                              ("ae", "latent_dim", 6)])
def test_experiment_sweeps_vary_their_field(name, field, count):
  spec = f"{REPO}/experiments/{name}.py"
  members = sweep_lib.load(spec)
  assert len(members) == count and all(list(o) == [field] for o in members.values())
  base = config_lib.from_file(spec)
  values = [sweep_lib.override(base, o)[field] for o in members.values()]
  assert len(set(values)) == count and base[field] in values  # Around the file's own setting.


def test_override_sets_nested_fields_on_a_copy():
  base = config_lib.from_file(f"{REPO}/experiments/ae.py")
  changed = sweep_lib.override(base, {"model.encoder_widths": (32,), "latent_dim": 3})
  assert (tuple(changed.model.encoder_widths), changed.latent_dim) == ((32,), 3)
  assert (tuple(base.model.encoder_widths), base.latent_dim) == ((500, 300, 150, 100), 64)


def _experiment(tmp_path, sweep_body: str | None) -> str:
  path = tmp_path / "exp.py"
  text = (f"from aejax import config as config_lib\nfrom aejax import sweep as sweep_lib\n\n\n"
          f"def get_config(arg=None):\n  return config_lib.from_file({str(REPO / 'experiments' / 'ae.py')!r})\n")
  if sweep_body is not None:
    text += f"\n\ndef get_sweep():\n  return {sweep_body}\n"
  path.write_text(text)
  return str(path)


@pytest.mark.parametrize("body,message", [
    (None, r"exp\.py defines no sweep: add get_sweep\(\)"),
    ("[]", r"exp\.py: get_sweep\(\) returned no members"),
    ("sweep_lib.sweep('betaa', [1])", r"sweep member betaa1: sweep field 'betaa' is not a config field: check its "
                                      r"spelling"),
    ("sweep_lib.sweep('model.widths', [(8,)])", r"sweep field 'model.widths' is not a config field"),
    ("sweep_lib.sweep('beta.x', [1])", r"sweep field 'beta.x' is not a config field"),
    ("sweep_lib.sweep('latent_dim', ['big'])", r"sweep value latent_dim='big' does not fit the field"),
    ("sweep_lib.sweep('beta', [1, -1])", r"sweep member beta_1: config\.beta=-1\.0: the KL weight must be >= 0"),
    ("[{'variant': 'dae', 'noise_factor': 0.0}]",  # The variant's own checks too.
     r"sweep member .*: config\.noise_factor=0\.0: a denoising autoencoder needs noise"),
    ("sweep_lib.sweep('eval.suites', [('recon',), ('generate',)])",  # And the suites run after training.
     r"sweep member eval\.suitesgenerate: suite 'generate' needs a VAE, not config\.variant='ae'"),
    ("sweep_lib.chain(sweep_lib.sweep('beta', [4]), sweep_lib.sweep('beta', [4.0]))",
     r"get_sweep\(\) members \{'beta': 4\} and \{'beta': 4\.0\} share the run id 'beta4'"),
])
def test_bad_sweeps_are_one_line_errors(tmp_path, body, message):
  with pytest.raises(ConfigError, match=message) as error:
    sweep_lib.load(_experiment(tmp_path, body))
  assert "\n" not in str(error.value)


@pytest.mark.parametrize("name,expected", [
    ("beta_vae", [("beta", ["test/recon_error", "test/kl"])]),
    ("sparse_ae", [("sparsity_weight", ["test/recon_error", "test/mean_activation"])]),
    ("dae", [("noise_factor", ["test/recon_error", "denoise/0.25/psnr_model", "denoise/0.5/psnr_model",
                               "denoise/0.75/psnr_model"])]),
    ("ae", []),  # No get_curves(): nothing to draw.
])
def test_experiments_declare_curves_of_their_swept_field(name, expected):
  curves = sweep_lib.load_curves(f"{REPO}/experiments/{name}.py:smoke")
  assert curves == expected
  swept = {field for member in sweep_lib.load(f"{REPO}/experiments/{name}.py").values() for field in member}
  assert {x for x, _ in curves} <= swept


def _curves_experiment(tmp_path, body: str) -> str:
  path = tmp_path / "curves_exp.py"
  path.write_text(f"def get_curves():\n  return {body}\n")
  return str(path)


def test_load_curves_reads_pairs_of_a_field_and_its_metrics(tmp_path):
  spec = _curves_experiment(tmp_path, "[('beta', ('test/kl',)), ['seed', ['test/recon_error', 'test/kl']]]")
  assert sweep_lib.load_curves(spec + ":smoke") == [("beta", ["test/kl"]), ("seed", ["test/recon_error", "test/kl"])]


@pytest.mark.parametrize("body", ["('beta', ['test/kl'])", "[('beta', 'test/kl')]", "[('beta', [])]",
                                  "[('beta',)]", "[(None, ['test/kl'])]", "None"])
def test_malformed_curves_are_one_line_errors(tmp_path, body):
  spec = _curves_experiment(tmp_path, body)
  with pytest.raises(ConfigError, match=rf"^{re.escape(spec)}: get_curves\(\) returned .*: return a list of "
                                        r"\(x, \[metrics\]\) pairs, e\.g\. \[\('beta', \['test/recon_error'") as error:
    sweep_lib.load_curves(spec)
  assert "\n" not in str(error.value)
