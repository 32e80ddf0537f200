"""Build a transformers `LlavaForConditionalGeneration` from what LLaVA users actually have on disk.

Four sources, one result (model, tokenizer, image processor):
  * "tiny"                         -> the preset in `tiny.py`;
  * a llava-hf directory           -> `LlavaForConditionalGeneration.from_pretrained`;
  * an original LLaVA checkpoint   -> Llama weights + `model.mm_projector.*`, keys mapped (see ORIGINAL_KEY_MAP);
  * parts                          -> a CLIP vision tower dir + a Llama/Vicuna dir (or one .gguf file) + an
                                      optional stage-1 `mm_projector.bin` / `.safetensors`.
"""

from __future__ import annotations

import glob
import importlib.util
import json
import os
import re

import torch
from safetensors.torch import load_file
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    CLIPImageProcessorPil,
    CLIPVisionModel,
    LlamaConfig,
    LlavaConfig,
    LlavaForConditionalGeneration,
)
from transformers.models.llava.modeling_llava import LlavaMultiModalProjector

from llava.constants import DEFAULT_IMAGE_TOKEN
from llava.model.image import clip_image_processor
from llava.model.tiny import build_tiny
from llava.model.zero import gathered_for_write

DTYPES = {"fp32": torch.float32, "float32": torch.float32, "bf16": torch.bfloat16, "bfloat16": torch.bfloat16,
          "fp16": torch.float16, "float16": torch.float16}

# Original LLaVA (haotian-liu/LLaVA) state-dict keys -> transformers' LlavaForConditionalGeneration keys.
# Order matters: the first matching pattern wins.
ORIGINAL_KEY_MAP = [
    (r"^model\.mm_projector\.0\.", "model.multi_modal_projector.linear_1."),
    (r"^model\.mm_projector\.2\.", "model.multi_modal_projector.linear_2."),
    (r"^model\.vision_tower\.vision_tower\.", "model.vision_tower."),
    (r"^model\.", "model.language_model."),
    (r"^lm_head\.", "lm_head."),
]


def map_original_key(key: str) -> str:
    for pattern, repl in ORIGINAL_KEY_MAP:
        if re.match(pattern, key):
            return re.sub(pattern, repl, key, count=1)
    raise KeyError(f"unexpected key {key!r} in an original LLaVA checkpoint")


def resolve_dtype(name: str | torch.dtype) -> torch.dtype:
    if isinstance(name, torch.dtype):
        return name
    if name not in DTYPES:
        raise ValueError(f"unknown dtype {name!r}; choose one of {sorted(DTYPES)}")
    return DTYPES[name]


def resolve_attn_implementation(requested: str | None) -> str:
    """sdpa by default; flash_attention_2 only when flash-attn is installed (the `flash` extra)."""
    if requested in (None, "", "auto", "sdpa"):
        return "sdpa"
    if requested == "flash_attention_2":
        if importlib.util.find_spec("flash_attn") is None:
            raise ImportError("attn_implementation='flash_attention_2' needs flash-attn: pip install 'llava-asymlora[flash]'")
        return requested
    if requested == "eager":
        return requested
    raise ValueError(f"unknown attn_implementation {requested!r} (sdpa, eager, flash_attention_2)")


def _read_state_dict(path: str) -> dict[str, torch.Tensor]:
    """safetensors, or a torch pickle loaded with weights_only=True (tensors only, no code execution)."""
    if path.endswith(".safetensors"):
        return load_file(path)
    return torch.load(path, map_location="cpu", weights_only=True)


def _read_checkpoint_dir(directory: str) -> dict[str, torch.Tensor]:
    files = sorted(glob.glob(os.path.join(directory, "*.safetensors"))) or sorted(
        glob.glob(os.path.join(directory, "pytorch_model*.bin"))
    )
    if not files:
        raise FileNotFoundError(f"no *.safetensors or pytorch_model*.bin weights in {directory}")
    state: dict[str, torch.Tensor] = {}
    for f in files:
        state.update(_read_state_dict(f))
    return state


def load_projector(model: LlavaForConditionalGeneration, path: str) -> None:
    """Load a LLaVA stage-1 projector (`mm_projector.bin`, keys `model.mm_projector.{0,2}.*`) into the model."""
    raw = _read_state_dict(path)
    mapped = {}
    for key, value in raw.items():
        new = map_original_key(key)
        if not new.startswith("model.multi_modal_projector."):
            raise KeyError(f"{path}: key {key!r} is not a projector key (expected model.mm_projector.0/2.*)")
        mapped[new.removeprefix("model.multi_modal_projector.")] = value
    proj = model.model.multi_modal_projector
    params = dict(proj.named_parameters())
    if set(mapped) != set(params):
        raise KeyError(f"{path}: projector keys do not match (file {sorted(mapped)}, model {sorted(params)})")
    with gathered_for_write(params.values()), torch.no_grad():
        for key, value in mapped.items():
            params[key].copy_(value.to(params[key].dtype))


def _load_vision_tower(path: str, dtype: torch.dtype) -> CLIPVisionModel:
    if not os.path.isdir(path):
        raise FileNotFoundError(
            f"vision tower {path!r} is not a local directory; download it once (e.g. openai/clip-vit-large-patch14-336) "
            "and pass --vision_tower /path/to/it"
        )
    return CLIPVisionModel.from_pretrained(path, dtype=dtype)


def _ensure_image_token(tokenizer) -> int:
    if DEFAULT_IMAGE_TOKEN not in tokenizer.get_vocab():
        tokenizer.add_special_tokens({"additional_special_tokens": [DEFAULT_IMAGE_TOKEN]})
    if tokenizer.pad_token is None:  # LLaVA pads Vicuna with <unk>
        tokenizer.pad_token = tokenizer.unk_token if tokenizer.unk_token is not None else tokenizer.eos_token
    return tokenizer.convert_tokens_to_ids(DEFAULT_IMAGE_TOKEN)


def _grow_embeddings(lm, vocab_size: int) -> None:
    """Resize to `vocab_size` (padded to a multiple of 64) with every new row = the mean of the old rows.

    transformers' default samples new rows at random, so a checkpoint's base could not be rebuilt identically;
    the mean is deterministic and is what LLaVA itself gives new tokens.
    """
    old = lm.get_input_embeddings().weight.shape[0]
    lm.resize_token_embeddings(vocab_size, pad_to_multiple_of=64, mean_resizing=False)
    tables = [lm.get_input_embeddings().weight]
    out = lm.get_output_embeddings()
    if out is not None and out.weight is not tables[0]:
        tables.append(out.weight)
    with gathered_for_write(tables), torch.no_grad():
        for table in tables:
            table[old:] = table[:old].mean(0, keepdim=True)


def assemble(vision_tower: CLIPVisionModel, lm, tokenizer, dtype: torch.dtype, attn_implementation: str):
    """Put a vision tower and a causal LM into one LlavaForConditionalGeneration without re-initialising either."""
    image_token = _ensure_image_token(tokenizer)
    if len(tokenizer) > lm.get_input_embeddings().weight.shape[0]:
        _grow_embeddings(lm, len(tokenizer))
    vcfg = vision_tower.config
    config = LlavaConfig(
        vision_config=vcfg.to_dict(),
        text_config=lm.config.to_dict(),
        image_token_index=image_token,
        image_seq_length=(vcfg.image_size // vcfg.patch_size) ** 2,
        projector_hidden_act="gelu",
        vision_feature_layer=-2,
        vision_feature_select_strategy="default",
    )
    config._attn_implementation = attn_implementation
    with torch.device("meta"):
        model = LlavaForConditionalGeneration(config)
    model.model.vision_tower = vision_tower
    model.model.language_model = lm.model
    model.lm_head = lm.lm_head
    model.model.multi_modal_projector = LlavaMultiModalProjector(config).to(dtype)
    on_meta = [n for n, t in list(model.named_parameters()) + list(model.named_buffers()) if t.is_meta]
    if on_meta:
        raise RuntimeError(f"assembling LLaVA left tensors uninitialised: {on_meta[:5]}")
    return model


def _lm_location(path: str) -> tuple[str, dict]:
    """A Llama/Vicuna directory, or a single .gguf file (transformers de-quantizes it; needs the gguf package)."""
    if path.endswith(".gguf"):
        if not os.path.isfile(path):
            raise FileNotFoundError(f"language model file {path} not found")
        if importlib.util.find_spec("gguf") is None:
            raise ImportError("loading a .gguf language model needs the gguf package: pip install gguf")
        return os.path.dirname(os.path.abspath(path)), {"gguf_file": os.path.basename(path)}
    return path, {}


def from_parts(vision_tower: str, language_model: str, projector: str | None = None, dtype="fp32",
               attn_implementation: str | None = None):
    dtype = resolve_dtype(dtype)
    attn = resolve_attn_implementation(attn_implementation)
    tower = _load_vision_tower(vision_tower, dtype)
    lm_dir, lm_kwargs = _lm_location(language_model)
    lm = AutoModelForCausalLM.from_pretrained(lm_dir, dtype=dtype, attn_implementation=attn, **lm_kwargs)
    tokenizer = AutoTokenizer.from_pretrained(lm_dir, use_fast=True, **lm_kwargs)
    model = assemble(tower, lm, tokenizer, dtype, attn)
    if projector:
        load_projector(model, projector)
    return model, tokenizer, clip_image_processor(tower.config.image_size)


def from_llava_hf(path: str, dtype="fp32", attn_implementation: str | None = None):
    dtype = resolve_dtype(dtype)
    model = LlavaForConditionalGeneration.from_pretrained(
        path, dtype=dtype, attn_implementation=resolve_attn_implementation(attn_implementation)
    )
    tokenizer = AutoTokenizer.from_pretrained(path, use_fast=True)
    _ensure_image_token(tokenizer)
    if os.path.exists(os.path.join(path, "preprocessor_config.json")):
        image_processor = CLIPImageProcessorPil.from_pretrained(path)
    else:
        image_processor = clip_image_processor(model.config.vision_config.image_size)
    return model, tokenizer, image_processor


def from_original_llava(path: str, vision_tower: str | None = None, dtype="fp32", attn_implementation: str | None = None):
    """An original LLaVA checkpoint: a Llama config with `mm_*` keys and Llama + `model.mm_projector` weights."""
    dtype = resolve_dtype(dtype)
    attn = resolve_attn_implementation(attn_implementation)
    with open(os.path.join(path, "config.json")) as f:
        raw = json.load(f)
    tower_path = vision_tower or raw.get("mm_vision_tower")
    if not tower_path:
        raise ValueError(f"{path}/config.json names no mm_vision_tower; pass --vision_tower")
    if raw.get("mm_projector_type", "mlp2x_gelu") != "mlp2x_gelu":
        raise ValueError(f"{path}: only the LLaVA-1.5 projector (mlp2x_gelu) is supported, got {raw['mm_projector_type']}")
    llama_keys = set(LlamaConfig().to_dict())
    text_cfg = LlamaConfig(**{k: v for k, v in raw.items() if k in llama_keys and k not in ("model_type", "architectures")})
    text_cfg._attn_implementation = attn
    tower = _load_vision_tower(tower_path, dtype)
    with torch.device("meta"):
        lm = AutoModelForCausalLM.from_config(text_cfg)
    state = _read_checkpoint_dir(path)
    lm_state = {k: v for k, v in state.items() if not k.startswith(("model.mm_projector.", "model.vision_tower."))}
    lm.load_state_dict({k: v.to(dtype) for k, v in lm_state.items()}, strict=True, assign=True)
    lm.model.rotary_emb = type(lm.model.rotary_emb)(config=text_cfg)  # non-persistent buffers are not in the file
    tokenizer = AutoTokenizer.from_pretrained(path, use_fast=True)
    model = assemble(tower, lm, tokenizer, dtype, attn)
    proj = {map_original_key(k).removeprefix("model.multi_modal_projector."): v.to(dtype)
            for k, v in state.items() if k.startswith("model.mm_projector.")}
    if proj:
        model.model.multi_modal_projector.load_state_dict(proj, strict=True)
    return model, tokenizer, clip_image_processor(tower.config.image_size)


def detect_source(path: str) -> str:
    if path == "tiny":
        return "tiny"
    if path.endswith(".gguf"):
        return "language_model"
    cfg_path = os.path.join(path, "config.json")
    if not os.path.exists(cfg_path):
        raise FileNotFoundError(f"{path!r} is neither 'tiny' nor a directory with a config.json")
    with open(cfg_path) as f:
        raw = json.load(f)
    if raw.get("model_type") == "llava" and "text_config" in raw:
        return "llava_hf"
    if "mm_vision_tower" in raw or raw.get("model_type") in ("llava_llama", "llava"):
        return "original"
    return "language_model"


def load_model(model_name_or_path: str, vision_tower: str | None = None, pretrain_mm_mlp_adapter: str | None = None,
               dtype="fp32", attn_implementation: str | None = None, seed: int = 0):
    """Return (model, tokenizer, image_processor) for any supported source; see the module docstring."""
    source = detect_source(model_name_or_path)
    if source == "tiny":
        model, tokenizer = build_tiny(seed=seed, dtype=resolve_dtype(dtype),
                                      attn_implementation=resolve_attn_implementation(attn_implementation))
        image_processor = clip_image_processor(model.config.vision_config.image_size)
    elif source == "llava_hf":
        model, tokenizer, image_processor = from_llava_hf(model_name_or_path, dtype, attn_implementation)
    elif source == "original":
        model, tokenizer, image_processor = from_original_llava(model_name_or_path, vision_tower, dtype,
                                                                attn_implementation)
    else:
        if not vision_tower:
            raise ValueError(f"{model_name_or_path} is a language model; building LLaVA from parts needs --vision_tower")
        model, tokenizer, image_processor = from_parts(vision_tower, model_name_or_path, None, dtype,
                                                       attn_implementation)
    if pretrain_mm_mlp_adapter:
        load_projector(model, pretrain_mm_mlp_adapter)
    return model, tokenizer, image_processor


def save_original_llava(model: LlavaForConditionalGeneration, tokenizer, path: str, vision_tower_path: str) -> None:
    """Write `model` in the original LLaVA layout (for interoperability tests and for users going back)."""
    from safetensors.torch import save_file

    os.makedirs(path, exist_ok=True)
    inverse = [("model.multi_modal_projector.linear_1.", "model.mm_projector.0."),
               ("model.multi_modal_projector.linear_2.", "model.mm_projector.2."),
               ("model.language_model.", "model."), ("lm_head.", "lm_head.")]
    state = {}
    for key, value in model.state_dict().items():
        if key.startswith("model.vision_tower."):
            continue
        for src, dst in inverse:
            if key.startswith(src):
                state[dst + key[len(src):]] = value.contiguous()
                break
    save_file(state, os.path.join(path, "model.safetensors"), metadata={"format": "pt"})
    cfg = model.config.text_config.to_dict()
    vcfg = model.config.vision_config
    cfg.update(model_type="llava_llama", architectures=["LlavaLlamaForCausalLM"], mm_vision_tower=vision_tower_path,
               mm_hidden_size=vcfg.hidden_size, mm_projector_type="mlp2x_gelu", mm_vision_select_layer=-2,
               mm_vision_select_feature="patch", image_aspect_ratio="pad", mm_use_im_start_end=False)
    with open(os.path.join(path, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2, default=str)
    tokenizer.save_pretrained(path)


__all__ = ["load_model", "from_parts", "from_llava_hf", "from_original_llava", "load_projector", "map_original_key",
           "save_original_llava", "resolve_dtype", "resolve_attn_implementation"]
