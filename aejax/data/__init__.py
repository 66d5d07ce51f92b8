"""Data: the data sets and their TFDS builders, the on-device input pipeline, and input corruptions."""
