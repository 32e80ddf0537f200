"""Another family than LLaVA-1.5, from a local model directory (a tiny model saved with its processor and chat
template), trained by the training entry point in bf16 with AsymLoRA's preset: the loss falls, the checkpoint
reloads through llava.checkpoint and gives the trained model's logits, and the head-only-on-labels loss equals the
full-head loss for the family's batch."""

import json
import os
import re
import subprocess
import sys

import pytest
import torch
from peft import PeftModel
from PIL import Image
from safetensors import safe_open
from transformers import AutoModelForImageTextToText, AutoProcessor

from llava.adapters import adapter_batch
from llava.checkpoint import load_checkpoint_model
from llava.commands.merge import main as merge_main
from llava.data.collator import ProcessorCollator
from llava.data.processor_batch import Conversation
from llava.inference import Generator
from llava.model.anatomy import projector_parameter_names
from llava.train.supervised_logits import supervised_logits_only
from llava.train.train import train
from tests.helpers.data import write_small_data
from tests.helpers.vlm_families import save_family

pytestmark = pytest.mark.slow
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STEPS = 10


def family_args(model_dir, data, out, scheme="asymlora", steps=STEPS):
    spec, folder = data
    preset = {"asymlora": ["--adapter_scheme", "asymlora", "--num_experts", "3", "--router_scope", "mlp_block",
                           "--mixture_targets", "gate_proj,up_proj,down_proj", "--balance_coef", "0.05"],
              "mixlora": ["--adapter_scheme", "mixlora", "--num_experts", "4"],
              "lora": ["--adapter_scheme", "lora"]}[scheme]
    return ["--model_name_or_path", model_dir, "--data_path", spec, "--image_folder", folder, "--output_dir", str(out),
            "--lora_enable", "True", "--lora_r", "4", "--lora_alpha", "8", "--lora_dropout", "0.0", "--bf16", "True",
            "--per_device_train_batch_size", "4", "--learning_rate", "5e-3", "--mm_projector_lr", "5e-3",
            "--max_steps", str(steps), "--save_steps", str(steps), "--logging_steps", "1", "--report_to", "none",
            "--model_max_length", "512", "--disable_tqdm", "True", "--seed", "0", "--use_cpu", "True", *preset]


@pytest.mark.parametrize("family", ["gemma3", "idefics3", "llava_next"])
def test_a_family_trains_in_bf16_and_its_checkpoint_reloads(tmp_path, family):
    model_dir = save_family(tmp_path / "model", family)
    data = write_small_data(tmp_path / "data")
    out = tmp_path / "out"
    trainer = train(family_args(model_dir, data, out))
    history = json.loads((out / "trainer_state.json").read_text())["log_history"]
    losses = [h["loss"] for h in history if "loss" in h]
    assert len(losses) == STEPS and sum(losses[-3:]) < sum(losses[:3]), losses
    # the family's projector (LLaVA-NeXT's with image_newline, Idefics3's connector) trained in its own group and saved
    assert all("projector_learning_rate" in h for h in history if "loss" in h)
    with safe_open(out / "llava_adapters.safetensors", framework="pt") as f:
        saved = set(f.keys())
    assert projector_parameter_names(trainer.model) <= saved and any("lora_A" in k for k in saved)

    collator = ProcessorCollator(trainer.image_processor, 512)
    batch = collator([trainer.train_dataset[i] for i in range(4)])
    task_ids = batch.pop("task_ids")
    batch.pop("sample_index")
    assert "pixel_values" in batch
    # the model as trained, without the autocast + fp32-outputs wrapper accelerate put on its forward for bf16
    trained = trainer.accelerator.unwrap_model(trainer.model, keep_fp32_wrapper=False).eval()
    model, tokenizer, processor = load_checkpoint_model(str(out), dtype="bf16")
    assert type(model) is type(trained) and type(processor) is type(trainer.image_processor)
    with torch.no_grad():
        with adapter_batch(trained, task_ids=task_ids, token_mask=batch["attention_mask"]):
            want = trained(**batch)
            head_only = trained(**supervised_logits_only(batch)).loss
        with adapter_batch(model, task_ids=task_ids, token_mask=batch["attention_mask"]):
            got = model(**batch)
    assert torch.equal(got.logits, want.logits), family  # the same bf16 weights, the same computation
    assert head_only == pytest.approx(want.loss.item(), rel=1e-2), family  # bf16 logits, two reductions
    answers_through_inference(out, family)


def answers_through_inference(out, family):
    """The checkpoint answers through llava.inference, batched (an image question beside a text one, left-padded):
    each row's first new token is the argmax of that prompt's own unpadded forward."""
    generator = Generator.from_checkpoint(str(out), device="cpu", dtype="fp32")
    assert type(generator).__name__ == "ProcessorGenerator"
    prompts = [generator.prompt_for("what colour is it?", True), generator.prompt_for("say hi", False)]
    images = [Image.new("RGB", (48, 40), "red"), None]
    rows = generator.generate_ids(prompts, images, max_new_tokens=4)
    assert len(rows) == 2 and all(len(r) <= 4 for r in rows)
    eos = generator.eos_token_id
    ends = set(eos) if isinstance(eos, list) else {eos}
    for prompt, image, row in zip(prompts, images, rows):
        single = generator.batch_inputs([prompt], [image])
        with torch.no_grad(), adapter_batch(generator.model, token_mask=single["attention_mask"]):
            first = generator.model(**single).logits[0, -1].argmax().item()
        assert row[:1] == [first] or (not row and first in ends), (family, row, first)


@pytest.mark.parametrize("family", ["gemma3", "idefics3", "llava_next"])
def test_the_users_script_trains_a_family_with_mixlora(tmp_path, family):
    """`MODEL=<the family's directory> bash scripts/finetune_mixlora.sh`: no LLaVA part asked for (the directory holds
    its tower and projector), in the precision the script picks (bf16 where the CPU runs it natively), loss falls,
    a clean log."""
    model_dir = save_family(tmp_path / "model", family)
    spec, folder = write_small_data(tmp_path / "data")
    out = tmp_path / "out"
    env = {**os.environ, "MODEL": model_dir, "DATA": spec, "IMAGE_FOLDER": folder, "OUTPUT": str(out), "DEVICE": "cpu",
           "DEEPSPEED": "", "NUM_GPUS": "1", "BATCH": "4", "GLOBAL_BATCH": "4", "WORKERS": "0",
           "SAVE_STEPS": str(STEPS), "LOGGING_STEPS": "1", "EXTRA_ARGS": f"--max_steps {STEPS}", "PYTHON": sys.executable}
    proc = subprocess.run(["bash", "scripts/finetune_mixlora.sh"], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=600)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-3000:]
    assert "VISION_TOWER=<from MODEL>, PROJECTOR=<none>" in log
    assert not [line for line in log.splitlines() if re.search(r"warn|error|\[transformers\]", line, re.I)]
    losses = [h["loss"] for h in json.loads((out / "trainer_state.json").read_text())["log_history"] if "loss" in h]
    assert len(losses) == STEPS and sum(losses[-3:]) < sum(losses[:3]), losses
    assert json.loads((out / "llava_adapters.json").read_text())["scheme"] == "mixlora"


@pytest.mark.parametrize("family", ["gemma3", "idefics3", "llava_next"])
def test_a_merged_lora_and_its_peft_export_load_with_transformers_and_give_the_unmerged_logits(tmp_path, family):
    model_dir = save_family(tmp_path / "model", family)
    data = write_small_data(tmp_path / "data")
    out = tmp_path / "out"
    train(family_args(model_dir, data, out, scheme="lora", steps=2) + ["--bf16", "False"])
    merged_dir = tmp_path / "merged"
    merge_main(["--checkpoint", str(out), "--out", str(merged_dir)])
    merged = AutoModelForImageTextToText.from_pretrained(merged_dir).eval()
    processor = AutoProcessor.from_pretrained(merged_dir)
    unmerged, _, _ = load_checkpoint_model(str(out), dtype="fp32")
    question = Conversation([(0, "<image>\nwhat colour is it?"), (1, "red")], [Image.new("RGB", (48, 40), "red")], "q")
    batch = ProcessorCollator(processor, 512)([{"conversation": question, "task_id": 0}])
    batch = {k: v for k, v in batch.items() if k not in ("task_ids", "sample_index")}
    with torch.no_grad():
        want = unmerged.eval()(**batch).logits
        got = merged(**batch).logits
    assert type(merged).__name__ == type(unmerged).__name__
    assert torch.allclose(got, want, rtol=1e-4, atol=1e-5), (family, (got - want).abs().max())  # fp32, W + BA summed

    # the same checkpoint as a PEFT adapter (with the trained projector as modules_to_save) on the saved base
    peft_dir = tmp_path / "peft"
    if family == "llava_next":  # its projector holds image_newline, a bare parameter PEFT has no place for
        with pytest.raises(SystemExit, match="bare parameter.*image_newline.*merge the checkpoint instead"):
            merge_main(["--checkpoint", str(out), "--peft", "--out", str(peft_dir)])
        return
    merge_main(["--checkpoint", str(out), "--peft", "--out", str(peft_dir)])
    config = json.loads((peft_dir / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == model_dir and config["modules_to_save"]
    base = AutoModelForImageTextToText.from_pretrained(model_dir)
    with torch.no_grad():
        got = PeftModel.from_pretrained(base, str(peft_dir)).eval()(**batch).logits
    assert torch.allclose(got, want, rtol=1e-4, atol=1e-5), (family, (got - want).abs().max())
