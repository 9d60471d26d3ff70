"""dense+softmax: a dense layer and a softmax fused in one class, P = softmax(T), T = flatten(X) W + b, on
X (N, *features), W (D, M) with D = prod(features), b (M,); the softmax runs over the M classes of each row.

    dL/dT = (diag(P) - P P^T) G = P * (G - sum_m(G * P))          (row by row)
    dL/dX = dL/dT W^T (reshaped to X)    dL/dW = flatten(X)^T dL/dT    dL/db = sum_n dL/dT[n, :]

The composition of the dense and softmax kinds, judged against the composed reference (cnn.Dense then
cnn.Softmax): no formula of its own. Smooth: no kinks. Curved through its softmax: finite differences take an
absolute step. The user-facing name is ``dense+softmax``; this module is its registry entry (``dense_softmax``).

| array  | canonical | axis letters | layout |
|--------|-----------|--------------|--------|
| input  | (N, *features) | n d / n i j k | ND |
| output | (N, M)    | n m          | ND     |
| weight | (D, M)    | d m          | DM     |
| bias   | (M,)      | m            | kept as the layer holds it |
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

import cnn
from checks import strategies as cs
from checks.case import Case
from checks.geometry import DenseGeometry
from checks.kinds import Grads, Kind, Mistake, catalogue, fit
from checks.kinds import dense as dense_kind
from checks.subject import LayerSubject

NAME = "dense+softmax"


def forward(g: DenseGeometry, a, labels):
    """P = softmax(flatten(X) W + b) over the classes; no kink sites."""
    return cnn.softmax(cnn.dense(a["input"], a["weight"], a.get("bias")), -1), []


def torch(F, g, t, labels):
    totals = t["input"].flatten(1) @ t["weight"]
    return F.softmax(totals + t["bias"] if "bias" in t else totals, dim=1)


def reference_layer(case: Case) -> LayerSubject:
    """cnn.Dense then cnn.Softmax, the case's weight and bias installed as the dense layer's ("0.weight")."""
    g = case.geometry
    layers = cnn.Sequential(cnn.Dense(g.in_features, g.out_features, g.bias, dtype=case.dtype), cnn.Softmax(-1))
    return LayerSubject(layers, {"weight": "0.weight", "bias": "0.bias"})


def default_geometries(**bounds):
    """Dense geometries with two or more classes by default: with one, P = 1 and every gradient is 0."""
    return cs.dense_geometries(**{"out_features": (2, 5), **bounds})


# -- known mistakes ----------------------------------------------------------------------------------
# Each is a wrong dL/dT (the softmax's part); the dense part then carries it to every gradient, as the layer's
# own code does: dX = dT W^T, dW = X^T dT, db = sum_n dT.


def _parts(case: Case) -> tuple[np.ndarray, np.ndarray]:
    """(P, G) in float64: the forward's output and the upstream gradient, both (N, M)."""
    a = {k: np.asarray(v, dtype=np.float64) for k, v in case.inputs.items()}
    return forward(case.geometry, a, None)[0], np.asarray(case.upstream, dtype=np.float64)


def _through_dense(case: Case, d_totals: np.ndarray) -> Grads:
    """Every gradient the dense part derives from dL/dT = ``d_totals``: dX, dW and (when there is one) db."""
    x = np.asarray(case.inputs["input"], dtype=np.float64)
    w = np.asarray(case.inputs["weight"], dtype=np.float64)
    grads = {"input": cnn.dense_grad_input(d_totals, w, x.shape), "weight": cnn.dense_grad_weight(d_totals, x)}
    if "bias" in case.inputs:
        grads["bias"] = cnn.dense_grad_bias(d_totals)
    return {k: v.astype(case.dtype) for k, v in grads.items()}


def _wrong_totals(d_totals: Callable[[np.ndarray, np.ndarray], np.ndarray]):
    def wrong(case: Case, correct) -> Grads:
        return _through_dense(case, d_totals(*_parts(case)))

    return wrong


def _diagonal_only(p: np.ndarray, g: np.ndarray) -> np.ndarray:
    """dT = G * P * (1 - P): only the diagonal of the Jacobian diag(P) - P P^T."""
    return g * p * (1 - p)


def _first_entry_only(p: np.ndarray, g: np.ndarray) -> np.ndarray:
    """A loop over G's entries that returns after the first non-zero one, k, in each row (the blog layer written
    for a one-hot dL/dP): dT = J[:, k] G_k = P * (e_k - P_k) * G_k; 0 for an all-zero row."""
    nonzero = g != 0
    k = np.argmax(nonzero, axis=-1)[:, None]
    g_k = np.take_along_axis(g, k, axis=-1) * nonzero.any(axis=-1, keepdims=True)
    e_k = np.arange(p.shape[-1]) == k
    return p * (e_k - np.take_along_axis(p, k, axis=-1)) * g_k


def _classes(case: Case) -> bool:
    """Two or more classes: otherwise P = 1 and every Jacobian entry is 0."""
    return case.geometry.out_features >= 2


def _two_entries_in_a_row(case: Case) -> bool:
    """Some row of G has two non-zero entries: with one, the first entry is the only one and the loop is right."""
    return _classes(case) and bool(np.any(np.count_nonzero(case.upstream, axis=-1) >= 2))


RIGHT = "dT = P * (G - sum_m(G * P)) == (diag(P) - P P^T) G;  dX = dT W^T, dW = X^T dT, db = sum_n dT"

MISTAKES = catalogue(
    NAME,
    Mistake(
        "dense_softmax_diagonal_only",
        "input",
        "the softmax part keeps only the Jacobian's diagonal: dT = G * P * (1 - P), the -P_i P_j G_j terms are "
        "missing (and so in dX, dW and db)",
        RIGHT,
        _wrong_totals(_diagonal_only),
        _classes,
    ),
    Mistake(
        "dense_softmax_first_entry_only",
        "input",
        "the backward returns inside its loop over dL/dP at the first non-zero entry k: dT = J[:, k] G_k, only "
        "that entry's Jacobian column (right only for a one-hot dL/dP)",
        "dT = sum_k J[:, k] G_k over EVERY k, J = diag(P) - P P^T;  " + RIGHT.split(";  ")[1],
        _wrong_totals(_first_entry_only),
        _two_entries_in_a_row,
    ),
)


def candidates(a, z, params, canonical):
    """A dense layer with its softmax in a network: see checks.kinds.fit.dense."""
    return fit.dense("dense+softmax", DenseGeometry, a, z, params, canonical)


KIND = Kind(
    name=NAME,
    geometry=DenseGeometry,
    forward=forward,
    torch=torch,
    reference_layer=reference_layer,
    default_geometries=default_geometries,
    axes={"input": "nd|n*", "output": "nm", "weight": "dm", "bias": "m"},
    layouts={"input": "ND", "output": "ND", "weight": "DM", "bias": None},
    user_geometries=dense_kind.user_geometries,
    corner=dense_kind.corner,
    curved=True,
    mistakes=MISTAKES,
    candidates=candidates,
)
