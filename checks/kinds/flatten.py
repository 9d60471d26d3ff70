"""flatten: (N, ...) -> (N, D), D the product of the other axes; backward reshapes G back to X's shape.

Linear and exact: no kinks.
"""

from __future__ import annotations

import cnn
from checks import strategies as cs
from checks.case import Case
from checks.geometry import FlattenGeometry
from checks.kinds import Kind, fit
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


def candidates(a, z, params, canonical):
    """A flatten in a network: a batch of samples or one sample, to a batch of vectors or one vector."""
    if params:
        return
    for in_layout, shape in fit.vectors(a.shape, canonical):
        g = FlattenGeometry(tuple(shape))
        for out_layout, out in fit.vectors(z.shape, canonical, output=True):
            if tuple(out) == g.output_shape:
                shown = f"flatten; input {fit.shown_layout(in_layout, a.shape)}, output {out_layout}"
                yield fit.Candidate(g, in_layout, out_layout, (), shown)


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
    candidates=candidates,
)
