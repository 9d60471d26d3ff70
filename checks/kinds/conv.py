"""conv: Z = conv2d(X, K, B) on X (N, C, H, W), K (F, C, kh, kw), B (F,), with stride s, padding p, dilation d.

    Z[n,f,i,j] = B[f] + sum_{c,u,v} K[f,c,u,v] X~[n, c, i*s + u*d, j*s + v*d]        (X~: X padded by p)
    dL/dX = crop_p(full_corr(dilate_s(G), rot180(K)))     dL/dK = corr(X~, dilate_s(G))     dL/dB = sum G

Smooth (linear in X and in K): no kinks.
"""

from __future__ import annotations

import itertools
from dataclasses import replace

import numpy as np
from hypothesis import strategies as st

import cnn
from checks import strategies as cs
from checks.case import Case
from checks.geometry import ConvGeometry
from checks.kinds import Kind, Mistake, Region, catalogue, fit
from checks.strategies._bounds import at_least, highest, span
from checks.subject import LayerSubject
from checks.windows import window_coverage
from cnn.ops import corr2d, corr2d_full, pad2d


def forward(g: ConvGeometry, a, labels):
    """Z = conv2d(X, K, B) with the geometry's stride, padding and dilation; no kink sites."""
    return cnn.conv2d(a["input"], a["weight"], a.get("bias"), g.stride, g.padding, g.dilation), []


def torch(F, g: ConvGeometry, t, labels):
    return F.conv2d(t["input"], t["weight"], t.get("bias"), g.stride, g.padding, g.dilation)


def reference_layer(case: Case) -> LayerSubject:
    g = case.geometry
    layer = cnn.Conv2D(g.in_channels, g.filters, g.kernel, g.stride, g.padding, g.dilation, g.bias, dtype=case.dtype)
    return LayerSubject(layer)


def user_geometries(s, input_layout: str):
    def drawn(kernel, stride, padding, dilation):
        return cs.conv_geometries(
            batch=s.batch,
            in_channels=s.channels,
            filters=s.filters,
            kernel=kernel,
            stride=stride,
            padding=padding,
            dilation=dilation,
            output=s.output,
            square=s.square,
            square_input=s.square_input,
            bias=s.bias,
            remainder=s.remainder,
        )

    if s.padding == "valid":
        return drawn(s.kernel, s.stride, 0, s.dilation)
    if s.padding == "same":
        return _same(s, drawn)
    return drawn(s.kernel, s.stride, s.padding, s.dilation)


def _same(s, drawn):
    """padding="same" as a layer that takes the string means it: stride 1 and an odd kernel k, so that
    p = d*(k - 1)/2 on each side keeps H' = H (one k and one d for both axes)."""
    kernels = [k for k in _values("kernel", s.kernel) if k % 2 == 1]
    if not kernels:
        raise ValueError(f"kernel={s.kernel!r}: padding='same' needs an odd kernel (stride 1, p = d*(k-1)/2)")
    dilations = _values("dilation", s.dilation)
    pairs = st.tuples(st.sampled_from(kernels), st.sampled_from(dilations))
    return pairs.flatmap(lambda kd: drawn(kd[0], 1, kd[1] * (kd[0] - 1) // 2, kd[1]))


def _values(name: str, bound) -> list[int]:
    lo, hi = span(name, bound, minimum=1)
    return list(range(lo, hi + 1))


def corner(s):
    """Strided and padded: where a scatter or a crop goes wrong ("same" and "valid" fix both already)."""
    if isinstance(s.padding, str):
        return s
    return replace(s, stride=highest(s.stride), padding=at_least(s.padding, 1))


def regions(case: Case, name: str) -> list[Region]:
    """dL/dX sums the contributions of every window reaching X[y, x] (i*s + u*d - p = y): where two or more
    windows reach it, `=` instead of `+=` in the scatter keeps only one of them."""
    if name != "input":
        return []
    return [("overlap", window_coverage(case.geometry) >= 2, "only where conv windows overlap")]


# -- known mistakes ----------------------------------------------------------------------------------


def _parts(case: Case):
    return case.geometry, case.inputs["input"], case.inputs["weight"], case.upstream


def _kernel_flipped(case: Case, correct):
    g, x, w, up = _parts(case)
    flipped = np.ascontiguousarray(w[..., ::-1, ::-1])
    return {"input": cnn.conv2d_grad_input(up, flipped, x.shape, g.stride, g.padding, g.dilation)}


def _stride_ignored(case: Case, correct):
    """Windows placed at i instead of i*s in backward: the scatter uses stride 1."""
    g, x, w, up = _parts(case)
    n, c, h, wd = x.shape
    ph, pw = g.padding
    full = corr2d_full(up, w, g.dilation)
    dxp = np.zeros((n, c, h + 2 * ph, wd + 2 * pw), dtype=x.dtype)
    rh, rw = min(full.shape[2], dxp.shape[2]), min(full.shape[3], dxp.shape[3])
    dxp[:, :, :rh, :rw] = full[:, :, :rh, :rw]
    xt = pad2d(x, g.padding).transpose(1, 0, 2, 3)
    dw = corr2d(xt, up.transpose(1, 0, 2, 3), stride=g.dilation, dilation=(1, 1))
    kh, kw = g.kernel
    return {
        "input": dxp[:, :, ph : ph + h, pw : pw + wd],
        "weight": np.ascontiguousarray(dw[:, :, :kh, :kw].transpose(1, 0, 2, 3)),
    }


def _empty_crop(case: Case, correct):
    g = case.geometry
    padded = pad2d(correct["input"], g.padding)
    # The classic slice dxp[:, :, p:-p, p:-p]: correct for p > 0, EMPTY for p == 0.
    return {"input": padded[:, :, g.padding[0] : -g.padding[0], g.padding[1] : -g.padding[1]]}


def _both_empty(wrong, layer) -> bool:
    """Any empty array is the empty crop: the exact empty shape depends on how the slice was written."""
    return layer is not None and np.size(layer) == 0 and np.size(wrong) == 0


def _over_batch(name: str):
    def wrong(case: Case, correct):
        return {name: correct[name] / case.inputs["input"].shape[0]}

    return wrong


def _weight_spatially_transposed(case: Case, correct):
    return {"weight": np.ascontiguousarray(correct["weight"].transpose(0, 1, 3, 2))}


def _weight_rotated(case: Case, correct):
    return {"weight": np.ascontiguousarray(correct["weight"][..., ::-1, ::-1])}


def _has_batch(case: Case) -> bool:
    return case.inputs["input"].shape[0] > 1


MISTAKES = catalogue(
    "conv",
    Mistake(
        "kernel_flipped",
        "input",
        "kernel orientation wrong: the full-convolution form needs rot180(K), the scatter form "
        "(dX[window] += G * K) must NOT rotate; this gradient used the other one",
        "dL/dX = crop_p(full_corr(dilate_s(G), rot180(K)))  ==  sum_{i,j} G[i,j] * K placed at window (i,j)",
        _kernel_flipped,
        lambda c: c.inputs["weight"].shape[-2:] != (1, 1),
    ),
    Mistake(
        "stride_ignored",
        "input",
        "stride ignored in backward: windows placed at i instead of i*stride",
        "dX~[c, i*s + u*d, j*s + v*d] += G[f,i,j] K[f,c,u,v]",
        _stride_ignored,
        lambda c: max(c.geometry.stride) > 1,
    ),
    Mistake(
        "empty_crop_at_pad0",
        "input",
        "padding crop dX~[p:-p] is empty when the padding is 0",
        "dL/dX = dX~[:, :, p:p+H, p:p+W]",
        _empty_crop,
        lambda c: min(c.geometry.padding) == 0,
        same=_both_empty,
    ),
    Mistake(
        "weight_grad_over_batch",
        "weight",
        "weight gradient divided by the batch size (averaged); L = sum(Z * G) is already the batch sum",
        "dL/dK[f,c,u,v] = sum_{n,i,j} G[n,f,i,j] X~[n, c, i*s+u*d, j*s+v*d]",
        _over_batch("weight"),
        _has_batch,
    ),
    Mistake(
        "bias_grad_over_batch",
        "bias",
        "bias gradient averaged over the batch instead of summed",
        "dL/dB[f] = sum_{n,i,j} G[n,f,i,j]",
        _over_batch("bias"),
        _has_batch,
    ),
    Mistake(
        "conv_weight_transposed",
        "weight",
        "weight gradient with its spatial axes swapped (kh and kw transposed)",
        "dL/dK has K's layout (F, C, kh, kw)",
        _weight_spatially_transposed,
        lambda c: c.inputs["weight"].shape[-1] == c.inputs["weight"].shape[-2] > 1,
    ),
    Mistake(
        "weight_grad_rotated",
        "weight",
        "kernel gradient rotated by 180 degrees: dK is a plain valid cross-correlation of X~ with G, never rotated",
        "dL/dK[f,c,u,v] = sum_{n,i,j} G[n,f,i,j] X~[n, c, i*s+u*d, j*s+v*d]",
        _weight_rotated,
        lambda c: c.inputs["weight"].shape[-2:] != (1, 1),
    ),
)


def candidates(a, z, params, canonical):
    """A conv in a network (checks.kinds.fit): a 3-d (one input channel) or 4-d weight, an optional bias of F
    entries; per axis stride 1..4 and padding 0..k-1 whose output size fits; dilation 1."""
    for weight in [n for n, v in params.items() if v.ndim in fit.CONV_WEIGHTS]:
        for w_layout in fit.CONV_WEIGHTS[params[weight].ndim]:
            f, wc, kh, kw = canonical(params[weight].shape, w_layout) or (0, 0, 0, 0)
            fits, bias = fit.bias_of(params, weight, f)
            if not fits:
                continue
            roles = ((weight, "weight", w_layout),) + (((bias, "bias", None),) if bias else ())
            for in_layout, (n, c, h, w) in fit.images(a.shape, canonical):
                for out_layout, (zn, zf, zh, zw) in fit.images(z.shape, canonical):
                    if c != wc or (zn, zf) != (n, f):
                        continue
                    rows = fit.axis_options(h, zh, kh, fit.CONV_STRIDES, range(kh))
                    cols = fit.axis_options(w, zw, kw, fit.CONV_STRIDES, range(kw))
                    for (sh, ph), (sw, pw) in itertools.product(rows, cols):
                        g = ConvGeometry(n, c, h, w, f, (kh, kw), (sh, sw), (ph, pw), (1, 1), bias is not None)
                        shown = (
                            f"conv {kh}x{kw}, stride {fit.pair(sh, sw)}, padding {fit.pair(ph, pw)}, "
                            f"{'bias' if bias else 'no bias'}; input {in_layout}, weight {w_layout}, "
                            f"output {out_layout}"
                        )
                        yield fit.Candidate(g, in_layout, out_layout, roles, shown)


KIND = Kind(
    name="conv",
    geometry=ConvGeometry,
    forward=forward,
    torch=torch,
    reference_layer=reference_layer,
    default_geometries=cs.conv_geometries,
    axes={"input": "nchw", "output": "nfij", "weight": "fcuv", "bias": "f"},
    layouts={"input": "NCHW", "output": "NCHW", "weight": "FCHW", "bias": None},
    modes=("separated", "mixed"),
    user_geometries=user_geometries,
    corner=corner,
    regions=regions,
    mistakes=MISTAKES,
    candidates=candidates,
)
