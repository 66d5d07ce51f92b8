"""experiments/overcomplete_ae.py: a code wider than the input passes its input through unless regularised."""
import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
import pytest

from aejax import registry, train
from aejax.data import corruption, datasets


def _response_to_dropped_pixels(config, workdir) -> dict[str, float]:
  """How the trained model treats held-out digits with 30 % of their pixels set to 0 (δ = masked - clean).

  `gain`: the part of δ that reaches the output, <f(masked) - f(clean), δ> / |δ|² (1 for the identity, 0 for a
  map that ignores the holes); `to_input`, `to_clean`: squared distance per image of f(masked) to each.
  """
  with ocp.CheckpointManager(workdir / "checkpoints") as manager:
    params = manager.restore(manager.latest_step())["params"]
  model = registry.get(config.variant).build_model(config, (28, 28, 1))
  images, _ = datasets.load_split("mnist", "test", data_dir=config.data.data_dir, manual_dir=config.data.manual_dir,
                                  num_examples=1_000)
  clean = jnp.asarray(images, jnp.float32) / 255.0
  masked = corruption.masking_noise(jax.random.key(0), clean, 0.3)
  f_clean, f_masked = (np.asarray(jax.nn.sigmoid(model.apply(params, x)["logits"])) for x in (clean, masked))
  delta = np.asarray(masked - clean)
  per_image = lambda a, b: float(np.mean(np.sum(np.square(a - b), axis=(1, 2, 3))))
  return {"gain": float(np.sum((f_masked - f_clean) * delta) / np.sum(delta * delta)),
          "to_input": per_image(f_masked, masked), "to_clean": per_image(f_masked, clean)}


@pytest.mark.optimized
def test_plain_overcomplete_ae_passes_holes_through_and_the_denoising_one_fills_them(smoke_config, tmp_path):
  fields = dict(num_steps=250, eval_every=250, checkpoint_every=250, learning_rate=3e-3, data__num_train=10_000)
  response = {}
  for variant in ("ae", "dae"):  # Unregularised, then the config's own regulariser.
    config = smoke_config("overcomplete_ae", variant=variant, **fields)
    assert config.latent_dim > 28 * 28 and not config.model.encoder_widths
    train.train_and_evaluate(config, tmp_path / variant)
    response[variant] = _response_to_dropped_pixels(config, tmp_path / variant)
  plain, denoising = response["ae"], response["dae"]
  assert plain["gain"] > 0.3, response  # ~0.43 after 250 steps (the DAE ~0.27), on its way to the identity's 1.
  assert denoising["gain"] < 0.8 * plain["gain"], response
  assert denoising["to_clean"] < 0.7 * denoising["to_input"], response  # It restores the dropped pixels.
