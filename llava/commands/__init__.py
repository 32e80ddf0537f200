"""Command-line tools that read and write checkpoints: merge adapters into a llava-hf model, combine single LoRAs
into the paper's MoE-LoRA baseline, convert the AsymLoRA authors' checkpoints. They sit above the layers they use."""
