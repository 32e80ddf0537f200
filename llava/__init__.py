"""llava-asymlora: LLaVA-1.5 fine-tuning with the AsymLoRA adapter family."""

from llava import process_gc, third_party_logs

third_party_logs.install()  # two uninformative start-up lines of bitsandbytes and DeepSpeed, dropped by message
process_gc.install()  # fewer collections while a command imports its stack, none at exit (seconds per process)

__version__ = "0.1.0"
