"""Boltzmann machines: `rbm` (restricted Boltzmann machine) and `dbn` (a greedily trained stack of them)."""
