"""Geometry strategies, valid by construction: every draw is a geometry the layer accepts.

Nothing is filtered. Per spatial axis the strategy draws the OUTPUT size Ho, the kernel k, the stride s,
the dilation d and a remainder r in [0, s-1] (input rows the last window does not reach), then the
padding p, and derives the input size

    H = (Ho - 1)*s + d*(k - 1) + 1 - 2p + r,

which inverts the floor formula Ho = floor((H + 2p - d*(k-1) - 1) / s) + 1 exactly, since 0 <= r < s.
p is drawn last, at most floor(((Ho - 1)*s + d*(k-1) + r) / 2), so H >= 1 always.
"""

from __future__ import annotations

import math
from numbers import Integral, Real
from typing import NamedTuple

from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from checks.geometry import (
    BatchNormGeometry,
    ConvGeometry,
    DenseGeometry,
    DropoutGeometry,
    ElementwiseGeometry,
    FlattenGeometry,
    LeakyReluGeometry,
    LossGeometry,
    NetworkGeometry,
    PoolGeometry,
    SoftmaxGeometry,
)
from checks.strategies._bounds import Bound, Span, flag, span, switch

_ONE = Span(1, 1)
_ZERO = Span(0, 0)


class _Axis(NamedTuple):
    """One spatial axis of a conv or pool: input size, hyper-parameters and output size."""

    size: int
    kernel: int
    stride: int
    padding: int
    dilation: int
    output: int


def _int(draw, lo: int, hi: int) -> int:
    """An int in [lo, hi], shrinking towards lo; no choice at all when the range is one value."""
    return lo if lo == hi else draw(st.integers(lo, hi))


def _axis(
    draw, out: Span, kernel: Span, stride: Span, padding: Span, dilation: Span, *, pool: bool, remainder: bool = True
) -> _Axis:
    """Draw Ho, k, s, d, r (0 unless ``remainder``), then p; derive H (see the module docstring).

    Padding is also capped at k // 2 for pools (PyTorch's rule) and, for convs, at d*(k-1) unless the
    padding bound's min asks for more (padding beyond the effective kernel only adds bias-only rows).
    """
    o, k, s, d = (_int(draw, *b) for b in (out, kernel, stride, dilation))
    r = _int(draw, 0, s - 1) if remainder else 0
    reach = (o - 1) * s + d * (k - 1) + r  # = H + 2p - 1
    soft = k // 2 if pool else max(padding.lo, d * (k - 1))
    p = _int(draw, padding.lo, min(padding.hi, soft, reach // 2))
    return _Axis(reach + 1 - 2 * p, k, s, p, d, o)


def _axes(
    draw, spans: dict[str, Span], *, square: bool, square_input: bool, pool: bool, remainder: bool
) -> tuple[_Axis, _Axis]:
    """(height axis, width axis): one draw used twice when ``square_input``; with ``square`` alone the width
    axis keeps the height's kernel, stride, padding and dilation and draws its own size (a layer that takes
    one int for each still meets non-square images, where a height/width swap shows)."""
    h = _axis(draw, **spans, pool=pool, remainder=remainder)
    if square_input:
        return h, h
    if square:
        return h, _axis_like(draw, h, spans["out"], remainder=remainder)
    return h, _axis(draw, **spans, pool=pool, remainder=remainder)


def _axis_like(draw, h: _Axis, out: Span, *, remainder: bool) -> _Axis:
    """An axis with ``h``'s k, s, p, d and its own Ho and r: Ho at least what keeps the input non-empty,
    H = (Ho - 1)*s + d*(k-1) + 1 - 2p + r >= 1 (``h`` itself when no Ho in bounds is)."""
    k, s, p, d = h.kernel, h.stride, h.padding, h.dilation
    least = 1 + max(0, -(-(2 * p - d * (k - 1)) // s))
    if least > out.hi:  # the padding fits no other output size in bounds: the height's axis is the only one
        return h
    o = _int(draw, max(out.lo, least), out.hi)
    r = _int(draw, 0, s - 1) if remainder else 0
    return _Axis((o - 1) * s + d * (k - 1) + 1 - 2 * p + r, k, s, p, d, o)


def _require_padding_fits(bound: Bound, spans: dict[str, Span], *, pool: bool) -> None:
    """ValueError unless the padding bound's min fits even the smallest axis the other bounds allow."""
    p, k = spans["padding"].lo, spans["kernel"].lo
    if pool and p > k // 2:
        raise ValueError(
            f"padding={bound!r}: min {p} is more than half the smallest kernel {k}; "
            "max-pool needs padding <= kernel // 2 (raise kernel or lower padding)"
        )
    o, s, d = spans["out"].lo, spans["stride"].lo, spans["dilation"].lo
    rows = (o - 1) * s + d * (k - 1) + 1 - 2 * p
    if rows < 1:
        raise ValueError(
            f"padding={bound!r}: min {p} does not fit the smallest geometry the bounds allow (output {o}, "
            f"kernel {k}, stride {s}, dilation {d}): its input would have {rows} rows; "
            "lower padding or raise the smallest output or kernel"
        )


def conv_geometries(
    *,
    batch: Bound = (1, 4),
    in_channels: Bound = (1, 4),
    filters: Bound = (1, 4),
    kernel: Bound = (1, 4),
    stride: Bound = (1, 3),
    padding: Bound = (0, 2),
    dilation: Bound = (1, 2),
    output: Bound = (1, 5),
    square: bool = False,
    bias: bool | None = None,
    remainder: bool = True,
    square_input: bool = False,
) -> st.SearchStrategy[ConvGeometry]:
    """ConvGeometry for conv2d on X (N, C, H, W) with K (F, C, kh, kw), valid by construction.

    Each bound is an int (fixed) or an inclusive ``(min, max)`` pair:

    - ``batch``: N, default ``(1, 4)``.
    - ``in_channels``: C, default ``(1, 4)``.
    - ``filters``: F, default ``(1, 4)``.
    - ``kernel``: kh and kw, default ``(1, 4)``.
    - ``stride``: sh and sw, default ``(1, 3)``.
    - ``padding``: ph and pw, default ``(0, 2)``; also capped at d*(k-1) (unless min asks for more) and
      by what keeps the input non-empty.
    - ``dilation``: dh and dw, default ``(1, 2)``.
    - ``output``: Ho and Wo, default ``(1, 5)``.
    - ``square``: default ``False``; ``True`` makes kernel, stride, padding and dilation square (a layer
      that takes one int for each); the input stays free unless ``square_input``.
    - ``square_input``: default ``False``; ``True`` makes the input square too (and the window with it).
    - ``bias``: default ``None`` (drawn); ``True`` or ``False`` fixes it.
    - ``remainder``: default ``True``, r drawn in [0, s-1]; ``False`` fixes r = 0 (every input row is
      reached by some window), for layers that only support exactly covered inputs.

    Per axis: H = (Ho - 1)*s + d*(k-1) + 1 - 2p + r with r in [0, s-1], so that
    Ho = floor((H + 2p - d*(k-1) - 1) / s) + 1. Reachable corners include a kernel exactly as large as
    the padded input (Ho = 1, r = 0), stride larger than the kernel, and 1x1 outputs.

    Shrinks towards the smallest geometry: batch 1, 1 channel, 1 filter, kernel 1, stride 1, no
    padding, dilation 1, output 1x1 (so a 1x1 input), no bias.
    """
    n, c, f = (
        span("batch", batch, minimum=1),
        span("in_channels", in_channels, minimum=1),
        span("filters", filters, minimum=1),
    )
    spans = {
        "out": span("output", output, minimum=1),
        "kernel": span("kernel", kernel, minimum=1),
        "stride": span("stride", stride, minimum=1),
        "padding": span("padding", padding, minimum=0),
        "dilation": span("dilation", dilation, minimum=1),
    }
    square, bias, remainder = switch("square", square), flag("bias", bias), switch("remainder", remainder)
    square_input = switch("square_input", square_input)
    _require_padding_fits(padding, spans, pool=False)
    return _conv(n, c, f, spans, (square, square_input), bias, remainder)


@st.composite
def _conv(
    draw,
    n: Span,
    c: Span,
    f: Span,
    spans: dict[str, Span],
    square: tuple[bool, bool],
    bias: bool | None,
    remainder: bool,
) -> ConvGeometry:
    batch, channels, filters = _int(draw, *n), _int(draw, *c), _int(draw, *f)
    h, w = _axes(draw, spans, square=square[0], square_input=square[1], pool=False, remainder=remainder)
    return ConvGeometry(
        batch,
        channels,
        h.size,
        w.size,
        filters,
        (h.kernel, w.kernel),
        (h.stride, w.stride),
        (h.padding, w.padding),
        (h.dilation, w.dilation),
        draw(st.booleans()) if bias is None else bias,
    )


def pool_geometries(
    *,
    batch: Bound = (1, 4),
    channels: Bound = (1, 4),
    kernel: Bound = (1, 3),
    stride: Bound = (1, 3),
    padding: Bound = (0, 1),
    output: Bound = (1, 4),
    square: bool = False,
    remainder: bool = True,
    square_input: bool = False,
) -> st.SearchStrategy[PoolGeometry]:
    """PoolGeometry for max_pool2d (floor mode, -inf padding) on X (N, C, H, W), valid by construction.

    Each bound is an int (fixed) or an inclusive ``(min, max)`` pair:

    - ``batch``: N, default ``(1, 4)``.
    - ``channels``: C, default ``(1, 4)``.
    - ``kernel``: kh and kw, default ``(1, 3)``.
    - ``stride``: sh and sw, default ``(1, 3)``.
    - ``padding``: ph and pw, default ``(0, 1)``; always also <= k // 2 (as PyTorch requires, so every
      window holds a real input) and capped by what keeps the input non-empty.
    - ``output``: Ho and Wo, default ``(1, 4)``.
    - ``square``: default ``False``; ``True`` makes kernel, stride and padding square; the input stays
      free unless ``square_input``.
    - ``square_input``: default ``False``; ``True`` makes the input square too (and the window with it).
    - ``remainder``: default ``True``, r drawn in [0, s-1]; ``False`` fixes r = 0 (the windows cover
      the padded input exactly), for layers that only support that.

    Per axis: H = (Ho - 1)*s + k - 2p + r with r in [0, s-1], so that Ho = floor((H + 2p - k) / s) + 1.
    Covers overlapping windows (s < k), tiling (s = k), gaps (s > k) and sizes the stride does not
    divide (r > 0).

    Shrinks towards the smallest geometry: batch 1, 1 channel, kernel 1, stride 1, no padding,
    output 1x1 (so a 1x1 input).
    """
    n, c = span("batch", batch, minimum=1), span("channels", channels, minimum=1)
    spans = {
        "out": span("output", output, minimum=1),
        "kernel": span("kernel", kernel, minimum=1),
        "stride": span("stride", stride, minimum=1),
        "padding": span("padding", padding, minimum=0),
        "dilation": _ONE,
    }
    square, remainder = switch("square", square), switch("remainder", remainder)
    square_input = switch("square_input", square_input)
    _require_padding_fits(padding, spans, pool=True)
    return _pool(n, c, spans, (square, square_input), remainder)


@st.composite
def _pool(draw, n: Span, c: Span, spans: dict[str, Span], square: tuple[bool, bool], remainder: bool) -> PoolGeometry:
    batch, channels = _int(draw, *n), _int(draw, *c)
    h, w = _axes(draw, spans, square=square[0], square_input=square[1], pool=True, remainder=remainder)
    return PoolGeometry(
        batch, channels, h.size, w.size, (h.kernel, w.kernel), (h.stride, w.stride), (h.padding, w.padding)
    )


def _shapes(ndim: Bound, side: Bound) -> st.SearchStrategy[tuple[int, ...]]:
    dims, sides = span("ndim", ndim, minimum=1), span("side", side, minimum=1)
    return hnp.array_shapes(min_dims=dims.lo, max_dims=dims.hi, min_side=sides.lo, max_side=sides.hi)


def elementwise_geometries(*, ndim: Bound = (2, 4), side: Bound = (1, 5)) -> st.SearchStrategy[ElementwiseGeometry]:
    """ElementwiseGeometry (ReLU) on X of any shape, batch first; output shape = input shape.

    - ``ndim``: number of dimensions, batch included, default ``(2, 4)``.
    - ``side``: every dimension, default ``(1, 5)``.

    Shrinks towards the smallest shape: ``ndim`` min dimensions of ``side`` min each, (1, 1) by default.
    """
    return _shapes(ndim, side).map(ElementwiseGeometry)


Slope = float | tuple[float, float]
"""A leaky ReLU's negative slope: a number (fixed) or an inclusive ``(min, max)`` pair of numbers, in [0, 1)."""


def _slopes(name: str, value: object) -> st.SearchStrategy[float]:
    """Validate a Slope bound up front (ValueError naming ``name=value``); then floats in [min, max] that shrink
    towards min (one_of tries its first branch first)."""

    def number(v: object) -> bool:
        return isinstance(v, Real) and not isinstance(v, bool) and math.isfinite(v)

    if number(value):
        lo = hi = float(value)  # type: ignore[arg-type]
    elif isinstance(value, (tuple, list)) and len(value) == 2 and all(number(v) for v in value):
        lo, hi = float(value[0]), float(value[1])
    else:
        raise ValueError(f"{name}={value!r}: expected a number (fixed) or an inclusive (min, max) pair of numbers")
    if lo > hi:
        raise ValueError(f"{name}={value!r}: min {lo} is larger than max {hi}")
    if lo < 0 or hi >= 1:
        raise ValueError(f"{name}={value!r}: a leaky ReLU's negative slope lies in [0, 1)")
    if lo == hi:
        return st.just(lo)
    # + 0.0 turns a drawn -0.0 into 0.0; no subnormal slopes (alpha * G would underflow)
    between = st.floats(lo, hi, allow_subnormal=False).map(lambda a: a + 0.0)
    return st.one_of(st.just(lo), between)


def leaky_relu_geometries(
    *, ndim: Bound = (2, 4), side: Bound = (1, 5), alpha: Slope = (0.01, 0.3)
) -> st.SearchStrategy[LeakyReluGeometry]:
    """LeakyReluGeometry on X of any shape, batch first, with a drawn negative slope; output shape = input shape.

    - ``ndim``: number of dimensions, batch included, default ``(2, 4)``.
    - ``side``: every dimension, default ``(1, 5)``.
    - ``alpha``: the negative slope, a number (fixed) or an inclusive ``(min, max)`` pair of numbers in [0, 1),
      default ``(0.01, 0.3)``.

    Shrinks towards the smallest shape (``ndim`` min dimensions of ``side`` min each) and the smallest slope.
    """
    return st.builds(LeakyReluGeometry, _shapes(ndim, side), _slopes("alpha", alpha))


def softmax_geometries(
    *, ndim: Bound = (2, 4), side: Bound = (1, 5), axis: int = -1
) -> st.SearchStrategy[SoftmaxGeometry]:
    """SoftmaxGeometry: softmax over ``axis`` of X of any shape, batch first; output shape = input shape.

    - ``ndim``: number of dimensions, batch included, default ``(2, 4)``.
    - ``side``: every dimension, default ``(1, 5)``.
    - ``axis``: the softmax axis, fixed, default ``-1`` (the last); it must be an axis of every shape the
      ``ndim`` bound allows (-min <= axis < min).

    Shrinks towards the smallest shape: ``ndim`` min dimensions of ``side`` min each, (1, 1) by default.
    """
    dims = span("ndim", ndim, minimum=1)
    if isinstance(axis, bool) or not isinstance(axis, Integral):
        raise ValueError(f"axis={axis!r}: expected an int")
    if not -dims.lo <= axis < dims.lo:
        raise ValueError(
            f"axis={axis!r}: not an axis of the smallest shape the bounds allow ({dims.lo} dimensions): "
            f"needs {-dims.lo} <= axis < {dims.lo}"
        )
    return _shapes(ndim, side).map(lambda shape: SoftmaxGeometry(shape, int(axis)))


def flatten_geometries(*, ndim: Bound = (2, 4), side: Bound = (1, 5)) -> st.SearchStrategy[FlattenGeometry]:
    """FlattenGeometry on X of any shape, batch first; output (N, prod(rest)).

    - ``ndim``: number of dimensions, batch included, default ``(2, 4)``.
    - ``side``: every dimension, default ``(1, 5)``.

    Shrinks towards the smallest shape: ``ndim`` min dimensions of ``side`` min each, (1, 1) by default.
    """
    return _shapes(ndim, side).map(FlattenGeometry)


def dense_geometries(
    *,
    batch: Bound = (1, 4),
    features_ndim: Bound = (1, 3),
    side: Bound = (1, 4),
    out_features: Bound = (1, 5),
    bias: bool | None = None,
) -> st.SearchStrategy[DenseGeometry]:
    """DenseGeometry for Y = flatten(X) W + b on X (N, *features), W (D, M), D = prod(features).

    - ``batch``: N, default ``(1, 4)``.
    - ``features_ndim``: number of feature dimensions after the batch, default ``(1, 3)``.
    - ``side``: every feature dimension, default ``(1, 4)``.
    - ``out_features``: M, default ``(1, 5)``.
    - ``bias``: default ``None`` (drawn); ``True`` or ``False`` fixes it.

    Shrinks towards the smallest geometry: batch 1, features (1,), 1 output, no bias.
    """
    n, m = span("batch", batch, minimum=1), span("out_features", out_features, minimum=1)
    features = _shapes(features_ndim, side)
    bias = flag("bias", bias)
    biases = st.booleans() if bias is None else st.just(bias)
    return st.builds(DenseGeometry, n.ints(), features, m.ints(), biases)


REDUCTIONS = ("mean", "sum")
"""How a loss combines its per-sample terms: their mean over the batch or their sum."""


def _reductions(value: object) -> st.SearchStrategy[str]:
    """A reduction name (fixed) or a tuple of them (drawn, shrinking towards the first); ValueError otherwise."""
    names = (value,) if isinstance(value, str) else tuple(value) if isinstance(value, (tuple, list)) else ()
    if not names or not all(isinstance(n, str) and n in REDUCTIONS for n in names):
        raise ValueError(f"reduction={value!r}: expected one of {REDUCTIONS} or a tuple of them")
    return st.sampled_from(names)


def loss_geometries(
    *, batch: Bound = (1, 4), classes: Bound = (2, 6), reduction: str | tuple[str, ...] = REDUCTIONS
) -> st.SearchStrategy[LossGeometry]:
    """LossGeometry for a loss (softmax cross-entropy, multiclass hinge) on scores (N, M), labels (N,).

    - ``batch``: N, default ``(1, 4)``.
    - ``classes``: M, default ``(2, 6)``.
    - ``reduction``: "mean" or "sum" (fixed), or a tuple of them (drawn), default both.

    Shrinks towards batch 1, the fewest classes (2 by default) and the first reduction ("mean").
    """
    n, m = span("batch", batch, minimum=1), span("classes", classes, minimum=1)
    return st.builds(LossGeometry, n.ints(), m.ints(), _reductions(reduction))


RealBound = float | tuple[float, float]
"""A real-valued bound: a number (fixed) or an inclusive ``(min, max)`` pair of numbers."""


def _reals(name: str, value: object, *, low: float, high: float, what: str) -> st.SearchStrategy[float]:
    """Validate a RealBound (ValueError naming ``name=value``) inside the open interval (low, high); then floats
    in [min, max] that shrink towards min."""

    def number(v: object) -> bool:
        return isinstance(v, Real) and not isinstance(v, bool) and math.isfinite(v)

    if number(value):
        lo = hi = float(value)  # type: ignore[arg-type]
    elif isinstance(value, (tuple, list)) and len(value) == 2 and all(number(v) for v in value):
        lo, hi = float(value[0]), float(value[1])
    else:
        raise ValueError(f"{name}={value!r}: expected a number (fixed) or an inclusive (min, max) pair of numbers")
    if lo > hi:
        raise ValueError(f"{name}={value!r}: min {lo} is larger than max {hi}")
    if not low < lo <= hi < high:
        raise ValueError(f"{name}={value!r}: {what} lies in ({low:g}, {high:g})")
    if lo == hi:
        return st.just(lo)
    return st.one_of(st.just(lo), st.floats(lo, hi, allow_subnormal=False))


def batchnorm_geometries(
    *,
    ndim: Bound = (2, 4),
    batch: Bound = (1, 4),
    channels: Bound = (1, 4),
    side: Bound = (1, 4),
    eps: RealBound = 1e-5,
    alt: bool | None = False,
) -> st.SearchStrategy[BatchNormGeometry]:
    """BatchNormGeometry: training-mode batch norm on (N, D) or, spatial, (N, C, H, W).

    - ``ndim``: 2 (plain) or 4 (spatial), the ranks inside this bound, default ``(2, 4)`` (3 is never drawn).
    - ``batch``: N, default ``(1, 4)``.
    - ``channels``: D or C, default ``(1, 4)``.
    - ``side``: H and W of a spatial input, default ``(1, 4)``.
    - ``eps``: the number added to the variance, a number (fixed) or a (min, max) pair, default ``1e-5``.
    - ``alt``: default ``False``; ``None`` draws cases for the layer's alternative backward too (on (N, D) inputs),
      ``True`` only them.

    Every channel holds at least 2 values (PyTorch refuses to normalise one): a plain input has N >= 2; a spatial
    input whose N * H * W would be 1 gets N = 2 (or W = 2 when the batch bound is 1).

    Shrinks towards the fewest dimensions, batch and channels, 1x1 images, the smallest eps and the main backward.
    """
    dims = span("ndim", ndim, minimum=1)
    ranks = [d for d in (2, 4) if dims.lo <= d <= dims.hi]
    if not ranks:
        raise ValueError(f"ndim={ndim!r}: batch norm is checked on 2-D (N, D) or 4-D (N, C, H, W) inputs")
    n, c, h = span("batch", batch, minimum=1), span("channels", channels, minimum=1), span("side", side, minimum=1)
    if n.hi < 2 and (ranks == [2] or h.hi < 2):
        raise ValueError(f"batch={batch!r}, side={side!r}: no input with 2 or more values per channel fits")
    if n.hi < 2:
        ranks = [4]
    alt = flag("alt", alt)
    alts = st.booleans() if alt is None else st.just(alt)
    epsilons = _reals("eps", eps, low=0.0, high=math.inf, what="eps")
    return _batchnorm(st.sampled_from(ranks), n, c, h, epsilons, alts, alt is None)


@st.composite
def _batchnorm(draw, ranks, n: Span, c: Span, h: Span, eps, alts, drawn_alt: bool) -> BatchNormGeometry:
    rank = draw(ranks)
    batch, channels = _int(draw, max(n.lo, 2) if rank == 2 else n.lo, n.hi), _int(draw, *c)
    shape: tuple[int, ...] = (batch, channels)
    if rank == 4:
        height, width = _int(draw, *h), _int(draw, *h)
        if batch * height * width < 2:
            batch, width = (2, width) if n.hi >= 2 else (batch, 2)
        shape = (batch, channels, height, width)
    # a drawn alt (None) is only drawn on (N, D): the alternative backward people write (CS231n's) is the plain one
    return BatchNormGeometry(shape, draw(eps), draw(alts) if rank == 2 or not drawn_alt else False)


def dropout_geometries(
    *, ndim: Bound = (2, 4), side: Bound = (1, 5), p: RealBound = (0.2, 0.8), seed: Bound = (0, 2**16)
) -> st.SearchStrategy[DropoutGeometry]:
    """DropoutGeometry: inverted dropout on X of any shape, batch first, with the parameter and seed handed to the
    layer.

    - ``ndim``: number of dimensions, batch included, default ``(2, 4)``.
    - ``side``: every dimension, default ``(1, 5)``.
    - ``p``: the dropout parameter, a number (fixed) or a (min, max) pair inside (0, 1), default ``(0.2, 0.8)``.
    - ``seed``: the seed, an int (fixed) or a (min, max) pair, default ``(0, 65536)``.

    Shrinks towards the smallest shape, the smallest p and seed 0.
    """
    seeds = span("seed", seed, minimum=0)
    return st.builds(
        DropoutGeometry, _shapes(ndim, side), _reals("p", p, low=0.0, high=1.0, what="a probability"), seeds.ints()
    )


def network_geometries(
    *,
    batch: Bound = (1, 2),
    in_channels: Bound = (1, 3),
    filters: Bound = (1, 3),
    kernel: Bound = 3,
    padding: Bound = (0, 1),
    pool: Bound = 2,
    output: Bound = (1, 2),
    classes: Bound = (2, 6),
    bias: bool | None = None,
) -> st.SearchStrategy[NetworkGeometry]:
    """NetworkGeometry: conv1 -> relu -> pool1 -> conv2 -> relu -> pool2 -> flatten -> dense -> softmax-CE.

    - ``batch``: N, default ``(1, 2)``.
    - ``in_channels``: image channels, default ``(1, 3)``.
    - ``filters``: F1 and F2 (drawn separately), default ``(1, 3)``.
    - ``kernel``: each conv's square kernel (stride 1, dilation 1), default ``3``.
    - ``padding``: each conv's padding per axis, default ``(0, 1)``; capped at k-1 like conv_geometries.
    - ``pool``: both pools' square kernel, equal to their stride (no padding), default ``2``.
    - ``output``: pool2's Ho and Wo, default ``(1, 2)``.
    - ``classes``: dense outputs = softmax classes, default ``(2, 6)``.
    - ``bias``: default ``None`` (drawn per layer); ``True`` or ``False`` fixes all three.

    Built backwards from pool2's output with the same per-axis derivation as conv_geometries and
    pool_geometries, so every part fits the next: pool1.input = conv1.output, conv2.input =
    pool1.output, pool2.input = conv2.output, dense.features = pool2.output (C, Ho, Wo). With the
    defaults the image is between 4x4 and 17x17 (10x10 at the shrink target).

    Shrinks towards batch 1, 1 channel, 1 filter per conv, no padding, 1x1 pool2 output, the fewest
    classes and no biases.
    """
    n, c, f = (
        span("batch", batch, minimum=1),
        span("in_channels", in_channels, minimum=1),
        span("filters", filters, minimum=1),
    )
    k, p = span("kernel", kernel, minimum=1), span("padding", padding, minimum=0)
    pk, out = span("pool", pool, minimum=1), span("output", output, minimum=1)
    m, bias = span("classes", classes, minimum=1), flag("bias", bias)
    _require_padding_fits(
        padding, {"out": _ONE, "kernel": k, "stride": _ONE, "padding": p, "dilation": _ONE}, pool=False
    )
    return _network(n, c, f, k, p, pk, out, m, bias)


def _network_axis(draw, out: Span, pool: int, k1: int, k2: int, padding: Span) -> tuple[_Axis, ...]:
    """One spatial axis of the network, derived from pool2's output backwards: (conv1, pool1, conv2, pool2)."""
    pk = Span(pool, pool)
    pool2 = _axis(draw, out, pk, pk, _ZERO, _ONE, pool=True)
    conv2 = _axis(draw, Span(pool2.size, pool2.size), Span(k2, k2), _ONE, padding, _ONE, pool=False)
    pool1 = _axis(draw, Span(conv2.size, conv2.size), pk, pk, _ZERO, _ONE, pool=True)
    conv1 = _axis(draw, Span(pool1.size, pool1.size), Span(k1, k1), _ONE, padding, _ONE, pool=False)
    return conv1, pool1, conv2, pool2


@st.composite
def _network(
    draw, n: Span, c: Span, f: Span, k: Span, p: Span, pk: Span, out: Span, m: Span, bias: bool | None
) -> NetworkGeometry:
    batch, channels, f1, f2 = _int(draw, *n), _int(draw, *c), _int(draw, *f), _int(draw, *f)
    k1, k2, pool = _int(draw, *k), _int(draw, *k), _int(draw, *pk)
    conv1_h, pool1_h, conv2_h, pool2_h = _network_axis(draw, out, pool, k1, k2, p)
    conv1_w, pool1_w, conv2_w, pool2_w = _network_axis(draw, out, pool, k1, k2, p)
    b1, b2, b3 = (draw(st.booleans()) if bias is None else bias for _ in range(3))

    def conv(cin: int, h: _Axis, w: _Axis, fout: int, has_bias: bool) -> ConvGeometry:
        return ConvGeometry(
            batch, cin, h.size, w.size, fout, (h.kernel, w.kernel), (1, 1), (h.padding, w.padding), (1, 1), has_bias
        )

    def pooling(ch: int, h: _Axis, w: _Axis) -> PoolGeometry:
        return PoolGeometry(batch, ch, h.size, w.size, (pool, pool), (pool, pool), (0, 0))

    return NetworkGeometry(
        batch,
        channels,
        conv1_h.size,
        conv1_w.size,
        conv(channels, conv1_h, conv1_w, f1, b1),
        pooling(f1, pool1_h, pool1_w),
        conv(f1, conv2_h, conv2_w, f2, b2),
        pooling(f2, pool2_h, pool2_w),
        DenseGeometry(batch, (f2, pool2_h.output, pool2_w.output), _int(draw, *m), b3),
    )
