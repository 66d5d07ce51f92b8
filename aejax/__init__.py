"""aejax: the autoencoder family in JAX/Flax, at sweep scale."""
