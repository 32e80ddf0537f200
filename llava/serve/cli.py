"""Terminal chat with any checkpoint of ours, as LLaVA's `llava.serve.cli`: one image, many turns, streamed answers.

python -m llava.serve.cli --model-path CKPT --image-file IMG [--task NAME] [--load-4bit | --load-8bit]

The conversation is rendered with the template the checkpoint was trained with (or --conv-mode), the image goes
into the first question, and every earlier turn stays in the prompt. An empty line or end of input quits.
"""

from __future__ import annotations

import argparse
import sys

from PIL import Image
from transformers import TextStreamer

from llava.constants import DEFAULT_IMAGE_TOKEN
from llava.inference import Generator
from llava.model.image import to_rgb


class Chat:
    """One conversation about one image (or none): the turns so far and a Generator to answer the next one."""

    def __init__(self, generator: Generator, image: Image.Image | None = None):
        self.generator = generator
        self.image = image
        self.turns: list[tuple[int, str]] = []

    def prompt(self, question: str) -> tuple[str, str]:
        """(the whole conversation rendered up to the assistant's next turn, the question as it enters it)"""
        if not self.turns and self.image is not None:  # LLaVA puts the image before the first question
            question = f"{DEFAULT_IMAGE_TOKEN}\n{question.replace(DEFAULT_IMAGE_TOKEN, '').strip()}"
        text, _ = self.generator.template.render(self.turns + [(0, question)], add_generation_prompt=True)
        return text, question

    def ask(self, question: str, max_new_tokens: int = 512, temperature: float = 0.0, streamer=None) -> str:
        prompt, question = self.prompt(question)
        reply = self.generator.generate([prompt], [self.image], max_new_tokens, temperature, streamer=streamer)[0]
        self.turns += [(0, question), (1, reply)]
        return reply


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model-path", required=True, help="checkpoint dir, merged/llava-hf dir, or a preset (tiny, small)")
    ap.add_argument("--image-file", default=None, help="the image to talk about (none: text only)")
    ap.add_argument("--task", default=None, help="task head for task-routed asymlora (name or id)")
    ap.add_argument("--conv-mode", default=None, help="template; default: the checkpoint's --version or vicuna_v1")
    ap.add_argument("--temperature", type=float, default=0.2)
    ap.add_argument("--max-new-tokens", type=int, default=512)
    ap.add_argument("--load-4bit", action="store_true", help="language model in 4 bits (bitsandbytes, quant extra)")
    ap.add_argument("--load-8bit", action="store_true", help="language model in 8 bits (bitsandbytes, quant extra)")
    ap.add_argument("--device", default="auto")
    args = ap.parse_args(argv)
    if args.load_4bit and args.load_8bit:
        ap.error("--load-4bit and --load-8bit exclude each other")
    bits = 4 if args.load_4bit else 8 if args.load_8bit else None
    generator = Generator.from_checkpoint(args.model_path, args.device, "auto", args.task, args.conv_mode, bits=bits)
    image = None
    if args.image_file:
        with Image.open(args.image_file) as im:
            image = to_rgb(im)
    chat = Chat(generator, image)
    user, assistant = getattr(generator.template, "roles", ("USER", "ASSISTANT"))
    streamer = TextStreamer(generator.tokenizer, skip_prompt=True, skip_special_tokens=True)
    while True:
        try:
            question = input(f"{user}: ")
        except EOFError:
            break
        if not question.strip():
            break
        print(f"{assistant}: ", end="", flush=True)
        chat.ask(question, args.max_new_tokens, args.temperature, streamer=streamer)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
