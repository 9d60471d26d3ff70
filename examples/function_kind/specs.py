"""LayerSpecs for the layers in this folder: ``examples/function_kind/specs.py:<name>``.

A `function` layer declares its shapes (nothing is drawn but the values) and names its parameters freely; its
gradients are judged by kink-guarded finite differences of its own forward. A layer of several inputs names them
in the order its forward takes them (``inputs=("q", "k")``: forward(q, k), backward(dout) -> (dq, dk)), and each
gets its own shape and its own ``grad_<name>``. The classes are loaded from their sibling files by path, so this
module works wherever it is loaded from.

    .venv/bin/cnn-gradcheck check examples/function_kind/specs.py:glu
    .venv/bin/cnn-gradcheck check examples/function_kind/specs.py:scores
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

# scaled dot-product scores Z = Q K^T / sqrt(d): two inputs, no parameters
SCORES = {"q": (3, 4), "k": (5, 4), "output": (3, 5)}
scores = LayerSpec("function", build=lambda g: _module("scores").ScaledScores(), inputs=("q", "k"), shapes=SCORES)
scores_key_unscaled = LayerSpec(
    "function",
    build=lambda g: _module("scores_key_unscaled").ScaledScoresKeyUnscaled(),
    inputs=("q", "k"),
    shapes=SCORES,
)
