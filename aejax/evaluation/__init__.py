"""Evaluation of trained runs: the suites, which of them fit a run, and their metrics as numpy functions."""
