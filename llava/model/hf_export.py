"""Write a complete llava-hf directory: weights, tokenizer, image processor AND a LlavaProcessor config.

transformers' `AutoProcessor`, `pipeline("image-text-to-text")` and every llava-hf consumer (vLLM, SGLang,
lmms-eval's `llava_hf`) expand `<image>` into patch tokens with the processor's `patch_size`,
`vision_feature_select_strategy` and `num_additional_image_tokens`, and build prompts with its chat template. A
directory without them loads as a model but cannot be prompted; so every llava-hf directory we write goes through
`save_llava_hf`, with the chat template of the conversation template the model was trained with.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile

from transformers import LlavaProcessor

from llava.console import progress_bars_only_on_a_terminal
from llava.conversation import Template, get_template

# Message content is a string or a list of {"type": "image"} / {"type": "text", "text": ...} items (transformers'
# multimodal chat format). Images go first as "<image>\n", as LLaVA puts them before the question.
_CONTENT = (
    "{%- if m['content'] is string -%}{{ m['content'] }}{%- else -%}"
    "{%- for c in m['content'] if c['type'] == 'image' -%}{{ IMAGE + '\\n' }}{%- endfor -%}"
    "{{ m['content'] | selectattr('type', 'equalto', 'text') | map(attribute='text') | join(' ') }}"
    "{%- endif -%}"
)


def jinja_for(template: Template) -> str | None:
    """A chat template that renders exactly what `template.render` / `template.prompt` render. No BOS in the text, as
    llava-hf's templates: the processor's tokenizer adds it (as in training), so `processor(text=rendered, ...)` and
    `apply_chat_template(..., tokenize=True)` both give one. None for `plain` (stage 1 has no conversation)."""
    if template.style != "two":
        return None
    user, assistant = template.roles
    return (
        "{%- set IMAGE = '<image>' -%}"
        "{%- set ns = namespace(system=" + json.dumps(template.system) + ") -%}"
        "{%- for m in messages if m['role'] == 'system' -%}{%- set ns.system = "
        "(m['content'] if m['content'] is string else m['content'] | map(attribute='text') | join(' ')) -%}"
        "{%- endfor -%}"
        "{{ ns.system }}" + _literal(template.sep)
        + "{%- for m in messages if m['role'] != 'system' -%}"
        "{%- if m['role'] == 'user' -%}" + _literal(user + ": ") + _CONTENT + _literal(template.sep)
        + "{%- else -%}" + _literal(assistant + ": ") + _CONTENT + _literal(template.sep2)
        + "{%- endif -%}{%- endfor -%}"
        "{%- if add_generation_prompt -%}" + _literal(assistant + ":") + "{%- endif -%}"
    )


def _literal(text: str | None) -> str:
    """Text as a Jinja expression: `{%-`/`-%}` whitespace control would eat the spaces of raw template text."""
    return "{{ " + json.dumps(text or "") + " }}"


def llava_processor(model, tokenizer, image_processor, version: str) -> LlavaProcessor:
    """The LlavaProcessor that expands `<image>` the way this model's config does, with the training template."""
    if version == "chat_template":
        chat_template = tokenizer.chat_template  # the model was trained with the tokenizer's own template
    else:
        chat_template = jinja_for(get_template(version))
        tokenizer.chat_template = chat_template
    vision = model.config.vision_config
    return LlavaProcessor(
        image_processor=image_processor, tokenizer=tokenizer, patch_size=vision.patch_size,
        vision_feature_select_strategy=model.config.vision_feature_select_strategy,
        num_additional_image_tokens=1,  # CLIP's class token; "default" strategy drops it again
        chat_template=chat_template,
    )


def save_llava_hf(model, tokenizer, image_processor, out: str, version: str = "vicuna_v1") -> None:
    """Model (safetensors) + processor (tokenizer, image processor, processor config, chat template) into `out`,
    written in a temp dir and renamed, so `out` is either complete or absent."""
    processor = llava_processor(model, tokenizer, image_processor, version)
    parent = os.path.dirname(os.path.abspath(out))
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".tmp-", dir=parent)
    try:
        model.save_pretrained(tmp)
        processor.save_pretrained(tmp)
        if os.path.exists(out):
            shutil.rmtree(out)
        os.rename(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main(argv=None):
    """`python -m llava.model.hf_export --model tiny|DIR [--vision-tower DIR] [--projector FILE] --out DIR`: any model
    source (the tiny preset, parts, an original LLaVA checkpoint) written as a complete llava-hf directory."""
    progress_bars_only_on_a_terminal()  # a log file gets no carriage-return floods
    import argparse

    from llava.model.builder import load_model

    ap = argparse.ArgumentParser(description=main.__doc__)
    ap.add_argument("--model", required=True, help="tiny | Vicuna/Llama dir or .gguf (with --vision-tower) | LLaVA dir")
    ap.add_argument("--vision-tower", default=None)
    ap.add_argument("--projector", default=None, help="stage-1 mm_projector.bin")
    ap.add_argument("--version", default="vicuna_v1", help="conversation template for the chat template")
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    model, tokenizer, image_processor = load_model(args.model, vision_tower=args.vision_tower,
                                                   pretrain_mm_mlp_adapter=args.projector)
    save_llava_hf(model, tokenizer, image_processor, args.out, args.version)
    print(f"llava-hf model written to {args.out}")


if __name__ == "__main__":
    main()
