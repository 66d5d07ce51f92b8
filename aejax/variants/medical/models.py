"""The patch denoiser: a fully convolutional encoder–decoder, so that a network trained on small patches denoises a
whole image of any size (whose sides 2^levels divides: `suite.denoise_image` pads them)."""
import flax.linen as nn
import jax
import jax.numpy as jnp


class PatchDenoiser(nn.Module):
  """(B, H, W, C) noisy -> (B, H, W, C) clean estimate. Each level: two 3x3 convolutions, then a stride-2 one down;
  the decoder mirrors it with stride-2 transposed convolutions; ReLU throughout. `residual`: the output is the input
  minus what the network predicts (the noise), as in DnCNN (Zhang et al. 2017). `skips`: each decoder level also
  reads the encoder's features of its resolution (concatenated, as in U-Net, Ronneberger et al. 2015), so that
  edges need not pass through the coarsest level."""
  features: int
  levels: int
  channels: int
  residual: bool = True
  skips: bool = False

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    h, kept = x - 0.5, []
    for _ in range(self.levels):
      h = nn.relu(nn.Conv(self.features, (3, 3), padding="SAME")(h))
      kept.append(h)
      h = nn.relu(nn.Conv(self.features, (3, 3), strides=(2, 2), padding="SAME")(h))
    h = nn.relu(nn.Conv(self.features, (3, 3), padding="SAME")(h))
    for level in range(self.levels):
      h = nn.relu(nn.ConvTranspose(self.features, (3, 3), strides=(2, 2), padding="SAME")(h))
      if self.skips:
        h = jnp.concatenate([h, kept[-1 - level]], axis=-1)
      h = nn.relu(nn.Conv(self.features, (3, 3), padding="SAME")(h))
    out = nn.Conv(self.channels, (3, 3), padding="SAME")(h)
    return x - out if self.residual else out + 0.5
