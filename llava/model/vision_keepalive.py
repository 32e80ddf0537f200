"""Every training forward runs the vision tower and projector, also for a batch without images.

Data-parallel ranks must run the same modules in the same order: under ZeRO-3 each module's forward gathers its
partitioned weights with a collective, so one rank with a text-only batch and another with images would issue
mismatched collectives (gloo: "Received data size doesn't match expected size"); under DDP the projector would
get no gradient on one rank. LLaVA solves it by feeding text-only samples a blank image; here a text-only batch
runs one blank image through tower and projector between the token embedding and the language model (where an
image batch runs them: a pre-hook of the language model, so the embedding's own hooks have finished) and scatters its features into the embeddings through an all-False mask - the very operation an image
batch uses, so forward AND backward visit the same modules in the same order (ZeRO-3 checks its recorded module
trace against every step); the projector gets a zero gradient and the loss is unchanged.
"""

from __future__ import annotations

import torch


class VisionKeepalive:
    def __init__(self, model):
        self.model = model  # LlavaForConditionalGeneration (unwrapped)
        self.pending = False  # set per batch: True when the batch carries no pixel_values
        cfg = model.config.vision_config
        self._shape = (1, cfg.num_channels, cfg.image_size, cfg.image_size)
        self._handle = model.model.language_model.register_forward_pre_hook(self._before_language_model,
                                                                             with_kwargs=True)

    def _before_language_model(self, module, args, kwargs):
        output = kwargs.get("inputs_embeds")
        if not (self.pending and self.model.training) or output is None:
            return None
        self.pending = False
        tower = self.model.model.vision_tower
        dtype = next(p.dtype for p in tower.parameters())
        blank = torch.zeros(self._shape, dtype=dtype, device=output.device)
        features = self.model.model.get_image_features(pixel_values=blank)
        features = features.pooler_output if hasattr(features, "pooler_output") else features
        if isinstance(features, (list, tuple)):
            features = torch.cat(list(features), dim=0)
        nowhere = torch.zeros(output.shape, dtype=torch.bool, device=output.device)
        kwargs["inputs_embeds"] = output.masked_scatter(nowhere, features.to(output.device, output.dtype))
        return args, kwargs

    def remove(self) -> None:
        self._handle.remove()
