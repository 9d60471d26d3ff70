"""softmax_ce: L = mean_n -log softmax(z_n)[y_n] on logits (N, M) with integer labels y (N,); a 0-d output.

    dL/dz = (softmax(z) - onehot(y)) / N

Smooth but curved (its curvature does not shrink as |z| grows): finite differences take an absolute step.
"""

from __future__ import annotations

import numpy as np

import cnn
from checks import strategies as cs
from checks.case import Case
from checks.geometry import LossGeometry
from checks.kinds import Kind
from checks.subject import LossSubject


def forward(g: LossGeometry, a, labels):
    """L = mean_n -log softmax(z_n)[y_n], as a 0-d array; no kink sites."""
    loss, _ = cnn.softmax_cross_entropy(a["input"], labels)
    return np.asarray(loss, dtype=a["input"].dtype), []


def torch(F, g, t, labels):
    return F.cross_entropy(t["input"], labels)


def reference_layer(case: Case) -> LossSubject:
    return LossSubject(case.labels)


KIND = Kind(
    name="softmax_ce",
    geometry=LossGeometry,
    forward=forward,
    torch=torch,
    reference_layer=reference_layer,
    default_geometries=cs.loss_geometries,
    axes={"input": "nm", "output": ""},
    layouts={"input": "ND", "output": "ND"},
    curved=True,
)
