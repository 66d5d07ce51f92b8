"""Importing this package registers every variant with `aejax.registry`."""
from aejax.variants import autoencoder, contractive, sparse, stacked, vae  # noqa: F401
