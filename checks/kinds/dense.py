"""dense: Y = flatten(X) W + b on X (N, *features), W (D, M) with D = prod(features), b (M,).

    dL/dX = G W^T (reshaped to X)     dL/dW = flatten(X)^T G     dL/db = sum_n G[n, :]

Smooth (linear in X and in W): no kinks.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

import cnn
from checks import strategies as cs
from checks.case import Case
from checks.geometry import DenseGeometry
from checks.kinds import Kind, Mistake, catalogue, fit
from checks.strategies._bounds import at_least
from checks.subject import LayerSubject


def forward(g: DenseGeometry, a, labels):
    """Y = flatten(X) W + b; no kink sites."""
    return cnn.dense(a["input"], a["weight"], a.get("bias")), []


def torch(F, g, t, labels):
    y = t["input"].flatten(1) @ t["weight"]
    return y + t["bias"] if "bias" in t else y


def reference_layer(case: Case) -> LayerSubject:
    g = case.geometry
    return LayerSubject(cnn.Dense(g.in_features, g.out_features, g.bias, dtype=case.dtype))


def user_geometries(s, input_layout: str):
    one_vector = input_layout == "D"  # a single vector: its length is the features bound
    return cs.dense_geometries(
        batch=s.batch,
        features_ndim=1 if one_vector else s.features_ndim,
        side=s.features if one_vector else (1, 4),
        out_features=s.out_features,
        bias=s.bias,
    )


def corner(s):
    """More than one output: a transposed weight gradient shows in its shape or values."""
    return replace(s, out_features=at_least(s.out_features, 2))


def _over_batch(name: str):
    def wrong(case: Case, correct):
        return {name: correct[name] / case.inputs["input"].shape[0]}

    return wrong


def _has_batch(case: Case) -> bool:
    return case.inputs["input"].shape[0] > 1


def _square(case: Case) -> bool:
    d, m = case.inputs["weight"].shape
    return d == m and d > 1


MISTAKES = catalogue(
    "dense",
    Mistake(
        "dense_weight_transposed",
        "weight",
        "weight gradient transposed: G^T X instead of X^T G (invisible in the shape when D == M)",
        "dL/dW = X^T G, shape (D, M)",
        lambda case, correct: {"weight": np.ascontiguousarray(correct["weight"].T)},
        _square,
    ),
    Mistake(
        "dense_bias_over_batch",
        "bias",
        "bias gradient averaged over the batch instead of summed",
        "dL/db = sum_n G[n, :]",
        _over_batch("bias"),
        _has_batch,
    ),
    Mistake(
        "dense_weight_over_batch",
        "weight",
        "weight gradient divided by the batch size",
        "dL/dW = X^T G",
        _over_batch("weight"),
        _has_batch,
    ),
)


def candidates(a, z, params, canonical):
    """A dense layer in a network: see checks.kinds.fit.dense."""
    return fit.dense("dense", DenseGeometry, a, z, params, canonical)


KIND = Kind(
    name="dense",
    geometry=DenseGeometry,
    forward=forward,
    torch=torch,
    reference_layer=reference_layer,
    default_geometries=cs.dense_geometries,
    axes={"input": "nd|n*", "output": "nm", "weight": "dm", "bias": "m"},
    layouts={"input": "ND", "output": "ND", "weight": "DM", "bias": None},
    modes=("separated", "mixed"),
    user_geometries=user_geometries,
    corner=corner,
    mistakes=MISTAKES,
    candidates=candidates,
)
