"""svm_loss: the multiclass hinge loss with margin 1 on scores (N, M) with integer labels y (N,); a 0-d output.

    L = (1/D) sum_i sum_{j != y_i} max(0, m_ij),   m_ij = x_ij - x_iy_i + 1,   D = N ("mean", the default) or 1
    dL/dx_ij = G a_ij / D (j != y_i),   dL/dx_iy_i = -G (sum_{j != y_i} a_ij) / D,   a_ij = [m_ij > 0]

A kink wherever a margin m_ij is exactly 0. The loss is convex, so there the valid gradients are every choice of
a_ij in [0, 1] for each tied margin, independently (the subdifferential of a sum of convex terms is the sum of
theirs); the label's entry is always minus the sum of its row's others. A margin within rounding of 0 counts as
a tie: whether an implementation sees it as active depends on how it rounds x_ij - x_iy_i + 1.
"""

from __future__ import annotations

import numpy as np

import cnn
from checks import strategies as cs
from checks.case import Case
from checks.compare import Membership, compare_interval
from checks.geometry import LossGeometry
from checks.kinds import Kind, Mistake, Region, catalogue
from checks.kinds.softmax_ce import LabelledLoss
from checks.oracles.kinks import KinkSite
from checks.tolerances import Tolerance

TIE_ULPS = 64
"""A margin within TIE_ULPS float32 units of roundoff of the row's scale (1 + max |x|) is a tie: implementations
that round x_ij - x_iy_i + 1 differently may see it on either side of 0 (float32 units, so that a float32 layer's
rounding counts too)."""


def margins(x: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """m_ij = x_ij - x_iy_i + 1 in float64, snapped to exactly 0 within rounding of 0 (TIE_ULPS), and -1 at the
    label's own entry (it is not in the loss, so it is never a kink)."""
    x = np.asarray(x, dtype=np.float64)
    rows = np.arange(x.shape[0])
    m = x - x[rows, labels][:, None] + 1
    scale = 1 + np.abs(x).max(axis=1, keepdims=True, initial=0.0)
    m[np.abs(m) <= TIE_ULPS * float(np.finfo(np.float32).eps) * scale] = 0.0
    m[rows, labels] = -1.0
    return m


def forward(g: LossGeometry, a, labels):
    """L = (1/D) sum_i sum_{j != y_i} max(0, m_ij), as a 0-d array; every margin is a kink site."""
    loss, _ = cnn.svm_loss(a["input"], labels, g.reduction)
    return np.asarray(loss, dtype=a["input"].dtype), [KinkSite("relu", margins(a["input"], labels))]


def torch(F, g: LossGeometry, t, labels):
    # multi_margin_loss divides each sample's sum by the number of classes M: undone here
    x = t["input"]
    total = F.multi_margin_loss(x, labels, p=1, margin=1.0, reduction="sum") * x.shape[1]
    return total / x.shape[0] if g.reduction == "mean" else total


def reference_layer(case: Case) -> LabelledLoss:
    return LabelledLoss(cnn.SVMLoss(case.geometry.reduction), case.labels)


def user_geometries(s, input_layout: str):
    return cs.loss_geometries(batch=s.batch, classes=s.classes, reduction=s.reduction)


def _scale(geometry: LossGeometry, upstream: np.ndarray, batch: int) -> float:
    """G / D: what one active margin contributes to its own entry."""
    return float(upstream) / cnn.reduction_divisor(geometry.reduction, batch)


def interval(
    x: np.ndarray, labels: np.ndarray, geometry: LossGeometry, upstream: np.ndarray, grad: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """[lo, hi] per entry: G/D where m_ij > 0, 0 where m_ij < 0, between 0 and G/D where m_ij == 0; at the label,
    minus the sum of the row's other entries of ``grad`` (whatever valid choices the layer made there)."""
    m = margins(x, labels)
    s = _scale(geometry, upstream, x.shape[0])
    lo = np.where(m > 0, s, np.where(m < 0, 0.0, min(0.0, s)))
    hi = np.where(m > 0, s, np.where(m < 0, 0.0, max(0.0, s)))
    rows = np.arange(x.shape[0])
    others = np.asarray(grad, dtype=np.float64).copy()
    others[rows, labels] = 0.0
    lo[rows, labels] = hi[rows, labels] = -others.sum(axis=1)
    return lo, hi


def membership(
    inputs, geometry: LossGeometry, upstream: np.ndarray, grad: np.ndarray, probe, tol: Tolerance, labels=None
) -> Membership:
    """dL/dx in the hinge loss's subdifferential: each entry off the label G a_ij / D with a_ij = 1 (m_ij > 0),
    0 (m_ij < 0), any in [0, 1] (m_ij == 0); each label entry minus the sum of its row's others."""
    x = inputs["input"]
    lo, hi = interval(x, labels, geometry, upstream, grad)
    comparison = compare_interval(np.asarray(grad, dtype=np.float64), lo, hi, tol)
    if comparison.ok:
        return Membership(True, "a valid hinge-loss subgradient", comparison, allowed=(lo, hi))
    i, j = comparison.worst_index
    m = margins(x, labels)[i, j]
    region = (
        "the label's entry (must be minus the sum of the row's other entries)"
        if j == labels[i]
        else "margin > 0 (must be G/D)"
        if m > 0
        else "margin < 0 (must be 0)"
        if m < 0
        else "margin == 0 (must lie between 0 and G/D)"
    )
    return Membership(False, f"not a hinge-loss subgradient at {(i, j)}, {region}", comparison, allowed=(lo, hi))


def regions(case: Case, name: str) -> list[Region]:
    """Where margins are exactly 0, with the label entries of those rows (they carry the tied terms too)."""
    m = margins(case.inputs["input"], case.labels)
    tied = m == 0
    rows = tied.any(axis=1)
    tied[np.arange(m.shape[0])[rows], np.asarray(case.labels)[rows]] = True
    return [("ties", tied, "only where a hinge margin x_ij - x_iy_i + 1 is exactly 0")]


# -- known mistakes ----------------------------------------------------------------------------------


def _right(case: Case) -> np.ndarray:
    """The reference's dL/dx (a_ij = 0 at tied margins) in float64."""
    x = np.asarray(case.inputs["input"], dtype=np.float64)
    _, d = cnn.svm_loss(x, case.labels, case.geometry.reduction)
    return d * float(case.upstream)


def _counts_correct_class(case: Case, correct):
    """The label's own margin (always 1 > 0) counted as one more positive margin of its row: the label entry
    gets -G (k_i + 1) / D instead of -G k_i / D (and the loss 1 too much per sample)."""
    dx = _right(case)
    rows = np.arange(dx.shape[0])
    dx[rows, case.labels] -= _scale(case.geometry, case.upstream, dx.shape[0])
    return {"input": dx.astype(case.dtype)}


def _wrong_sign(case: Case, correct):
    """The label entry's sign flipped: +G k_i / D, as if the correct class's score raised every margin."""
    dx = _right(case)
    rows = np.arange(dx.shape[0])
    dx[rows, case.labels] *= -1
    return {"input": dx.astype(case.dtype)}


def _some_positive_margin(case: Case) -> bool:
    return bool((margins(case.inputs["input"], case.labels) > 0).any())


MISTAKES = catalogue(
    "svm_loss",
    Mistake(
        "svm_counts_correct_class",
        "input",
        "hinge loss counts the correct class's own margin (x_iy - x_iy + 1 = 1 > 0): the label entry gets one "
        "positive margin too many (and the loss 1 too much per sample)",
        "dL/dx_iy_i = -G/D * #{j != y_i : m_ij > 0}; the sum runs over j != y_i only",
        _counts_correct_class,
    ),
    Mistake(
        "svm_wrong_sign_correct_class",
        "input",
        "hinge loss gradient at the correct class has the wrong sign: +G/D per positive margin instead of -G/D",
        "dL/dx_iy_i = -G/D * #{j != y_i : m_ij > 0}  (raising the correct score lowers every margin)",
        _wrong_sign,
        _some_positive_margin,
    ),
)

KIND = Kind(
    name="svm_loss",
    geometry=LossGeometry,
    forward=forward,
    torch=torch,
    reference_layer=reference_layer,
    default_geometries=cs.loss_geometries,
    axes={"input": "nm", "output": ""},
    layouts={"input": "ND", "output": "ND"},
    modes=("separated", "ties"),
    user_geometries=user_geometries,
    membership=membership,
    regions=regions,
    mistakes=MISTAKES,
)
