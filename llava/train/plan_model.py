"""The planner's model of a run: LLaVA-1.5 built on the meta device with the adapters injected (its parameter counts
equal a real model's), and the ZeRO paper's byte accounting for memory per GPU and traffic per step. plan.py prints
it; docs/planning.md writes the arithmetic out.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from transformers import CLIPVisionConfig, LlamaConfig, LlavaConfig, LlavaForConditionalGeneration

from llava.adapters import AdapterConfig, inject_adapters, presets
from llava.adapters.inject import adapter_modules

GIB = 1024**3
# Vicuna-v1.5 (Llama-2) sizes; LLaVA-1.5 adds <image> and pads the vocabulary to 32064.
LLAMA = {"7b": dict(hidden_size=4096, intermediate_size=11008, num_hidden_layers=32, num_attention_heads=32),
         "13b": dict(hidden_size=5120, intermediate_size=13824, num_hidden_layers=40, num_attention_heads=40)}
CLIP_L_336 = dict(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16,
                  image_size=336, patch_size=14, projection_dim=768)
VOCAB = 32064
SCHEMES = tuple(presets.PRESETS["7b"])  # each at its preset (adapters/presets.py), as the scripts train it
FROZEN_BYTES = {16: 2.0, 8: 1.0, 4: 0.5 + 1 / 64 + 4 / (64 * 256)}  # nf4 + double-quantized block scales


def llava_config(model: str) -> LlavaConfig:
    text = LlamaConfig(vocab_size=VOCAB, max_position_embeddings=4096, **LLAMA[model])
    vision = CLIPVisionConfig(**CLIP_L_336)
    return LlavaConfig(vision_config=vision, text_config=text, image_token_index=32000, image_seq_length=576,
                       projector_hidden_act="gelu", vision_feature_layer=-2, vision_feature_select_strategy="default")


def meta_model(model: str, scheme: str, r: int | None = None):
    with torch.device("meta"):
        llava = LlavaForConditionalGeneration(llava_config(model))
        settings = presets.preset(scheme) if r is None else presets.variant(scheme, r)
        inject_adapters(llava, AdapterConfig(**settings))
    return llava


@dataclass
class Counts:
    frozen_lm: int
    frozen_vision: int
    adapters: int
    projector: int

    @property
    def trainable(self) -> int:
        return self.adapters + self.projector


def count(llava) -> Counts:
    """Parameter counts; a ZeRO-3-partitioned parameter counts whole (`ds_numel`), not its local shard."""
    adapter_ids = {id(p) for _, m in adapter_modules(llava) for n, p in m.named_parameters() if not n.startswith("base.")}
    c = Counts(0, 0, 0, 0)
    for name, p in llava.named_parameters():
        numel = getattr(p, "ds_numel", p.numel())
        if id(p) in adapter_ids:
            c.adapters += numel
        elif "multi_modal_projector" in name:
            c.projector += numel
        elif "vision_tower" in name:
            c.frozen_vision += numel
        else:
            c.frozen_lm += numel
    return c


def memory_per_gpu(c: Counts, zero: int, gpus: int, bits: int) -> dict[str, float]:
    """Bytes per GPU. Trainable: bf16 weight 2 + bf16 grad 2 + fp32 master/Adam m/v 12 (ZeRO paper, K=12);
    stage 1 partitions the 12, stage 2 also the grads, stage 3 also every weight (frozen ones too)."""
    frozen = c.frozen_lm * FROZEN_BYTES[bits] + c.frozen_vision * 2.0
    t = c.trainable
    return {"frozen weights": frozen / (gpus if zero >= 3 else 1),
            "trainable weights": 2.0 * t / (gpus if zero >= 3 else 1),
            "gradients": 2.0 * t / (gpus if zero >= 2 else 1),
            "optimizer states": 12.0 * t / (gpus if zero >= 1 else 1)}


def activations(cfg: LlavaConfig, batch: int, seq: int, checkpointing: bool, adapted: bool) -> dict[str, float]:
    """Bytes of saved activations for one micro-batch (bf16, sdpa: no attention matrix kept).

    Per token and decoder layer: attention 12h (norm input 2h, normed 2h, q/k/v 6h, attention output 2h), MLP
    4h + 8i (norm input, normed, gate, up, act(gate), product), adapters 18h + 3i (dropout masks 1 B and dropped
    inputs 2 B on the 6 h-wide and the i-wide adapter input). With checkpointing only each layer's input (2h)
    is kept, plus one layer recomputed at a time. Logits: bf16 + their fp32 upcast for the loss (6 V).
    """
    n, vocab = cfg.text_config.num_hidden_layers, cfg.text_config.vocab_size
    full, kept = layer_bytes_per_token(cfg, adapted)
    tokens = batch * seq
    layers = tokens * (kept * n + full) if checkpointing else tokens * full * n
    return {"decoder layers": float(layers), "logits": float(tokens * 6 * vocab)}


def layer_bytes_per_token(cfg: LlavaConfig, adapted: bool) -> tuple[int, int]:
    """(saved activation bytes per token of a decoder layer that is not checkpointed, of one that is)."""
    h, i = cfg.text_config.hidden_size, cfg.text_config.intermediate_size
    return 12 * h + 4 * h + 8 * i + ((18 * h + 3 * i) if adapted else 0), 2 * h


def layers_to_checkpoint(cfg: LlavaConfig, c: Counts, zero: int, gpus: int, bits: int, batch: int, seq: int,
                         budget: float, adapted: bool = True) -> int:
    """The fewest decoder layers to checkpoint (the first ones) so that model state, logits and saved activations fit
    `budget` bytes per GPU (every layer when even that does not fit): each layer not checkpointed keeps all its
    activations instead of its input, and saves its recompute (a third of its forward and backward). Backward frees
    the later, whole layers before it rebuilds a checkpointed one, so the rebuilt layer adds to the peak only when
    every layer is checkpointed."""
    n, vocab = cfg.text_config.num_hidden_layers, cfg.text_config.vocab_size
    full, kept = layer_bytes_per_token(cfg, adapted)
    tokens = batch * seq
    fixed = sum(memory_per_gpu(c, zero, gpus, bits).values()) + tokens * 6 * vocab
    for checkpointed in range(n + 1):
        whole = max((n - checkpointed) * full, full if checkpointed else 0)
        if fixed + tokens * (checkpointed * kept + whole) <= budget:
            return checkpointed
    return n


def flops_share(c: Counts, cfg: LlavaConfig, seq: int) -> float:
    """Adapter share of training FLOPs per token: adapters 3 x 2 x params (forward, input and weight grads), the
    frozen LM 2 x 2 x params (forward, input grads only) plus causal attention 2 x 2 x 2 x (seq/2) x h per layer."""
    h, n = cfg.text_config.hidden_size, cfg.text_config.num_hidden_layers
    base = 2 * 2 * c.frozen_lm + 2 * 2 * 2 * (seq / 2) * h * n
    adapters = 3 * 2 * c.adapters
    return adapters / (adapters + base)


def bytes_moved(c: Counts, zero: int, gpus: int, grad_accum: int, bits: int = 16, checkpointing: bool = True) -> float:
    """Bytes each GPU sends per optimizer step in ring collectives ((n-1)/n of a buffer each), bf16 tensors.

    Stage 1/2: the trainable gradients are reduce-scattered at every micro-step and the updated trainable weights
    all-gathered once per step (DDP: an all-reduce of the gradients, twice the reduce-scatter). Stage 3 also gathers
    every weight, the frozen base included, at each use: forward, checkpoint recompute and backward, every micro-step.
    """
    if gpus <= 1:
        return 0.0
    ring = (gpus - 1) / gpus
    trainable = 2.0 * c.trainable
    grads = trainable * ring * grad_accum * (2 if zero == 0 else 1)
    if zero < 3:
        return grads + (trainable * ring if zero > 0 else 0.0)
    weights = c.frozen_lm * FROZEN_BYTES[bits] + c.frozen_vision * 2.0 + trainable
    return grads + weights * ring * (3 if checkpointing else 2) * grad_accum
