"""tanh: Y = tanh(X), elementwise on X of any shape (batch first).

    dL/dX = G * (1 - Y^2)          (Y the forward's output, not X)

Smooth: no kinks. Curved (not piecewise linear), so finite differences take an absolute step (the reason is
sigmoid's: a step scaled by |X| truncates too much where |X| is large; see checks.kinds.sigmoid).
"""

from __future__ import annotations

import numpy as np

import cnn
from checks import strategies as cs
from checks.case import Case
from checks.geometry import ElementwiseGeometry
from checks.kinds import Kind, Mistake, catalogue, fit
from checks.subject import LayerSubject


def forward(g: ElementwiseGeometry, a, labels):
    """Y = tanh(X); no kink sites."""
    return cnn.tanh(a["input"]), []


def torch(F, g, t, labels):
    return t["input"].tanh()


def reference_layer(case: Case) -> LayerSubject:
    return LayerSubject(cnn.Tanh())


def user_geometries(s, input_layout: str):
    return cs.elementwise_geometries(ndim=s.ndim)


# -- known mistakes ----------------------------------------------------------------------------------


def _uses_input(case: Case, correct):
    """dX = G * (1 - X^2): the derivative written in terms of the output, fed the input."""
    x, up = case.inputs["input"], case.upstream
    return {"input": (up * (1 - x * x)).astype(case.dtype)}


def _visible(case: Case) -> bool:
    """1 - X^2 differs clearly (by 1e-3 of the largest slope) from 1 - tanh(X)^2 somewhere: near X = 0 the
    two agree to O(X^4)."""
    x = np.asarray(case.inputs["input"], dtype=np.float64)
    right = 1 - np.tanh(x) ** 2
    return bool(np.abs(1 - x * x - right).max(initial=0.0) > 1e-3 * right.max(initial=0.0))


MISTAKES = catalogue(
    "tanh",
    Mistake(
        "tanh_backward_uses_input",
        "input",
        "tanh backward computed from the INPUT: G * (1 - X^2) instead of G * (1 - tanh(X)^2)",
        "dX = G * (1 - Y^2), Y = tanh(X) the forward's output",
        _uses_input,
        _visible,
    ),
)


def candidates(a, z, params, canonical):
    """tanh in a network: any shape, unchanged."""
    if fit.same_shape(a, z, params):
        yield fit.Candidate(ElementwiseGeometry(tuple(a.shape)), "ND", "ND", (), "tanh")


KIND = Kind(
    name="tanh",
    geometry=ElementwiseGeometry,
    forward=forward,
    torch=torch,
    reference_layer=reference_layer,
    default_geometries=cs.elementwise_geometries,
    axes={"input": "n*", "output": "n*"},
    layouts={"input": "ND", "output": "ND"},
    user_geometries=user_geometries,
    curved=True,
    mistakes=MISTAKES,
    candidates=candidates,
)
