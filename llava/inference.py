"""Answering with a loaded LLaVA: the Generator that evaluation, serving, the lmms-eval plugin and the terminal chat
share, and loading a checkpoint for it (`Generator.from_checkpoint`)."""

from __future__ import annotations

import torch
from PIL import Image
from transformers import CompileConfig, StoppingCriteria, StoppingCriteriaList

from llava.adapters.attached import adapter_batch, adapter_config, routing_state
from llava.checkpoint import image_aspect_ratio_of, load_checkpoint_model, template_of
from llava.constants import DEFAULT_IMAGE_TOKEN
from llava.conversation import get_template
from llava.data.preprocess import encode_prompt
from llava.data.processor_batch import Conversation, to_messages
from llava.model.image import ImageTransform
from llava.model.image_text_to_text import is_processor

GREEDY_BELOW = 1e-5  # as vLLM: a smaller temperature is greedy (1e-124 would overflow the logits to inf / nan)
# compiled decoding: prompts are left-padded to a multiple of PROMPT_BUCKET and the static cache holds a multiple of
# NEW_TOKENS_BUCKET new tokens, so its shape (and the compiled graph) repeats across calls instead of recompiling
PROMPT_BUCKET, NEW_TOKENS_BUCKET = 64, 32


def is_sampling(temperature: float) -> bool:
    return temperature >= GREEDY_BELOW


def resolve_device(device: str = "auto", dtype: str = "auto") -> tuple[str, str]:
    """auto: CUDA when there is one, in bf16; else the CPU in fp32."""
    device = ("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device
    dtype = ("bf16" if device.startswith("cuda") else "fp32") if dtype == "auto" else dtype
    return device, dtype


def resolve_eval_device(device: str = "auto", dtype: str = "auto") -> tuple[str, str]:
    """As resolve_device, but auto on a GPU is fp16: LLaVA-1.5's evaluation numerics (its model_vqa_loader);
    bf16 when asked, to answer as training ran."""
    device, resolved = resolve_device(device, dtype)
    if dtype == "auto" and device.startswith("cuda"):
        resolved = "fp16"
    return device, resolved


def bucket(n: int, size: int) -> int:
    return -(-n // size) * size


class StopAtLength(StoppingCriteria):
    """Every row stops at `length` tokens. transformers' own MaxLengthCriteria, passed in, would be reported as
    clashing with the one generate builds from max_new_tokens (here the bucket's, larger)."""

    def __init__(self, length: int):
        self.length = length

    def __call__(self, input_ids, scores, **kwargs) -> torch.Tensor:
        return torch.full((input_ids.shape[0],), input_ids.shape[1] >= self.length, dtype=torch.bool,
                          device=input_ids.device)


def _contiguous(module, args):
    return (args[0].contiguous(), *args[1:])


def contiguous_head_input(model) -> None:
    """Make the LM head's input contiguous (once per model). In prefill, generate keeps only the last position
    (hidden[:, -1:], a strided view), and torch's CPU linear on a strided 3-d bf16 input broadcasts the whole
    [vocab, hidden] weight per row into a batched matmul, orders of magnitude slower than the contiguous input
    (bench/kit_eval_speed.py; the numbers are in docs/benchmarks.md)."""
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    if head is not None and not getattr(head, "_llava_contiguous_input", False):
        head.register_forward_pre_hook(_contiguous)
        head._llava_contiguous_input = True


class Generator:
    """Batched greedy (or sampled) generation with a loaded LLaVA; left padding so all prompts end together."""

    def __init__(self, model, tokenizer, image_processor, conv_mode: str = "vicuna_v1",
                 image_aspect_ratio: str | None = None, task_id: int | None = None, compiled: bool = False):
        """compiled: decode with a static KV cache, the decoding step compiled whole (torch.compile, fullgraph; CUDA
        graphs on a GPU: transformers compiles it where the device supports it, and runs the static cache eagerly
        elsewhere). Greedy answers are the eager ones."""
        self.model = model.eval()
        self.compiled = compiled
        contiguous_head_input(model)
        self.tokenizer = tokenizer
        self.eos_token_id = tokenizer.eos_token_id  # where a reply ends (another family: ProcessorGenerator's)
        self.conv_mode = conv_mode
        self.template = get_template(conv_mode, tokenizer)
        if image_aspect_ratio is None:  # images reach the model as in training: pad (LLaVA-1.5) or resize (authors')
            image_aspect_ratio = image_aspect_ratio_of(model)
        self.transform = ImageTransform(image_processor, image_aspect_ratio)
        self.task_id = task_id
        self.image_seq_length = model.config.image_seq_length

    @classmethod
    def from_checkpoint(cls, path: str, device: str = "auto", dtype: str = "auto", task: str | int | None = None,
                        conv_mode: str | None = None, image_aspect_ratio: str | None = None,
                        bits: int | None = None, compiled: bool = False) -> Generator:
        """Any checkpoint of ours (or a merged / llava-hf directory, or a preset name) ready to answer: on `device`,
        with the template and image handling it was trained with unless given, `task` naming a task head."""
        device, dtype = resolve_device(device, dtype)
        model, tokenizer, image_processor = load_checkpoint_model(path, dtype=dtype, bits=bits)
        if bits is None:  # bitsandbytes places quantized weights itself
            model.to(device)
        config = adapter_config(model)
        task_id = config.task_id(task) if (config is not None and task is not None) else None
        return cls.for_model(model, tokenizer, image_processor, conv_mode or template_of(model), image_aspect_ratio,
                             task_id, compiled)

    @classmethod
    def for_model(cls, model, tokenizer, image_processor, conv_mode: str = "vicuna_v1",
                  image_aspect_ratio: str | None = None, task_id: int | None = None, compiled: bool = False):
        """A Generator for a loaded model: LLaVA-1.5's, or ProcessorGenerator for a family loaded with its processor."""
        if is_processor(image_processor):
            return ProcessorGenerator(model, tokenizer, image_processor, task_id, compiled)
        return cls(model, tokenizer, image_processor, conv_mode, image_aspect_ratio, task_id, compiled)

    def prompt_for(self, question: str, has_image: bool, exact: bool = False) -> str:
        """The template around `question`, the image token first. exact: the question's text kept byte for byte, as
        LLaVA's model_vqa_loader sends a question file's text (a chat message is stripped)."""
        laid_out = DEFAULT_IMAGE_TOKEN in question  # a text that places the image itself: the token goes first
        question = question.replace(DEFAULT_IMAGE_TOKEN, "")
        question = question.strip() if (laid_out or not exact) else question
        if has_image:
            question = f"{DEFAULT_IMAGE_TOKEN}\n{question}"
        return self.template.prompt(question)

    def encode(self, prompt: str, image: Image.Image | None = None) -> list[int]:
        """The prompt's token ids as the model sees them (each image placeholder expanded, whatever the image)."""
        return encode_prompt(prompt, self.tokenizer, self.image_seq_length, self.template.add_special_tokens)

    @torch.no_grad()
    def generate_ids(self, prompts: list[str], images: list[Image.Image | None], max_new_tokens: int | list[int] = 128,
                     temperature: float = 0.0, top_p: float = 1.0, task_ids: list[int | None] | None = None,
                     streamer=None, stopping_criteria=None) -> list[list[int]]:
        """Each prompt's new token ids, up to (not including) its end-of-sequence token and at most its
        max_new_tokens. Rows may have their own max_new_tokens and task heads (the server batches requests)."""
        device = next(self.model.parameters()).device
        limits = [max_new_tokens] * len(prompts) if isinstance(max_new_tokens, int) else list(max_new_tokens)
        steps = bucket(max(limits), NEW_TOKENS_BUCKET) if self.compiled else max(limits)
        dtype = next(self.model.parameters()).dtype
        kwargs = {k: v.to(device, dtype) if v.is_floating_point() else v.to(device)
                  for k, v in self.batch_inputs(prompts, images).items()}
        length = kwargs["input_ids"].shape[1]
        kwargs.update(max_new_tokens=steps, pad_token_id=self.tokenizer.pad_token_id, eos_token_id=self.eos_token_id)
        if self.compiled:  # transformers compiles the decoding step only on a GPU: elsewhere the static cache alone
            kwargs["cache_implementation"] = "static"
            if device.type == "cuda":
                kwargs["compile_config"] = CompileConfig(fullgraph=True)
        if is_sampling(temperature):
            kwargs.update(do_sample=True, temperature=temperature, top_p=top_p)
        else:
            kwargs.update(do_sample=False)
        if streamer is not None:  # prints tokens as they come (the terminal chat); one prompt at a time
            kwargs["streamer"] = streamer
        if self.compiled and steps > max(limits):  # the cache is sized for the bucket; generation stops at the limit
            stopping_criteria = StoppingCriteriaList([*(stopping_criteria or []), StopAtLength(length + max(limits))])
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
        ends = set(self.eos_token_id) if isinstance(self.eos_token_id, list) else {self.eos_token_id}
        rows = []
        for row, limit in zip(out[:, length:].tolist(), limits):
            row = row[:limit]
            end = next((i for i, t in enumerate(row) if t in ends), len(row))
            rows.append(row[:end])
        return rows

    def batch_inputs(self, prompts: list[str], images: list[Image.Image | None]) -> dict[str, torch.Tensor]:
        """The prompts left-padded (to a multiple of PROMPT_BUCKET when compiled) and the images' pixels."""
        encoded = [self.encode(p) for p in prompts]
        length = max(len(e) for e in encoded)
        length = bucket(length, PROMPT_BUCKET) if self.compiled else length
        input_ids = torch.full((len(encoded), length), self.tokenizer.pad_token_id, dtype=torch.long)
        attention_mask = torch.zeros_like(input_ids)
        for i, e in enumerate(encoded):
            input_ids[i, length - len(e):] = torch.tensor(e)
            attention_mask[i, length - len(e):] = 1
        batch = {"input_ids": input_ids, "attention_mask": attention_mask}
        pixels = [self.transform(im) for im in images if im is not None]
        if pixels:
            batch["pixel_values"] = torch.stack(pixels)
        return batch

    def decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=True).strip()

    def generate(self, prompts: list[str], images: list[Image.Image | None], max_new_tokens: int = 128,
                 temperature: float = 0.0, streamer=None) -> list[str]:
        return [self.decode(ids) for ids in self.generate_ids(prompts, images, max_new_tokens, temperature,
                                                               streamer=streamer)]


class ProcessorTemplate:
    """A family's own chat template in the LLaVA templates' shape where serving reads them (name, style, roles, render:
    turns with <image> where each image goes, rendered by the processor; no reply spans: training has its own)."""

    name, style, roles = "chat_template", "processor", ("user", "assistant")
    def __init__(self, processor):
        self.processor = processor

    def render(self, turns: list[tuple[int, str]], add_generation_prompt: bool = False, system: str | None = None):
        images = sum(text.count(DEFAULT_IMAGE_TOKEN) for role, text in turns if role == 0)
        messages = to_messages(Conversation(turns, [None] * images, "the conversation"))
        if system is not None:
            messages.insert(0, {"role": "system", "content": [{"type": "text", "text": system}]})
        return self.processor.apply_chat_template(messages, tokenize=False,
                                                  add_generation_prompt=add_generation_prompt), []


class ProcessorGenerator(Generator):
    """Generation for another family than LLaVA-1.5 (Gemma 3, Idefics3, LLaVA-NeXT, ...): prompts through its own
    chat template, images through its own processor; batching, routing, compiling and stopping as the Generator."""

    def __init__(self, model, tokenizer, processor, task_id: int | None = None, compiled: bool = False):
        self.model, self.compiled = model.eval(), compiled
        contiguous_head_input(model)
        self.tokenizer, self.processor, self.task_id = tokenizer, processor, task_id
        self.template = ProcessorTemplate(processor)
        self.conv_mode = self.template.name

    def prompt_for(self, question: str, has_image: bool, exact: bool = False) -> str:
        question = question.replace(DEFAULT_IMAGE_TOKEN, "")
        content = [{"type": "image"}] * has_image + [{"type": "text", "text": question if exact else question.strip()}]
        return self.processor.apply_chat_template([{"role": "user", "content": content}], tokenize=False,
                                                  add_generation_prompt=True)

    @property
    def eos_token_id(self) -> int | list[int]:
        configured = self.model.generation_config.eos_token_id  # the model's end of a reply (often several ids)
        return configured if configured is not None else self.tokenizer.eos_token_id

    def encode(self, prompt: str, image: Image.Image | None = None) -> list[int]:
        """As the processor expands the prompt with this image (tiles and grids vary with its size)."""
        return self.batch_inputs([prompt], [image])["input_ids"][0].tolist()

    def batch_inputs(self, prompts: list[str], images: list[Image.Image | None]) -> dict[str, torch.Tensor]:
        per_prompt = [[image] if image is not None else [] for image in images]
        kwargs = dict(padding=True, padding_side="left", add_special_tokens=False, return_tensors="pt",
                      **({"pad_to_multiple_of": PROMPT_BUCKET} if self.compiled else {}))
        return dict(self.processor(text=prompts, images=per_prompt if any(per_prompt) else None, **kwargs))
