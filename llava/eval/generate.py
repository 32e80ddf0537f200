"""Answer a questions file with any checkpoint: `python -m llava.eval.generate --model-path CKPT ...`.

Questions JSONL (LLaVA's format: question_id, image, text, category) -> answers JSONL (question_id, prompt, text,
model_id, metadata). Batched greedy decoding with left padding, on CPU or GPU. Resumable: ids already in the answers
file are skipped, and each answer is flushed as one whole line, so a killed run never leaves a duplicate or a
half line. `--num-chunks/--chunk-idx` split the questions across processes (one per GPU).
"""

from __future__ import annotations

import argparse
import json
import math
import os

import torch
from PIL import Image
from tqdm import tqdm

from llava.adapters.state import adapter_batch
from llava.constants import DEFAULT_IMAGE_TOKEN
from llava.conversation import get_template
from llava.data.preprocess import encode_prompt
from llava.eval.jsonl import read_jsonl
from llava.model.checkpoint import load_checkpoint_model
from llava.model.image import ImageTransform


def read_questions(path: str) -> list[dict]:
    return read_jsonl(path, required=("question_id", "text"))


def answered_ids(path: str) -> set:
    """Ids already answered; a trailing partial line (killed mid-write) is dropped from the file."""
    if not os.path.exists(path):
        return set()
    done, good = set(), []
    with open(path, encoding="utf-8") as f:
        for line in f:
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue
            if line.endswith("\n"):
                done.add(row["question_id"])
                good.append(line)
    with open(path, "w", encoding="utf-8") as f:
        f.writelines(good)
    return done


def chunk(rows: list, num_chunks: int, chunk_idx: int) -> list:
    size = math.ceil(len(rows) / num_chunks)
    return rows[chunk_idx * size:(chunk_idx + 1) * size]


class Generator:
    """Batched greedy (or sampled) generation with a loaded LLaVA; left padding so all prompts end together."""

    def __init__(self, model, tokenizer, image_processor, conv_mode: str = "vicuna_v1", image_aspect_ratio="pad",
                 task_id: int | None = None):
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.template = get_template(conv_mode, tokenizer)
        self.transform = ImageTransform(image_processor, image_aspect_ratio)
        self.task_id = task_id
        self.image_seq_length = model.config.image_seq_length

    def prompt_for(self, question: str, has_image: bool) -> str:
        question = question.replace(DEFAULT_IMAGE_TOKEN, "").strip()
        if has_image:
            question = f"{DEFAULT_IMAGE_TOKEN}\n{question}"
        return self.template.prompt(question)

    @torch.no_grad()
    def generate(self, prompts: list[str], images: list[Image.Image | None], max_new_tokens: int = 128,
                 temperature: float = 0.0) -> list[str]:
        device = next(self.model.parameters()).device
        encoded = [encode_prompt(p, self.tokenizer, self.image_seq_length, self.template.add_special_tokens)
                   for p in prompts]
        length = max(len(e) for e in encoded)
        pad = self.tokenizer.pad_token_id
        input_ids = torch.full((len(encoded), length), pad, dtype=torch.long)
        attention_mask = torch.zeros_like(input_ids)
        for i, e in enumerate(encoded):
            input_ids[i, length - len(e):] = torch.tensor(e)
            attention_mask[i, length - len(e):] = 1
        kwargs = dict(input_ids=input_ids.to(device), attention_mask=attention_mask.to(device),
                      max_new_tokens=max_new_tokens, pad_token_id=pad, eos_token_id=self.tokenizer.eos_token_id)
        pixels = [self.transform(im) for im in images if im is not None]
        if pixels:
            dtype = next(self.model.parameters()).dtype
            kwargs["pixel_values"] = torch.stack(pixels).to(device, dtype)
        if temperature > 0:
            kwargs.update(do_sample=True, temperature=temperature)
        else:
            kwargs.update(do_sample=False)
        task_ids = None if self.task_id is None else torch.full((len(prompts),), self.task_id, device=device)
        if getattr(self.model, "adapter_state", None) is not None:
            with adapter_batch(self.model, task_ids=task_ids, token_mask=kwargs["attention_mask"]):
                out = self.model.generate(**kwargs)
        else:
            out = self.model.generate(**kwargs)
        texts = self.tokenizer.batch_decode(out[:, length:], skip_special_tokens=True)
        return [t.strip() for t in texts]


def run(model, tokenizer, image_processor, questions: list[dict], answers_file: str, image_folder: str = "",
        conv_mode="vicuna_v1", batch_size: int = 8, max_new_tokens: int = 128, temperature: float = 0.0,
        model_id: str = "llava", task_id: int | None = None, limit: int | None = None, progress: bool = True) -> int:
    """Answer the questions not yet in `answers_file`; returns how many were answered now."""
    os.makedirs(os.path.dirname(os.path.abspath(answers_file)), exist_ok=True)
    done = answered_ids(answers_file)
    todo = [q for q in questions if q["question_id"] not in done]
    if limit is not None:
        todo = todo[:limit]
    gen = Generator(model, tokenizer, image_processor, conv_mode, task_id=task_id)
    written = 0
    with open(answers_file, "a", encoding="utf-8") as out, tqdm(total=len(todo), disable=not progress) as bar:
        for start in range(0, len(todo), batch_size):
            batch = todo[start:start + batch_size]
            images = []
            for q in batch:
                if q.get("image"):
                    path = os.path.join(image_folder, q["image"])
                    if not os.path.exists(path):
                        raise FileNotFoundError(f"question {q['question_id']}: image {path} not found")
                    with Image.open(path) as im:
                        images.append(im.convert("RGB"))
                else:
                    images.append(None)
            prompts = [gen.prompt_for(q["text"], im is not None) for q, im in zip(batch, images)]
            texts = gen.generate(prompts, images, max_new_tokens, temperature)
            for q, prompt, text in zip(batch, prompts, texts):
                row = {"question_id": q["question_id"], "prompt": q["text"], "text": text, "model_id": model_id,
                       "metadata": {"category": q.get("category"), "full_prompt": prompt}}
                out.write(json.dumps(row) + "\n")
                out.flush()
                written += 1
            bar.update(len(batch))
    return written


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model-path", required=True, help="checkpoint dir, merged/llava-hf dir, or 'tiny'")
    ap.add_argument("--question-file", required=True)
    ap.add_argument("--answers-file", required=True)
    ap.add_argument("--image-folder", default="")
    ap.add_argument("--conv-mode", default=None, help="template; default: the checkpoint's --version or vicuna_v1")
    ap.add_argument("--temperature", type=float, default=0.0)
    ap.add_argument("--max_new_tokens", "--max-new-tokens", type=int, default=128)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--num-chunks", type=int, default=1)
    ap.add_argument("--chunk-idx", type=int, default=0)
    ap.add_argument("--task", default=None, help="task head for task-routed asymlora (name or id)")
    ap.add_argument("--limit", type=int, default=None, help="answer at most this many new questions")
    ap.add_argument("--dtype", default="auto", help="auto (bf16 on GPU, fp32 on CPU) | fp32 | bf16 | fp16")
    ap.add_argument("--device", default="auto")
    args = ap.parse_args(argv)
    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    dtype = ("bf16" if device.startswith("cuda") else "fp32") if args.dtype == "auto" else args.dtype
    model, tokenizer, image_processor = load_checkpoint_model(args.model_path, dtype=dtype)
    model.to(device)
    info = getattr(model, "llava_base_info", {}) or {}
    conv_mode = args.conv_mode or info.get("version", "vicuna_v1")
    config = getattr(model, "adapter_config", None)
    task_id = config.task_id(args.task) if (config is not None and args.task is not None) else None
    questions = chunk(read_questions(args.question_file), args.num_chunks, args.chunk_idx)
    n = run(model, tokenizer, image_processor, questions, args.answers_file, args.image_folder, conv_mode,
            args.batch_size, args.max_new_tokens, args.temperature, os.path.basename(args.model_path.rstrip("/")),
            task_id, args.limit)
    print(f"answered {n} questions -> {args.answers_file}")


if __name__ == "__main__":
    main()
