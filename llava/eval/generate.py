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

from PIL import Image
from tqdm import tqdm

from llava.eval.jsonl import read_jsonl
from llava.inference import Generator
from llava.model.image import to_rgb


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


def run(model, tokenizer, image_processor, questions: list[dict], answers_file: str, image_folder: str = "",
        conv_mode="vicuna_v1", batch_size: int = 8, max_new_tokens: int = 128, temperature: float = 0.0,
        model_id: str = "llava", task_id: int | None = None, limit: int | None = None, progress: bool = True,
        skip_missing_images: bool = False, image_aspect_ratio: str | None = None) -> int:
    """Answer the questions not yet in `answers_file` with a loaded model; returns how many were answered now."""
    gen = Generator(model, tokenizer, image_processor, conv_mode, image_aspect_ratio, task_id=task_id)
    return answer_questions(gen, questions, answers_file, image_folder, batch_size, max_new_tokens, temperature,
                            model_id, limit, progress, skip_missing_images)


def answer_questions(gen: Generator, questions: list[dict], answers_file: str, image_folder: str = "",
                     batch_size: int = 8, max_new_tokens: int = 128, temperature: float = 0.0,
                     model_id: str = "llava", limit: int | None = None, progress: bool = True,
                     skip_missing_images: bool = False) -> int:
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
    gen = Generator.from_checkpoint(args.model_path, args.device, args.dtype, args.task, args.conv_mode,
                                    args.image_aspect_ratio)
    n = answer_questions(gen, questions, args.answers_file, args.image_folder, args.batch_size, args.max_new_tokens,
                         args.temperature, os.path.basename(args.model_path.rstrip("/")), args.limit,
                         skip_missing_images=args.skip_missing_images)
    print(f"answered {n} questions -> {args.answers_file}")


if __name__ == "__main__":
    main()
