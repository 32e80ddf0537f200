"""The house rules a reader relies on: no module under llava/ over 250 lines (a whole concept excepted, by name), no
function over 60 (declarative UI layout excepted, by name), what the adapters attach to a model read only through
llava/adapters/attached.py, and what a model was loaded from only as the typed Checkpoint (llava/checkpoint.py)."""

import ast
import configparser
import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parent.parent / "llava"
MAX_LINES, MAX_FUNCTION = 250, 60
UI_LAYOUT = {("serve/web.py", "build_app")}  # gradio Blocks: one widget per line, read as a page, not as logic
WHOLE_CONCEPTS = {"train/trainer.py": 320}  # the training step, read in one sitting (as nanoGPT's loop)
ATTRIBUTE = re.compile(r"""(getattr|setattr|hasattr)\(\s*\w+\s*,\s*["'](adapter_|llava_adapters)""")
# a base or checkpoint record hung on a model as a loose attribute (earlier: a raw dict, model.llava_base_info)
LOOSE_RECORD = re.compile(r"""\.llava_base_info|["']llava_base_info|(getattr|setattr|hasattr)\(\s*\w+\s*,\s*["']llava_checkpoint""")


def long_modules(root: pathlib.Path) -> dict[str, int]:
    return {str(p.relative_to(root)): n for p in sorted(root.rglob("*.py"))
            if (n := p.read_text().count("\n")) > WHOLE_CONCEPTS.get(str(p.relative_to(root)), MAX_LINES)}


def long_functions(root: pathlib.Path) -> dict[str, int]:
    found = {}
    for path in sorted(root.rglob("*.py")):
        name = str(path.relative_to(root))
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and (name, node.name) not in UI_LAYOUT:
                if (length := node.end_lineno - node.lineno + 1) > MAX_FUNCTION:
                    found[f"{name}:{node.name}"] = length
    return found


def attribute_reads(root: pathlib.Path) -> list[str]:
    return [f"{p.relative_to(root)}:{i}" for p in sorted(root.rglob("*.py")) if p.name != "attached.py"
            for i, line in enumerate(p.read_text().splitlines(), 1) if ATTRIBUTE.search(line)]


def loose_records(root: pathlib.Path) -> list[str]:
    return [f"{p.relative_to(root)}:{i}" for p in sorted(root.rglob("*.py")) if p.name != "checkpoint.py"
            for i, line in enumerate(p.read_text().splitlines(), 1) if LOOSE_RECORD.search(line)]


def test_what_a_model_was_loaded_from_is_read_only_as_the_typed_checkpoint():
    assert loose_records(ROOT) == []
    assert loose_records(ROOT.parent / "bench") == []


def test_no_module_is_over_250_lines():
    assert long_modules(ROOT) == {}


def test_no_function_is_over_60_lines_but_ui_layout():
    assert long_functions(ROOT) == {}


def test_adapter_attributes_are_read_only_through_the_accessor():
    assert attribute_reads(ROOT) == []


def test_the_checks_see_a_violation(tmp_path):
    (tmp_path / "bad.py").write_text("def f(model):\n" + "    x = 1\n" * 70 + "    getattr(model, 'adapter_config')\n"
                                     + "    info = model.llava_base_info\n" + "\n" * 199)
    assert long_modules(tmp_path) == {"bad.py": 272}
    assert long_functions(tmp_path) == {"bad.py:f": 73}
    assert attribute_reads(tmp_path) == ["bad.py:72"]
    assert loose_records(tmp_path) == ["bad.py:73"]


def test_every_top_level_module_is_in_the_layers_contract():
    contract = configparser.ConfigParser()
    contract.read(ROOT.parent / ".importlinter")
    layered = set(re.findall(r"llava\.(\w+)", contract["importlinter:contract:layers"]["layers"]))
    top_level = {p.stem for p in ROOT.glob("*.py") if p.stem != "__init__"} | {
        p.name for p in ROOT.iterdir() if (p / "__init__.py").exists()}
    assert top_level - layered == set()
