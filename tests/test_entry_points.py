"""The console entry points installed by `make install`, and the train entry point's short --help."""

import os
import sys

import pytest

BIN = os.path.dirname(sys.executable)


@pytest.mark.parametrize("name,module", [("llava-train", "llava.train.train"), ("llava-generate", "llava.eval.generate"),
                                         ("llava-merge", "llava.commands.merge"), ("llava-chat", "llava.serve.cli"),
                                         ("llava-serve", "llava.serve.api"), ("llava-web", "llava.serve.web")])
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


def test_serve_user_mistakes_end_in_one_line(tmp_path, capsys):
    """The option checks are shared (llava/serve/options.py): every case through them in-process, and one case
    through each real entry point (API and web app, as a user starts them)."""
    import subprocess

    from llava.serve.options import server_parser, start_serving

    cases = [(["--model-path", str(tmp_path / "nope")], "no such directory"),
             (["--model-path", f"a:b={tmp_path}"], "may not be empty or hold ':'"),
             (["--model-path", "tiny", "--model-path", "tiny"], "same name"),
             (["--model-path", "tiny", "--allowed-local-media-path", str(tmp_path / "x")], "no such directory")]
    for args, words in cases:
        ap = server_parser("test", 0)
        with pytest.raises(SystemExit) as stop:
            start_serving(ap, ap.parse_args(args))
        last = capsys.readouterr().err.strip().splitlines()[-1]
        assert stop.value.code == 2 and words in last, (args, last)
    for module in ("llava.serve.api", "llava.serve.web"):
        args, words = cases[0]
        r = subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True, timeout=120)
        last = r.stderr.strip().splitlines()[-1]
        assert r.returncode == 2 and words in last and "Traceback" not in r.stderr, (module, r.stderr[-500:])
