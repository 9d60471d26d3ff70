"""avgpool: Y = avg_pool2d(X) on X (N, C, H, W), window (kh, kw), stride s, zero padding p, floor mode; the
padding counts in the divisor (PyTorch's default count_include_pad=True), so the divisor is always kh*kw.

    Y[n,c,i,j] = (1 / (kh*kw)) sum_{u,v} X~[n, c, i*s + u, j*s + v]        (X~: X padded by p with zeros)
    dL/dX: each window's G / (kh*kw) spread over its taps; overlapping windows add up; padding taps dropped

Linear in X: no kinks.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

import cnn
from checks import strategies as cs
from checks.case import Case
from checks.geometry import PoolGeometry
from checks.kinds import Kind, Mistake, Region, catalogue, fit, maxpool
from checks.strategies._bounds import at_least, lowest
from checks.subject import LayerSubject
from checks.windows import coverage, crop, pool_taps, scatter_add


def forward(g: PoolGeometry, a, labels):
    """Y = avg_pool2d(X) with zero padding counted in the divisor; no kink sites."""
    return cnn.avg_pool2d(a["input"], g.kernel, g.stride, g.padding), []


def torch(F, g: PoolGeometry, t, labels):
    return F.avg_pool2d(t["input"], g.kernel, g.stride, g.padding, count_include_pad=True)


def reference_layer(case: Case) -> LayerSubject:
    g = case.geometry
    return LayerSubject(cnn.AvgPool2D(g.kernel, g.stride, g.padding))


user_geometries = maxpool.user_geometries
"""The same pool geometries a max-pool is drawn on (stride "kernel": one drawn size for window and stride)."""


def corner(s):
    """Overlapping windows (the smallest stride), padding and three or more outputs per axis: windows that reach
    into the padding next to one that does not, where a per-window divisor shows and cannot pass for a
    missing one (with a single real input row every window has one real tap, and the two look the same)."""
    padded = replace(s, padding=at_least(s.padding, 1), output=at_least(s.output, 3))
    return padded if s.stride == "kernel" else replace(padded, stride=lowest(s.stride))


def regions(case: Case, name: str) -> list[Region]:
    if name != "input":
        return []
    return [("overlap", coverage(case.geometry) >= 2, "only where pool windows overlap")]


# -- known mistakes ----------------------------------------------------------------------------------


def _spread(case: Case, divisor: np.ndarray | float) -> np.ndarray:
    """dX: each window's G / divisor added to every tap of the window, padding cropped, in the case's dtype."""
    g = case.geometry
    share = np.asarray(case.upstream, dtype=np.float64) / divisor
    return crop(scatter_add(share[..., None, None], g), g).astype(case.dtype)


def _real_taps(g: PoolGeometry) -> np.ndarray:
    """(N, C, Ho, Wo): how many taps of each window fall on the input, not on the padding."""
    return pool_taps(np.ones(g.input_shape), g, fill=0.0).sum(axis=(-2, -1))


def _excludes_padding(case: Case, correct):
    """Each window's G divided by its count of real taps (count_include_pad=False) instead of kh*kw."""
    return {"input": _spread(case, _real_taps(case.geometry))}


def _forgets_divisor(case: Case, correct):
    """Each window's whole G added to every tap: no 1 / (kh*kw)."""
    return {"input": _spread(case, 1.0)}


MISTAKES = catalogue(
    "avgpool",
    Mistake(
        "avgpool_forgets_divisor",
        "input",
        "average-pool backward spreads each window's whole G over its taps: the 1 / (kh*kw) is missing",
        "dX~[i*s + u, j*s + v] += G[i,j] / (kh*kw) for every tap; dX = crop_p(dX~)",
        _forgets_divisor,
        lambda c: c.geometry.kernel[0] * c.geometry.kernel[1] > 1,
    ),
    Mistake(
        "avgpool_excludes_padding",
        "input",
        "windows that reach into the zero padding divided by their count of real taps instead of kh*kw "
        "(count_include_pad=False in backward)",
        "dX~[i*s + u, j*s + v] += G[i,j] / (kh*kw) for every tap, the padding counted; dX = crop_p(dX~)",
        _excludes_padding,
        lambda c: max(c.geometry.padding) > 0,
    ),
)


def candidates(a, z, params, canonical):
    """An average pool in a network: see checks.kinds.fit.pools."""
    return fit.pools("avgpool", PoolGeometry, a, z, params, canonical)


KIND = Kind(
    name="avgpool",
    geometry=PoolGeometry,
    forward=forward,
    torch=torch,
    reference_layer=reference_layer,
    default_geometries=cs.pool_geometries,
    axes={"input": "nchw", "output": "ncij"},
    layouts={"input": "NCHW", "output": "NCHW"},
    modes=("separated", "mixed"),
    user_geometries=user_geometries,
    corner=corner,
    regions=regions,
    mistakes=MISTAKES,
    candidates=candidates,
)
