"""Constants shared by data preparation, the model and evaluation."""

IGNORE_INDEX = -100  # label value that the loss skips (transformers' and LLaVA's convention)
DEFAULT_IMAGE_TOKEN = "<image>"  # placeholder in conversation text; expanded to one token per image patch
