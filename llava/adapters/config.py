"""AdapterConfig: which scheme, where, at what size. Saved as `llava_adapters.json` in every checkpoint.

The file names are this project's own, not PEFT's (`adapter_config.json`, `adapter_model.safetensors`): transformers,
PEFT and vLLM take a directory holding PEFT's names for a PEFT adapter and fail on this schema in confusing ways.
Checkpoints written under PEFT's names by earlier versions still load (`config_path`); `export_peft` writes PEFT's
names with PEFT's schema.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field

from llava.adapters import presets
from llava.adapters.balance import KINDS as BALANCE_KINDS
from llava.adapters.presets import ATTENTION, MLP
from llava.adapters.routing import ROUTER_INITS, ROUTER_INPUTS, ROUTERS
from llava.adapters.schemes import Scheme, scheme

__all__ = ["AdapterConfig", "ATTENTION", "MLP", "CONFIG_NAME", "config_path"]
CONFIG_NAME = "llava_adapters.json"
LEGACY_CONFIG_NAME = "adapter_config.json"  # what earlier versions wrote (PEFT's name, this project's schema)


def config_path(directory: str) -> str | None:
    """The adapter config of a checkpoint directory: the current name, else an earlier version's; None if neither.
    A PEFT adapter's own adapter_config.json (it has `peft_type`) is named as such."""
    path = os.path.join(directory, CONFIG_NAME)
    if os.path.exists(path):
        return path
    legacy = os.path.join(directory, LEGACY_CONFIG_NAME)
    if not os.path.exists(legacy):
        return None
    with open(legacy) as f:
        raw = json.load(f)
    if isinstance(raw, dict) and "peft_type" in raw:
        raise ValueError(f"{directory} is a PEFT adapter ({LEGACY_CONFIG_NAME} with peft_type "
                         f"{raw['peft_type']}), not a llava-asymlora checkpoint: load it with PEFT")
    return legacy


@dataclass
class AdapterConfig:
    """Hyper-parameters of the adapter family (see docs/design.md, "The adapter family").

    scheme           lora | asymlora | moe_lora | mixlora
    r, alpha         rank and scale numerator: delta is multiplied by alpha / r
    num_experts (E)  routed heads (asymlora), expert pairs (moe_lora), factor-pool size (mixlora)
    num_tasks (T)    asymlora only: B heads per task, selected by the batch's task ids (paper Eq. 2 / Eq. 3)
    router           dense (softmax over E) | topk (top_k experts, renormalised) | switch (top_k experts, gated by
                     their full-softmax probability)
    router_input     token (each token routes on its own input) | prompt (one gate per sample from the mean of its
                     prompt tokens, kept through decoding)
    router_temperature, router_noise, router_init
                     routers' logits divided by the temperature; Gaussian noise of that std added to them in
                     training; initial weights kaiming (nn.Linear's) or zero (every gate uniform at the start)
    router_scope     module (each linear routes on its own input) | mlp_block (one router per MLP block, fed the
                     block input, shared by gate/up/down: the paper's released code)
    targets          linear layer names (suffixes) of the language model that get an adapter
    mixture_targets  subset of targets that get `scheme`; the other targets get plain lora. None: all targets.
    layers           indices of the decoder layers whose targets get adapters; None: every layer (PEFT's
                     `layers_to_transform`). Gradients stop at the lowest adapted layer, so adapting only the top
                     layers also saves the backward pass through the rest.
    balance_coef     load-balancing loss coefficient (0 disables)
    balance_loss     hydra (the AsymLoRA authors' per-sample loss pooled over all routed layers) | switch
                     (Switch Transformer's, per router); formulas in balance.py
    router_z_loss_coef
                     router z-loss coefficient (ST-MoE: the squared logsumexp of the router logits; 0 disables);
                     formula in z_loss.py
    router_bias      routers get a bias (the AsymLoRA authors' nn.Linear router has one)
    adapter_dtype    fp32 (adapter weights in fp32 whatever the base, computed in the input dtype) | base
    task_names       names of the tasks, in task-id order (from the data mixture)
    """

    scheme: str = "lora"
    r: int = 32
    alpha: float = 64.0
    dropout: float = 0.05
    num_experts: int = 1
    num_tasks: int = 1
    router: str = "dense"
    top_k: int = 1
    router_input: str = "token"
    router_temperature: float = 1.0
    router_noise: float = 0.0
    router_init: str = "kaiming"
    router_scope: str = "module"
    targets: list[str] = field(default_factory=lambda: ATTENTION + MLP)
    mixture_targets: list[str] | None = None
    layers: list[int] | None = None
    balance_coef: float = 0.0
    balance_loss: str = "hydra"
    router_z_loss_coef: float = 0.0
    router_bias: bool = False
    adapter_dtype: str = "fp32"
    task_names: list[str] = field(default_factory=list)

    def __post_init__(self):
        spec = scheme(self.scheme)
        if self.r < 1 or self.num_experts < 1 or self.num_tasks < 1:
            raise ValueError("r, num_experts and num_tasks must be >= 1")
        if self.router not in ROUTERS:
            raise ValueError(f"router must be one of {ROUTERS}, got {self.router!r}")
        if self.router_temperature <= 0 or self.router_noise < 0:
            raise ValueError(f"router_temperature must be > 0 and router_noise >= 0, got {self.router_temperature}, "
                             f"{self.router_noise}")
        if self.router_z_loss_coef < 0 or (self.router_z_loss_coef > 0 and not spec.token_routed):
            raise ValueError(f"router_z_loss_coef must be >= 0 and is for token-routed schemes (asymlora, moe_lora), "
                             f"got {self.router_z_loss_coef} with {self.scheme}")
        if self.router_init not in ROUTER_INITS:
            raise ValueError(f"router_init must be one of {ROUTER_INITS}, got {self.router_init!r}")
        if (self.router_init == "zero" and self.router == "dense" and self.num_experts > 1 and self.balance_coef == 0
                and self.router_noise == 0 and spec.token_routed):
            # B heads start at zero: with equal gates every head gets the same update, stays equal to the others, and
            # the softmax passes the router no gradient from equal heads (measured: docs/experiment_kit.md, part 3)
            raise ValueError("router_init='zero' with a dense router, no balance loss and no router noise never "
                             "learns: every head and gate stays identical; keep kaiming, or add --router_noise or "
                             "--balance_coef")
        if self.router_input not in ROUTER_INPUTS:
            raise ValueError(f"router_input must be one of {ROUTER_INPUTS}, got {self.router_input!r}")
        if self.router != "dense" and not 1 <= self.top_k <= self.num_experts:
            raise ValueError(f"top_k={self.top_k} must be in [1, num_experts={self.num_experts}]")
        if self.balance_loss not in BALANCE_KINDS:
            raise ValueError(f"balance_loss must be one of {BALANCE_KINDS}, got {self.balance_loss!r}")
        if self.adapter_dtype not in ("fp32", "base"):
            raise ValueError(f"adapter_dtype must be 'fp32' or 'base', got {self.adapter_dtype!r}")
        if self.router_scope not in ("module", "mlp_block"):
            raise ValueError(f"router_scope must be 'module' or 'mlp_block', got {self.router_scope!r}")
        spec.check(self.r, self.num_experts, self.num_tasks)
        if self.mixture_targets is not None and not set(self.mixture_targets) <= set(self.targets):
            raise ValueError(f"mixture_targets {self.mixture_targets} must be a subset of targets {self.targets}")
        if self.layers is not None and (not self.layers or min(self.layers) < 0):
            raise ValueError(f"layers must be decoder layer indices >= 0 (None: every layer), got {self.layers}")
        if self.task_names and len(self.task_names) != self.num_tasks and self.num_tasks > 1:
            raise ValueError(f"{len(self.task_names)} task names for num_tasks={self.num_tasks}")

    @property
    def scaling(self) -> float:
        return self.alpha / self.r

    @property
    def spec(self) -> type[Scheme]:
        """The scheme's class (schemes/): what it is, asked instead of its name."""
        return scheme(self.scheme)

    @property
    def routed(self) -> bool:
        """Routers mix heads per token (asymlora / moe_lora with several experts)."""
        return self.spec.token_routed and self.num_experts > 1

    @property
    def has_routers(self) -> bool:
        """Any router at all: per token, or mixlora's per-instance factor selection."""
        return self.num_experts > 1 and self.spec.routers

    @property
    def task_head_names(self) -> list[str]:
        """Names of the task heads a batch picks from ([] when the adapter has none)."""
        if not self.spec.task_heads or self.num_tasks <= 1:
            return []
        return list(self.task_names) or [str(t) for t in range(self.num_tasks)]

    def scheme_for(self, target: str) -> str:
        """The scheme that module `target` (e.g. 'q_proj') gets."""
        if self.mixture_targets is None or target in self.mixture_targets:
            return self.scheme
        return "lora"

    def task_id(self, name: str | int | None) -> int | None:
        """Map a task name (or id) to its id; None stays None."""
        if name is None or isinstance(name, int):
            return name
        if name.isdigit():
            return int(name)
        if name not in self.task_names:
            raise ValueError(f"unknown task {name!r}; this adapter knows {self.task_names}")
        return self.task_names.index(name)

    @classmethod
    def preset(cls, scheme_name: str = "asymlora", size: str = "7b", **overrides) -> AdapterConfig:
        """A scheme's preset (adapters/presets.py; asymlora: what the AsymLoRA authors' code trains), `overrides` on
        top."""
        return cls(**presets.preset(scheme_name, size, **overrides))

    def to_dict(self) -> dict:
        return asdict(self)

    def save(self, directory: str) -> None:
        os.makedirs(directory, exist_ok=True)
        with open(os.path.join(directory, CONFIG_NAME), "w") as f:
            json.dump(self.to_dict(), f, indent=2)

    @classmethod
    def load(cls, directory: str) -> AdapterConfig:
        path = config_path(directory)
        if path is None:
            raise FileNotFoundError(f"no {CONFIG_NAME} in {directory}: not an adapter checkpoint")
        with open(path) as f:
            raw = json.load(f)
        known = set(cls.__dataclass_fields__)
        unknown = set(raw) - known
        if unknown:
            raise ValueError(f"{path}: unknown adapter config keys {sorted(unknown)}")
        return cls(**raw)
