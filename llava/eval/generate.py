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

from llava.adapters.attached import adapter_batch, adapter_config, routing_state
from llava.constants import DEFAULT_IMAGE_TOKEN
from llava.conversation import get_template
from llava.data.preprocess import encode_prompt
from llava.eval.jsonl import read_jsonl
from llava.model.checkpoint import load_checkpoint_model
from llava.model.image import ImageTransform, to_rgb

GREEDY_BELOW = 1e-5  # as vLLM: a smaller temperature is greedy (1e-124 would overflow the logits to inf / nan)


def is_sampling(temperature: float) -> bool:
    return temperature >= GREEDY_BELOW


def read_questions(path: str) -> list[dict]:
    """LLaVA's question files: question_id, text, and an optional image (a path under --image-folder)."""
    return read_jsonl(path, required=("question_id", "text"),
                      types={"question_id": (str, int), "text": (str,), "image": (str, type(None))})


def answered_ids(path: str) -> set:
    """Ids already answered. The file is only ever appended to: a trailing partial line (a kill mid-write) is cut
    off by truncating to the last complete line; nothing before it is rewritten."""
    if not os.path.exists(path):
        return set()
    with open(path, "rb") as f:
        data = f.read()
    end = data.rfind(b"\n") + 1
    if end < len(data):
        os.truncate(path, end)  # drop only the unfinished tail
    done = set()
    for lineno, line in enumerate(data[:end].splitlines(), start=1):
        if not line.strip():
            continue
        try:
            done.add(json.loads(line)["question_id"])
        except (ValueError, KeyError, TypeError, RecursionError) as e:  # not JSON / UTF-8, not an object, no id
            raise ValueError(f"{path}: line {lineno} is not an answer row ({type(e).__name__}: {str(e)[:100]}); "
                             "the file was not written by "
                             "llava.eval.generate - move it away") from e
    return done


def missing_images(questions: list[dict], image_folder: str) -> list[tuple[str, str]]:
    """(question_id, path) of every question whose image file is not there: checked before the model loads."""
    out = []
    for q in questions:
        if q.get("image"):
            path = os.path.join(image_folder, q["image"])
            if not os.path.isfile(path):
                out.append((q["question_id"], path))
    return out


def chunk(rows: list, num_chunks: int, chunk_idx: int) -> list:
    size = math.ceil(len(rows) / num_chunks)
    return rows[chunk_idx * size:(chunk_idx + 1) * size]


def _contiguous(module, args):
    return (args[0].contiguous(), *args[1:])


def contiguous_head_input(model) -> None:
    """Make the LM head's input contiguous (once per model). In prefill, generate keeps only the last position
    (hidden[:, -1:], a strided view), and torch's CPU linear on a strided 3-d bf16 input broadcasts the whole
    [vocab, hidden] weight per row into a batched matmul: 9.8 s instead of 0.015 s for 64 rows of SmolLM2's head,
    three quarters of the kit's evaluation time (bench/kit_eval_speed.py, docs/benchmarks.md)."""
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    if head is not None and not getattr(head, "_llava_contiguous_input", False):
        head.register_forward_pre_hook(_contiguous)
        head._llava_contiguous_input = True


class Generator:
    """Batched greedy (or sampled) generation with a loaded LLaVA; left padding so all prompts end together."""

    def __init__(self, model, tokenizer, image_processor, conv_mode: str = "vicuna_v1",
                 image_aspect_ratio: str | None = None, task_id: int | None = None):
        self.model = model.eval()
        contiguous_head_input(model)
        self.tokenizer = tokenizer
        self.template = get_template(conv_mode, tokenizer)
        if image_aspect_ratio is None:  # images reach the model as in training: pad (LLaVA-1.5) or resize (authors')
            image_aspect_ratio = (getattr(model, "llava_base_info", None) or {}).get("image_aspect_ratio", "pad")
        self.transform = ImageTransform(image_processor, image_aspect_ratio)
        self.task_id = task_id
        self.image_seq_length = model.config.image_seq_length

    def prompt_for(self, question: str, has_image: bool) -> str:
        question = question.replace(DEFAULT_IMAGE_TOKEN, "").strip()
        if has_image:
            question = f"{DEFAULT_IMAGE_TOKEN}\n{question}"
        return self.template.prompt(question)

    def encode(self, prompt: str) -> list[int]:
        """The prompt's token ids as the model sees them (each image placeholder expanded)."""
        return encode_prompt(prompt, self.tokenizer, self.image_seq_length, self.template.add_special_tokens)

    @torch.no_grad()
    def generate_ids(self, prompts: list[str], images: list[Image.Image | None], max_new_tokens: int | list[int] = 128,
                     temperature: float = 0.0, top_p: float = 1.0, task_ids: list[int | None] | None = None,
                     streamer=None, stopping_criteria=None) -> list[list[int]]:
        """Each prompt's new token ids, up to (not including) its end-of-sequence token and at most its
        max_new_tokens. Rows may have their own max_new_tokens and task heads (the server batches requests)."""
        device = next(self.model.parameters()).device
        encoded = [self.encode(p) for p in prompts]
        limits = [max_new_tokens] * len(prompts) if isinstance(max_new_tokens, int) else list(max_new_tokens)
        length = max(len(e) for e in encoded)
        pad = self.tokenizer.pad_token_id
        input_ids = torch.full((len(encoded), length), pad, dtype=torch.long)
        attention_mask = torch.zeros_like(input_ids)
        for i, e in enumerate(encoded):
            input_ids[i, length - len(e):] = torch.tensor(e)
            attention_mask[i, length - len(e):] = 1
        kwargs = dict(input_ids=input_ids.to(device), attention_mask=attention_mask.to(device),
                      max_new_tokens=max(limits), pad_token_id=pad, eos_token_id=self.tokenizer.eos_token_id)
        pixels = [self.transform(im) for im in images if im is not None]
        if pixels:
            dtype = next(self.model.parameters()).dtype
            kwargs["pixel_values"] = torch.stack(pixels).to(device, dtype)
        if is_sampling(temperature):
            kwargs.update(do_sample=True, temperature=temperature, top_p=top_p)
        else:
            kwargs.update(do_sample=False)
        if streamer is not None:  # prints tokens as they come (the terminal chat); one prompt at a time
            kwargs["streamer"] = streamer
        if stopping_criteria is not None:
            kwargs["stopping_criteria"] = stopping_criteria
        if task_ids is None and self.task_id is not None:
            task_ids = [self.task_id] * len(prompts)
        if routing_state(self.model) is not None:
            tasks = None if task_ids is None or task_ids[0] is None else torch.tensor(task_ids, device=device)
            with adapter_batch(self.model, task_ids=tasks, token_mask=kwargs["attention_mask"]):
                out = self.model.generate(**kwargs)
        else:
            out = self.model.generate(**kwargs)
        eos = self.tokenizer.eos_token_id
        rows = []
        for row, limit in zip(out[:, length:].tolist(), limits):
            row = row[:limit]
            rows.append(row[:row.index(eos)] if eos in row else row)
        return rows

    def decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=True).strip()

    def generate(self, prompts: list[str], images: list[Image.Image | None], max_new_tokens: int = 128,
                 temperature: float = 0.0, streamer=None) -> list[str]:
        return [self.decode(ids) for ids in self.generate_ids(prompts, images, max_new_tokens, temperature,
                                                               streamer=streamer)]


def run(model, tokenizer, image_processor, questions: list[dict], answers_file: str, image_folder: str = "",
        conv_mode="vicuna_v1", batch_size: int = 8, max_new_tokens: int = 128, temperature: float = 0.0,
        model_id: str = "llava", task_id: int | None = None, limit: int | None = None, progress: bool = True,
        skip_missing_images: bool = False, image_aspect_ratio: str | None = None) -> int:
    """Answer the questions not yet in `answers_file`; returns how many were answered now."""
    os.makedirs(os.path.dirname(os.path.abspath(answers_file)), exist_ok=True)
    done = answered_ids(answers_file)
    todo = [q for q in questions if q["question_id"] not in done]
    unanswerable = dict(missing_images(todo, image_folder))
    if unanswerable and not skip_missing_images:
        raise FileNotFoundError(f"{len(unanswerable)} questions have no image file, e.g. "
                                f"{list(unanswerable.items())[:5]}; pass --skip-missing-images to answer the rest "
                                "(the missing ones are recorded as unanswered and scored as such)")
    if limit is not None:
        todo = todo[:limit]
    gen = Generator(model, tokenizer, image_processor, conv_mode, image_aspect_ratio, task_id=task_id)
    written = 0
    with open(answers_file, "a", encoding="utf-8") as out, tqdm(total=len(todo), disable=not progress) as bar:
        for q in [q for q in todo if q["question_id"] in unanswerable]:
            row = {"question_id": q["question_id"], "prompt": q["text"], "text": "", "model_id": model_id,
                   "unanswered": f"image {unanswerable[q['question_id']]} not found",
                   "metadata": {"category": q.get("category")}}
            out.write(json.dumps(row) + "\n")
            written += 1
        out.flush()
        bar.update(len(unanswerable))
        todo = [q for q in todo if q["question_id"] not in unanswerable]
        for start in range(0, len(todo), batch_size):
            batch = todo[start:start + batch_size]
            images = []
            for q in batch:
                if q.get("image"):
                    path = os.path.join(image_folder, q["image"])
                    if not os.path.exists(path):
                        raise FileNotFoundError(f"question {q['question_id']}: image {path} not found")
                    with Image.open(path) as im:
                        images.append(to_rgb(im))
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
    ap.add_argument("--image-aspect-ratio", default=None, choices=["pad", "resize"],
                    help="default: what the checkpoint was trained with (llava_base.json), else pad")
    ap.add_argument("--skip-missing-images", action="store_true",
                    help="answer the questions whose image exists; record the others as unanswered")
    args = ap.parse_args(argv)
    questions = chunk(read_questions(args.question_file), args.num_chunks, args.chunk_idx)
    absent = missing_images(questions, args.image_folder)
    if absent and not args.skip_missing_images:  # before the model loads
        listing = "\n".join(f"  {qid}: {path}" for qid, path in absent[:20])
        raise SystemExit(f"{len(absent)} of {len(questions)} questions have no image file:\n{listing}"
                         + (f"\n  ... and {len(absent) - 20} more" if len(absent) > 20 else "")
                         + "\npass --skip-missing-images to answer the rest (the missing ones count as unanswered)")
    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    dtype = ("bf16" if device.startswith("cuda") else "fp32") if args.dtype == "auto" else args.dtype
    model, tokenizer, image_processor = load_checkpoint_model(args.model_path, dtype=dtype)
    model.to(device)
    info = getattr(model, "llava_base_info", {}) or {}
    conv_mode = args.conv_mode or info.get("version", "vicuna_v1")
    config = adapter_config(model)
    task_id = config.task_id(args.task) if (config is not None and args.task is not None) else None
    n = run(model, tokenizer, image_processor, questions, args.answers_file, args.image_folder, conv_mode,
            args.batch_size, args.max_new_tokens, args.temperature, os.path.basename(args.model_path.rstrip("/")),
            task_id, args.limit, skip_missing_images=args.skip_missing_images,
            image_aspect_ratio=args.image_aspect_ratio)
    print(f"answered {n} questions -> {args.answers_file}")


if __name__ == "__main__":
    main()
