"""`vae` and `beta_vae`: a Gaussian posterior (optionally pushed through a flow), a prior, and the bound they train.

The default is the VAE of Kingma & Welling: N(0, I) prior, loss = -log p(x|z) + β·KL in closed form (with optional
warm-up). `beta_vae` is the same model and loss; its config sets β > 1. `config.vae` (aejax/variants/variational/
fields.py) picks the rest of the family: the importance-weighted bounds (IWAE with `iwae_samples` k > 1, Burda et
al. 2016; MIWAE, PIWAE and CIWAE, Rainforth et al. 2018), a learned prior (mixture of Gaussians, VampPrior), a
flow on the posterior (planar, IAF; aejax/nn/flows.py) or the Hamiltonian VAE's leapfrog steps (hvae.py).
Wherever the KL has no closed form (a learned prior, a flow) it is the one-draw estimate log q(z|x) - log p(z) at the
draw the reconstruction term uses.

Every bound is a function of the log-weights log w_i = log p(x, z_i) - log q(z_i|x), z_i ~ q(z|x) (`log_weights`);
`importance_weighted_nll` is the IWAE estimate of -log p(x) with any k, in chunks, for the `nll` suite. Test metrics
always include the negative ELBO (β = 1) in nats, whatever trains the model.
"""

import jax
import jax.numpy as jnp

from aejax import images as images_lib, registry
from aejax.errors import ConfigError
from aejax.nn import flows, losses, models
from aejax.registry import Batch, Config, HParams, Params
from aejax.variants import common
from aejax.variants.variational import fields, hvae


def build_plain_model(config: Config, input_shape: tuple[int, ...]) -> models.GaussianAutoEncoder:
  """The VAE with an N(0, I) prior and no flow, of the shared fields only (the disentangling VAEs build this)."""
  encoder, decoder = models.build_backbone(config, input_shape)
  return models.GaussianAutoEncoder(encoder, decoder, config.latent_dim)


def build_model(config: Config, input_shape: tuple[int, ...]) -> models.GaussianAutoEncoder:
  """The VAE with the prior and flow of `config.vae`, or of its two stochastic layers."""
  encoder, decoder = models.build_backbone(config, input_shape)
  v = config.vae
  if v.stochastic_layers == 2:
    return models.TwoLayerGaussianAutoEncoder(encoder, decoder, config.latent_dim + v.top_latent_dim,
                                              bottom_dim=config.latent_dim, top_widths=tuple(v.top_widths),
                                              activation=config.model.activation)
  flow = {"none": None, "planar": flows.PlanarFlow(v.flow_steps),
          "iaf": flows.InverseAutoregressiveFlow(v.flow_steps, tuple(v.flow_hidden))}[v.flow]
  return models.GaussianAutoEncoder(encoder, decoder, config.latent_dim, prior=v.prior,
                                    prior_components=v.prior_components, input_shape=tuple(input_shape), flow=flow,
                                    leapfrog_steps=v.leapfrog_steps, leapfrog_step_size=v.leapfrog_step_size,
                                    leapfrog_beta0=v.leapfrog_beta0)


def init(model: models.GaussianAutoEncoder, key: jax.Array, x: jax.Array) -> Params:
  return model.init(key, x, key)


def hparams(config: Config) -> dict[str, float]:
  return {"beta": float(config.beta), "kl_warmup_steps": float(config.kl_warmup_steps)}


def bound_hparams(config: Config) -> dict[str, float]:
  """`hparams` and CIWAE's weight, a scalar bundles may vary."""
  return {**hparams(config), "vae.ciwae_beta": float(config.vae.ciwae_beta)}


def warmup(hp: HParams, step: jax.Array) -> jax.Array:
  """The KL term's ramp: linear from 0 to 1 over the first `kl_warmup_steps` steps when that is positive, else 1."""
  steps = hp["kl_warmup_steps"]
  return jnp.where(steps > 0, jnp.minimum(1.0, (step + 1) / jnp.maximum(steps, 1.0)), 1.0)


def kl_weight(hp: HParams, step: jax.Array) -> jax.Array:
  """β, ramped linearly from 0 over the first `kl_warmup_steps` steps when that is positive."""
  return hp["beta"] * warmup(hp, step)


def closed_form_kl(model: models.GaussianAutoEncoder) -> bool:
  """Whether KL(q(z|x) ‖ p(z)) has a closed form: a Gaussian posterior (no flow) and the N(0, I) prior."""
  return model.prior == "normal" and model.flow is None


def nll_and_kl(model: models.GaussianAutoEncoder, config: Config, params: Params, x: jax.Array,
               key: jax.Array) -> tuple[jax.Array, jax.Array]:
  """Per image: -log p(x|z) at one draw z ~ q(z|x) (of `key`), and KL(q(z|x) ‖ p(z)): in closed form where it has
  one, else its one-draw estimate log q(z|x) - log p(z) at the same z."""
  out = model.apply(params, x, key)
  if closed_form_kl(model):
    kl = losses.gaussian_kl(out["mean"], out["logvar"])
  else:
    kl = out["log_q"] - out["log_p"]
  return common.decoder_nll(config, out["logits"], x), kl


def log_weights(model: models.GaussianAutoEncoder, config: Config, params: Params, x: jax.Array, key: jax.Array,
                num_samples: int) -> jax.Array:
  """log p(x, z_i) - log q(z_i|x) for `num_samples` draws z_i ~ q(z|x) per image: (num_samples, B), in nats; for a
  Hamiltonian VAE, those of its extended space (aejax/variants/variational/hvae.py)."""
  if model.leapfrog_steps:
    return hvae.log_weights(model, config, params, x, key, num_samples)
  eps = jax.random.normal(key, (num_samples, x.shape[0], model.latent_dim))
  out = model.apply(params, x, eps, method=model.posterior)
  z = out["z"]
  logits = model.apply(params, z.reshape(-1, z.shape[-1]), method=model.decode)
  targets = jnp.broadcast_to(x, (num_samples, *x.shape)).reshape(logits.shape)
  log_px_z = -common.decoder_nll(config, logits, targets).reshape(num_samples, -1)
  return log_px_z + model.apply(params, z, method=model.log_prior) - out["log_q"]


def iwae_bound(log_w: jax.Array) -> jax.Array:
  """The importance-weighted lower bound on log p(x) per image, log mean_i exp(log_w_i), from (k, B) log-weights."""
  return jax.nn.logsumexp(log_w, axis=0) - jnp.log(log_w.shape[0])


def importance_weighted_nll(model: models.GaussianAutoEncoder, config: Config, params: Params, x: jax.Array,
                            key: jax.Array, num_samples: int, chunk_size: int) -> jax.Array:
  """-log p(x) per image estimated with `num_samples` importance samples, drawn `chunk_size` at a time.

  The log-sum-exp is accumulated over chunks, so memory grows with `chunk_size`, not `num_samples`; the
  estimate is the negative IWAE bound, an upper bound on the NLL in expectation that tightens as k grows.
  """
  chunk_size = min(chunk_size, num_samples)
  num_chunks = -(-num_samples // chunk_size)

  def add_chunk(total: jax.Array, index: jax.Array) -> tuple[jax.Array, None]:
    log_w = log_weights(model, config, params, x, jax.random.fold_in(key, index), chunk_size)
    drawn = index * chunk_size + jnp.arange(chunk_size)[:, None]
    log_w = jnp.where(drawn < num_samples, log_w, -jnp.inf)  # The last chunk's draws past k do not count.
    return jnp.logaddexp(total, jax.nn.logsumexp(log_w, axis=0)), None

  start = jnp.full((x.shape[0],), -jnp.inf, jnp.float32)
  total, _ = jax.lax.scan(add_chunk, start, jnp.arange(num_chunks))
  return jnp.log(num_samples) - total


def miwae_bound(log_w: jax.Array, estimates: int) -> jax.Array:
  """MIWAE(M, k) per image: the mean of M = `estimates` IWAE bounds, each of k of the (M·k, B) log-weights."""
  return jnp.mean(iwae_bound(log_w.reshape(estimates, -1, log_w.shape[-1]).swapaxes(0, 1)), axis=0)


def ciwae_bound(log_w: jax.Array, beta: jax.Array) -> jax.Array:
  """CIWAE_β per image: β·ELBO + (1 - β)·IWAE on the same (k, B) log-weights."""
  return beta * jnp.mean(log_w, axis=0) + (1.0 - beta) * iwae_bound(log_w)


_INFERENCE = ("encoder", "mean_head", "logvar_head", "flow")  # Top-level modules of q(z|x); the rest is p(x, z).


def _hold(params: Params, modules: tuple[str, ...]) -> Params:
  """`params` with the gradient stopped at the top-level modules named in `modules`."""
  return {**params, "params": {name: jax.lax.stop_gradient(value) if name in modules else value
                               for name, value in params["params"].items()}}


def bound(model: models.GaussianAutoEncoder, config: Config, params: Params, x: jax.Array, key: jax.Array,
          hp: HParams) -> tuple[jax.Array, dict[str, jax.Array]]:
  """The per-image bound `config.vae` trains on (with k = `iwae_samples` > 1, or a bound other than IWAE), whose
  gradient is the one its paper descends, and per-image metrics: the bound's value, `neg_elbo` and `neg_iwae_bound`
  over all the draws.

  PIWAE's gradient reaches q(z|x) from MIWAE(M, k) and p(x, z) from IWAE(M·k) of the same draws; its value is
  MIWAE's (the bound q is trained on). With a VampPrior, whose density runs the encoder on its pseudo-inputs, the
  encoder is q's: its part in p(z) learns from MIWAE, the pseudo-inputs from IWAE."""
  v = config.vae
  draws = config.iwae_samples * v.bound_estimates
  if v.bound == "piwae":
    generative = tuple(name for name in params["params"] if name not in _INFERENCE)
    inference_w = log_weights(model, config, _hold(params, generative), x, key, draws)
    log_w = log_weights(model, config, _hold(params, _INFERENCE), x, key, draws)
    value = miwae_bound(inference_w, v.bound_estimates)
    model_bound = iwae_bound(log_w)
    value = value + model_bound - jax.lax.stop_gradient(model_bound)
    return value, _bound_metrics(value, log_w)
  log_w = log_weights(model, config, params, x, key, draws)
  if v.bound == "miwae":
    value = miwae_bound(log_w, v.bound_estimates)
  elif v.bound == "ciwae":
    value = ciwae_bound(log_w, hp["vae.ciwae_beta"])
  else:
    value = iwae_bound(log_w)
  return value, _bound_metrics(value, log_w)


def _bound_metrics(value: jax.Array, log_w: jax.Array) -> dict[str, jax.Array]:
  """Per image: the negative bound trained, the negative ELBO and IWAE bound of all the draws."""
  log_w = jax.lax.stop_gradient(log_w)
  return {"neg_bound": -jax.lax.stop_gradient(value), "neg_elbo": -jnp.mean(log_w, axis=0),
          "neg_iwae_bound": -iwae_bound(log_w)}


def weighted_elbo(config: Config) -> bool:
  """Whether the run trains on the (β-weighted) ELBO of one Gaussian draw rather than on `bound` (an
  importance-weighted bound, or the Hamiltonian VAE's ELBO)."""
  return config.vae.bound == "iwae" and config.iwae_samples == 1 and not config.vae.leapfrog_steps


def loss(model: models.GaussianAutoEncoder, config: Config, params: Params, batch: Batch, key: jax.Array, hp: HParams,
         step: jax.Array) -> tuple[jax.Array, dict]:
  if not weighted_elbo(config):
    value, metrics = bound(model, config, params, batch["image"], key, hp)
    return -value.mean(), {name: m.mean() for name, m in metrics.items()}
  nll, kl = nll_and_kl(model, config, params, batch["image"], key)
  weight = kl_weight(hp, step)
  nll, kl = nll.mean(), kl.mean()
  return nll + weight * kl, {"recon": nll, "kl": kl, "neg_elbo": nll + kl, "kl_weight": weight}


def evaluate(model: models.GaussianAutoEncoder, config: Config, params: Params, batch: Batch, key: jax.Array,
             hp: HParams) -> dict:
  """Per test image: `loss` (β-weighted), `recon` and `kl` at one draw, `neg_elbo`, `recon_error` of the posterior
  mean's reconstruction."""
  x = batch["image"]
  nll, kl = nll_and_kl(model, config, params, x, key)
  mean, _ = model.apply(params, x, method=model.encode)
  logits = model.apply(params, mean, method=model.decode)
  return {"loss": nll + hp["beta"] * kl, "recon": nll, "kl": kl, "neg_elbo": nll + kl,
          "recon_error": losses.squared_error(jax.nn.sigmoid(logits), x)}


def evaluate_bound(model: models.GaussianAutoEncoder, config: Config, params: Params, batch: Batch, key: jax.Array,
                   hp: HParams) -> dict:
  """`evaluate`, and where `bound` trains the model, its value (`loss`, `neg_bound`) and the IWAE bound of all its
  draws (`neg_iwae_bound`); a Hamiltonian VAE's `recon` and `kl` are those of its initial draw z_0."""
  metrics = evaluate(model, config, params, batch, key, hp)
  if weighted_elbo(config):
    return metrics
  _, bounds = bound(model, config, params, batch["image"], jax.random.fold_in(key, 1), hp)
  metrics = {**metrics, "loss": bounds["neg_bound"], "neg_bound": bounds["neg_bound"],
             "neg_iwae_bound": bounds["neg_iwae_bound"]}
  if config.vae.leapfrog_steps:  # Its ELBO is of the leapfrogs' draws, not of q_0's that `recon` and `kl` score.
    metrics["neg_elbo"] = bounds["neg_elbo"]
  return metrics


def images(model: models.GaussianAutoEncoder, config: Config, params: Params, batch: Batch, key: jax.Array,
           hp: HParams) -> dict:
  del hp
  x = batch["image"]
  mean, _ = model.apply(params, x, method=model.encode)
  recon = jax.nn.sigmoid(model.apply(params, mean, method=model.decode))
  n = config.num_images
  samples = sample(model, config, params, key, jnp.zeros((n * n,), jnp.int32))
  return {"reconstruction": common.image_grid({"input": x, "reconstruction": recon}, n=n),
          "samples": images_lib.Grid(samples.reshape(n, n, *samples.shape[1:]), ("prior samples",))}


def sample(model: models.GaussianAutoEncoder, config: Config, params: Params, key: jax.Array,
           labels: jax.Array) -> jax.Array:
  """As many images as `labels` (an unconditional model reads only their number): the decoder's means
  (sigmoid of its logits, as the pictures show them) at draws z ~ p(z) of the model's prior."""
  del config
  z = model.apply(params, key, labels.shape[0], method=model.sample_prior)
  return jax.nn.sigmoid(model.apply(params, z, method=model.decode))


def validate_plain(config: Config) -> None:
  """The checks of a VAE with a vector code (every variational variant)."""
  if config.model.spatial_code:
    raise ConfigError("config.model.spatial_code=True: the VAE's latent is a vector (Dense mean and log-variance "
                      "heads on the conv features); use --config.model.spatial_code=False and set latent_dim")


def validate(config: Config) -> None:
  validate_plain(config)
  fields.validate_vae(config)


VARIANT = registry.Variant(build_model=build_model, hparams=bound_hparams, loss=loss, evaluate=evaluate_bound,
                           images=images, init=init, validate=validate, sample=sample, config_fields=fields.add_vae)
registry.register("vae", VARIANT)
registry.register("beta_vae", VARIANT)
