"""llava-asymlora: LLaVA-1.5 fine-tuning with the AsymLoRA adapter family."""

__version__ = "0.1.0"
