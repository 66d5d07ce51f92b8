"""Convolutional autoencoder as in the seed: its 7x7x128 feature map is the code, sigmoid output, BCE.

Encoder Conv32-MaxPool2-Conv64-MaxPool2-Conv128 (3x3, relu, same padding), whose last map is the
spatial code (no dense layer); decoder Conv64-UpSample2-Conv32-UpSample2-Conv1 to the logits; Adam,
batch 256. `--config.model.upsample=transpose` swaps each conv + upsampling of the decoder for a stride-2
transposed conv. On a CPU the convolutions run in the forms XLA:CPU is fastest at
(`model.conv_impl='auto'`, see aejax/nn/convolution.py).

    python -m aejax.main --config experiments/conv_ae.py --workdir runs/conv_ae
"""
from ml_collections import config_dict

from aejax import config as config_lib


def get_config(arg: str | None = None) -> config_dict.ConfigDict:
  c = config_lib.base_config()
  c.variant = "ae"
  c.model.kind = "conv"
  c.model.conv_features = (32, 64)
  c.model.spatial_code = True
  c.model.code_channels = 128
  c.model.activation = "relu"
  c.model.code_activation = "relu"
  c.loss = "bce"
  c.learning_rate = 1e-3
  c.batch_size = 256
  c.num_steps = 4_680  # 20 epochs of 234 steps, as the seed.
  c.eval_every = c.checkpoint_every = 1_170
  c.wandb.tags = ("conv_ae",)
  return config_lib.finalize(c, arg)
