"""Run config files: a YAML file trains, flags override it, and the run's own run_config.yaml re-runs it."""

import os
import shlex
import subprocess
import sys

import pytest
import yaml

from llava.adapters.attached import adapter_config
from llava.train.config_file import ConfigError, read_config, training_parser
from llava.train.config_file import flag_names as known_flags
from llava.train.train import train

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def losses(trainer):
    return [h["loss"] for h in trainer.state.log_history if "loss" in h]


def test_a_yaml_config_trains_a_flag_overrides_it_and_run_config_reruns_it(tmp_path, small_data):
    spec, folder = small_data
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump({
        "model_name_or_path": "tiny", "data_path": spec, "image_folder": folder, "lora_enable": True,
        "adapter_scheme": "asymlora", "num_experts": 3, "lora_r": 4, "lora_alpha": 8, "lora_dropout": 0.0,
        "per_device_train_batch_size": 4, "learning_rate": "1e-2",  # a string, as YAML 1.1 reads 1e-2
        "max_steps": 2, "logging_steps": 1, "report_to": "none", "use_cpu": True, "save_strategy": "no",
        "hub_token": "secret-token"}))
    first = train(["--config", str(config), "--output_dir", str(tmp_path / "a"), "--max_steps", "4"])
    assert first.args.max_steps == 4 and first.args.learning_rate == 1e-2  # the flag won; the file's string typed
    assert first.state.global_step == 4 and adapter_config(first.model).scheme == "asymlora"

    written = tmp_path / "a" / "run_config.yaml"
    settings = yaml.safe_load(written.read_text())
    assert settings["max_steps"] == 4 and settings["adapter_scheme"] == "asymlora" and settings["num_experts"] == 3
    assert "hub_token" not in settings and "secret-token" not in written.read_text()  # a secret stays out
    assert set(settings) <= known_flags(training_parser())

    again = train(["--config", str(written), "--output_dir", str(tmp_path / "b")])
    assert again.state.global_step == 4
    assert losses(again) == losses(first) and len(losses(first)) == 4  # the same run, step for step


def test_a_mistyped_key_or_a_broken_file_is_one_line_naming_it(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("lora_enabel: true\n")
    with pytest.raises(ConfigError, match=r"unknown setting 'lora_enabel' \(did you mean 'lora_enable'\?\)"):
        read_config(str(bad), known_flags(training_parser()))
    broken = tmp_path / "broken.yaml"
    broken.write_text("lora_r: [4\n")
    with pytest.raises(ConfigError, match=r"broken.yaml: not valid YAML \(line 2\)"):
        read_config(str(broken))
    with pytest.raises(ConfigError, match="absent.yaml: no such file"):
        read_config(str(tmp_path / "absent.yaml"))
    run = subprocess.run([sys.executable, "-m", "llava.train.train", "--config", str(bad),
                          "--output_dir", str(tmp_path / "out")], capture_output=True, text=True, cwd=ROOT)
    assert run.returncode == 2, run.stderr[-2000:]
    assert "unknown setting 'lora_enabel'" in run.stderr and "Traceback" not in run.stderr, run.stderr[-2000:]


def test_configs_train_are_the_scripts_own_dry_runs(tmp_path):
    """configs/train/*.yaml regenerate identically from the scripts (a script change must regenerate them), and every
    key is a flag llava-train knows."""
    env = dict(os.environ, OUT=str(tmp_path), PYTHON=sys.executable)
    subprocess.run(["bash", "scripts/make_train_configs.sh"], cwd=ROOT, env=env, check=True, capture_output=True)
    committed = sorted(os.listdir(os.path.join(ROOT, "configs", "train")))
    assert committed == sorted(os.listdir(tmp_path))
    assert {"paper_asymlora.yaml", "authors_asymlora.yaml", "paper_lora.yaml", "paper_moe_lora.yaml",
            "paper_mixlora.yaml"} <= set(committed)
    known = known_flags(training_parser())
    for name in committed:
        text = open(os.path.join(ROOT, "configs", "train", name)).read()
        assert text == (tmp_path / name).read_text(), f"configs/train/{name} is stale: bash scripts/make_train_configs.sh"
        values = read_config(os.path.join(ROOT, "configs", "train", name), known)
        assert values["lora_enable"] is True
    paper = read_config(os.path.join(ROOT, "configs", "train", "paper_asymlora.yaml"))
    assert (paper["num_experts"], paper["lora_r"], paper["router_scope"]) == (3, 32, "mlp_block")
    assert paper["per_device_train_batch_size"] * 8 * paper["gradient_accumulation_steps"] == 128
    authors = read_config(os.path.join(ROOT, "configs", "train", "authors_asymlora.yaml"))
    assert authors["model_name_or_path"].endswith("llava-v1.5-7b") and authors["gradient_accumulation_steps"] == 2


def test_the_script_runs_a_config_with_overrides_under_the_launcher(tmp_path):
    env = dict(os.environ, CONFIG="configs/train/paper_asymlora.yaml", NUM_GPUS="8", DRY_RUN="1",
               EXTRA_ARGS="--learning_rate 1e-4", OUTPUT=str(tmp_path / "out"), PYTHON=sys.executable)
    run = subprocess.run(["bash", "scripts/finetune.sh"], cwd=ROOT, env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    command = shlex.split(run.stdout.split("command:", 1)[1])
    assert command[1:4] == ["-m", "torch.distributed.run", "--nproc_per_node"] and command[4] == "8"
    tail = command[command.index("llava.train.train") + 1:]
    assert tail == ["--config", "configs/train/paper_asymlora.yaml", "--output_dir", str(tmp_path / "out"),
                    "--learning_rate", "1e-4"]
    missing = subprocess.run(["bash", "scripts/finetune.sh"], cwd=ROOT, capture_output=True, text=True,
                             env=dict(env, CONFIG="configs/train/nope.yaml"))
    assert missing.returncode == 2 and "CONFIG=configs/train/nope.yaml not found" in missing.stderr
