"""Constants shared by data preparation, the model and evaluation."""

IGNORE_INDEX = -100  # label value that the loss skips (transformers' and LLaVA's convention)
DEFAULT_IMAGE_TOKEN = "<image>"  # placeholder in conversation text; expanded to one token per image patch
# LLaVA-1.5's response-format prompts (its paper's Table 7): training data (data/) and benchmarks (eval/) share them.
SHORT_ANSWER = "Answer the question using a single word or phrase."
OPTION_LETTER = "Answer with the option's letter from the given choices directly."
