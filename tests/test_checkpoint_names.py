"""Native checkpoints are not named as PEFT adapters (tools would mistake them); earlier PEFT-named ones still load."""

import shutil

import pytest
import torch
from PIL import Image

from llava.adapters import export_peft
from llava.adapters.config import AdapterConfig
from llava.checkpoint import load_checkpoint_model
from llava.inference import Generator
from llava.train.train import train


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from tests.helpers.data import write_small_data

    root = tmp_path_factory.mktemp("names")
    spec, folder = write_small_data(root)
    train(["--model_name_or_path", "tiny", "--data_path", spec, "--image_folder", folder,
           "--output_dir", str(root / "run"), "--lora_enable", "True", "--lora_r", "4", "--lora_alpha", "8",
           "--lora_dropout", "0.0", "--per_device_train_batch_size", "4", "--learning_rate", "1e-2",
           "--max_steps", "2", "--save_strategy", "no", "--report_to", "none", "--use_cpu", "True",
           "--disable_tqdm", "True"])
    return root / "run"


def logits(model):
    model.eval()
    tokens = torch.tensor([[1] + [model.config.image_token_index] * model.config.image_seq_length + [60, 70, 80]])
    torch.manual_seed(0)
    with torch.no_grad():
        return model(input_ids=tokens, pixel_values=torch.randn(1, 3, 32, 32)).logits


def answer_and_logits(directory):
    model, tokenizer, processor = load_checkpoint_model(str(directory))
    generator = Generator(model, tokenizer, processor)
    prompt = generator.prompt_for("what shape is it?", True)
    ids = generator.generate_ids([prompt], [Image.new("RGB", (40, 40), "red")], 6)
    return ids, logits(model)


def test_peft_refuses_a_native_checkpoint_with_its_own_error(trained):
    peft = pytest.importorskip("peft", reason="peft is in the dev extra")
    names = {p.name for p in trained.iterdir()}
    assert {"llava_adapters.json", "llava_adapters.safetensors"} <= names
    assert not names & {"adapter_config.json", "adapter_model.safetensors"}
    base, _, _ = load_checkpoint_model(str(trained), load_weights=False)
    with pytest.raises(ValueError, match="Can't find 'adapter_config.json'"):
        peft.PeftModel.from_pretrained(base, str(trained))


def test_a_checkpoint_with_the_old_names_loads_and_answers_as_before(trained, tmp_path):
    old = tmp_path / "old"
    shutil.copytree(trained, old)
    (old / "llava_adapters.json").rename(old / "adapter_config.json")
    (old / "llava_adapters.safetensors").rename(old / "adapter_model.safetensors")
    new_ids, new_logits = answer_and_logits(trained)
    old_ids, old_logits = answer_and_logits(old)
    assert old_ids == new_ids and len(new_ids[0]) >= 1
    torch.testing.assert_close(old_logits, new_logits, atol=0, rtol=0)
    base, _, _ = load_checkpoint_model(str(trained), load_weights=False)
    assert not torch.allclose(logits(base), new_logits)  # the adapters were loaded, not skipped


def test_a_real_peft_adapter_is_named_as_such(trained, tmp_path):
    model, _, _ = load_checkpoint_model(str(trained))
    export_peft(model, str(tmp_path / "peft"))
    with pytest.raises(ValueError, match="is a PEFT adapter"):
        AdapterConfig.load(str(tmp_path / "peft"))
