"""sigmoid: Y = s(X) = 1 / (1 + exp(-X)), elementwise on X of any shape (batch first).

    dL/dX = G * Y * (1 - Y)          (Y the forward's output, not X)

Smooth: no kinks. Curved (not piecewise linear), so finite differences take an absolute step: a step scaled
by |X| truncates by about (eps |X|)^2 / 6 relative to s'(X) where |X| is large, which at |X| ~ 100 is
already above the fd tolerance; an absolute step keeps it at eps^2 / 6 everywhere.
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
    """Y = sigmoid(X); no kink sites."""
    return cnn.sigmoid(a["input"]), []


def torch(F, g, t, labels):
    return t["input"].sigmoid()


def reference_layer(case: Case) -> LayerSubject:
    return LayerSubject(cnn.Sigmoid())


def user_geometries(s, input_layout: str):
    return cs.elementwise_geometries(ndim=s.ndim)


# -- known mistakes ----------------------------------------------------------------------------------


def _uses_input(case: Case, correct):
    """dX = G * X * (1 - X): the derivative written in terms of the output, fed the input."""
    x, up = case.inputs["input"], case.upstream
    return {"input": (up * x * (1 - x)).astype(case.dtype)}


def _visible(case: Case) -> bool:
    """X (1 - X) differs clearly (by 1e-3 of the largest slope) from Y (1 - Y) somewhere: they agree only
    where X = Y or X = 1 - Y."""
    x = np.asarray(case.inputs["input"], dtype=np.float64)
    y = cnn.sigmoid(x)
    right = y * (1 - y)
    return bool(np.abs(x * (1 - x) - right).max(initial=0.0) > 1e-3 * right.max(initial=0.0))


MISTAKES = catalogue(
    "sigmoid",
    Mistake(
        "sigmoid_backward_uses_input",
        "input",
        "sigmoid backward computed from the INPUT: G * X * (1 - X) instead of G * s(X) * (1 - s(X))",
        "dX = G * Y * (1 - Y), Y = sigmoid(X) the forward's output",
        _uses_input,
        _visible,
    ),
)


def candidates(a, z, params, canonical):
    """sigmoid in a network: any shape, unchanged."""
    if fit.same_shape(a, z, params):
        yield fit.Candidate(ElementwiseGeometry(tuple(a.shape)), "ND", "ND", (), "sigmoid")


KIND = Kind(
    name="sigmoid",
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
