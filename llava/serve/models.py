"""The checkpoints a server holds, the model ids a request may name, and loading them in the background.

An id is the checkpoint's name (`--model-path NAME=DIR`, default the directory's name); a checkpoint trained with
task heads (asymlora, num_tasks > 1) is served as one id per head, `NAME:TASK`. The conversation template and
image handling come from the checkpoint's own llava_base.json, never from its directory name.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from dataclasses import dataclass, field

from llava.adapters.attached import adapter_config
from llava.checkpoint import image_aspect_ratio_of
from llava.inference import Generator
from llava.serve.errors import BadRequest, NotFound, Unavailable


@dataclass
class ServedModel:
    name: str
    path: str
    generator: Generator
    requires_image: bool = False
    loaded_at: float = field(default_factory=time.time)

    @property
    def config(self):
        return adapter_config(self.generator.model)

    @property
    def scheme(self) -> str:
        return self.config.scheme if self.config is not None else "none"

    @property
    def task_names(self) -> list[str]:
        """Task heads a request must pick from ([] when the checkpoint has none)."""
        return self.config.task_head_names if self.config is not None else []

    @property
    def routed(self) -> bool:
        """Per-token routers (asymlora / moe_lora with several experts): what the routing view shows."""
        return self.config is not None and self.config.routed

    @property
    def context_length(self) -> int:
        return int(self.generator.model.config.text_config.max_position_embeddings)

    @property
    def ids(self) -> list[str]:
        return [f"{self.name}:{t}" for t in self.task_names] or [self.name]

    def describe(self) -> dict:
        return {"scheme": self.scheme, "template": self.generator.template.name, "routed": self.routed,
                "experts": self.config.num_experts if self.config is not None else 0,
                "task_heads": self.task_names, "image_aspect_ratio": image_aspect_ratio_of(self.generator.model),
                "context_length": self.context_length, "requires_image": self.requires_image}


def parse_model_path(spec: str) -> tuple[str, str]:
    """`NAME=DIR` or `DIR` (named after the directory) -> (name, dir)."""
    name, sep, path = spec.partition("=")
    if not sep:
        path = spec
        name = os.path.basename(os.path.normpath(spec)) or spec
    if not name or ":" in name or "/" in name:
        raise ValueError(f"--model-path {spec}: a served name may not be empty or hold ':' or '/' (NAME=DIR)")
    return name, path


def load_served(name: str, path: str, device: str = "auto", dtype: str = "auto", conv_mode: str | None = None,
                requires_image: bool = False, compiled: bool = False) -> ServedModel:
    generator = Generator.from_checkpoint(path, device, dtype, conv_mode=conv_mode, compiled=compiled)
    return ServedModel(name, path, generator, requires_image)


class ModelRegistry:
    """Loads the checkpoints one after another in a background thread; a request for one not loaded yet is told
    so (503) rather than left waiting or answered with a generic error."""

    def __init__(self, specs: list[str], **load_kw):
        self.pending = dict(parse_model_path(s) for s in specs)
        if len(self.pending) != len(specs):
            raise ValueError("two --model-path entries have the same name; name them NAME=DIR")
        self.models: dict[str, ServedModel] = {}
        self.failed: dict[str, str] = {}
        self._load_kw = load_kw
        self._thread: threading.Thread | None = None

    def start(self, background: bool = True) -> ModelRegistry:
        if background:
            self._thread = threading.Thread(target=self._load_all, name="load-models", daemon=True)
            self._thread.start()
        else:
            self._load_all()
        return self

    def wait(self, timeout: float | None = None) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    def _load_all(self) -> None:
        for name, path in list(self.pending.items()):
            try:
                self.models[name] = load_served(name, path, **self._load_kw)
            except (OSError, ValueError, RuntimeError) as e:  # a bad checkpoint is reported, the others still load
                self.failed[name] = f"{type(e).__name__}: {e}"
                print(f"error: model {name} ({path}) failed to load: {self.failed[name]}", file=sys.stderr, flush=True)
            del self.pending[name]

    @property
    def loading(self) -> bool:
        return bool(self.pending)

    def ids(self) -> list[str]:
        return [i for m in self.models.values() for i in m.ids]

    def resolve(self, model_id: str | None) -> tuple[ServedModel, int | None]:
        """A request's `model` -> (checkpoint, task id), or the error a user can act on."""
        if not model_id and not self.pending and len(self.ids()) == 1:  # one choice: `model` may be left out
            model_id = self.ids()[0]
        name, _, task = (model_id or "").partition(":")
        if name in self.pending:
            raise Unavailable(f"model {name} is still loading; retry in a few seconds", code="model_loading")
        if name in self.failed:
            raise Unavailable(f"model {name} failed to load: {self.failed[name]}", code="model_load_failed")
        if name not in self.models:
            raise NotFound(f"model {model_id!r} does not exist; this server has {self.ids()}", param="model",
                           code="model_not_found")
        served = self.models[name]
        heads = served.task_names
        if heads and not task:
            raise BadRequest(f"model {name} has task heads: name one as {', '.join(served.ids)}", param="model",
                             code="model_not_found")
        if task and task not in heads:
            raise NotFound(f"model {name} has no task head {task!r}; it has {heads or 'none'}", param="model",
                           code="model_not_found")
        return served, (heads.index(task) if task else None)
