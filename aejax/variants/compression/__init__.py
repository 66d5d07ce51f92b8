"""Compression: an autoencoder whose integer code is entropy-coded into real bits (`compressive_ae`), its codec
(`codec`: a range coder from `constriction`) and the `compression` suite that puts it beside PNG, JPEG and WebP."""
