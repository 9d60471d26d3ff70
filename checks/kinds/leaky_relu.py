"""leaky_relu: Y = X where X > 0, alpha * X elsewhere, elementwise on X of any shape (batch first); the negative
slope alpha is part of the geometry (drawn in [0.01, 0.3] unless the layer declares it).

    dL/dX = G where X > 0, alpha * G where X < 0

A kink wherever X == 0: there the valid gradients are every dX between alpha * G and G (the Clarke
subdifferential of the leaky ReLU at 0 is [alpha, 1]); elsewhere dX is G (X > 0) or alpha * G (X < 0) exactly.
"""

from __future__ import annotations

import numpy as np

import cnn
from checks import strategies as cs
from checks.case import Case
from checks.compare import Membership, compare_interval
from checks.geometry import LeakyReluGeometry
from checks.kinds import Kind, Mistake, Region, catalogue, fit
from checks.oracles.kinks import KinkSite
from checks.subject import LayerSubject
from checks.tolerances import Tolerance


def forward(g: LeakyReluGeometry, a, labels):
    """Y = leaky_relu(X, alpha); X is a kink site (the same sign pattern as a ReLU's)."""
    return cnn.leaky_relu(a["input"], g.alpha), [KinkSite("relu", a["input"])]


def torch(F, g: LeakyReluGeometry, t, labels):
    return F.leaky_relu(t["input"], g.alpha)


def reference_layer(case: Case) -> LayerSubject:
    return LayerSubject(cnn.LeakyReLU(case.geometry.alpha))


def user_geometries(s, input_layout: str):
    return cs.leaky_relu_geometries(ndim=s.ndim, alpha=s.alpha)


def interval(x: np.ndarray, upstream: np.ndarray, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """[lo, hi] per entry: G where X > 0, alpha * G where X < 0, between min(alpha G, G) and max(alpha G, G)
    where X == 0."""
    g = np.asarray(upstream, dtype=np.float64)
    lo = np.where(x > 0, g, np.where(x < 0, alpha * g, np.minimum(g, alpha * g)))
    hi = np.where(x > 0, g, np.where(x < 0, alpha * g, np.maximum(g, alpha * g)))
    return lo, hi


def membership(
    inputs, geometry: LeakyReluGeometry, upstream: np.ndarray, grad: np.ndarray, backward, tol: Tolerance
) -> Membership:
    """dX within [min(G m), max(G m)] over the slopes m allowed: 1 (X > 0), alpha (X < 0), any in [alpha, 1]
    (X == 0)."""
    x, alpha = inputs["input"], geometry.alpha
    lo, hi = interval(x, upstream, alpha)
    comparison = compare_interval(np.asarray(grad, dtype=np.float64), lo, hi, tol)
    if comparison.ok:
        return Membership(True, "every entry is a valid leaky ReLU subgradient", comparison, allowed=(lo, hi))
    i = comparison.worst_index
    region = (
        "X > 0 (must pass G)"
        if x[i] > 0
        else f"X < 0 (must be alpha * G, alpha = {alpha:.6g})"
        if x[i] < 0
        else f"X == 0 (must lie between alpha * G and G, alpha = {alpha:.6g})"
    )
    return Membership(False, f"not a leaky ReLU subgradient at {i}, where {region}", comparison, allowed=(lo, hi))


def regions(case: Case, name: str) -> list[Region]:
    x = np.asarray(case.inputs["input"])
    return [
        ("ties", x == 0, "only where the leaky ReLU input is exactly 0"),
        ("negative", x < 0, "only where the leaky ReLU input is negative"),
    ]


# -- known mistakes ----------------------------------------------------------------------------------


def _wrong_side(case: Case, correct):
    """`np.where(x > 0, alpha * G, G)`: the two slopes swapped (G itself at X == 0, a valid choice there)."""
    x, up, alpha = case.inputs["input"], case.upstream, case.geometry.alpha
    return {"input": np.where(x > 0, alpha * up, up).astype(case.dtype)}


def _relu_backward(case: Case, correct):
    """ReLU's backward reused: dX = G * (X > 0), the negative slope dropped."""
    x, up = case.inputs["input"], case.upstream
    return {"input": np.where(x > 0, up, 0).astype(case.dtype)}


def _some_nonzero(case: Case) -> bool:
    return bool((case.inputs["input"] != 0).any())


def _some_negative(case: Case) -> bool:
    return bool((case.inputs["input"] < 0).any()) and case.geometry.alpha != 0


MISTAKES = catalogue(
    "leaky_relu",
    Mistake(
        "leaky_slope_wrong_side",
        "input",
        "leaky ReLU slopes swapped: alpha * G where X > 0 and G where X < 0",
        "dX = G where X > 0, alpha * G where X < 0 (anything between the two at X == 0)",
        _wrong_side,
        _some_nonzero,
    ),
    Mistake(
        "leaky_slope_dropped",
        "input",
        "leaky ReLU backward written as ReLU's: 0 instead of alpha * G where X < 0",
        "dX = G where X > 0, alpha * G where X < 0 (anything between the two at X == 0)",
        _relu_backward,
        _some_negative,
    ),
)


def candidates(a, z, params, canonical):
    """A leaky ReLU in a network: any shape, its slope the median of z / a where a < 0 (none there: not tried)."""
    negative = a < -1e-12
    if fit.same_shape(a, z, params) and np.any(negative):
        alpha = float(np.median(z[negative] / a[negative]))
        yield fit.Candidate(LeakyReluGeometry(tuple(a.shape), alpha), "ND", "ND", (), f"leaky_relu, slope {alpha:.6g}")


def torch_tiebreak(F, g: LeakyReluGeometry, t):
    """leaky_relu with slope 1 at 0 (torch's own takes alpha there)."""
    x = t["input"]
    return x.where(x >= 0, g.alpha * x)


KIND = Kind(
    name="leaky_relu",
    geometry=LeakyReluGeometry,
    forward=forward,
    torch=torch,
    reference_layer=reference_layer,
    default_geometries=cs.leaky_relu_geometries,
    axes={"input": "n*", "output": "n*"},
    layouts={"input": "ND", "output": "ND"},
    modes=("separated", "zeros", "ties"),
    user_geometries=user_geometries,
    membership=membership,
    regions=regions,
    mistakes=MISTAKES,
    candidates=candidates,
    torch_tiebreak=torch_tiebreak,
)
