"""Layout mapping between the canonical layout the pipeline uses and the layouts real code uses.

Activations (canonical NCHW; a batch of vectors (N, D) for dense layers):
  NCHW  (N, C, H, W)   identity
  NHWC  (N, H, W, C)   channels last
  CHW   (C, H, W)      one image                 requires N == 1
  HWC   (H, W, C)      one image, channels last  requires N == 1
  HW    (H, W)         one single-channel image  requires N == C == 1
  ND    (N, ...)       identity (dense / flatten / ReLU on any shape)
  D     (D,)           one vector                requires N == 1
Conv weights (canonical (F, C, kh, kw)):
  FCHW  identity;  HWCF (kh, kw, C, F);  FHW (F, kh, kw), single channel: requires C == 1
Dense weights (canonical (D, M), Y = X W):
  DM    identity;  MD (M, D), as torch.nn.Linear stores it.
"""

from __future__ import annotations

import numpy as np

ACTIVATION_LAYOUTS = ("NCHW", "NHWC", "CHW", "HWC", "HW", "ND", "D")
WEIGHT_LAYOUTS = ("FCHW", "HWCF", "FHW", "DM", "MD")

# layout -> (axes that carry a fixed size of 1, canonical -> user, user -> canonical)
_ACTIVATIONS = {
    "NCHW": ((), lambda a: a, lambda a: a),
    "ND": ((), lambda a: a, lambda a: a),
    "NHWC": ((), lambda a: a.transpose(0, 2, 3, 1), lambda a: a.transpose(0, 3, 1, 2)),
    "CHW": ((0,), lambda a: a[0], lambda a: a[None]),
    "HWC": ((0,), lambda a: a[0].transpose(1, 2, 0), lambda a: a.transpose(2, 0, 1)[None]),
    "HW": ((0, 1), lambda a: a[0, 0], lambda a: a[None, None]),
    "D": ((0,), lambda a: a[0], lambda a: a[None]),
}
_WEIGHTS = {
    "FCHW": ((), lambda w: w, lambda w: w),
    "DM": ((), lambda w: w, lambda w: w),
    "HWCF": ((), lambda w: w.transpose(2, 3, 1, 0), lambda w: w.transpose(3, 2, 0, 1)),
    "FHW": ((1,), lambda w: w[:, 0], lambda w: w[:, None]),
    "MD": ((), lambda w: w.T, lambda w: w.T),
}
_USER_NDIM = {
    "NCHW": 4,
    "NHWC": 4,
    "CHW": 3,
    "HWC": 3,
    "HW": 2,
    "D": 1,
    "FCHW": 4,
    "HWCF": 4,
    "FHW": 3,
    "DM": 2,
    "MD": 2,
}


# layout -> the canonical axes it keeps, in the user's order (None: all of them, in order, any rank)
_KEPT = {
    "NCHW": None,
    "ND": None,
    "NHWC": (0, 2, 3, 1),
    "CHW": (1, 2, 3),
    "HWC": (2, 3, 1),
    "HW": (2, 3),
    "D": (1,),
    "FCHW": None,
    "DM": None,
    "HWCF": (2, 3, 1, 0),
    "FHW": (0, 2, 3),
    "MD": (1, 0),
}


def user_letters(layout: str | None, canonical: str | None) -> str | None:
    """The axis letters of an array in ``layout``, given its canonical letters: NHWC of "nchw" is "nhwc",
    HWC of a conv output "nfij" is "ijf". None when either is unknown or they do not fit."""
    if layout is None or canonical is None or layout not in _KEPT:
        return None
    kept = _KEPT[layout]
    if kept is None:
        return canonical
    if max(kept) >= len(canonical):
        return None
    return "".join(canonical[i] for i in kept)


def _lookup(table: dict, layout: str, kind: str):
    if layout not in table:
        raise ValueError(f"unknown {kind} layout {layout!r}; known: {', '.join(table)}")
    return table[layout]


def unit_axes(layout: str) -> tuple[int, ...]:
    """Canonical axes that must have size 1 for ``layout`` (e.g. HW: batch and channel)."""
    table = _WEIGHTS if layout in _WEIGHTS else _ACTIVATIONS
    return _lookup(table, layout, "array")[0]


def to_user(a: np.ndarray, layout: str) -> np.ndarray:
    """Canonical array -> the user's layout (a contiguous copy, so the user may write into it)."""
    units, forward, _ = _lookup(_ACTIVATIONS, layout, "activation")
    _require_units(a, units, layout)
    return np.array(forward(a), order="C", copy=True)


def to_canonical(a: np.ndarray, layout: str) -> np.ndarray:
    """The user's array in ``layout`` -> canonical (ValueError naming both shapes if it cannot be)."""
    _, _, backward = _lookup(_ACTIVATIONS, layout, "activation")
    _require_ndim(a, layout)
    return np.require(backward(a), requirements="C")  # contiguous, and a 0-d loss stays 0-d (ascontiguousarray: 1-d)


def weight_to_user(w: np.ndarray, layout: str) -> np.ndarray:
    units, forward, _ = _lookup(_WEIGHTS, layout, "weight")
    _require_units(w, units, layout)
    return np.array(forward(w), order="C", copy=True)


def weight_to_canonical(w: np.ndarray, layout: str) -> np.ndarray:
    _, _, backward = _lookup(_WEIGHTS, layout, "weight")
    _require_ndim(w, layout)
    return np.ascontiguousarray(backward(w))


def _require_units(a: np.ndarray, units: tuple[int, ...], layout: str) -> None:
    if any(a.shape[i] != 1 for i in units):
        raise ValueError(f"layout {layout} needs size 1 on canonical axes {units}, got shape {a.shape}")


def _require_ndim(a: np.ndarray, layout: str) -> None:
    want = _USER_NDIM.get(layout)
    if want is not None and np.ndim(a) != want:
        raise ValueError(f"expected a {want}-d array in layout {layout}, got shape {np.shape(a)}")
