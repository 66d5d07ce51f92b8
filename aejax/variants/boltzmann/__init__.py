"""Boltzmann machines: `rbm`, `dbn`."""
