"""`two_stage_vae` (Dai & Wipf 2019): a second VAE trained on the codes of a trained first one, for better samples.

A VAE's aggregate posterior q(z) = E_x q(z|x) seldom fills its N(0, I) prior, so decoding prior draws gives images
off the data. The second stage learns q(z) itself: a VAE over the first stage's codes u ~ q(u|x) (a fresh draw per
step), with an MLP encoder and decoder (`two_stage.widths`, ReLU) and a Gaussian decoder of one learned variance γ
(the paper's device: γ → 0 lets the second stage fit q(z) closely), so per code

    loss = ½‖u - û‖²/γ + (D/2)·log(2πγ) + β·KL(q(v|u) ‖ N(0, I)),

D = the first stage's code size. Sampling follows that model, as Dai & Wipf's code does: v ~ N(0, I),
u ~ N(û, γ I), then the first stage's decoder, sigmoid of its logits. Decoding û alone is the same only once γ → 0;
with γ near 1 (a short run, or first-stage codes that already look like N(0, I)) it collapses to a few digits.
The first stage is any trained run of a VAE (`two_stage.first_workdir`: `vae`, `beta_vae`, ...) on the same data
set; its parameters ride along in this run's (`params['first_stage']`, checkpointed with it) and are
frozen: no gradient reaches them and the optimiser leaves them (`optimizer`).

Test metrics per image: the second stage's `recon`, `kl`, `neg_elbo` (nats per code) and `gamma`; pictures: the
first stage's prior samples beside the two-stage samples. The `samples` suite scores the two-stage samples.
"""
import dataclasses
import functools
from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from aejax import images as images_lib, registry
from aejax.errors import ConfigError
from aejax.nn import losses, models
from aejax.registry import Batch, Config, HParams, Params
from aejax.variants import pretrained
from aejax.variants.variational import fields, vae


@dataclasses.dataclass(frozen=True, eq=False)  # Compared (and hashed) by identity: it holds arrays.
class FirstStage:
  """The trained first-stage VAE: its model, its parameters (host arrays) and its code size."""
  model: models.GaussianAutoEncoder
  params: Any
  code_dim: int


class SecondStage(nn.Module):
  """The second VAE over codes of the first stage, with its decoder's log-variance log γ. The first stage's
  parameters are `params['first_stage']`, beside this module's."""
  first: FirstStage
  latent_dim: int
  widths: tuple[int, ...]

  def setup(self):
    self.vae = models.GaussianAutoEncoder(
        models.MLPEncoder(self.widths, "relu"),
        models.MLPDecoder(tuple(reversed(self.widths)), (self.first.code_dim,), "relu"), self.latent_dim)
    self.log_gamma = self.param("log_gamma", nn.initializers.zeros, ())

  def __call__(self, u: jax.Array, key: jax.Array) -> dict[str, jax.Array]:
    return {**self.vae(u, key), "log_gamma": self.log_gamma}

  def decode_code(self, v: jax.Array) -> jax.Array:
    """û, the decoded mean of a first-stage code, for second-stage codes v."""
    return self.vae.decode(v)


@functools.lru_cache(maxsize=4)
def _first_stage(workdir: str) -> FirstStage:
  """The trained run in `workdir` (cached: a run builds its model more than once)."""
  from aejax import evaluate  # pylint: disable=g-import-not-at-top  (it imports the train loop, which imports us)
  run = evaluate.restore(workdir)
  return FirstStage(run.model, jax.device_get(run.state.params), run.config.latent_dim)


def build_model(config: Config, input_shape: tuple[int, ...]) -> SecondStage:
  del input_shape
  return SecondStage(_first_stage(config.two_stage.first_workdir), config.latent_dim, tuple(config.two_stage.widths))


def init(model: SecondStage, key: jax.Array, x: jax.Array) -> Params:
  """The second stage's fresh parameters and, under 'first_stage', the first stage's trained ones."""
  del x
  params = model.init(key, jnp.zeros((1, model.first.code_dim)), key)
  return {**params, "first_stage": jax.tree.map(jnp.asarray, model.first.params)}


def _own(params: Params) -> Params:
  """The second stage's parameters alone."""
  return {"params": params["params"]}


def first_codes(model: SecondStage, params: Params, x: jax.Array, key: jax.Array) -> jax.Array:
  """u ~ q(u|x) of the frozen first stage, one draw per image."""
  first = jax.lax.stop_gradient(params["first_stage"])
  return model.first.model.apply(first, x, key)["z"]


def terms(model: SecondStage, config: Config, params: Params, x: jax.Array, key: jax.Array) -> dict[str, jax.Array]:
  """Per image: the second stage's -log p(u|v) under N(û, γ I) ('recon') and closed-form KL of its code, at one draw
  u of the first stage and one v of the second."""
  code_key, key = jax.random.split(key)
  u = first_codes(model, params, x, code_key)
  out = model.apply(_own(params), u, key)
  gamma = jnp.exp(out["log_gamma"])
  recon = losses.gaussian_nll(out["logits"], u, jnp.sqrt(gamma))
  return {"recon": recon, "kl": losses.gaussian_kl(out["mean"], out["logvar"]), "gamma": jnp.full(len(x), gamma)}


def loss(model: SecondStage, config: Config, params: Params, batch: Batch, key: jax.Array, hp: HParams,
         step: jax.Array) -> tuple[jax.Array, dict]:
  t = {k: v.mean() for k, v in terms(model, config, params, batch["image"], key).items()}
  weight = vae.kl_weight(hp, step)
  return t["recon"] + weight * t["kl"], {**t, "neg_elbo": t["recon"] + t["kl"], "kl_weight": weight}


def evaluate(model: SecondStage, config: Config, params: Params, batch: Batch, key: jax.Array, hp: HParams) -> dict:
  t = terms(model, config, params, batch["image"], key)
  return {**t, "loss": t["recon"] + hp["beta"] * t["kl"], "neg_elbo": t["recon"] + t["kl"]}


def sample(model: SecondStage, config: Config, params: Params, key: jax.Array, labels: jax.Array) -> jax.Array:
  """As many images as `labels` (read only for their number): v ~ N(0, I), u ~ N(û, γ I), then the first stage's
  decoder."""
  code_key, noise_key = jax.random.split(key)
  v = jax.random.normal(code_key, (labels.shape[0], config.latent_dim))
  mean = model.apply(_own(params), v, method=model.decode_code)
  u = mean + jnp.exp(0.5 * params["params"]["log_gamma"]) * jax.random.normal(noise_key, mean.shape)
  first = model.first.model
  return jax.nn.sigmoid(first.apply(params["first_stage"], u, method=first.decode))


def images(model: SecondStage, config: Config, params: Params, batch: Batch, key: jax.Array, hp: HParams) -> dict:
  """The first stage's own prior samples beside the two-stage samples, a row each of `num_images`."""
  del batch, hp
  n = config.num_images
  first = model.first.model
  prior_key, key = jax.random.split(key)
  prior = first.apply(params["first_stage"], prior_key, n, method=first.sample_prior)
  rows = {"first stage": jax.nn.sigmoid(first.apply(params["first_stage"], prior, method=first.decode)),
          "two stages": sample(model, config, params, key, jnp.zeros((n,), jnp.int32))}
  return {"samples": images_lib.Grid(jnp.stack(list(rows.values())), tuple(rows))}


def optimizer(config: Config, make: Callable[[Config], optax.GradientTransformation]) -> optax.GradientTransformation:
  """The run's optimiser for the second stage; nothing for the first stage's parameters (no weight decay either)."""
  return optax.transforms.partition({"train": make(config), "frozen": optax.set_to_zero()},
                                    lambda params: {k: "frozen" if k == "first_stage" else "train" for k in params})


def validate(config: Config) -> None:
  """The family's fields, and a first stage that is a trained VAE on this run's images."""
  fields.validate_two_stage(config)
  workdir = config.two_stage.first_workdir
  pretrained.check_run(workdir, "config.two_stage.first_workdir", config.data, ("two_stage_vae",), "two-stage VAE")
  if not isinstance(_first_stage(workdir).model, models.GaussianAutoEncoder):
    raise ConfigError(f"config.two_stage.first_workdir={workdir!r}: that run has no Gaussian code: give the run of a "
                      "VAE (vae, beta_vae, ...)")


registry.register("two_stage_vae", registry.Variant(
    build_model=build_model, hparams=vae.hparams, loss=loss, evaluate=evaluate, images=images, init=init,
    validate=validate, sample=sample, optimizer=optimizer, config_fields=fields.add_two_stage))
