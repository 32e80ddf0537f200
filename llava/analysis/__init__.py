"""Experiment kit analyses: task interference, scheme comparison, blind baselines."""
