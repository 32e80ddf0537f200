"""Every place a scheme preset reaches agrees with its one home (llava/adapters/presets.py): the training scripts' dry
runs, the generated configs/train/*.yaml, the planner's model, the kit's arms and the demo; the training CLI's
defaults are AdapterConfig's."""

import os
import shlex
import subprocess
import sys

import pytest
import yaml

from llava.adapters import AdapterConfig, presets
from llava.adapters.attached import adapter_config
from llava.train.adapter_setup import adapter_config_from_args
from llava.train.args import adapter_flags
from llava.train.config_file import training_parser

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCHEMES = list(presets.PRESETS["7b"])


@pytest.fixture(scope="module")
def parser():
    return training_parser()


def adapter_settings(parser, flags: list[str]) -> dict:
    """What the training command builds from these flags (adapter_dtype aside: it depends on DeepSpeed and dtype)."""
    namespace, unknown = parser.parse_known_args(flags)
    assert not unknown, unknown
    return dict(adapter_config_from_args(namespace, []).to_dict(), adapter_dtype=None)


def expected(scheme: str, size: str, **overrides) -> dict:
    return dict(AdapterConfig.preset(scheme, size, **overrides).to_dict(), adapter_dtype=None)


def dry_run_flags(script: str, **env) -> list[str]:
    full = {**os.environ, "DRY_RUN": "1", "PYTHON": sys.executable, "HAS_CUDA": "1", **env}
    proc = subprocess.run(["bash", f"scripts/{script}.sh"], cwd=ROOT, env=full, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    words = shlex.split(next(line for line in proc.stdout.splitlines() if line.startswith("command: "))[9:])
    return words[words.index("llava.train.train") + 1:]


@pytest.mark.parametrize("scheme", SCHEMES)
def test_the_scripts_train_their_schemes_preset(parser, scheme):
    for size, env, dropout in (("7b", {}, 0.05), ("7b", {"PRESET": "authors"}, 0.05), ("tiny", {"MODEL": "tiny"}, 0.0),
                               ("7b", {"PRESET": "authors", "MODEL": "tiny"}, 0.05)):  # authors: only model, data
        flags = dry_run_flags(f"finetune_{scheme}", **env)
        assert adapter_settings(parser, flags) == expected(scheme, size, dropout=dropout), (scheme, env)
    # a variable the user sets wins over the preset
    flags = dry_run_flags(f"finetune_{scheme}", R="4", ALPHA="8", BALANCE_COEF="0.5", ROUTER_SCOPE="module")
    assert adapter_settings(parser, flags) == expected(scheme, "7b", r=4, alpha=8, balance_coef=0.5,
                                                       router_scope="module")


@pytest.mark.parametrize("name", sorted(os.listdir(os.path.join(ROOT, "configs", "train"))))
def test_the_generated_configs_hold_the_presets(parser, name):
    with open(os.path.join(ROOT, "configs", "train", name)) as f:
        values = yaml.safe_load(f)
    flags = [w for k, v in values.items() for w in (f"--{k}", str(v))]
    assert adapter_settings(parser, flags) == expected(values["adapter_scheme"], "7b", dropout=0.05)


@pytest.mark.parametrize("scheme", SCHEMES)
def test_the_planner_counts_the_preset(scheme):
    from llava.train.plan_model import meta_model

    model = meta_model("7b", scheme)
    assert dict(adapter_config(model).to_dict(), adapter_dtype=None) == expected(scheme, "7b")


def test_the_kit_arms_and_the_demo_are_presets_at_matched_ranks(parser, tmp_path):
    from llava.kit import compare, demo

    for arm, settings in compare.SCHEMES.items():
        flags = compare.train_args(arm, "m.json", "images", str(tmp_path), seed=0, steps=10)
        got = adapter_settings(parser, flags)
        resolved = dict(settings, dropout=0.0, num_tasks=max(1, settings.get("num_tasks", 1)))  # -1: one per task
        assert got == dict(AdapterConfig(**resolved).to_dict(), adapter_dtype=None), arm
        if settings.get("num_experts", 1) > 1 and arm != "mixlora":  # routed arms: the preset's placement
            placement = {k: expected(settings["scheme"], "7b")[k] for k in ("router_scope", "mixture_targets",
                                                                             "balance_coef", "balance_loss")}
            assert {k: got[k] for k in placement} == placement, arm
    demo_settings = adapter_settings(parser, demo.train_args("m.json", str(tmp_path), steps=10, batch=2))
    assert demo_settings == expected("asymlora", "7b", r=8, alpha=16, dropout=0.0)


def test_the_training_cli_defaults_are_the_adapter_configs(parser):
    assert adapter_settings(parser, []) == dict(AdapterConfig().to_dict(), adapter_dtype=None)


def test_the_shell_lines_let_a_set_variable_win():
    lines = "\n".join(presets.shell_lines("asymlora", "tiny"))
    out = subprocess.run(["bash", "-c", f'R=5\nROUTER_BIAS=""\n{lines}\necho "$R $ALPHA $ROUTER_BIAS $MIXTURE_TARGETS"'],
                         capture_output=True, text=True, check=True).stdout.split()
    assert out == ["5", "32", "True", "gate_proj,up_proj,down_proj"]  # empty means unset, as every other knob
    proc = subprocess.run([sys.executable, "-m", "llava.adapters.presets", "shell", "dora", "7b"], cwd=ROOT,
                          capture_output=True, text=True)
    assert proc.returncode == 2 and proc.stderr.strip().startswith("error: unknown scheme 'dora'")


def test_the_layers_flag_takes_indices_and_ranges(parser):
    assert adapter_settings(parser, ["--lora_layers", "0,2,5-7"])["layers"] == [0, 2, 5, 6, 7]
    assert adapter_settings(parser, ["--lora_layers", "all"])["layers"] is None
    for bad in ("top", "7-5"):
        with pytest.raises(ValueError, match="--lora_layers"):
            adapter_settings(parser, ["--lora_layers", bad])
    flags = adapter_flags(presets.variant("asymlora", 8, layers=[3, 4]))  # a preset with layers, as flags
    assert adapter_settings(parser, flags) == expected("asymlora", "7b", r=8, alpha=16, layers=[3, 4])
