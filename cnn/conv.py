"""2-D convolution (cross-correlation, as in every framework) and its three backward identities.

Notation: X (N, C, H, W), K (F, C, kh, kw), B (F,), G = dL/dZ (N, F, Ho, Wo), stride s, zero
padding p, dilation d, X~ = pad(X, p).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from cnn._args import Pair, pair, require_array, require_same_dtype, require_shape, shape4
from cnn.ops import _corr_transposed, corr2d, corr_output_size, pad2d

IntOrPair = int | Sequence[int]


def conv2d_output_shape(
    input_shape: Sequence[int], weight_shape: Sequence[int], stride: Pair, padding: Pair, dilation: Pair
) -> tuple[int, int, int, int]:
    """(N, F, Ho, Wo) with Ho = floor((H + 2p - d*(kh-1) - 1) / s) + 1; ValueError when it does not fit."""
    n, c, h, w = input_shape
    f, wc, kh, kw = weight_shape
    if c != wc:
        raise ValueError(f"input has {c} channels but weight {tuple(weight_shape)} expects {wc}")
    ho = corr_output_size(h + 2 * padding[0], kh, stride[0], dilation[0])
    wo = corr_output_size(w + 2 * padding[1], kw, stride[1], dilation[1])
    if ho < 1 or wo < 1:
        raise ValueError(
            f"kernel {(kh, kw)} with dilation {dilation} is larger than the padded input "
            f"{(h + 2 * padding[0], w + 2 * padding[1])} (input {tuple(input_shape)}, padding {padding})"
        )
    return n, f, ho, wo


def conv_geometry(stride: IntOrPair, padding: IntOrPair, dilation: IntOrPair) -> tuple[Pair, Pair, Pair]:
    """Normalise (stride, padding, dilation) to pairs: stride, dilation >= 1, padding >= 0."""
    return (
        pair(stride, "stride", minimum=1),
        pair(padding, "padding", minimum=0),
        pair(dilation, "dilation", minimum=1),
    )


def conv2d(
    x: np.ndarray,
    weight: np.ndarray,
    bias: np.ndarray | None = None,
    stride: IntOrPair = 1,
    padding: IntOrPair = 0,
    dilation: IntOrPair = 1,
) -> np.ndarray:
    """Z[n,f,i,j] = B[f] + sum_{c,u,v} X~[n, c, i*s + u*d, j*s + v*d] * K[f,c,u,v]."""
    s, p, d = conv_geometry(stride, padding, dilation)
    require_array(x, "input", 4)
    require_array(weight, "weight", 4)
    require_same_dtype(x, weight, "input and weight")
    conv2d_output_shape(x.shape, weight.shape, s, p, d)
    z = corr2d(pad2d(x, p), weight, s, d)
    if bias is not None:
        require_array(bias, "bias", 1)
        require_same_dtype(x, bias, "input and bias")
        require_shape(bias, (weight.shape[0],), "bias")
        z = z + bias.reshape(1, -1, 1, 1)
    return np.ascontiguousarray(z)


def conv2d_grad_bias(grad_out: np.ndarray) -> np.ndarray:
    """dL/dB[f] = sum_{n,i,j} G[n,f,i,j]."""
    require_array(grad_out, "grad_out", 4)
    return grad_out.sum(axis=(0, 2, 3))


def conv2d_grad_weight(
    grad_out: np.ndarray,
    x: np.ndarray,
    kernel_size: IntOrPair,
    stride: IntOrPair = 1,
    padding: IntOrPair = 0,
    dilation: IntOrPair = 1,
) -> np.ndarray:
    """dL/dK = valid cross-correlation of X~ with dilate_s(G), sampled every d.

    dK[f,c,u,v] = sum_{n,i,j} G[n,f,i,j] * X~[n, c, i*s + u*d, j*s + v*d]
    i.e. corr2d with the batch axis as the summed channel axis: X~ read as (C, N, .), G as the kernel
    (F, N, Ho, Wo) with kernel dilation s (the zeros of dilate_s(G) are skipped, not multiplied) and
    output stride d; only the leading kh x kw block is kept (rows X~ never reached add nothing).
    """
    s, p, d = conv_geometry(stride, padding, dilation)
    kh, kw = pair(kernel_size, "kernel_size", minimum=1)
    require_array(grad_out, "grad_out", 4)
    require_array(x, "input", 4)
    require_same_dtype(grad_out, x, "grad_out and input")
    n, f, ho, wo = grad_out.shape
    expected = conv2d_output_shape(x.shape, (f, x.shape[1], kh, kw), s, p, d)
    require_shape(grad_out, expected, "grad_out")
    # Crop X~ to the rows the windows reach, so the correlation yields exactly kh x kw positions.
    reach = ((kh - 1) * d[0] + (ho - 1) * s[0] + 1, (kw - 1) * d[1] + (wo - 1) * s[1] + 1)
    xt = pad2d(x, p)[:, :, : reach[0], : reach[1]].transpose(1, 0, 2, 3)
    gt = grad_out.transpose(1, 0, 2, 3)
    return np.ascontiguousarray(corr2d(xt, gt, stride=d, dilation=s).transpose(1, 0, 2, 3))


def conv2d_grad_input(
    grad_out: np.ndarray,
    weight: np.ndarray,
    input_shape: Sequence[int],
    stride: IntOrPair = 1,
    padding: IntOrPair = 0,
    dilation: IntOrPair = 1,
) -> np.ndarray:
    """dL/dX = crop_p( full cross-correlation of dilate_s(G) with rot180(K), summed over f ).

    dX~[n,c,y,x] = sum_{f,u,v} G[n, f, (y - u*d)/s, (x - v*d)/s] * K[f,c,u,v] (non-integer or
    out-of-range indices contribute 0); rows/columns of X~ that no window reached get 0;
    dX = dX~[:, :, p:p+H, p:p+W].
    """
    s, p, d = conv_geometry(stride, padding, dilation)
    require_array(grad_out, "grad_out", 4)
    require_array(weight, "weight", 4)
    require_same_dtype(grad_out, weight, "grad_out and weight")
    n, c, h, w = shape4(input_shape, "input_shape")
    expected = conv2d_output_shape((n, c, h, w), weight.shape, s, p, d)
    require_shape(grad_out, expected, "grad_out")
    # = corr2d_full(dilate2d(G, s), K, d) placed in the padded size, without multiplying the zeros
    # dilate2d would insert (tests check the two agree).
    dx_padded = _corr_transposed(grad_out, weight, s, d, (h + 2 * p[0], w + 2 * p[1]))
    if p == (0, 0):
        return dx_padded
    return dx_padded[:, :, p[0] : p[0] + h, p[1] : p[1] + w].copy()
