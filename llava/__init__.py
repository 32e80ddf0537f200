"""llava-asymlora: LLaVA-1.5 fine-tuning with the AsymLoRA adapter family."""

from llava import third_party_logs

third_party_logs.install()  # two uninformative start-up lines of bitsandbytes and DeepSpeed, dropped by message

__version__ = "0.1.0"
