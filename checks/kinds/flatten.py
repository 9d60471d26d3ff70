"""flatten: (N, ...) -> (N, D), D the product of the other axes; backward reshapes G back to X's shape.

Linear and exact: no kinks.
"""

from __future__ import annotations

import cnn
from checks import strategies as cs
from checks.case import Case
from checks.geometry import FlattenGeometry
from checks.kinds import Kind
from checks.subject import LayerSubject


def forward(g: FlattenGeometry, a, labels):
    """(N, ...) -> (N, D); no kink sites."""
    return cnn.flatten(a["input"]), []


def torch(F, g, t, labels):
    return t["input"].flatten(1)


def reference_layer(case: Case) -> LayerSubject:
    return LayerSubject(cnn.Flatten())


def user_geometries(s, input_layout: str):
    return cs.flatten_geometries(ndim=s.ndim)


KIND = Kind(
    name="flatten",
    geometry=FlattenGeometry,
    forward=forward,
    torch=torch,
    reference_layer=reference_layer,
    default_geometries=cs.flatten_geometries,
    axes={"input": "n*", "output": "nd"},
    layouts={"input": "ND", "output": "ND"},
    user_geometries=user_geometries,
)
