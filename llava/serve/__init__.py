"""Interactive use of a trained model: the terminal chat (`python -m llava.serve.cli`)."""
