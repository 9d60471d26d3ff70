"""Performance machinery behind cnn.ops: flat-window layouts, phase planes, per-thread scratch buffers
and BLAS product splitting. cnn.ops holds the formulas; every function here computes one of them
faster (and is tested against them through cnn.ops in tests/cnn).

Entry points: ``corr`` (the body of cnn.ops.corr2d) and ``scatter`` (the adjoint of corr2d in x for
a finite kernel, behind cnn.ops.corr2d_full and cnn.ops._corr_transposed). numpy only; this module
imports nothing from cnn.ops (ops imports it).
"""

from __future__ import annotations

import math
import threading

import numpy as np

from cnn._args import Pair


def _strided(x: np.ndarray, start: Pair, count: Pair, step: Pair) -> np.ndarray:
    """The strided view x[..., a + step*i, b + step*j] for i < count[0], j < count[1]: the same view as
    cnn.ops.window_view, written here because cnn.ops imports this module."""
    (a, b), (n, m), (s, t) = start, count, step
    return x[..., a : a + s * (n - 1) + 1 : s, b : b + t * (m - 1) + 1 : t]


def corr(x: np.ndarray, k: np.ndarray, out_hw: Pair, stride: Pair, dilation: Pair) -> np.ndarray:
    """cnn.ops.corr2d for x (N, C, H, W), k (F, C, kh, kw) and its output size out_hw = (Ho, Wo).

    The sum runs as matrix products whose operands are gathered (or, where they can be, viewed in
    place) with a Python loop over whichever is smaller, the kh*kw kernel taps or the Ho*Wo output
    positions.
    """
    n, c = x.shape[:2]
    f, _, kh, kw = k.shape
    ho, wo = out_hw
    if ho < 1 or wo < 1 or n * c * kh * kw * ho * wo <= _TINY or f == 0:
        # Nothing to compute, or so little that the plain gathers beat the fast paths' set-up.
        if kh * kw <= ho * wo:
            return _corr_gather_taps(x, k, (ho, wo), stride, dilation)
        return _corr_gather_outputs(x, k, (ho, wo), stride, dilation)
    if kh * kw <= ho * wo:
        return _corr_flat_taps(x, k, (ho, wo), stride, dilation)
    with np.errstate(invalid="ignore"):
        out = _corr_flat_outputs(x, k, (ho, wo), stride, dilation)
    if np.isfinite(out).all():
        return out
    # x holds an inf or NaN that met a structural zero (see below): redo it exactly.
    return _corr_gather_outputs(x, k, (ho, wo), stride, dilation)


# How the fast paths lay data out ("flat windows"). A window whose taps are one entry apart in
# an image flattened row-major to H*W starts at r*W + c, and its tap (u, v) sits u*W + v after
# the start; so one contiguous slice x.flat[o : o + L] holds the value of one tap for every
# window at once, in a "wide" layout of rows W entries apart of which only the first entries
# are real (the rest wrap into the next image row: junk). Gathers, products and adds then run
# over long contiguous slices, not over rows of a few entries. Taps s apart (a stride or a
# dilation s) become one entry apart in the s*s "phase planes" x[..., a::s, b::s].
# Junk entries are either dropped (forward) or multiplied by exact zeros put in the other
# operand (gradients). A non-finite entry times such a zero is NaN, so the gradient paths run
# only where that cannot happen (a finite kernel) or redo the work exactly when the result is
# not finite.
#
# Big intermediates live in per-thread scratch buffers reused by later calls: a fresh buffer of
# tens to hundreds of MB costs a page fault per page on every call, often more than filling it.
# A scratch view is never returned to a caller, and no function holds one across a call that
# uses the same slot.
_SCRATCH = threading.local()
_SCRATCH_MIN_BYTES = 1 << 20  # smaller ones come from malloc's free lists anyway
_SCRATCH_MAX_BYTES = 1 << 30
_ALIGN = 64


def _scratch(slot: str, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """An uninitialised C-contiguous array of ``shape``, a view of this thread's buffer ``slot``."""
    dtype = np.dtype(dtype)
    nbytes = math.prod(shape) * dtype.itemsize
    if nbytes < _SCRATCH_MIN_BYTES or nbytes > _SCRATCH_MAX_BYTES or dtype.hasobject or min(shape) < 0:
        return np.empty(shape, dtype)
    buf = getattr(_SCRATCH, slot, None)
    if buf is None or buf.nbytes < nbytes + _ALIGN:
        buf = np.empty(nbytes + _ALIGN, np.uint8)
        setattr(_SCRATCH, slot, buf)
    skip = -buf.ctypes.data % _ALIGN
    return buf[skip : skip + nbytes].view(dtype).reshape(shape)


def _free_scratch() -> None:
    """Drop this thread's scratch buffers (they are otherwise kept for the next call)."""
    _SCRATCH.__dict__.clear()


def _wide(a: np.ndarray, rows: int, cols: int, row_len: int, skip: int = 0) -> np.ndarray:
    """View of the last axis of the C-contiguous ``a`` from entry ``skip`` on as (rows, cols), rows
    row_len apart (needs skip + (rows-1)*row_len + cols <= that axis's length)."""
    item = a.itemsize
    strides = a.strides[:-1] + (row_len * item, item)
    return np.ndarray(a.shape[:-1] + (rows, cols), a.dtype, buffer=a, offset=skip * item, strides=strides)


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


# Products small enough that BLAS threading costs more than it saves: OpenBLAS runs a product
# of M*N*K below about 2**19 on one thread and splits bigger ones between threads that sync on
# every block, which on a small or busy machine can cost a scheduler tick (milliseconds) per
# sync. Products up to _SMALL_PRODUCT are therefore cut into single-thread pieces along their
# longest axis and run as one batched matmul call.
_ONE_THREAD_PRODUCT = 1 << 19
_SMALL_PRODUCT = 1 << 24
_TINY = 1 << 15  # gathered entries up to which corr2d uses the plain gathers
_MIN_PIECE = 256  # shorter single-thread pieces lose more to packing than threads cost


def _product(a: np.ndarray, b: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """a @ b for 2-D a (M, K) and b (K, N), into ``out`` if given."""
    (m, depth), n = a.shape, b.shape[1]
    size = m * n * depth
    if size <= _ONE_THREAD_PRODUCT or size > _SMALL_PRODUCT:
        return np.matmul(a, b, out=out)
    if out is None:
        out = np.empty((m, n), dtype=np.result_type(a, b))
    pieces = _ceil_div(size, _ONE_THREAD_PRODUCT)
    if n >= depth:
        step = _ceil_div(n, pieces)
        whole = (n // step) * step
        np.matmul(
            a,
            b[:, :whole].reshape(depth, -1, step).transpose(1, 0, 2),
            out=out[:, :whole].reshape(m, -1, step).transpose(1, 0, 2),
        )
        if whole < n:
            np.matmul(a, b[:, whole:], out=out[:, whole:])
        return out
    step = _ceil_div(depth, pieces)
    whole = (depth // step) * step
    partial = np.matmul(a[:, :whole].reshape(m, -1, step).transpose(1, 0, 2), b[:whole].reshape(-1, step, n))
    np.sum(partial, axis=0, out=out)
    if whole < depth:
        out += a[:, whole:] @ b[whole:]
    return out


def _phase_planes(
    x: np.ndarray, step: Pair, starts: list[Pair], dtype: np.dtype
) -> tuple[np.ndarray, int, list[tuple[int, int]]]:
    """Flat phase planes of x (N, C, H, W) for windows whose taps are ``step`` apart.

    planes[q, n, c, i*Wq + j] = x[n, c, i*sh + a, j*sw + b] for phase q = (a, b), with
    Hq = ceil(H/sh), Wq = ceil(W/sw) and zeros past x's edge. Returns (planes, Wq, where) with
    where[t] = (q, o): a window starting at starts[t] = (r, s) is planes[q, :, :, o + u*Wq + v]
    for its tap (u, v). Only the phases some start needs are built; with step (1, 1) the single
    plane is a view of x when x allows it.
    """
    n, c, h, w = x.shape
    if step == (1, 1):
        return x.reshape(1, n, c, h * w).astype(dtype, copy=False), w, [(0, r * w + s) for r, s in starts]
    sh, sw = step
    hq, wq = _ceil_div(h, sh), _ceil_div(w, sw)
    phases = sorted({(r % sh, s % sw) for r, s in starts})
    where = [(phases.index((r % sh, s % sw)), (r // sh) * wq + s // sw) for r, s in starts]
    planes = _scratch("planes", (len(phases), n, c, hq * wq), dtype)
    for q, (a, b) in enumerate(phases):
        rows, cols = _ceil_div(h - a, sh), _ceil_div(w - b, sw)
        grid = planes[q].reshape(n, c, hq, wq)
        grid[:, :, :rows, :cols] = x[:, :, a::sh, b::sw]
        grid[:, :, rows:, :] = 0
        grid[:, :, :rows, cols:] = 0
    return planes, wq, where


def _corr_flat_taps(x: np.ndarray, k: np.ndarray, out_hw: Pair, stride: Pair, dilation: Pair) -> np.ndarray:
    """Taps loop: cols[c, u, v, n, :] = tap (u, v) of every window, wide; out = K @ cols, junk dropped."""
    n, c = x.shape[:2]
    f, _, kh, kw = k.shape
    ho, wo = out_hw
    dtype = np.result_type(x, k)
    taps = [(u, v) for u in range(kh) for v in range(kw)]
    planes, wq, where = _phase_planes(x, stride, [(u * dilation[0], v * dilation[1]) for u, v in taps], dtype)
    length = (ho - 1) * wq + wo
    cols = _scratch("cols", (c, kh, kw, n, length), dtype)
    for (u, v), (q, start) in zip(taps, where, strict=True):
        cols[:, u, v] = planes[q, :, :, start : start + length].transpose(1, 0, 2)
    res = _scratch("product", (f, n, length), dtype)
    kmat = k.reshape(f, c * kh * kw).astype(dtype, copy=False)
    _product(kmat, cols.reshape(c * kh * kw, n * length), out=res.reshape(f, n * length))
    out = np.empty((n, f, ho, wo), dtype)
    out[...] = _wide(res, ho, wo, wq).transpose(1, 0, 2, 3)
    return out


def _corr_flat_outputs(x: np.ndarray, k: np.ndarray, out_hw: Pair, stride: Pair, dilation: Pair) -> np.ndarray:
    """Positions loop, each window flattened wide against k laid out wide with zeros in its junk
    columns. The caller checks the result is finite (a non-finite x meeting those zeros gives NaN).

    When one thread can run the per-channel products (N x L) @ (L x F) in pieces of at least
    _MIN_PIECE, they read the windows straight from x (no copy) and are summed over the channel
    axis; otherwise all windows are gathered into one buffer for a single product.
    """
    n, c = x.shape[:2]
    f, _, kh, kw = k.shape
    ho, wo = out_hw
    dtype = np.result_type(x, k)
    positions = [(i, j) for i in range(ho) for j in range(wo)]
    planes, wq, where = _phase_planes(x, dilation, [(i * stride[0], j * stride[1]) for i, j in positions], dtype)
    length = (kh - 1) * wq + kw
    kwide = _scratch("kernel", (f, c, length), dtype)
    if wq > kw and kh > 1:
        _wide(kwide, kh - 1, wq - kw, wq, skip=kw)[...] = 0
    _wide(kwide, kh, kw, wq)[...] = k
    piece = _ONE_THREAD_PRODUCT // max(1, n * f)
    if piece >= min(length, _MIN_PIECE):
        pieces = _ceil_div(length, piece)
        piece = length // pieces
        whole = piece * pieces
        kt = kwide.transpose(1, 2, 0)  # (C, L, F)
        kp = kt[:, :whole].reshape(c, pieces, piece, f)
        out = np.empty((n, f, ho, wo), dtype)
        for (i, j), (q, start) in zip(positions, where, strict=True):
            window = planes[q, :, :, start : start + length].transpose(1, 0, 2)  # (C, N, L), a view
            xp = window[:, :, :whole].reshape(c, n, pieces, piece).transpose(0, 2, 1, 3)
            part = np.matmul(xp, kp).sum(axis=(0, 1))
            if whole < length:
                part += np.matmul(window[:, :, whole:], kt[:, whole:]).sum(axis=0)
            out[:, :, i, j] = part
        return out
    cols = _scratch("cols", (ho, wo, n, c, length), dtype)
    for (i, j), (q, start) in zip(positions, where, strict=True):
        cols[i, j] = planes[q, :, :, start : start + length]
    res = _product(cols.reshape(ho * wo * n, c * length), kwide.reshape(f, c * length).T)
    return np.ascontiguousarray(res.reshape(ho, wo, n, f).transpose(2, 3, 0, 1))


def _corr_gather_taps(x: np.ndarray, k: np.ndarray, out_hw: Pair, stride: Pair, dilation: Pair) -> np.ndarray:
    """im2col by kernel taps: cols[c, u, v, n, i, j] = x[n, c, i*s + u*d, j*s + v*d]; out = K @ cols."""
    n, c = x.shape[:2]
    f, _, kh, kw = k.shape
    ho, wo = out_hw
    cols = np.empty((c, kh, kw, n, ho, wo), dtype=np.result_type(x, k))
    xt = x.transpose(1, 0, 2, 3)
    for u in range(kh):
        for v in range(kw):
            cols[:, u, v] = _strided(xt, (u * dilation[0], v * dilation[1]), out_hw, stride)
    out = k.reshape(f, c * kh * kw) @ cols.reshape(c * kh * kw, n * ho * wo)
    return np.ascontiguousarray(out.reshape(f, n, ho, wo).transpose(1, 0, 2, 3))


def _corr_gather_outputs(x: np.ndarray, k: np.ndarray, out_hw: Pair, stride: Pair, dilation: Pair) -> np.ndarray:
    """Exact positions loop: cols[i, j, n, c, u, v] = x[n, c, i*s + u*d, j*s + v*d]; one product."""
    n, c = x.shape[:2]
    f, _, kh, kw = k.shape
    ho, wo = out_hw
    dtype = np.result_type(x, k)
    cols = _scratch("cols", (ho, wo, n, c, kh, kw), dtype)
    for i in range(ho):
        for j in range(wo):
            cols[i, j] = _strided(x, (i * stride[0], j * stride[1]), (kh, kw), dilation)
    kmat = k.reshape(f, c * kh * kw).astype(dtype, copy=False)
    res = cols.reshape(ho * wo * n, c * kh * kw) @ kmat.T
    return np.ascontiguousarray(res.reshape(ho, wo, n, f).transpose(2, 3, 0, 1))


def scatter(g: np.ndarray, k: np.ndarray, stride: Pair, dilation: Pair, out_hw: Pair) -> np.ndarray:
    """Scatter form of cnn.ops._corr_transposed for a finite k: part[u, v, c, n, :] = sum_f k[f, c, u, v] *
    gw[f, n, :] in one product, with g laid out wide in rows of the phase planes' width Wq (junk
    columns 0, so their part is exactly 0); then each tap's part is added to its phase plane of
    the output, and the planes are interleaved into out."""
    n, f, hg, wg = g.shape
    _, c, kh, kw = k.shape
    sh, sw = stride
    ho, wo = out_hw
    hq, wq = _ceil_div(ho, sh), _ceil_div(wo, sw)
    dtype = np.result_type(g, k)
    length = (hg - 1) * wq + wg
    gw = _scratch("gather", (f, n, length), dtype)
    if wq > wg and hg > 1:
        _wide(gw, hg - 1, wq - wg, wq, skip=wg)[...] = 0
    _wide(gw, hg, wg, wq)[...] = g.transpose(1, 0, 2, 3)
    kst = k.transpose(2, 3, 1, 0).reshape(kh * kw * c, f).astype(dtype, copy=False)
    part = _scratch("product", (kh, kw, c, n, length), dtype)
    _product(kst, gw.reshape(f, n * length), out=part.reshape(kh * kw * c, n * length))
    taps = [(u, v) for u in range(kh) for v in range(kw)]
    starts = [(u * dilation[0], v * dilation[1]) for u, v in taps]
    phases = sorted({(r % sh, s % sw) for r, s in starts})
    if stride == (1, 1):
        out = np.zeros((n, c, ho * wo), dtype)
        planes = out.reshape(1, n, c, ho * wo)
    else:
        out = np.zeros((n, c, ho, wo), dtype)
        planes = np.zeros((len(phases), n, c, hq * wq), dtype)
    for (u, v), (r, s) in zip(taps, starts, strict=True):
        q = phases.index((r % sh, s % sw))
        start = (r // sh) * wq + s // sw
        target = planes[q, :, :, start : start + length]
        np.add(target, part[u, v].transpose(1, 0, 2), out=target)
    if stride == (1, 1):
        return out.reshape(n, c, ho, wo)
    for q, (a, b) in enumerate(phases):
        rows, cols = _ceil_div(ho - a, sh), _ceil_div(wo - b, sw)
        out[:, :, a::sh, b::sw] = planes[q].reshape(n, c, hq, wq)[:, :, :rows, :cols]
    return out
