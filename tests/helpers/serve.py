"""Start `python -m llava.serve.api` / `llava.serve.web` as a user does, on a free port, and wait until it serves."""

import base64
import io
import os
import subprocess
import sys
import time

import httpx
from PIL import Image

from tests.helpers.recipe_runs import ROOT, free_port


def start_server(module: str, args: list[str], log_path, timeout: float = 120.0):
    """(process, base url) once /health (API) or / (web app) answers with every model loaded."""
    port = free_port()
    log = open(log_path, "w")
    proc = subprocess.Popen([sys.executable, "-m", module, *args, "--port", str(port)], cwd=ROOT, stdout=log,
                            stderr=subprocess.STDOUT, env={**os.environ, "GRADIO_ANALYTICS_ENABLED": "False"})
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"{module} exited with {proc.returncode}:\n{open(log_path).read()[-3000:]}")
        try:
            r = httpx.get(f"{url}/health" if module.endswith("api") else f"{url}/gradio_api/info", timeout=5)
            if r.status_code == 200 and (not module.endswith("api") or r.json()["status"] == "ok"):
                return proc, url
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    proc.kill()
    raise AssertionError(f"{module} did not come up in {timeout} s:\n{open(log_path).read()[-3000:]}")


def stop_server(proc) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()


def png_bytes(size=(40, 30), color=(200, 30, 40)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, "PNG")
    return buf.getvalue()


def data_url(data: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64," + base64.b64encode(data).decode()
