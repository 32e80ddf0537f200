"""Merge a checkpoint's adapters into its base and write a llava-hf model, or another family's model as transformers
saves it (AutoModelForImageTextToText, AutoProcessor and the pipeline load either as is).
Exact only where merging is (lora; asymlora per task with one expert): adapters/merge.py refuses the rest.

python -m llava.commands.merge --checkpoint DIR [--task NAME] --out DIR   (installed as llava-merge)
"""

from __future__ import annotations

import argparse

from llava.adapters.io import load_adapters
from llava.adapters.merge import merge_adapters
from llava.checkpoint import load_checkpoint_model, template_of
from llava.console import progress_bars_only_on_a_terminal
from llava.model.hf_export import save_llava_hf
from llava.model.image_text_to_text import is_processor


def main(argv=None):
    progress_bars_only_on_a_terminal()  # a log file gets no carriage-return floods
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", required=True, help="a training checkpoint or output directory")
    ap.add_argument("--task", default=None, help="task name (or id) whose B head is merged (asymlora with task heads)")
    ap.add_argument("--out", required=True, help="where the merged llava-hf model goes")
    ap.add_argument("--dtype", default="fp32")
    args = ap.parse_args(argv)
    model, tokenizer, image_processor = load_checkpoint_model(args.checkpoint, dtype=args.dtype, load_weights=False)
    load_adapters(model, args.checkpoint)
    merge_adapters(model, args.task)
    if is_processor(image_processor):  # another family: its own classes and processor, as it was loaded
        model.save_pretrained(args.out)
        image_processor.save_pretrained(args.out)
    else:
        save_llava_hf(model, tokenizer, image_processor, args.out, template_of(model))
    print(f"merged model written to {args.out}")


if __name__ == "__main__":
    main()
