"""Optional dependencies fail early, naming the extra that provides them."""

from __future__ import annotations

import importlib.util


def require_extra(module: str, extra: str, feature: str) -> None:
    if importlib.util.find_spec(module) is None:
        raise ImportError(f"{feature} needs the '{module}' package: pip install 'llava-asymlora[{extra}]'")
