"""The algebra of max-pool windows, written once over the public ``cnn.ops.window_view``.

For a PoolGeometry with kernel (kh, kw), stride (sh, sw), padding (ph, pw) and output (Ho, Wo),
X~ is X padded by (ph, pw) on both sides of H and W, and window (i, j) holds the taps

    taps[..., i, j, u, v] = X~[..., i*sh + u, j*sw + v]        u < kh, v < kw.

``taps`` reads them, ``scatter_add`` is its adjoint (adds tap values back to where they came from,
overlapping windows accumulate), ``crop`` drops the padding again. The rest is built from those:
the argmax sets, the input positions some masked tap lands on, the window count of each input
position, and the groups of mutually non-overlapping windows a backward is probed with.

A conv window is the same with its taps spread by the dilation d: tap u of window i reads row
i*s + u*d - p of X. ``axis_taps``, ``window_masks`` and ``window_coverage`` take either geometry
(a pool's dilation is 1) and index X itself (a tap in the padding reaches no position).

Every function is pure: it reads its arguments and returns a new array.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import DTypeLike

from checks.geometry import ConvGeometry, PoolGeometry
from cnn.ops import pad2d, window_view

__all__ = [
    "argmax_sets",
    "axis_taps",
    "coverage",
    "covered",
    "crop",
    "padded_shape",
    "pool_taps",
    "probe_groups",
    "scatter_add",
    "taps",
    "tied_positions",
    "window_coverage",
    "window_masks",
]


def padded_shape(geometry: PoolGeometry) -> tuple[int, int, int, int]:
    """Shape of X~: (N, C, H + 2*ph, W + 2*pw)."""
    n, c, h, w = geometry.input_shape
    ph, pw = geometry.padding
    return (n, c, h + 2 * ph, w + 2 * pw)


def crop(padded: np.ndarray, geometry: PoolGeometry) -> np.ndarray:
    """X from X~: padded[..., ph : ph + H, pw : pw + W] (a view)."""
    ph, pw = geometry.padding
    h, w = geometry.input_shape[2:]
    return padded[..., ph : ph + h, pw : pw + w]


def taps(x_padded: np.ndarray, geometry: PoolGeometry) -> np.ndarray:
    """taps[..., i, j, u, v] = x_padded[..., i*sh + u, j*sw + v]: shape x_padded.shape[:-2] + (Ho, Wo, kh, kw),
    a new array of x_padded's dtype (the windows of X~ with their taps on the trailing axes)."""
    out_hw = geometry.output_shape[2:]
    kh, kw = geometry.kernel
    out = np.empty(x_padded.shape[:-2] + tuple(out_hw) + (kh, kw), dtype=x_padded.dtype)
    for u in range(kh):
        for v in range(kw):
            out[..., u, v] = window_view(x_padded, (u, v), out_hw, geometry.stride)
    return out


def pool_taps(x: np.ndarray, geometry: PoolGeometry, fill: float = -np.inf) -> np.ndarray:
    """taps(X~) with X~ = X padded with ``fill`` (-inf for values, 0 for gradients):
    taps[n, c, i, j, u, v] = X~[n, c, i*sh + u, j*sw + v]."""
    return taps(pad2d(x, geometry.padding, value=fill), geometry)


def scatter_add(tap_values: np.ndarray, geometry: PoolGeometry, dtype: DTypeLike = None) -> np.ndarray:
    """The adjoint of ``taps``: out[n, c, y, x] = sum over (i, j, u, v) with i*sh + u = y, j*sw + v = x
    of tap_values[n, c, i, j, u, v], on the padded grid (shape ``padded_shape(geometry)``).

    tap_values has (or broadcasts to) shape output_shape + kernel. Taps are added in row-major
    (u, v) order into zeros of ``dtype`` (default: tap_values' dtype); with dtype bool the sum is
    a logical OR.
    """
    out_hw = geometry.output_shape[2:]
    kh, kw = geometry.kernel
    values = np.broadcast_to(tap_values, tuple(geometry.output_shape) + (kh, kw))
    out = np.zeros(padded_shape(geometry), dtype=values.dtype if dtype is None else dtype)
    for u in range(kh):
        for v in range(kw):
            view = window_view(out, (u, v), out_hw, geometry.stride)
            view += values[..., u, v]
    return out


def argmax_sets(x: np.ndarray, geometry: PoolGeometry) -> np.ndarray:
    """Boolean (N, C, Ho, Wo, kh, kw): True at every tap holding its window's maximum,
    taps == max over (u, v) of taps, the taps read from X padded with -inf."""
    t = pool_taps(x, geometry)
    return t == t.max(axis=(-2, -1), keepdims=True)


def covered(mask_taps: np.ndarray, geometry: PoolGeometry) -> np.ndarray:
    """Boolean (N, C, H, W): True at X[n, c, y, x] when some masked tap lands there, i.e.
    OR over (i, j, u, v) with i*sh + u - ph = y, j*sw + v - pw = x of mask_taps[n, c, i, j, u, v]."""
    return crop(scatter_add(mask_taps, geometry, dtype=bool), geometry)


def tied_positions(x: np.ndarray, geometry: PoolGeometry) -> np.ndarray:
    """Boolean (N, C, H, W): the input positions inside some window whose maximum is tied
    (more than one tap in its argmax set)."""
    tied = argmax_sets(x, geometry).sum(axis=(-2, -1)) > 1
    return covered(tied[..., None, None], geometry)


def coverage(geometry: PoolGeometry) -> np.ndarray:
    """int64 (N, C, H, W): how many windows hold each input position,
    #{(i, j, u, v) : i*sh + u - ph = y, j*sw + v - pw = x}."""
    return crop(scatter_add(np.ones((), dtype=np.int64), geometry), geometry)


def probe_groups(geometry: PoolGeometry) -> list[np.ndarray]:
    """Boolean (Ho, Wo) masks, one per (a, b) with a < gh = ceil(kh/sh), b < gw = ceil(kw/sw):
    group (a, b) = {(i, j) : i mod gh = a, j mod gw = b}, in row-major (a, b) order.

    Two windows of one group are at least gh*sh >= kh rows or gw*sw >= kw columns apart, so they
    never share an input position; the groups partition the output positions.
    """
    (kh, kw), (sh, sw) = geometry.kernel, geometry.stride
    gh, gw = -(-kh // sh), -(-kw // sw)
    ho, wo = geometry.output_shape[2:]
    rows, cols = np.arange(ho)[:, None], np.arange(wo)[None, :]
    return [(rows % gh == a) & (cols % gw == b) for a in range(gh) for b in range(gw)]


def axis_taps(out: int, kernel: int, stride: int, padding: int, dilation: int = 1) -> np.ndarray:
    """int64 (out, kernel): taps[i, u] = i*s + u*d - p, the index of X that tap u of window i reads along one
    axis (outside [0, size) it reads the padding)."""
    return np.arange(out)[:, None] * stride + np.arange(kernel)[None, :] * dilation - padding


def window_masks(geometry: ConvGeometry | PoolGeometry) -> np.ndarray:
    """Boolean (Ho, Wo, H, W): True at X[y, x] when window (i, j) has a tap there, i.e. some (u, v) with
    i*sh + u*dh - ph = y and j*sw + v*dw - pw = x (dilation (1, 1) for a pool)."""
    dilation = getattr(geometry, "dilation", (1, 1))
    hits = []
    for axis in (0, 1):
        out, size = geometry.output_shape[2 + axis], geometry.input_shape[2 + axis]
        taps = axis_taps(out, geometry.kernel[axis], geometry.stride[axis], geometry.padding[axis], dilation[axis])
        hits.append((taps[:, :, None] == np.arange(size)[None, None, :]).any(axis=1))  # (out, size)
    rows, cols = hits
    return rows[:, None, :, None] & cols[None, :, None, :]


def window_coverage(geometry: ConvGeometry | PoolGeometry) -> np.ndarray:
    """int64 (N, C, H, W): how many windows have a tap at each input position, #{(i, j) : window_masks[i, j, y, x]}
    (the taps of one window are distinct positions, so this counts windows, not taps). For a pool it equals
    ``coverage``."""
    count = window_masks(geometry).sum(axis=(0, 1), dtype=np.int64)
    return np.broadcast_to(count, geometry.input_shape).copy()
