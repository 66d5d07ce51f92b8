"""The variants, one folder per family; `aejax.variants.all` registers them all with `aejax.registry`.

This package itself imports nothing, so that a family's config fields (e.g. `aejax.variants.boltzmann.fields`)
load without JAX: experiment files and the launchers import them.
"""
