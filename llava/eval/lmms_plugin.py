"""lmms-eval model plugin: evaluate any checkpoint of ours with lmms-eval's 100+ tasks.

    python -m lmms_eval --model llava_asymlora \
        --model_args pretrained=CKPT,task=NAME,conv_template=vicuna_v1 --batch_size 8 --tasks mme

Registered through the `lmms_eval.models` entry-point group (pyproject), the way lmms-eval loads plugin models, so
it needs nothing but `pip install "llava-asymlora[lmms-eval]"` and `pip install --no-deps lmms-eval==0.7.3`
(lmms-eval's own pins would downgrade protobuf below what transformers' tokenizer loading needs). `pretrained` is a training checkpoint of any scheme
(routed heads route per token as in training; `task` picks an AsymLoRA task head), a merged llava-hf directory, or
`tiny`. Prompts and decoding are `llava.eval.generate`'s, so lmms-eval's answers are ours for the same questions.
"""

from __future__ import annotations

import torch
from PIL import Image

try:
    from lmms_eval.api.instance import Instance
    from lmms_eval.api.model import lmms
    from lmms_eval.models.registry_v2 import ModelManifest
except ImportError as e:  # pragma: no cover - the message is the point
    raise ImportError('the lmms-eval plugin needs lmms-eval: pip install "llava-asymlora[lmms-eval]" && '
                      'pip install --no-deps lmms-eval==0.7.3') from e
from tqdm import tqdm

from llava.adapters.attached import adapter_batch, routing_state
from llava.data.preprocess import encode_prompt
from llava.inference import Generator, resolve_eval_device
from llava.model.image import to_rgb

MODEL_ID = "llava_asymlora"


def manifest() -> ModelManifest:
    """The entry point's payload: where lmms-eval finds the class."""
    return ModelManifest(model_id=MODEL_ID, simple_class_path=f"{__name__}.LlavaAsymLoRA")


def _first_image(visuals) -> Image.Image | None:
    """lmms-eval passes a list of visuals per document; LLaVA-1.5 takes one image."""
    while isinstance(visuals, (list, tuple)):
        if not visuals:
            return None
        visuals = visuals[0]
    return to_rgb(visuals) if isinstance(visuals, Image.Image) else None


def _cut_at_stop(text: str, until: list[str]) -> str:
    for stop in until:
        if stop and stop in text:
            text = text.split(stop, 1)[0]
    return text.strip()


class LlavaAsymLoRA(lmms):
    def __init__(self, pretrained: str, task: str | None = None, conv_template: str | None = None,
                 batch_size: int | str = 1, device: str = "auto", dtype: str = "auto", compile: bool | str = False,
                 **kwargs):
        super().__init__()
        device, dtype = resolve_eval_device(device, dtype)  # fp16 on a GPU, as LLaVA-1.5 and lmms-eval evaluate
        compiled = compile if isinstance(compile, bool) else str(compile).lower() in ("1", "true", "yes")
        self.generator = Generator.from_checkpoint(pretrained, device, dtype, task, conv_template, compiled=compiled)
        self.batch_size_per_gpu = int(batch_size)
        self.device = device

    def _visual(self, request: Instance) -> Image.Image | None:
        _, _, doc_to_visual, doc_id, task, split = request.args
        return _first_image(doc_to_visual(self.task_dict[task][split][doc_id]))

    def generate_until(self, requests: list[Instance]) -> list[str]:
        """Greedy (or sampled, per the task's generation_kwargs) answers, batched by identical settings."""
        out: list[str | None] = [None] * len(requests)
        groups: dict[str, list[int]] = {}
        for i, request in enumerate(requests):
            groups.setdefault(repr(sorted(request.args[1].items())), []).append(i)
        bar = tqdm(total=len(requests), disable=self.rank != 0, desc="llava_asymlora responding")
        for indices in groups.values():
            kwargs = dict(requests[indices[0]].args[1])
            until = kwargs.get("until") or []
            until = [until] if isinstance(until, str) else list(until)
            max_new_tokens = int(kwargs.get("max_new_tokens", 128))
            temperature = float(kwargs.get("temperature", 0.0)) if kwargs.get("do_sample", False) else 0.0
            for start in range(0, len(indices), self.batch_size_per_gpu):
                batch = indices[start:start + self.batch_size_per_gpu]
                images = [self._visual(requests[i]) for i in batch]
                prompts = [self.generator.prompt_for(requests[i].args[0], im is not None) for i, im in zip(batch, images)]
                texts = self.generator.generate(prompts, images, max_new_tokens, temperature)
                for i, text in zip(batch, texts):
                    out[i] = _cut_at_stop(text, until)
                bar.update(len(batch))
        bar.close()
        return out

    @torch.no_grad()
    def loglikelihood(self, requests: list[Instance]) -> list[tuple[float, bool]]:
        """Sum of log-probabilities of the target after the prompt, and whether greedy decoding gives it."""
        gen = self.generator
        model = gen.model
        results = []
        for request in tqdm(requests, disable=self.rank != 0, desc="llava_asymlora log-likelihood"):
            context, doc_to_target, doc_to_visual, doc_id, task, split = request.args
            doc = self.task_dict[task][split][doc_id]
            target = doc_to_target(doc) if callable(doc_to_target) else str(doc_to_target)
            image = _first_image(doc_to_visual(doc))
            prompt = gen.prompt_for(context, image is not None)
            prefix = encode_prompt(prompt, gen.tokenizer, gen.image_seq_length, gen.template.add_special_tokens)
            full = encode_prompt(prompt + " " + target, gen.tokenizer, gen.image_seq_length,
                                 gen.template.add_special_tokens)
            ids = torch.tensor([full], device=next(model.parameters()).device)
            kwargs = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
            if image is not None:
                dtype = next(model.parameters()).dtype
                kwargs["pixel_values"] = gen.transform(image).unsqueeze(0).to(ids.device, dtype)
            task_ids = None if gen.task_id is None else torch.tensor([gen.task_id], device=ids.device)
            if routing_state(model) is not None:
                with adapter_batch(model, task_ids=task_ids, token_mask=kwargs["attention_mask"]):
                    logits = model(**kwargs).logits
            else:
                logits = model(**kwargs).logits
            logprobs = torch.log_softmax(logits[0, len(prefix) - 1:-1].float(), dim=-1)
            wanted = ids[0, len(prefix):]
            total = logprobs.gather(-1, wanted.unsqueeze(-1)).sum().item()
            results.append((total, bool((logprobs.argmax(-1) == wanted).all())))
        return results

    def generate_until_multi_round(self, requests) -> list[str]:
        raise NotImplementedError("llava_asymlora answers one round per request (as LLaVA-1.5's evaluation does)")
