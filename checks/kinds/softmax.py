"""softmax: P = softmax(X) over one axis (the last unless the geometry says otherwise) of X (N, ..., M).

    P_i = exp(X_i) / sum_j exp(X_j)         (along the axis, for every position of the other axes)
    dL/dX = (diag(P) - P P^T) G = P * (G - sum_axis(G * P))

Smooth: no kinks. Curved (its curvature does not shrink as |X| grows): finite differences take an absolute
step, as for softmax_ce.
"""

from __future__ import annotations

import numpy as np

import cnn
from checks import strategies as cs
from checks.case import Case
from checks.geometry import SoftmaxGeometry
from checks.kinds import Kind, Mistake, catalogue, fit
from checks.subject import LayerSubject


def forward(g: SoftmaxGeometry, a, labels):
    """P = softmax(X) over the geometry's axis; no kink sites."""
    return cnn.softmax(a["input"], g.axis), []


def torch(F, g: SoftmaxGeometry, t, labels):
    return F.softmax(t["input"], dim=g.axis)


def reference_layer(case: Case) -> LayerSubject:
    return LayerSubject(cnn.Softmax(case.geometry.axis))


def user_geometries(s, input_layout: str):
    return cs.softmax_geometries(ndim=s.ndim, axis=s.axis)


# -- known mistakes ----------------------------------------------------------------------------------


def _parts(case: Case) -> tuple[np.ndarray, np.ndarray, int]:
    """(P, G, axis): the forward's output and the upstream gradient, in float64, and the softmax axis."""
    x = np.asarray(case.inputs["input"], dtype=np.float64)
    return cnn.softmax(x, case.geometry.axis), np.asarray(case.upstream, dtype=np.float64), case.geometry.axis


def _diagonal_only(case: Case, correct):
    """dX = G * P * (1 - P): only the diagonal of the Jacobian diag(P) - P P^T."""
    p, g, _ = _parts(case)
    return {"input": (g * p * (1 - p)).astype(case.dtype)}


def _passes_upstream(case: Case, correct):
    """dX = G: no Jacobian at all (the softmax treated as the identity, or as if fused with a CE loss)."""
    return {"input": case.upstream.copy()}


def _first_entry_only(case: Case, correct):
    """A loop over G's entries that returns after the first non-zero one (index k) in each row along the
    axis: dX = J[:, k] G_k = P * (e_k - P_k) * G_k, only that entry's Jacobian column; 0 for an all-zero row."""
    p, g, axis = _parts(case)
    p, g = np.moveaxis(p, axis, -1), np.moveaxis(g, axis, -1)
    nonzero = g != 0
    k = np.argmax(nonzero, axis=-1)[..., None]
    g_k = np.take_along_axis(g, k, axis=-1) * nonzero.any(axis=-1, keepdims=True)
    e_k = np.arange(p.shape[-1]) == k
    dx = p * (e_k - np.take_along_axis(p, k, axis=-1)) * g_k
    return {"input": np.moveaxis(dx, -1, axis).astype(case.dtype)}


def _classes(case: Case) -> bool:
    """Two or more entries along the softmax axis: otherwise P = 1 and every Jacobian entry is 0."""
    return case.geometry.shape[case.geometry.axis] >= 2


MISTAKES = catalogue(
    "softmax",
    Mistake(
        "softmax_diagonal_only",
        "input",
        "softmax backward keeps only the Jacobian's diagonal: G * P * (1 - P), the -P_i P_j G_j terms are missing",
        "dX = P * (G - sum_axis(G * P))  ==  (diag(P) - P P^T) G",
        _diagonal_only,
        _classes,
    ),
    Mistake(
        "softmax_passes_upstream",
        "input",
        "softmax backward returns the upstream gradient unchanged (dX = G), as if the softmax were the identity",
        "dX = P * (G - sum_axis(G * P))  ==  (diag(P) - P P^T) G",
        _passes_upstream,
    ),
    Mistake(
        "softmax_first_entry_only",
        "input",
        "softmax backward stops after the first non-zero entry of G in each row: only that entry's Jacobian column",
        "dX = sum_k J[:, k] G_k over EVERY k, J = diag(P) - P P^T  ==  P * (G - sum_axis(G * P))",
        _first_entry_only,
        _classes,
    ),
)


def candidates(a, z, params, canonical):
    """A softmax in a network: over the last axis, any shape."""
    if fit.same_shape(a, z, params):
        yield fit.Candidate(SoftmaxGeometry(tuple(a.shape), -1), "ND", "ND", (), "softmax over the last axis")


KIND = Kind(
    name="softmax",
    geometry=SoftmaxGeometry,
    forward=forward,
    torch=torch,
    reference_layer=reference_layer,
    default_geometries=cs.softmax_geometries,
    axes={"input": "n*", "output": "n*"},
    layouts={"input": "ND", "output": "ND"},
    user_geometries=user_geometries,
    curved=True,
    mistakes=MISTAKES,
    candidates=candidates,
)
