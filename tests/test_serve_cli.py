"""The terminal chat (`python -m llava.serve.cli`): streamed answers equal generate's, turns accumulate."""

import io

from PIL import Image

from llava.adapters.attached import adapter_config
from llava.checkpoint import load_checkpoint_model
from llava.inference import Generator
from llava.serve.cli import Chat
from llava.serve.cli import main as chat_cli


def test_chat_streams_generates_answers_and_keeps_the_turns(tmp_path, trained_tiny, monkeypatch, capsys):
    ckpt = str(trained_tiny("asymlora_tasks") / "checkpoint-2")
    image = tmp_path / "red.png"
    Image.new("RGB", (40, 30), (200, 30, 40)).save(image)

    capsys.readouterr()
    monkeypatch.setattr("sys.stdin", io.StringIO("what color is it?\nand the shape?\n"))
    chat_cli(["--model-path", ckpt, "--image-file", str(image), "--task", "shape", "--temperature", "0",
              "--max-new-tokens", "6"])
    printed = capsys.readouterr().out

    model, tokenizer, processor = load_checkpoint_model(ckpt)
    generator = Generator(model, tokenizer, processor, "vicuna_v1", task_id=adapter_config(model).task_id("shape"))
    with Image.open(image) as im:
        chat = Chat(generator, im.convert("RGB"))
    first = chat.ask("what color is it?", max_new_tokens=6)
    second_prompt, _ = chat.prompt("and the shape?")
    second = chat.ask("and the shape?", max_new_tokens=6)
    # the same answer generate gives to the single question (eval prompt, same image, same task head)
    assert first and second
    assert first == generator.generate([generator.prompt_for("what color is it?", True)], [chat.image], 6)[0]
    assert second_prompt.count("<image>") == 1 and f"ASSISTANT: {first}</s>USER: and the shape? ASSISTANT:" in second_prompt
    assert printed == f"USER: ASSISTANT: {first}\nUSER: ASSISTANT: {second}\nUSER: "
