"""Evaluation: generation to answer files, benchmark scorers, reports."""
