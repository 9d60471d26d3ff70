"""softmax_ce: L = (1/D) sum_n -log softmax(z_n)[y_n] on logits (N, M) with integer labels y (N,); a 0-d output;
D = N (reduction "mean", the default) or 1 ("sum": a layer declares it, Supports.reduction).

    dL/dz = G * (softmax(z) - onehot(y)) / D        (G the scalar upstream gradient: 1 for a loss used last)

Smooth but curved (its curvature does not shrink as |z| grows): finite differences take an absolute step.
A user's loss layer is called forward(z, labels) -> loss and backward(G) -> dL/dz.
"""

from __future__ import annotations

import numpy as np

import cnn
from checks import strategies as cs
from checks.case import Case
from checks.geometry import LossGeometry
from checks.kinds import Kind, Mistake, catalogue


def forward(g: LossGeometry, a, labels):
    """L = (1/D) sum_n -log softmax(z_n)[y_n], as a 0-d array; no kink sites."""
    loss, _ = cnn.softmax_cross_entropy(a["input"], labels, g.reduction)
    return np.asarray(loss, dtype=a["input"].dtype), []


def torch(F, g: LossGeometry, t, labels):
    return F.cross_entropy(t["input"], labels, reduction=g.reduction)


class LabelledLoss:
    """A loss of cnn/ (forward(scores, labels) -> L, backward(G) -> dL/dscores) with the case's labels, as a
    Subject: Z is the 0-d loss, dL/dscores = G * the loss's gradient."""

    def __init__(self, loss, labels: np.ndarray) -> None:
        self.loss, self.labels = loss, labels

    def forward(self, inputs):
        return self.loss.forward(inputs["input"], self.labels)

    def backward(self, upstream):
        return {"input": self.loss.backward(upstream)}


def reference_layer(case: Case) -> LabelledLoss:
    return LabelledLoss(cnn.SoftmaxCrossEntropyLoss(case.geometry.reduction), case.labels)


def user_geometries(s, input_layout: str):
    return cs.loss_geometries(batch=s.batch, classes=s.classes, reduction=s.reduction)


# -- known mistakes ----------------------------------------------------------------------------------


def _parts(case: Case) -> tuple[np.ndarray, np.ndarray, float, float]:
    """(P, onehot(y), G, D) in float64: the softmax of the logits, the labels one-hot, the scalar upstream
    gradient and the reduction's divisor."""
    x = np.asarray(case.inputs["input"], dtype=np.float64)
    p = cnn.softmax(x, -1)
    onehot = np.eye(x.shape[1])[case.labels]
    divisor = cnn.reduction_divisor(case.geometry.reduction, x.shape[0]) if x.shape[0] else 1
    return p, onehot, float(case.upstream), float(divisor)


def _not_averaged(case: Case, correct):
    """dL/dz = G * (P - onehot(y)): the 1/N of the mean is missing."""
    p, onehot, g, _ = _parts(case)
    return {"input": (g * (p - onehot)).astype(case.dtype)}


def _labels_not_subtracted(case: Case, correct):
    """dL/dz = G * P / D: the softmax's own output, the -onehot(y) of the log-likelihood left out."""
    p, _, g, divisor = _parts(case)
    return {"input": (g * p / divisor).astype(case.dtype)}


MISTAKES = catalogue(
    "softmax_ce",
    Mistake(
        "softmax_ce_not_averaged",
        "input",
        "softmax cross-entropy gradient summed over the batch where the loss is its mean: the 1/N is missing",
        "dL/dz = G * (softmax(z) - onehot(y)) / N   (reduction 'mean')",
        _not_averaged,
        lambda c: c.geometry.reduction == "mean" and c.geometry.batch >= 2,
    ),
    Mistake(
        "softmax_ce_labels_not_subtracted",
        "input",
        "softmax cross-entropy gradient without the labels: softmax(z) / N, the -onehot(y) term is missing",
        "dL/dz = G * (softmax(z) - onehot(y)) / D   (D = N for 'mean', 1 for 'sum')",
        _labels_not_subtracted,
    ),
)


KIND = Kind(
    name="softmax_ce",
    geometry=LossGeometry,
    forward=forward,
    torch=torch,
    reference_layer=reference_layer,
    default_geometries=cs.loss_geometries,
    axes={"input": "nm", "output": ""},
    layouts={"input": "ND", "output": "ND"},
    user_geometries=user_geometries,
    curved=True,
    mistakes=MISTAKES,
)
