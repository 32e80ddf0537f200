"""The console entry points installed by `make install`, and the train entry point's short --help."""

import os
import sys

import pytest

BIN = os.path.dirname(sys.executable)


@pytest.mark.parametrize("name,module", [("llava-train", "llava.train.train"), ("llava-generate", "llava.eval.generate"),
                                         ("llava-merge", "llava.adapters.merge"), ("llava-chat", "llava.serve.cli")])
def test_console_scripts_are_installed(name, module):
    script = os.path.join(BIN, name)
    assert os.path.isfile(script), f"{name} missing: re-run make install (pyproject [project.scripts])"
    assert module in open(script).read()


def test_train_help_lists_our_flags_first_and_points_to_the_rest(monkeypatch, capsys):
    from llava.train.train import main

    monkeypatch.setattr(sys, "argv", ["llava-train", "--help"])
    main()
    out = capsys.readouterr().out
    first = out.index("--model_name_or_path")
    assert first < out.index("--adapter_scheme") < out.index("--balance_loss") < out.index("--output_dir")
    assert "--fsdp" not in out and "--help-all lists every option" in out  # not the 150 others
    assert len(out.splitlines()) < 90
    monkeypatch.setattr(sys, "argv", ["llava-train", "--help-all"])
    with pytest.raises(SystemExit) as done:
        main()
    full = capsys.readouterr().out
    assert done.value.code == 0 and "--fsdp" in full and "--adapter_scheme" in full
