"""llava-asymlora: LLaVA-1.5 fine-tuning with the AsymLoRA adapter family."""

from llava import quick_exit, third_party_logs

third_party_logs.install()  # two uninformative start-up lines of bitsandbytes and DeepSpeed, dropped by message
quick_exit.install()  # no full garbage collection of torch's module graph at exit (seconds per process)

__version__ = "0.1.0"
