"""LayerSpecs for the gated linear units in this folder: ``examples/function_kind/specs.py:<name>``.

A `function` layer declares its shapes (nothing is drawn but the values) and names its parameters freely; its
gradients are judged by kink-guarded finite differences of its own forward. The classes are loaded from their
sibling files by path, so this module works wherever it is loaded from.

    .venv/bin/cnn-gradcheck check examples/function_kind/specs.py:glu
"""

import functools
import importlib.util
from pathlib import Path

from checks import LayerSpec, Param


@functools.cache
def _module(stem: str):
    path = Path(__file__).with_name(f"{stem}.py")
    spec = importlib.util.spec_from_file_location(f"{path.parent.name}_{stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


SHAPES = {"input": (4, 3), "output": (4, 2), "W": (3, 2), "V": (3, 2)}
PARAMS = {"W": Param("W", grad="dW"), "V": Param("V", grad="dV")}

glu = LayerSpec("function", build=lambda g: _module("glu").GatedLinear(3, 2), shapes=SHAPES, params=PARAMS)
glu_gate_derivative_missing = LayerSpec(
    "function",
    build=lambda g: _module("glu_gate_derivative_missing").GatedLinearNoGateDerivative(3, 2),
    shapes=SHAPES,
    params=PARAMS,
)
