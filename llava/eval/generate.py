"""Answer a questions file with any checkpoint: `python -m llava.eval.generate --model-path CKPT ...`.

Questions JSONL (LLaVA's: question_id, image, text, category) -> answers JSONL in LLaVA's format (question_id, prompt,
text, answer_id, model_id, metadata: also the image, dtype, batch size and template). Batched greedy decoding with
left padding; `--dtype auto` is LLaVA's evaluation numerics on a GPU (fp16, its model_vqa_loader), fp32 on the CPU.
Resumable: an answer is reused only for the same question id, prompt and image (LLaVA's ids repeat; a changed file
must not reuse stale answers); answers to questions no longer asked are discarded, counted and said. Each answer is
one flushed line, so a killed run leaves no duplicate or half line. `--num-chunks/--chunk-idx` split the questions."""

from __future__ import annotations

import argparse
import collections
import json
import math
import os
import uuid

import torch
from PIL import Image
from tqdm import tqdm

from llava import process_gc
from llava.console import on_a_terminal, progress_bars_only_on_a_terminal
from llava.eval.jsonl import read_jsonl, write_jsonl
from llava.inference import Generator, resolve_eval_device
from llava.model.image import to_rgb


def read_questions(path: str) -> list[dict]:
    """LLaVA's question files: question_id, text, and an optional image (a path under --image-folder)."""
    return read_jsonl(path, required=("question_id", "text"),
                      types={"question_id": (str, int), "text": (str,), "image": (str, type(None))})


def _answer_rows(path: str) -> list[dict]:
    """The rows of an answers file. The file is only ever appended to: a trailing partial line (a kill mid-write) is
    cut off by truncating to the last complete line; nothing before it is rewritten."""
    if not os.path.exists(path):
        return []
    with open(path, "rb") as f:
        data = f.read()
    end = data.rfind(b"\n") + 1
    if end < len(data):
        os.truncate(path, end)  # drop only the unfinished tail
    rows = []
    for lineno, line in enumerate(data[:end].splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            qid, prompt, meta = row["question_id"], row.get("prompt", ""), row.get("metadata") or {}
            if isinstance(qid, bool) or not isinstance(qid, (str, int)) or not isinstance(prompt, str) \
                    or not isinstance(meta, dict):
                raise TypeError("question_id must be a string or an integer, prompt a string, metadata an object")
        except (ValueError, KeyError, TypeError, RecursionError) as e:  # not JSON / UTF-8, not an object, no id
            raise ValueError(f"{path}: line {lineno} is not an answer row ({type(e).__name__}: {str(e)[:100]}); "
                             "the file was not written by "
                             "llava.eval.generate - move it away") from e
        rows.append(row)
    return rows


def answered_ids(path: str) -> set:
    """Ids with an answer in the file."""
    return {row["question_id"] for row in _answer_rows(path)}


def question_key(q: dict) -> tuple:
    return str(q["question_id"]), q["text"], q.get("image") or None


def answer_key(row: dict) -> tuple:
    image = (row.get("metadata") or {}).get("image", "?")  # "?": a row of LLaVA's, which records no image
    return str(row["question_id"]), row.get("prompt"), image


def reusable(rows: list[dict], questions: list[dict]) -> tuple[list[dict], collections.Counter]:
    """(rows answering a question still asked, Counter of the question keys they answer). A row answers a question
    when id, prompt and image agree (a row of LLaVA's, without an image, on id and prompt); a question asked twice
    takes two rows."""
    asked = collections.Counter(question_key(q) for q in questions)
    by_text = collections.defaultdict(list)
    for k in asked:
        by_text[k[:2]].append(k)
    kept, done = [], collections.Counter()
    for row in rows:
        qid, prompt, image = answer_key(row)
        candidates = by_text.get((qid, prompt), []) if image == "?" else [(qid, prompt, image or None)]
        match = next((k for k in candidates if done[k] < asked.get(k, 0)), None)
        if match is not None:
            done[match] += 1
            kept.append(row)
    return kept, done


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


def run(model, tokenizer, image_processor, questions: list[dict], answers_file: str, image_folder: str = "",
        conv_mode="vicuna_v1", batch_size: int = 8, max_new_tokens: int = 128, temperature: float = 0.0,
        model_id: str = "llava", task_id: int | None = None, limit: int | None = None, progress: bool = True,
        skip_missing_images: bool = False, image_aspect_ratio: str | None = None) -> int:
    """Answer the questions not yet in `answers_file` with a loaded model; returns how many were answered now."""
    gen = Generator.for_model(model, tokenizer, image_processor, conv_mode, image_aspect_ratio, task_id=task_id)
    return answer_questions(gen, questions, answers_file, image_folder, batch_size, max_new_tokens, temperature,
                            model_id, limit, progress, skip_missing_images)


def load_image(question: dict, image_folder: str) -> Image.Image | None:
    if not question.get("image"):
        return None
    path = os.path.join(image_folder, question["image"])
    if not os.path.exists(path):
        raise FileNotFoundError(f"question {question['question_id']}: image {path} not found")
    with Image.open(path) as im:
        return to_rgb(im)


DTYPE_NAMES = {torch.float32: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}


def compute_dtype(model) -> str:
    """The dtype the base computes in (adapters may keep fp32 masters beside a bf16 base)."""
    dtype = model.get_input_embeddings().weight.dtype
    return DTYPE_NAMES.get(dtype, str(dtype))


def drop_stale(answers_file: str, questions: list[dict]) -> tuple[collections.Counter, int]:
    """Keep the rows that answer a question still asked (same id, prompt and image); rewrite the file without the
    others (atomically, only when there are any). Returns (answered question keys, rows discarded)."""
    rows = _answer_rows(answers_file)
    kept, done = reusable(rows, questions)
    if len(kept) < len(rows):
        write_jsonl(kept, answers_file)
    return done, len(rows) - len(kept)


def answer_questions(gen: Generator, questions: list[dict], answers_file: str, image_folder: str = "",
                     batch_size: int = 8, max_new_tokens: int = 128, temperature: float = 0.0,
                     model_id: str = "llava", limit: int | None = None, progress: bool = True,
                     skip_missing_images: bool = False) -> int:
    os.makedirs(os.path.dirname(os.path.abspath(answers_file)), exist_ok=True)
    done, discarded = drop_stale(answers_file, questions)
    if discarded:
        print(f"{answers_file}: discarded {discarded} answers whose question, prompt or image is no longer in the "
              "question file; answering those questions anew")
    todo = []
    for q in questions:
        k = question_key(q)
        if done[k]:
            done[k] -= 1
        else:
            todo.append(q)
    absent = missing_images(todo, image_folder)
    if absent and not skip_missing_images:
        raise FileNotFoundError(f"{len(absent)} questions have no image file, e.g. "
                                f"{absent[:5]}; pass --skip-missing-images to answer the rest "
                                "(the missing ones are recorded as unanswered and scored as such)")
    if limit is not None:
        todo = todo[:limit]
    settings = {"dtype": compute_dtype(gen.model), "batch_size": batch_size, "conv_mode": gen.conv_mode}

    def row(q: dict, text: str, full_prompt: str | None = None, **extra) -> dict:
        meta = {"category": q.get("category"), "image": q.get("image") or None, **settings}
        if full_prompt is not None:
            meta["full_prompt"] = full_prompt  # what the model was sent: the template around the question's text
        return {"question_id": q["question_id"], "prompt": q["text"], "text": text,
                "answer_id": uuid.uuid4().hex[:22], "model_id": model_id, **extra, "metadata": meta}

    absent_paths = {path for _, path in absent}
    missing = [q for q in todo if q.get("image") and os.path.join(image_folder, q["image"]) in absent_paths]
    todo = [q for q in todo if not (q.get("image") and os.path.join(image_folder, q["image"]) in absent_paths)]
    written = 0
    with open(answers_file, "a", encoding="utf-8") as out, tqdm(total=len(todo) + len(missing),
                                                                disable=not progress) as bar:
        for q in missing:
            path = os.path.join(image_folder, q["image"])
            out.write(json.dumps(row(q, "", unanswered=f"image {path} not found")) + "\n")
            written += 1
        out.flush()
        bar.update(len(missing))
        for start in range(0, len(todo), batch_size):
            batch = todo[start:start + batch_size]
            images = [load_image(q, image_folder) for q in batch]
            prompts = [gen.prompt_for(q["text"], im is not None, exact=True) for q, im in zip(batch, images)]
            texts = gen.generate(prompts, images, max_new_tokens, temperature)
            for q, prompt, text in zip(batch, prompts, texts):
                out.write(json.dumps(row(q, text, prompt)) + "\n")
                out.flush()
                written += 1
            bar.update(len(batch))
    return written


def main(argv=None):
    process_gc.imports_done()
    progress_bars_only_on_a_terminal()  # a log file gets no carriage-return floods
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model-path", required=True, help="checkpoint dir, merged/llava-hf dir, or a preset (tiny, small)")
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
    ap.add_argument("--dtype", default="auto", choices=["auto", "fp16", "bf16", "fp32"],
                    help="auto: fp16 on a GPU (LLaVA-1.5's evaluation numerics), fp32 on the CPU")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--image-aspect-ratio", default=None, choices=["pad", "resize"],
                    help="default: what the checkpoint was trained with (llava_base.json), else pad")
    ap.add_argument("--skip-missing-images", action="store_true",
                    help="answer the questions whose image exists; record the others as unanswered")
    ap.add_argument("--compile", action="store_true", help="static KV cache, decoding step compiled (GPU)")
    args = ap.parse_args(argv)
    questions = chunk(read_questions(args.question_file), args.num_chunks, args.chunk_idx)
    absent = missing_images(questions, args.image_folder)
    if absent and not args.skip_missing_images:  # before the model loads
        listing = "\n".join(f"  {qid}: {path}" for qid, path in absent[:20])
        raise SystemExit(f"{len(absent)} of {len(questions)} questions have no image file:\n{listing}"
                         + (f"\n  ... and {len(absent) - 20} more" if len(absent) > 20 else "")
                         + "\npass --skip-missing-images to answer the rest (the missing ones count as unanswered)")
    gen = Generator.from_checkpoint(args.model_path, *resolve_eval_device(args.device, args.dtype), args.task,
                                    args.conv_mode, args.image_aspect_ratio, compiled=args.compile)
    n = answer_questions(gen, questions, args.answers_file, args.image_folder, args.batch_size, args.max_new_tokens,
                         args.temperature, os.path.basename(args.model_path.rstrip("/")), args.limit,
                         progress=on_a_terminal(), skip_missing_images=args.skip_missing_images)
    print(f"answered {n} questions -> {args.answers_file}")


if __name__ == "__main__":
    main()
