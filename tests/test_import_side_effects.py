"""Importing the package changes nothing around it: a notebook's matplotlib backend stays, pyplot is not imported;
the cache honours XDG_CACHE_HOME. Its one exit hook (llava/process_gc.py) runs after the hooks registered after it
and before those registered before it."""

import subprocess
import sys

from llava.cache import cache_dir


def test_importing_the_package_leaves_matplotlib_alone_and_exits_without_collecting():
    code = ("import atexit, gc, sys, matplotlib; matplotlib.use('svg'); "
            "atexit.register(lambda: print('before', gc.get_freeze_count() > 0)); "
            "import llava.train.train, llava.kit.compare, llava.kit.router_specialisation, llava.eval.report; "
            "atexit.register(lambda: print('after', gc.get_freeze_count() > 0)); "
            "from llava.train.plots import plot_losses; import tempfile, os; "
            "plot_losses([{'step': 1, 'loss': 2.0}], os.path.join(tempfile.mkdtemp(), 'loss.png')); "
            "print(matplotlib.get_backend(), 'matplotlib.pyplot' in sys.modules, gc.get_threshold() == (700, 10, 10))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    # the collector's settings are the importer's; the hook registered after llava's ran with the collector still on,
    # the one registered before, after the freeze
    assert out == ["svg", "False", "True", "after", "False", "before", "True"]


def test_a_command_of_the_package_starts_with_fewer_young_collections():
    command = subprocess.run([sys.executable, "-m", "llava.process_gc"], capture_output=True, text=True, check=True)
    assert command.stdout.split() == ["10000", "10", "10"]


def test_the_cache_honours_xdg_cache_home(monkeypatch, tmp_path):
    monkeypatch.delenv("LLAVA_ASYMLORA_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir("preflight") == str(tmp_path / "xdg" / "llava-asymlora" / "preflight")
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_dir("preflight") == str(tmp_path / "home" / ".cache" / "llava-asymlora" / "preflight")
    monkeypatch.setenv("LLAVA_ASYMLORA_CACHE", str(tmp_path / "mine"))
    assert cache_dir("preflight") == str(tmp_path / "mine" / "preflight")


def test_only_a_command_freezes_what_its_imports_made(monkeypatch):
    from llava import process_gc

    frozen = []
    monkeypatch.setattr(process_gc.gc, "freeze", lambda: frozen.append(True))
    monkeypatch.setattr(process_gc, "_command", False)
    process_gc.imports_done()  # a library user's process (this one): nothing frozen
    assert frozen == []
    monkeypatch.setattr(process_gc, "_command", True)
    process_gc.imports_done()
    assert frozen == [True]
