"""Importing this package registers every variant with `aejax.registry`."""
from aejax.variants import autoencoder, vae  # noqa: F401
