"""How a layer met inside a user's network may be one of our kinds: the candidates its arrays' shapes allow.

A kind's ``candidates(a, z, params, canonical)`` (checks.kinds.Kind) lists the geometries and layouts under which
a layer with input ``a``, output ``z`` and parameters ``params`` (the user's arrays, by the user's names) could be
that kind; the checker then keeps the first whose reference forward reproduces the layer's output
(checks.pipeline.composed). ``canonical(shape, layout)`` is the canonical shape of a user array of ``shape`` held
in ``layout`` (checks.adapt.layouts, plus ``SAMPLE``: one sample of any shape, a batch of one), None when the
layout cannot hold it. The helpers here are the parts several kinds share.

| what | user layouts tried |
|---|---|
| images | HW, HWC, CHW (one image), NCHW, NHWC |
| conv weights | FHW (one input channel), FCHW, HWCF |
| dense weights | DM, MD |
| vectors (dense, flatten input) | D, ND, SAMPLE; output D, ND |
| biases | any shape with the right number of entries (read flat) |
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Mapping
from typing import Any, NamedTuple

import numpy as np

Canonical = Callable[[tuple[int, ...], str], "tuple[int, ...] | None"]
IMAGES = {2: ("HW",), 3: ("HWC", "CHW"), 4: ("NCHW", "NHWC")}
CONV_WEIGHTS = {3: ("FHW",), 4: ("FCHW", "HWCF")}
DENSE_WEIGHTS = ("DM", "MD")
CONV_STRIDES = range(1, 5)
POOL_KERNELS = range(1, 7)
POOL_STRIDES = range(1, 7)


class Candidate(NamedTuple):
    """One way a layer may be a kind: its geometry, the layouts of its input and output, and per user parameter
    (name, canonical role, layout or None for an array read flat, e.g. a bias); ``shown`` says it in a line."""

    geometry: Any
    input: str
    output: str
    params: tuple[tuple[str, str, str | None], ...]
    shown: str


def pair(a: int, b: int) -> str:
    return str(a) if a == b else f"({a}, {b})"


def shown_layout(layout: str, shape: tuple[int, ...]) -> str:
    return f"one sample {tuple(shape)}" if layout == "SAMPLE" else layout


def axis_options(size: int, out: int, kernel: int, strides: range, paddings: range) -> list[tuple[int, int]]:
    """(stride, padding) pairs with floor((size + 2p - k) / s) + 1 == out."""
    return [
        (s, p) for s in strides for p in paddings if size + 2 * p >= kernel and (size + 2 * p - kernel) // s + 1 == out
    ]


def images(shape: tuple[int, ...], canonical: Canonical) -> Iterator[tuple[str, tuple[int, int, int, int]]]:
    """(layout, canonical (N, C, H, W)) an image batch of ``shape`` may be held in."""
    for layout in IMAGES.get(len(shape), ()):
        c = canonical(shape, layout)
        if c is not None:
            yield layout, c  # type: ignore[misc]


def vectors(shape: tuple[int, ...], canonical: Canonical, *, output: bool = False) -> Iterator[tuple[str, tuple]]:
    """(layout, canonical (N, ...)) a dense or flatten layer's input (or, ``output``: its (N, D) output) may be."""
    if not shape:  # a scalar is neither
        return
    layouts = {1: ("D",), 2: ("ND",)}.get(len(shape), ()) if output else ("D",) if len(shape) == 1 else ("ND", "SAMPLE")
    for layout in layouts:
        c = canonical(shape, layout)
        if c is not None:
            yield layout, c


def bias_of(params: Mapping[str, np.ndarray], weight: str, size: int) -> tuple[bool, str | None]:
    """(fits, the bias's name): at most one other parameter, of ``size`` entries."""
    others = [n for n in params if n != weight]
    if len(others) > 1 or (others and params[others[0]].size != size):
        return False, None
    return True, (others[0] if others else None)


def pools(kind: str, make: Callable[..., Any], a, z, params, canonical: Canonical) -> Iterator[Candidate]:
    """Pooling layers: per axis kernel 1..6, stride 1..6, padding 0..k/2 whose floor output size fits;
    ``make(n, c, h, w, kernel, stride, padding)`` builds the geometry."""
    if params:
        return
    for in_layout, (n, c, h, w) in images(a.shape, canonical):
        for out_layout, (zn, zc, zh, zw) in images(z.shape, canonical):
            if (zn, zc) != (n, c):
                continue
            for kh, kw in itertools.product(POOL_KERNELS, POOL_KERNELS):
                rows = axis_options(h, zh, kh, POOL_STRIDES, range(kh // 2 + 1))
                cols = axis_options(w, zw, kw, POOL_STRIDES, range(kw // 2 + 1))
                for (sh, ph), (sw, pw) in itertools.product(rows, cols):
                    shown = (
                        f"{kind} {kh}x{kw}, stride {pair(sh, sw)}, padding {pair(ph, pw)}; "
                        f"input {in_layout}, output {out_layout}"
                    )
                    g = make(n, c, h, w, (kh, kw), (sh, sw), (ph, pw))
                    yield Candidate(g, in_layout, out_layout, (), shown)


def dense(kind: str, make: Callable[..., Any], a, z, params, canonical: Canonical) -> Iterator[Candidate]:
    """Dense layers (``make(batch, features, out, bias)`` builds the geometry): a 2-d weight stored (D, M) or
    (M, D), an optional bias of M entries, the input one vector, a batch of them or one sample of any shape."""
    for weight in [n for n, v in params.items() if v.ndim == 2]:
        for in_layout, (batch, *features) in vectors(a.shape, canonical):
            for out_layout, out in vectors(z.shape, canonical, output=True):
                for w_layout in DENSE_WEIGHTS:
                    d, m = canonical(params[weight].shape, w_layout) or (0, 0)
                    fits, bias = bias_of(params, weight, m)
                    if not fits or d != int(np.prod(features)) or tuple(out) != (batch, m):
                        continue
                    roles = ((weight, "weight", w_layout),) + (((bias, "bias", None),) if bias else ())
                    shown = (
                        f"{kind} {d} -> {m}, {'bias' if bias else 'no bias'}; input "
                        f"{shown_layout(in_layout, a.shape)}, weight {w_layout}, output {out_layout}"
                    )
                    yield Candidate(
                        make(batch, tuple(features), m, bias is not None), in_layout, out_layout, roles, shown
                    )


def same_shape(a, z, params) -> bool:
    """An elementwise layer's shapes: no parameters, output shaped as its input."""
    return not params and a.shape == z.shape and a.ndim > 0
