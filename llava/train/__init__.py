"""Training: arguments, the LlavaTrainer, checkpoints and the `python -m llava.train.train` entry point."""
