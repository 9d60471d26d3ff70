"""dropout: inverted dropout in training mode on X of any shape (batch first): Y = X * m / keep, with a mask m of
0s and 1s that the LAYER draws (from the seed it is given, or once and kept), whatever its convention for p (the
probability to drop, or to keep).

The mask is the layer's, not ours, so the layer is judged from its own forward output Z (``Kind.own_output``):

- forward: where X != 0, Z / X takes only the values 0 (dropped) and one scale c = 1 / keep (kept), with c = 1 / p
  or 1 / (1 - p) for the p the layer was given; where X == 0, Z == 0.
- dL/dX, from the Z of the same call: G * Z / X wherever X != 0; where X == 0 the output says nothing about the
  mask, so any dX of some mask entry is valid there: 0 or G * c (G / p or G / (1 - p) when nothing was kept).

Linear in X for a fixed mask; X == 0 is marked as a kink site so that finite differences never judge there. Our
reference layer (cnn.Dropout) reads p as the drop probability and draws its mask from the seed.
"""

from __future__ import annotations

import numpy as np

import cnn
from checks import strategies as cs
from checks.case import Case
from checks.compare import Membership, compare
from checks.geometry import DropoutGeometry
from checks.kinds import Kind, Mistake, OwnOutput, catalogue
from checks.oracles.kinks import KinkSite
from checks.subject import LayerSubject
from checks.tolerances import Tolerance

NOTE = "dropout.scale"
"""Case.notes key: the layer's own m / keep per entry (Z / X where X != 0, 0 elsewhere), read off its output."""
FIX = (
    "the layer draws a new mask on every forward: draw it from the seed it is given (dropout_param['seed'], "
    "np.random.default_rng(seed)) or draw it once and keep it, so that the same input gives the same output"
)


def _mask(g: DropoutGeometry) -> np.ndarray:
    """Our reference's mask: p read as the drop probability, drawn from the geometry's seed."""
    return cnn.dropout_mask(g.shape, g.p, g.seed)


def forward(g: DropoutGeometry, a, labels):
    """Our reference: Y = X * m / (1 - p); X is a kink site (where X == 0 the layer's output shows no mask)."""
    return cnn.dropout(a["input"], _mask(g), cnn.keep_probability(g.p)), [KinkSite("relu", a["input"])]


def torch(F, g: DropoutGeometry, t, labels):
    """Our reference layer's dropout in torch (its mask): a twin of cnn.Dropout, not of a user's layer, which is
    judged from its own output instead."""
    x = t["input"]
    return x * x.new_tensor(_mask(g).astype(np.float64)) / cnn.keep_probability(g.p)


class ScaledBy:
    """A dropout whose m / keep per entry is given: Y = X * S, dX = G * S (the layer's own choice, from its output)."""

    def __init__(self, scale: np.ndarray) -> None:
        self.scale = scale

    def forward(self, inputs):
        x = inputs["input"]
        return (x * self.scale).astype(x.dtype)

    def backward(self, upstream):
        return {"input": (upstream * self.scale).astype(upstream.dtype)}


def reference_layer(case: Case):
    """The layer's own mask when the case records it (an explanation of a user's layer), else cnn.Dropout."""
    if NOTE in case.notes:
        return ScaledBy(np.asarray(case.notes[NOTE], dtype=np.float64))
    return LayerSubject(cnn.Dropout(case.geometry.p, case.geometry.seed))


def user_geometries(s, input_layout: str):
    return cs.dropout_geometries(ndim=s.ndim, p=s.p)


# -- judged from the layer's own output ----------------------------------------------------------------------


def _ratios(x: np.ndarray, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(Z / X where X != 0 (0 elsewhere), X != 0), in float64."""
    x, z = np.asarray(x, dtype=np.float64), np.asarray(z, dtype=np.float64)
    nonzero = x != 0
    return np.where(nonzero, z / np.where(nonzero, x, 1.0), 0.0), nonzero


def scale_of(x: np.ndarray, z: np.ndarray) -> float | None:
    """c = 1 / keep read off the entries the layer kept (the largest |Z / X|: every kept entry has it, a wrong
    one is then found against it), or None when it kept none where X != 0."""
    r, _ = _ratios(x, z)
    kept = r != 0
    return float(np.abs(r[kept]).max()) if kept.any() else None


def _candidates(p: float, c: float | None) -> list[float]:
    """The scales a kept entry may have: the one seen, else 1 / p or 1 / (1 - p) (either convention for p)."""
    return [c] if c is not None else [1 / p, 1 / (1 - p)]


def _near(value: np.ndarray, options: list[float]) -> np.ndarray:
    """Per entry, the element of ``options`` nearest to ``value``."""
    table = np.asarray(options, dtype=np.float64)
    return table[np.argmin(np.abs(value[..., None] - table), axis=-1)]


def own_forward(inputs, geometry: DropoutGeometry, z: np.ndarray, tol: Tolerance) -> Membership:
    """Z / X in {0, c} where X != 0, Z == 0 where X == 0, and c = 1 / p or 1 / (1 - p) (one convention for p)."""
    x = np.asarray(inputs["input"], dtype=np.float64)
    c = scale_of(x, z)
    p = geometry.p
    if c is not None and not any(abs(c * k - 1) <= tol.rtol + tol.atol for k in (p, 1 - p)):
        return Membership(
            False,
            f"kept entries are scaled by {c:.6g}, neither 1 / p = {1 / p:.6g} nor 1 / (1 - p) = {1 / (1 - p):.6g} "
            f"for the p = {p:.6g} the layer was given (inverted dropout scales by 1 / keep)",
            None,
        )
    r, _ = _ratios(x, z)
    expected = x * _near(r, [0.0, *_candidates(p, c)])
    comparison = compare(np.asarray(z, dtype=np.float64), expected, tol)
    if comparison.ok:
        return Membership(True, "every entry is dropped (0) or kept and scaled by one 1 / keep", comparison)
    i = comparison.worst_index
    where = "X == 0 (must be 0)" if x[i] == 0 else "X != 0 (must be 0 or X / keep)"
    return Membership(False, f"not a dropout output at {i}, where {where}", comparison)


def own_gradient(
    inputs, geometry: DropoutGeometry, upstream: np.ndarray, z: np.ndarray, grad: np.ndarray, tol: Tolerance
) -> Membership:
    """dX = G * Z / X where X != 0; where X == 0, 0 or G * c for a scale c a kept entry may have."""
    x = np.asarray(inputs["input"], dtype=np.float64)
    g = np.asarray(upstream, dtype=np.float64)
    r, nonzero = _ratios(x, z)
    grad = np.asarray(grad, dtype=np.float64)
    chosen = np.where(g != 0, grad / np.where(g != 0, g, 1.0), 0.0)  # the mask entry / keep the layer used
    at_zero = _near(chosen, [0.0, *_candidates(geometry.p, scale_of(x, z))])
    expected = g * np.where(nonzero, r, at_zero)
    comparison = compare(grad, expected, tol)
    if comparison.ok:
        return Membership(
            True, "dX = G * Z / X with the layer's own mask (and a valid mask entry where X == 0)", comparison
        )
    i = comparison.worst_index
    where = (
        "X != 0 (must be G * Z / X: the mask and scale of the layer's own forward)"
        if nonzero[i]
        else "X == 0 (must be 0 or G / keep: some mask entry)"
    )
    return Membership(False, f"not the dropout gradient at {i}, where {where}", comparison)


def notes(inputs, z: np.ndarray) -> dict[str, np.ndarray]:
    """The layer's m / keep per entry as its output shows it (0 where X == 0: a dropped entry, one valid choice)."""
    r, _ = _ratios(inputs["input"], z)
    return {NOTE: r}


# -- known mistakes ----------------------------------------------------------------------------------


def _scale(case: Case, correct) -> np.ndarray:
    """m / keep per entry, read off the right gradient (G is never 0)."""
    g = np.asarray(case.upstream, dtype=np.float64)
    return np.asarray(correct["input"], dtype=np.float64) / g


def _without_mask_as(case: Case, correct, convention: float) -> dict[str, np.ndarray]:
    """dX = G * c everywhere, c the scale the layer's kept entries show, or (when it kept none) 1 / ``convention``
    (p read as the keep probability, or 1 - p when p is the drop probability)."""
    s = _scale(case, correct)
    c = np.abs(s).max() if (s != 0).any() else 1 / convention
    return {"input": (case.upstream * c).astype(case.dtype)}


def _without_mask(case: Case, correct):
    """dX = G / keep everywhere: the scale kept, the mask forgotten (keep = 1 - p when nothing was kept)."""
    return _without_mask_as(case, correct, 1 - case.geometry.p)


def _without_mask_keep(case: Case, correct):
    """The same for a layer whose p is the keep probability: dX = G / p when nothing was kept."""
    return _without_mask_as(case, correct, case.geometry.p)


def _upstream_only(case: Case, correct):
    """dX = G: neither mask nor scale."""
    return {"input": case.upstream.copy()}


def _without_scale(case: Case, correct):
    """dX = G * m: the mask kept, the 1 / keep forgotten."""
    return {"input": (case.upstream * (_scale(case, correct) != 0)).astype(case.dtype)}


MISTAKES = catalogue(
    "dropout",
    Mistake(
        "dropout_backward_without_mask",
        "input",
        "dropout backward ignores the mask: dX = G / keep (or G) also where the forward dropped the entry",
        "dX = G * m / keep, with the mask m and the keep probability of the forward",
        _without_mask,
        lambda c: bool(_mask(c.geometry).any() and not _mask(c.geometry).all()),
        also=(_without_mask_keep, _upstream_only),
    ),
    Mistake(
        "dropout_backward_without_scale",
        "input",
        "dropout backward applies the mask but not the 1 / keep scale of inverted dropout: dX = G * m",
        "dX = G * m / keep, with the mask m and the keep probability of the forward",
        _without_scale,
        lambda c: bool(_mask(c.geometry).any()),
    ),
)

KIND = Kind(
    name="dropout",
    geometry=DropoutGeometry,
    forward=forward,
    torch=torch,
    reference_layer=reference_layer,
    default_geometries=cs.dropout_geometries,
    axes={"input": "n*", "output": "n*"},
    layouts={"input": "ND", "output": "ND"},
    modes=("separated", "zeros"),
    user_geometries=user_geometries,
    mistakes=MISTAKES,
    own_output=OwnOutput(forward=own_forward, gradient=own_gradient, notes=notes, fix=FIX),
)
