"""Merge a checkpoint's adapters into its base and write a llava-hf model, or another family's model as transformers
saves it (AutoModelForImageTextToText, AutoProcessor and the pipeline load either as is).
Exact only where merging is (lora; asymlora per task with one expert): adapters/merge.py refuses the rest.
--peft: write a lora checkpoint as a PEFT adapter instead (PeftModel.from_pretrained on the base model loads it).

python -m llava.commands.merge --checkpoint DIR [--task NAME] [--peft] --out DIR   (installed as llava-merge)
"""

from __future__ import annotations

import argparse

from safetensors import safe_open

from llava.adapters.export import export_peft
from llava.adapters.io import load_adapters, weights_path
from llava.adapters.merge import merge_adapters
from llava.checkpoint import base_of, load_checkpoint_model, template_of
from llava.console import progress_bars_only_on_a_terminal
from llava.model.anatomy import projector_parameter_names
from llava.model.hf_export import save_llava_hf
from llava.model.image_text_to_text import is_processor


def main(argv=None):
    progress_bars_only_on_a_terminal()  # a log file gets no carriage-return floods
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", required=True, help="a training checkpoint or output directory")
    ap.add_argument("--task", default=None, help="task name (or id) whose B head is merged (asymlora with task heads)")
    ap.add_argument("--out", required=True, help="where the merged model (or, with --peft, the PEFT adapter) goes")
    ap.add_argument("--dtype", default="fp32")
    ap.add_argument("--peft", action="store_true",
                    help="write the lora adapter (and a trained projector) in PEFT's format to --out instead of merging")
    args = ap.parse_args(argv)
    model, tokenizer, image_processor = load_checkpoint_model(args.checkpoint, dtype=args.dtype, load_weights=False)
    load_adapters(model, args.checkpoint)
    if args.peft:
        try:
            export_peft(model, args.out, base_model_name_or_path=base_of(model).model_name_or_path,
                        projector=bool(projector_parameter_names(model) & saved_tensor_names(args.checkpoint)))
        except ValueError as e:  # a routed scheme, or a projector PEFT cannot hold: the user's choice of checkpoint
            raise SystemExit(f"error: {e}") from None
        print(f"PEFT adapter written to {args.out}")
        return
    merge_adapters(model, args.task)
    if is_processor(image_processor):  # another family: its own classes and processor, as it was loaded
        model.save_pretrained(args.out)
        image_processor.save_pretrained(args.out)
    else:
        save_llava_hf(model, tokenizer, image_processor, args.out, template_of(model))
    print(f"merged model written to {args.out}")


def saved_tensor_names(checkpoint: str) -> set[str]:
    with safe_open(weights_path(checkpoint), framework="pt") as f:
        return set(f.keys())


if __name__ == "__main__":
    main()
