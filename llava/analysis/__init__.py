"""Analyses of trained adapters: router load per task."""
