"""cnn-gradcheck's checker: oracles, strategies, kink-aware verdicts, adapters and reports.

Public API (everything else is internal):
- ``LayerSpec``, ``Param``, ``Supports``: describe a layer as you wrote it (checks.adapt.adapters).
- ``check(spec, ...) -> Report``: run every property on it (checks.api).
- ``check_network("net.py:build", input_shape=...) -> Report``: a whole network of your layers (checks.api).
- ``presets``: LayerSpecs for the seed-article style and CS231n function pairs.
- ``Report``: ``passed``, ``render()``, ``to_json()``.

Names are imported on first use, so ``cnn-gradcheck --help`` does not pay for numpy or hypothesis.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

__all__ = ["LayerSpec", "Param", "Report", "Supports", "check", "check_network", "presets"]

_HOME = {
    "LayerSpec": "checks.adapt.adapters",
    "Param": "checks.adapt.adapters",
    "Supports": "checks.adapt.adapters",
    "check": "checks.api",
    "check_network": "checks.api",
    "Report": "checks.report",
    "presets": "checks.adapt.presets",
}

if TYPE_CHECKING:
    from checks.adapt import presets
    from checks.adapt.adapters import LayerSpec, Param, Supports
    from checks.api import check, check_network
    from checks.report import Report


def __getattr__(name: str) -> object:
    if name not in _HOME:
        raise AttributeError(f"module 'checks' has no attribute {name!r}")
    module = importlib.import_module(_HOME[name])
    return module if name == "presets" else getattr(module, name)
