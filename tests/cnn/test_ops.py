"""The array primitives of cnn/ops.py against direct loop formulas, and the convolution identities of
gradients.md written out with those primitives (or with loops) and compared with cnn/conv.py.

Everything here runs on tiny inputs so the loops are the definition, not an implementation.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from cnn import (
    conv2d,
    conv2d_grad_bias,
    conv2d_grad_input,
    conv2d_grad_weight,
    corr2d,
    corr2d_full,
    dilate2d,
    pad2d,
    rot180,
)


# ------------------------------------------------------------------------------------------------------
# Loop definitions (written from the formulas in gradients.md, indices spelled out)
# ------------------------------------------------------------------------------------------------------
def loop_corr2d(x, k, stride=(1, 1), dilation=(1, 1)):
    """out[n,f,i,j] = sum_{c,u,v} x[n, c, i*sh + u*dh, j*sw + v*dw] * k[f,c,u,v]."""
    n, c, h, w = x.shape
    f, _, kh, kw = k.shape
    (sh, sw), (dh, dw) = stride, dilation
    ho, wo = (h - dh * (kh - 1) - 1) // sh + 1, (w - dw * (kw - 1) - 1) // sw + 1
    out = np.zeros((n, f, ho, wo))
    for b, o, i, j in itertools.product(range(n), range(f), range(ho), range(wo)):
        for ch, u, v in itertools.product(range(c), range(kh), range(kw)):
            out[b, o, i, j] += x[b, ch, i * sh + u * dh, j * sw + v * dw] * k[o, ch, u, v]
    return out


def loop_corr2d_full(g, k, dilation=(1, 1)):
    """out[n,c,y,x] = sum_{f,u,v} g[n, f, y - u*dh, x - v*dw] * k[f,c,u,v]  (out-of-range g is 0)."""
    n, f, hg, wg = g.shape
    _, c, kh, kw = k.shape
    dh, dw = dilation
    out = np.zeros((n, c, hg + dh * (kh - 1), wg + dw * (kw - 1)))
    for b, ch, y, x in itertools.product(range(n), range(c), range(out.shape[2]), range(out.shape[3])):
        for o, u, v in itertools.product(range(f), range(kh), range(kw)):
            gy, gx = y - u * dh, x - v * dw
            if 0 <= gy < hg and 0 <= gx < wg:
                out[b, ch, y, x] += g[b, o, gy, gx] * k[o, ch, u, v]
    return out


def loop_pad(x, ph, pw, value=0.0):
    h, w = x.shape[-2:]
    out = np.full(x.shape[:-2] + (h + 2 * ph, w + 2 * pw), value)
    for y, xx in itertools.product(range(h), range(w)):
        out[..., y + ph, xx + pw] = x[..., y, xx]
    return out


def loop_conv_forward(x, k, b, s, p, d):
    """Z[n,f,i,j] = B[f] + sum_{c,u,v} X~[n, c, i*s + u*d, j*s + v*d] * K[f,c,u,v]."""
    return loop_corr2d(loop_pad(x, *p), k, s, d) + b.reshape(1, -1, 1, 1)


def loop_grad_weight(g, x, kernel, s, p, d):
    """dK[f,c,u,v] = sum_{n,i,j} G[n,f,i,j] * X~[n, c, i*s + u*d, j*s + v*d]."""
    xp = loop_pad(x, *p)
    n, f, ho, wo = g.shape
    c = x.shape[1]
    dk = np.zeros((f, c, *kernel))
    for o, ch, u, v in itertools.product(range(f), range(c), range(kernel[0]), range(kernel[1])):
        for b, i, j in itertools.product(range(n), range(ho), range(wo)):
            dk[o, ch, u, v] += g[b, o, i, j] * xp[b, ch, i * s[0] + u * d[0], j * s[1] + v * d[1]]
    return dk


def loop_grad_input_scatter(g, k, input_shape, s, p, d):
    """The seed's scatter form (no rotation): dX~[n, c, i*s + u*d, j*s + v*d] += G[n,f,i,j] K[f,c,u,v]."""
    n, c, h, w = input_shape
    _, f, ho, wo = g.shape
    kh, kw = k.shape[2:]
    dxp = np.zeros((n, c, h + 2 * p[0], w + 2 * p[1]))
    for b, o, i, j in itertools.product(range(n), range(f), range(ho), range(wo)):
        for ch, u, v in itertools.product(range(c), range(kh), range(kw)):
            dxp[b, ch, i * s[0] + u * d[0], j * s[1] + v * d[1]] += g[b, o, i, j] * k[o, ch, u, v]
    return dxp[:, :, p[0] : p[0] + h, p[1] : p[1] + w]


def out_size(size, k, s, p, d):
    return (size + 2 * p - d * (k - 1) - 1) // s + 1


# ------------------------------------------------------------------------------------------------------
# pad2d, dilate2d, rot180
# ------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "shape, padding",
    [
        pytest.param((2, 3, 4, 5), (1, 1), id="nchw-pad1"),
        pytest.param((2, 3, 4, 5), (2, 0), id="nchw-pad2x0"),
        pytest.param((1, 1, 3, 2), (0, 3), id="nchw-pad0x3"),
        pytest.param((4, 5), (1, 2), id="2d-pad1x2"),
        pytest.param((3, 4, 5), (0, 0), id="3d-no-pad"),
    ],
)
@pytest.mark.parametrize("value", [0.0, -np.inf], ids=["zeros", "-inf"])
def test_pad2d_matches_loop(rng, shape, padding, value):
    x = rng.standard_normal(shape)
    out = pad2d(x, padding, value=value)
    np.testing.assert_array_equal(out, loop_pad(x, *padding, value=value))
    assert out.shape == shape[:-2] + (shape[-2] + 2 * padding[0], shape[-1] + 2 * padding[1])


def test_pad2d_default_value_is_zero(rng):
    out = pad2d(rng.standard_normal((1, 1, 2, 2)), (1, 2))
    ring = np.ones(out.shape, bool)
    ring[..., 1:3, 2:4] = False
    assert np.all(out[ring] == 0)


@pytest.mark.parametrize(
    "shape, factor",
    [
        pytest.param((2, 3, 4, 5), (2, 2), id="nchw-2x2"),
        pytest.param((1, 2, 3, 4), (3, 2), id="nchw-3x2"),
        pytest.param((4, 3), (1, 3), id="2d-1x3"),
        pytest.param((2, 1, 1, 4), (2, 2), id="single-row"),
        pytest.param((2, 3, 4, 5), (1, 1), id="identity"),
    ],
)
def test_dilate2d_matches_definition(rng, shape, factor):
    x = rng.standard_normal(shape)
    out = dilate2d(x, factor)
    h, w = shape[-2:]
    sh, sw = factor
    assert out.shape == shape[:-2] + ((h - 1) * sh + 1, (w - 1) * sw + 1)
    expected = np.zeros(out.shape)
    for i, j in itertools.product(range(h), range(w)):
        expected[..., i * sh, j * sw] = x[..., i, j]
    np.testing.assert_array_equal(out, expected)


@pytest.mark.parametrize("shape", [(2, 3, 3, 3), (2, 3, 2, 4), (5, 1), (1, 2, 1, 1)], ids=str)
def test_rot180_matches_definition(rng, shape):
    k = rng.standard_normal(shape)
    out = rot180(k)
    kh, kw = shape[-2:]
    assert out.shape == k.shape
    for u, v in itertools.product(range(kh), range(kw)):
        np.testing.assert_array_equal(out[..., u, v], k[..., kh - 1 - u, kw - 1 - v])
    np.testing.assert_array_equal(rot180(out), k)


# ------------------------------------------------------------------------------------------------------
# corr2d and corr2d_full against the loop formulas
# ------------------------------------------------------------------------------------------------------
CORR_CASES = [
    # (x shape, k shape, stride, dilation). Both regimes: small kernel on a big image, and a kernel
    # bigger than the output (the shape a weight gradient has).
    pytest.param((2, 3, 6, 7), (4, 3, 3, 2), (1, 1), (1, 1), id="small-kernel"),
    pytest.param((2, 2, 7, 8), (3, 2, 2, 3), (2, 3), (1, 1), id="stride2x3"),
    pytest.param((1, 2, 9, 8), (2, 2, 3, 2), (1, 2), (2, 3), id="dilation2x3-stride1x2"),
    pytest.param((2, 2, 6, 5), (3, 2, 5, 4), (1, 1), (1, 1), id="big-kernel-2x2-out"),
    pytest.param((3, 2, 7, 7), (2, 2, 7, 7), (1, 1), (1, 1), id="kernel-equals-input"),
    pytest.param((2, 3, 8, 9), (2, 3, 3, 3), (1, 1), (3, 3), id="big-dilated-kernel"),
    pytest.param((2, 1, 10, 9), (1, 1, 4, 3), (3, 2), (2, 1), id="stride3-dilation2-uneven"),
]


@pytest.mark.parametrize("xs, ks, stride, dilation", CORR_CASES)
def test_corr2d_matches_loop(rng, close, xs, ks, stride, dilation):
    x, k = rng.standard_normal(xs), rng.standard_normal(ks)
    close(corr2d(x, k, stride, dilation), loop_corr2d(x, k, stride, dilation), what="corr2d")


def test_corr2d_defaults_are_stride1_dilation1(rng, close):
    x, k = rng.standard_normal((2, 2, 5, 6)), rng.standard_normal((3, 2, 2, 3))
    close(corr2d(x, k), loop_corr2d(x, k), what="corr2d defaults")


@pytest.mark.parametrize(
    "gs, ks, dilation",
    [
        pytest.param((2, 3, 4, 5), (3, 2, 3, 2), (1, 1), id="k3x2"),
        pytest.param((1, 2, 3, 3), (2, 3, 2, 2), (2, 3), id="dilation2x3"),
        pytest.param((2, 2, 1, 1), (2, 2, 3, 4), (1, 1), id="1x1-g"),
        pytest.param((2, 1, 4, 2), (1, 2, 1, 1), (1, 1), id="1x1-kernel"),
    ],
)
def test_corr2d_full_matches_loop(rng, close, gs, ks, dilation):
    g, k = rng.standard_normal(gs), rng.standard_normal(ks)
    close(corr2d_full(g, k, dilation), loop_corr2d_full(g, k, dilation), what="corr2d_full")


def test_corr2d_full_is_valid_corr_of_padded_g_with_rotated_kernel(rng, close):
    """corr2d_full(g, k) = corr2d(pad(g, d(k-1)), rot180(k) with F and C swapped, dilation d)."""
    g, k, d = rng.standard_normal((2, 3, 4, 5)), rng.standard_normal((3, 2, 3, 2)), (2, 1)
    reach = (d[0] * (3 - 1), d[1] * (2 - 1))
    expected = corr2d(pad2d(g, reach), rot180(k).transpose(1, 0, 2, 3), dilation=d)
    close(corr2d_full(g, k, d), expected, what="corr2d_full identity")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_primitives_preserve_dtype(rng, dtype):
    x = rng.standard_normal((2, 2, 5, 5)).astype(dtype)
    k = rng.standard_normal((3, 2, 2, 2)).astype(dtype)
    assert pad2d(x, (1, 2)).dtype == dtype
    assert pad2d(x, (1, 1), value=-np.inf).dtype == dtype
    assert dilate2d(x, (2, 3)).dtype == dtype
    assert rot180(k).dtype == dtype
    assert corr2d(x, k, (2, 1), (1, 2)).dtype == dtype
    g = rng.standard_normal((2, 3, 3, 4)).astype(dtype)
    assert corr2d_full(g, k, (2, 1)).dtype == dtype


# ------------------------------------------------------------------------------------------------------
# The convolution identities, as identities, on tiny geometries
# ------------------------------------------------------------------------------------------------------
TINY_CONV = [
    # (input shape, F, kernel, stride, padding, dilation)
    pytest.param((2, 2, 5, 4), 3, (2, 3), (1, 1), (0, 0), (1, 1), id="seed-s1-p0-d1"),
    pytest.param((2, 2, 6, 5), 2, (3, 2), (2, 2), (1, 1), (1, 1), id="stride2-pad1"),
    pytest.param((1, 2, 7, 6), 2, (2, 2), (3, 2), (0, 1), (1, 1), id="stride3x2-uneven"),
    pytest.param((2, 1, 7, 7), 2, (2, 2), (2, 2), (1, 0), (2, 2), id="dilation2-stride2-gaps"),
    pytest.param((1, 2, 6, 7), 2, (2, 3), (1, 3), (2, 1), (2, 1), id="dilation2x1-stride1x3-pad2x1"),
    pytest.param((1, 2, 3, 3), 2, (5, 5), (1, 1), (1, 1), (1, 1), id="kernel-equals-padded-input"),
]


def _tiny(rng, shape, f, kernel, s, p, d):
    x = rng.standard_normal(shape)
    k = rng.standard_normal((f, shape[1], *kernel))
    b = rng.standard_normal(f)
    ho, wo = (out_size(shape[2 + a], kernel[a], s[a], p[a], d[a]) for a in range(2))
    g = rng.standard_normal((shape[0], f, ho, wo))
    return x, k, b, g


@pytest.mark.parametrize("shape, f, kernel, s, p, d", TINY_CONV)
def test_conv2d_forward_is_the_sum_formula(rng, close, shape, f, kernel, s, p, d):
    x, k, b, _ = _tiny(rng, shape, f, kernel, s, p, d)
    close(conv2d(x, k, b, s, p, d), loop_conv_forward(x, k, b, s, p, d), what="conv2d")


@pytest.mark.parametrize("shape, f, kernel, s, p, d", TINY_CONV)
def test_grad_weight_is_the_sum_formula(rng, close, shape, f, kernel, s, p, d):
    x, _, _, g = _tiny(rng, shape, f, kernel, s, p, d)
    close(conv2d_grad_weight(g, x, kernel, s, p, d), loop_grad_weight(g, x, kernel, s, p, d), what="dK")


@pytest.mark.parametrize("shape, f, kernel, s, p, d", TINY_CONV)
def test_grad_weight_is_corr_of_padded_x_with_dilated_g(rng, close, shape, f, kernel, s, p, d):
    """dK[f,c] = sum_n corr_valid(X~[n,c], dilate_s(G[n,f])), sampled every d, leading kh x kw block."""
    x, _, _, g = _tiny(rng, shape, f, kernel, s, p, d)
    xp, gd = pad2d(x, p), dilate2d(g, s)
    n, c = shape[:2]
    # The one-line version: the batch is the summed "channel" axis of a (C, N, .) x (F, N, .) correlation.
    full = corr2d(xp.transpose(1, 0, 2, 3), gd.transpose(1, 0, 2, 3))  # (C, F, .)
    expected = full[:, :, :: d[0], :: d[1]][:, :, : kernel[0], : kernel[1]].transpose(1, 0, 2, 3)
    close(conv2d_grad_weight(g, x, kernel, s, p, d), expected, what="dK identity")
    # And per (n, c, f), single-channel: the seed's dL/dK = conv(X, dL/dZ) summed over the batch.
    for o, ch in itertools.product(range(f), range(c)):
        per_sample = [corr2d(xp[i, ch][None, None], gd[i, o][None, None])[0, 0] for i in range(n)]
        seed = np.sum(per_sample, axis=0)[:: d[0], :: d[1]][: kernel[0], : kernel[1]]
        close(conv2d_grad_weight(g, x, kernel, s, p, d)[o, ch], seed, what=f"dK[{o},{ch}] per-sample")


@pytest.mark.parametrize("shape, f, kernel, s, p, d", TINY_CONV)
def test_grad_input_is_the_scatter_sum(rng, close, shape, f, kernel, s, p, d):
    x, k, _, g = _tiny(rng, shape, f, kernel, s, p, d)
    close(conv2d_grad_input(g, k, shape, s, p, d), loop_grad_input_scatter(g, k, shape, s, p, d), what="dX")


@pytest.mark.parametrize("shape, f, kernel, s, p, d", TINY_CONV)
def test_grad_input_is_full_corr_of_dilated_g_with_rot180_k_cropped(rng, close, shape, f, kernel, s, p, d):
    """dX = crop_p( corr2d(pad(dilate_s(G), d(k-1)), rot180(K)^T, dilation d) ), unreached rows zero."""
    _, k, _, g = _tiny(rng, shape, f, kernel, s, p, d)
    n, c, h, w = shape
    reach = (d[0] * (kernel[0] - 1), d[1] * (kernel[1] - 1))
    reached = corr2d(pad2d(dilate2d(g, s), reach), rot180(k).transpose(1, 0, 2, 3), dilation=d)
    dx_padded = np.zeros((n, c, h + 2 * p[0], w + 2 * p[1]))
    dx_padded[:, :, : reached.shape[2], : reached.shape[3]] = reached
    expected = dx_padded[:, :, p[0] : p[0] + h, p[1] : p[1] + w]
    close(conv2d_grad_input(g, k, shape, s, p, d), expected, what="dX identity")


@pytest.mark.parametrize("shape, f, kernel, s, p, d", TINY_CONV)
def test_grad_bias_is_the_sum_of_g(rng, close, shape, f, kernel, s, p, d):
    *_, g = _tiny(rng, shape, f, kernel, s, p, d)
    expected = np.array([sum(g[b, o].sum() for b in range(shape[0])) for o in range(f)])
    close(conv2d_grad_bias(g), expected, what="dB")


def test_seed_identity_grad_input_is_conv_of_padded_g_with_rot180_k(rng, close):
    """The seed article's single-image, single-channel, stride-1 form: dX = conv(pad(G, k-1), rot180(K))."""
    x, k = rng.standard_normal((1, 1, 6, 6)), rng.standard_normal((1, 1, 3, 3))
    g = rng.standard_normal((1, 1, 4, 4))
    close(conv2d_grad_input(g, k, x.shape), corr2d(pad2d(g, (2, 2)), rot180(k)), what="seed dX")
    close(conv2d_grad_weight(g, x, 3), corr2d(x, g), what="seed dK")
