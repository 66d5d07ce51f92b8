"""Network building blocks: the models (encoders, decoders), their convolution layers, and per-example losses."""
