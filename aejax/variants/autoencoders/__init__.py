"""Autoencoders with a deterministic code: `ae`, `dae` (denoising), `sparse_ae`, `contractive_ae`, `stacked_ae`."""
