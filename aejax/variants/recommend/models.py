"""The family's networks: AutoRec (Sedhain et al. 2015) and Mult-VAE / Mult-DAE (Liang et al. 2018), over a row of
the ratings matrix (a user's ratings of every item, or an item's by every user)."""
import flax.linen as nn
import jax
import jax.numpy as jnp


class AutoRec(nn.Module):
  """h(r) = W σ(V r + μ) + b: one sigmoid hidden layer, a linear output (the paper's best I-AutoRec)."""
  hidden: int
  outputs: int

  def setup(self) -> None:
    self.encoder = nn.Dense(self.hidden)
    self.decoder = nn.Dense(self.outputs)

  def encode(self, r: jax.Array) -> jax.Array:
    """The hidden code (B, hidden) of rating rows r (B, D), 0 where unrated."""
    return nn.sigmoid(self.encoder(r))

  def decode(self, h: jax.Array) -> jax.Array:
    return self.decoder(h)

  def __call__(self, r: jax.Array) -> jax.Array:
    """Predicted ratings (B, D) for every entry of each row."""
    return self.decode(self.encode(r))


def normalized(x: jax.Array) -> jax.Array:
  """Rows scaled to unit L2 norm (an empty row stays 0): Mult-VAE/DAE's input."""
  return x / jnp.maximum(jnp.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


class MultVAE(nn.Module):
  """Items -> tanh layers `widths` -> code -> the mirrored tanh layers -> a logit per item. `variational`: the code
  layer gives a Gaussian's mean and log-variance (Mult-VAE), else it is a tanh code (Mult-DAE)."""
  widths: tuple[int, ...]
  latent_dim: int
  outputs: int
  variational: bool

  def setup(self) -> None:
    self.encoder = [nn.Dense(w) for w in self.widths]
    self.code = nn.Dense(2 * self.latent_dim if self.variational else self.latent_dim)
    self.decoder = [nn.Dense(w) for w in reversed(self.widths)]
    self.logits = nn.Dense(self.outputs)

  def encode(self, x: jax.Array) -> jax.Array | tuple[jax.Array, jax.Array]:
    """The code of normalised interaction rows x (B, items): (mean, log-variance) for Mult-VAE, else the code."""
    h = x
    for layer in self.encoder:
      h = jnp.tanh(layer(h))
    code = self.code(h)
    if self.variational:
      mean, logvar = jnp.split(code, 2, axis=-1)
      return mean, logvar
    return jnp.tanh(code)

  def decode(self, z: jax.Array) -> jax.Array:
    """Logits (B, items) of the multinomial over items."""
    h = z
    for layer in self.decoder:
      h = jnp.tanh(layer(h))
    return self.logits(h)

  def __call__(self, x: jax.Array) -> jax.Array:
    """Logits at the code's mean."""
    code = self.encode(x)
    return self.decode(code[0] if self.variational else code)
