"""Importing this module registers every variant with `aejax.registry`."""
from aejax.variants.autoencoders import autoencoder, contractive, sparse, stacked  # noqa: F401
from aejax.variants.variational import capacity, factor_vae, mmd, rae, tcvae, two_stage, vae, vqvae  # noqa: F401
from aejax.variants.boltzmann import dbn, dbn_ae, rbm  # noqa: F401
from aejax.variants.adversarial import aae, cyclegan, gan  # noqa: F401
from aejax.variants import classifier  # noqa: F401
from aejax.variants.som import som  # noqa: F401
from aejax.variants.recommend import autorec, mult_vae  # noqa: F401
from aejax.variants.compression import compressive_ae  # noqa: F401
from aejax.variants.medical import patch_dae  # noqa: F401
from aejax.variants.clustering import dec  # noqa: F401
