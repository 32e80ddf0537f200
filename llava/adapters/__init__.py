"""The adapter family: lora, asymlora (shared A, task x expert B heads), moe_lora, mixlora - one code path."""

from llava.adapters.attached import adapter_batch, set_adapter_batch
from llava.adapters.config import AdapterConfig
from llava.adapters.export import export_peft
from llava.adapters.inject import inject_adapters, print_trainable_parameters
from llava.adapters.io import load_adapters, save_adapters
from llava.adapters.layer import AdapterLinear
from llava.adapters.merge import merge_adapters, unload_adapters

__all__ = ["AdapterConfig", "AdapterLinear", "inject_adapters", "save_adapters", "load_adapters", "merge_adapters", "unload_adapters",
           "export_peft", "adapter_batch", "set_adapter_batch", "print_trainable_parameters"]
