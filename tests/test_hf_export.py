"""Every llava-hf directory we write is complete: transformers' own AutoProcessor, chat template and
`pipeline("image-text-to-text")` work on it as is, and answer exactly as `python -m llava.eval.generate` does."""

import json

import pytest
from PIL import Image
from transformers import AutoProcessor, pipeline

from llava.commands.merge import main as merge_cli
from llava.conversation import get_template
from llava.eval.generate import main as generate_cli
from llava.model.hf_export import jinja_for
from llava.model.tiny import build_tiny_tokenizer


@pytest.mark.parametrize("version", ["vicuna_v1", "llava_v1"])
def test_chat_template_renders_the_training_template(version):
    template = get_template(version)
    tok = build_tiny_tokenizer()
    tok.chat_template = jinja_for(template)
    turns = [(0, "<image>\nWhat shape?"), (1, "A circle."), (0, "And the colour?"), (1, "red")]
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What shape?"}]},
                {"role": "assistant", "content": "A circle."},
                {"role": "user", "content": [{"type": "text", "text": "And the colour?"}]},
                {"role": "assistant", "content": [{"type": "text", "text": "red"}]}]
    assert tok.apply_chat_template(messages, tokenize=False) == template.render(turns)[0]
    prompt = tok.apply_chat_template(messages[:1], tokenize=False, add_generation_prompt=True)
    assert prompt == template.prompt("<image>\nWhat shape?")
    assert prompt.endswith("What shape? ASSISTANT:")  # LLaVA's eval prompt, no trailing space
    custom = tok.apply_chat_template([{"role": "system", "content": "Be brief."}, messages[2]], tokenize=False,
                                     add_generation_prompt=True)
    assert custom == "Be brief. USER: And the colour? ASSISTANT:"
    assert jinja_for(get_template("plain")) is None  # stage-1 pre-training has no conversation


def test_merged_dir_answers_in_transformers_pipeline_as_in_generate(tmp_path, trained_tiny):
    merged = tmp_path / "merged"
    merge_cli(["--checkpoint", str(trained_tiny("asymlora_tasks") / "checkpoint-2"), "--task", "color", "--out", str(merged)])
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp-")]  # written whole, then renamed

    processor = AutoProcessor.from_pretrained(merged)
    assert processor.patch_size == 8 and processor.vision_feature_select_strategy == "default"
    assert processor.num_additional_image_tokens == 1

    image = tmp_path / "square.png"  # the tower's own size: no resize, so no interpolation backend can differ
    Image.new("RGB", (32, 32), (200, 30, 40)).save(image)
    question = "what color is it?"
    questions = tmp_path / "q.jsonl"
    questions.write_text(json.dumps({"question_id": 0, "image": image.name, "text": "<image>\n" + question}) + "\n")
    answers = tmp_path / "a.jsonl"
    generate_cli(["--model-path", str(merged), "--question-file", str(questions), "--answers-file", str(answers),
                  "--image-folder", str(tmp_path), "--max_new_tokens", "8"])
    ours = json.loads(answers.read_text())
    assert ours["metadata"]["full_prompt"] == processor.apply_chat_template(
        [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": question}]}],
        add_generation_prompt=True)

    pipe = pipeline("image-text-to-text", model=str(merged))
    messages = [{"role": "user", "content": [{"type": "image", "url": str(image)}, {"type": "text", "text": question}]}]
    out = pipe(text=messages, max_new_tokens=8, do_sample=False, return_full_text=False)
    assert ours["text"] and out[0]["generated_text"].strip() == ours["text"]


def test_a_base_model_is_saved_as_a_complete_llava_hf_dir(tmp_path):
    """The tiny preset (any source) exported for users: AutoProcessor and the chat template work on it as is."""
    from llava.model.hf_export import main as export_cli

    export_cli(["--model", "tiny", "--out", str(tmp_path / "tiny-hf")])
    processor = AutoProcessor.from_pretrained(tmp_path / "tiny-hf")
    image = Image.new("RGB", (32, 32), (10, 200, 30))
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "what color?"}]}]
    text = processor.apply_chat_template(messages, add_generation_prompt=True)
    inputs = processor(images=image, text=text, return_tensors="pt")
    image_id = processor.tokenizer.convert_tokens_to_ids("<image>")
    assert (inputs["input_ids"] == image_id).sum() == 16  # (32 / 8)^2 patches: the model's image_seq_length
    assert inputs["input_ids"][0, 0] == processor.tokenizer.bos_token_id  # added once, by the tokenizer
    assert (inputs["input_ids"] == processor.tokenizer.bos_token_id).sum() == 1
