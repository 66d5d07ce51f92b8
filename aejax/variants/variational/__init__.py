"""Variational autoencoders, a Gaussian code with its KL term: `vae` and `beta_vae` (and the IWAE bound)."""
