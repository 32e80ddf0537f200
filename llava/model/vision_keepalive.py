"""Every training forward runs the vision tower and projector, also for a batch without images.

Data-parallel ranks must run the same modules in the same order: under ZeRO-3 each module's forward gathers its
partitioned weights with a collective, so one rank with a text-only batch and another with images would issue
mismatched collectives (gloo: "Received data size doesn't match expected size"); under DDP the projector would
get no gradient on one rank. LLaVA solves it by feeding text-only samples a blank image; here a text-only batch
runs one blank image through tower and projector between the token embedding and the language model (where an
image batch runs them: a pre-hook of the language model, so the embedding's own hooks have finished) and scatters its features into the embeddings through an all-False mask - the very operation an image
batch uses, so forward AND backward visit the same modules in the same order (ZeRO-3 checks its recorded module
trace against every step); the projector gets a zero gradient and the loss is unchanged. Another family's blank
image is what its own image processor makes of a black image (tiles, grids and all), so the same holds for it.
"""

from __future__ import annotations

import inspect

import torch
from PIL import Image

from llava.model.anatomy import language_model, vision_parts


class VisionKeepalive:
    def __init__(self, model, processor=None):
        """model: unwrapped; processor: another family's (None for LLaVA-1.5), which makes its blank image's inputs."""
        self.model = model
        self.pending = False  # set per batch: True when the batch carries no pixel_values
        self._blank = blank_image_inputs(model, processor)
        self._handle = language_model(model).register_forward_pre_hook(self._before_language_model, with_kwargs=True)

    def _before_language_model(self, module, args, kwargs):
        output = kwargs.get("inputs_embeds")
        if not (self.pending and self.model.training) or output is None:
            return None
        self.pending = False
        dtype = next(p.dtype for _, part in vision_parts(self.model) for p in part.parameters())
        blank = {k: v.to(output.device, dtype) if v.is_floating_point() else v.to(output.device)
                 for k, v in self._blank.items()}
        features = self.model.get_image_features(**blank)
        features = features.pooler_output if hasattr(features, "pooler_output") else features
        if isinstance(features, (list, tuple)):
            features = torch.cat(list(features), dim=0)
        nowhere = torch.zeros(output.shape, dtype=torch.bool, device=output.device)
        kwargs["inputs_embeds"] = output.masked_scatter(nowhere, features.to(output.device, output.dtype))
        return args, kwargs

    def remove(self) -> None:
        self._handle.remove()


def blank_image_inputs(model, processor=None) -> dict[str, torch.Tensor]:
    """One black image as the model's get_image_features takes it: LLaVA-1.5's pixels at its tower's size, or what
    another family's own image processor makes of it (pixel_values with image_sizes, image_grid_thw,
    pixel_attention_mask, ...)."""
    if processor is None:
        cfg = model.config.vision_config
        return {"pixel_values": torch.zeros(1, cfg.num_channels, cfg.image_size, cfg.image_size)}
    made = processor.image_processor(images=[Image.new("RGB", (64, 64))], return_tensors="pt")
    accepted = inspect.signature(model.get_image_features).parameters
    return {k: v for k, v in made.items() if k in accepted and torch.is_tensor(v)}
