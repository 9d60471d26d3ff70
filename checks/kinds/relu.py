"""relu: Y = max(X, 0), elementwise on X of any shape (batch first).

    dL/dX = G * (X > 0)

A kink wherever X == 0: there the valid gradients are every dX between 0 and G (the Clarke
subdifferential of max(x, 0) at 0 is [0, 1]); elsewhere dX is G (X > 0) or 0 (X < 0) exactly.
"""

from __future__ import annotations

import numpy as np

import cnn
from checks import strategies as cs
from checks.case import Case
from checks.compare import Membership, compare_interval
from checks.geometry import ElementwiseGeometry
from checks.kinds import Kind, Mistake, Region, catalogue, fit
from checks.oracles.kinks import KinkSite
from checks.subject import LayerSubject
from checks.tolerances import Tolerance


def forward(g: ElementwiseGeometry, a, labels):
    """Y = max(X, 0); X is a kink site."""
    return cnn.relu(a["input"]), [KinkSite("relu", a["input"])]


def torch(F, g, t, labels):
    return F.relu(t["input"])


def reference_layer(case: Case) -> LayerSubject:
    return LayerSubject(cnn.ReLU())


def user_geometries(s, input_layout: str):
    return cs.elementwise_geometries(ndim=s.ndim)


def interval(x: np.ndarray, upstream: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """[lo, hi] per entry: G where X > 0, 0 where X < 0, between min(0, G) and max(0, G) where X == 0."""
    g = np.asarray(upstream, dtype=np.float64)
    lo = np.where(x > 0, g, np.where(x < 0, 0.0, np.minimum(g, 0.0)))
    hi = np.where(x > 0, g, np.where(x < 0, 0.0, np.maximum(g, 0.0)))
    return lo, hi


def membership(inputs, geometry, upstream: np.ndarray, grad: np.ndarray, backward, tol: Tolerance) -> Membership:
    """dX within [min(0, G m), max(0, G m)] with m = 1 (X > 0), 0 (X < 0), any in [0, 1] (X == 0)."""
    x = inputs["input"]
    lo, hi = interval(x, upstream)
    comparison = compare_interval(np.asarray(grad, dtype=np.float64), lo, hi, tol)
    if comparison.ok:
        return Membership(True, "every entry is a valid ReLU subgradient", comparison, allowed=(lo, hi))
    i = comparison.worst_index
    region = (
        "X > 0 (must pass G)" if x[i] > 0 else "X < 0 (must be 0)" if x[i] < 0 else "X == 0 (must lie between 0 and G)"
    )
    return Membership(False, f"not a ReLU subgradient at {i}, where {region}", comparison, allowed=(lo, hi))


def regions(case: Case, name: str) -> list[Region]:
    x = np.asarray(case.inputs["input"])
    return [
        ("ties", x == 0, "only where the ReLU input is exactly 0"),
        ("negative", x < 0, "only where the ReLU input is negative"),
    ]


MISTAKES = catalogue(
    "relu",
    Mistake(
        "relu_never_masks",
        "input",
        "ReLU passes the gradient where the input is negative (mask on `output < 0`, which never holds)",
        "dX = G * (X > 0)",
        lambda case, correct: {"input": case.upstream.copy()},
    ),
    Mistake(
        "relu_mask_on_upstream",
        "input",
        "ReLU mask taken on the wrong array (the upstream gradient instead of the input)",
        "dX = G * (X > 0)",
        lambda case, correct: {"input": np.where(case.upstream > 0, case.upstream, 0).astype(case.dtype)},
    ),
)


def candidates(a, z, params, canonical):
    """relu in a network: any shape, unchanged."""
    if fit.same_shape(a, z, params):
        yield fit.Candidate(ElementwiseGeometry(tuple(a.shape)), "ND", "ND", (), "relu")


def torch_tiebreak(F, g, t):
    """relu with slope 1 at 0 (torch's own takes 0 there)."""
    x = t["input"]
    return x.where(x >= 0, 0.0 * x)


KIND = Kind(
    name="relu",
    geometry=ElementwiseGeometry,
    forward=forward,
    torch=torch,
    reference_layer=reference_layer,
    default_geometries=cs.elementwise_geometries,
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
