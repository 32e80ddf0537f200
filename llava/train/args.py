"""Command-line arguments, named as in LLaVA's train.py so a LLaVA user's scripts carry over."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import transformers

from llava.adapters.config import AdapterConfig

_DEFAULT = AdapterConfig()  # the adapter flags' defaults are the config's: one set of defaults, not two


@dataclass
class ModelArguments:
    model_name_or_path: str = field(default="tiny", metadata={"help": "tiny | small | llava-hf dir | original LLaVA dir | LM dir or .gguf"})
    vision_tower: str | None = field(default=None, metadata={"help": "CLIP vision tower directory (parts / original)"})
    pretrain_mm_mlp_adapter: str | None = field(default=None, metadata={"help": "stage-1 mm_projector.bin/.safetensors"})
    tune_mm_mlp_adapter: bool = field(default=False, metadata={"help": "train only the projector (stage 1)"})
    mm_projector_type: str = field(default="mlp2x_gelu", metadata={"help": "LLaVA-1.5's two-layer GELU MLP only"})
    mm_vision_select_layer: int = field(default=-2, metadata={"help": "LLaVA-1.5 uses the second-to-last layer"})
    mm_use_im_start_end: bool = field(default=False, metadata={"help": "LLaVA-1.5 uses False (only value supported)"})
    mm_use_im_patch_token: bool = field(default=False, metadata={"help": "LLaVA-1.5 uses False (only value supported)"})
    version: str = field(default="v1", metadata={"help": "conversation template: v1/vicuna_v1, llava_v1, plain"})
    attn_implementation: str = field(default="sdpa", metadata={"help": "sdpa | eager | flash_attention_2"})
    model_seed: int = field(default=0, metadata={"help": "seed of the tiny preset's weights"})


@dataclass
class DataArguments:
    data_path: str = field(default="", metadata={"help": "a.json, or a mixture vqa=a.json,gen=b.json (task names)"})
    image_folder: str = field(default="", metadata={"help": "root that sample 'image' paths are relative to"})
    image_aspect_ratio: str = field(default="pad", metadata={"help": "pad (LLaVA-1.5) | resize"})
    lazy_preprocess: bool = field(default=True, metadata={"help": "accepted for LLaVA compatibility; always lazy"})
    is_multimodal: bool = field(default=True, metadata={"help": "accepted for LLaVA compatibility"})
    skip_bad_samples: bool = field(default=False, metadata={"help": "skip bad samples (listed in "
                                                                      "OUTPUT/skipped_samples.jsonl) instead of failing"})
    preflight_workers: int = field(default=-1, metadata={"help": "processes for the pre-flight data check "
                                                                  "(-1: up to 8 for large data, 0: none)"})


@dataclass
class TrainingArguments(transformers.TrainingArguments):
    model_max_length: int = field(default=2048, metadata={"help": "sequences are truncated (and counted) past this"})
    lora_enable: bool = field(default=False, metadata={"help": "train adapters on the language model"})
    lora_r: int = field(default=_DEFAULT.r, metadata={"help": "adapter rank r (the presets: llava.adapters.presets)"})
    lora_alpha: float = field(default=_DEFAULT.alpha, metadata={"help": "scale alpha: the update is (alpha / r) B A x"})
    lora_dropout: float = field(default=_DEFAULT.dropout, metadata={"help": "dropout on the adapter input"})
    lora_bias: str = field(default="none", metadata={"help": "only 'none' is supported"})
    mm_projector_lr: float | None = field(default=None, metadata={"help": "projector learning rate (own group)"})
    router_lr: float | None = field(default=None, metadata={"help": "router learning rate (own group; default: the "
                                                                    "adapters' --learning_rate)"})
    freeze_mm_mlp_adapter: bool = field(default=False, metadata={"help": "keep the projector frozen"})
    group_by_modality_length: bool = field(default=False, metadata={"help": "batches of one modality, similar length"})
    checkpoint_layers: str = field(default="all", metadata={"help": "with activation checkpointing, the decoder layers "
                                                                 "checkpointed: all, a number (the first N), or auto "
                                                                 "(as few as the GPU's memory needs, by the planner)"})
    padding_free: bool | None = field(default=None, metadata={"help": "pack each batch's samples into one row "
                                                                       "(positions restart per sample, attention kept "
                                                                       "within each): no FLOPs on padding, the same loss "
                                                                       "and gradients; default: on with "
                                                                       "flash_attention_2 only (docs/training.md)"})
    adapter_scheme: str = field(default=_DEFAULT.scheme, metadata={"help": "lora | asymlora | moe_lora | mixlora"})
    num_experts: int = field(default=_DEFAULT.num_experts, metadata={"help": "routed B heads / experts / mixlora factor pool size"})
    num_tasks: int = field(default=_DEFAULT.num_tasks, metadata={"help": "asymlora task heads; -1: one per data task"})
    router: str = field(default=_DEFAULT.router, metadata={"help": "dense | topk (renormalised) | switch (top_k by "
                                                                        "full-softmax probability)"})
    top_k: int = field(default=_DEFAULT.top_k, metadata={"help": "experts per token with --router topk or switch"})
    router_input: str = field(default=_DEFAULT.router_input, metadata={"help": "token | prompt (one gate per "
                                                                              "sample from its prompt tokens)"})
    router_temperature: float = field(default=_DEFAULT.router_temperature, metadata={"help": "routers' logits are "
                                                                                          "divided by it"})
    router_noise: float = field(default=_DEFAULT.router_noise, metadata={"help": "std of Gaussian noise on the routers' "
                                                                              "logits in training"})
    router_init: str = field(default=_DEFAULT.router_init, metadata={"help": "kaiming | zero (uniform gates at start)"})
    router_scope: str = field(default=_DEFAULT.router_scope, metadata={"help": "module | mlp_block (paper preset)"})
    lora_targets: str = field(default=",".join(_DEFAULT.targets),
                              metadata={"help": "language-model linear layers that get adapters"})
    mixture_targets: str | None = field(default=None, metadata={"help": "targets that get the mixture; rest: lora"})
    lora_layers: str | None = field(default=None, metadata={"help": "decoder layers whose targets get adapters, as "
                                                                     "indices and ranges (e.g. 15-29); default: all"})
    balance_coef: float = field(default=_DEFAULT.balance_coef, metadata={"help": "load-balancing loss coefficient"})
    router_z_loss_coef: float = field(default=_DEFAULT.router_z_loss_coef, metadata={
        "help": "router z-loss coefficient (ST-MoE: penalises large router logits; 0 disables)"})
    balance_loss: str = field(default=_DEFAULT.balance_loss, metadata={"help": "hydra (AsymLoRA authors', per sample over all "
                                                                 "routed layers) | switch (per router)"})
    router_bias: bool = field(default=_DEFAULT.router_bias, metadata={"help": "routers with a bias (the AsymLoRA authors')"})
    adapter_dtype: str = field(default="auto", metadata={"help": "auto (fp32 masters without DeepSpeed; the model's "
                                                                  "dtype under DeepSpeed bf16/fp16, whose optimizer "
                                                                  "keeps fp32 masters) | fp32 | base (the base's "
                                                                  "dtype: without DeepSpeed updated in bf16 with no "
                                                                  "fp32 copy, as the AsymLoRA authors' script)"})
    init_adapters: str | None = field(default=None, metadata={"help": "start from this adapter checkpoint (its "
                                                                       "scheme and weights; the scheme flags are "
                                                                       "ignored), e.g. combined LoRA experts"})
    train_routers_only: bool = field(default=False, metadata={"help": "train the routers only; adapter weights stay "
                                                                      "as initialised (with --init_adapters)"})
    bits: int = field(default=16, metadata={"help": "4 | 8: QLoRA, the language model quantized (bitsandbytes)"})
    logging_nan_inf_filter: bool = field(default=False, metadata={"help": "keep False: a non-finite loss is shown "
                                                                          "(and stops the run), never averaged away"})
    overwrite_output_dir: bool = field(default=False, metadata={"help": "start a new run in an OUTPUT that holds one"})
    record_ranks: bool = field(default=False, metadata={"help": "write OUTPUT/rank_records/rank{R}.json: batches seen "
                                                                 "per step and a digest of the final trainable tensors"})
    remove_unused_columns: bool = field(default=False, metadata={"help": "keep task_ids and pixel_values"})
    warmup_ratio: float | None = field(default=None, metadata={"help": "LLaVA's flag: warmup as a share of steps"})

    def __post_init__(self):
        if self.warmup_ratio is not None:  # transformers 5 folds the ratio into warmup_steps (a float < 1)
            if not 0 <= self.warmup_ratio < 1:
                raise ValueError(f"--warmup_ratio must be in [0, 1), got {self.warmup_ratio}")
            self.warmup_steps = self.warmup_ratio
        super().__post_init__()
        if self.dataloader_pin_memory and (self.use_cpu or not torch.cuda.is_available()):
            self.dataloader_pin_memory = False  # nothing to pin for; torch would warn at every epoch


_FLAG_NAMES = {"scheme": "adapter_scheme", "r": "lora_r", "alpha": "lora_alpha", "dropout": "lora_dropout",
               "targets": "lora_targets", "layers": "lora_layers"}


def adapter_flags(settings: dict) -> list[str]:
    """AdapterConfig keyword arguments (a preset, llava.adapters.presets) as the training command's flags."""
    flags = []
    for name, value in settings.items():
        if name not in AdapterConfig.__dataclass_fields__:
            raise ValueError(f"{name!r} is not an adapter setting")
        flags += [f"--{_FLAG_NAMES.get(name, name)}", ",".join(map(str, value)) if isinstance(value, list) else str(value)]
    return flags
