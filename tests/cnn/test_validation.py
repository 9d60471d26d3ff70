"""Every bad argument raises a ValueError whose message names what is wrong and the shapes involved.

One table: (call, regex the message must match). Upstream gradients of a wrong shape are tried for every
backward function and layer, including shapes that NumPy would happily broadcast (no silent broadcasting).
Rows marked BUG are real defects in cnn/ (strict xfail: they turn red once fixed, so the mark gets removed).
"""

from __future__ import annotations

import numpy as np
import pytest

from cnn import (
    AvgPool2D,
    Conv2D,
    Dense,
    Flatten,
    LeakyReLU,
    MaxPool2D,
    ReLU,
    Sequential,
    Sigmoid,
    Softmax,
    Tanh,
    avg_pool2d,
    avg_pool2d_backward,
    conv2d,
    conv2d_grad_bias,
    conv2d_grad_input,
    conv2d_grad_weight,
    dense,
    dense_grad_bias,
    dense_grad_input,
    dense_grad_weight,
    flatten,
    leaky_relu,
    leaky_relu_backward,
    max_pool2d,
    max_pool2d_backward,
    relu,
    relu_backward,
    sigmoid,
    sigmoid_backward,
    softmax,
    softmax_backward,
    softmax_cross_entropy,
    tanh_backward,
)
from cnn.fully_connected import unflatten


def z(*shape, dtype=np.float64):
    return np.zeros(shape, dtype)


def BUG(reason: str):
    return pytest.mark.xfail(strict=True, reason=f"BUG in cnn/: {reason}")


# conv: X (2, 3, 5, 5), W (4, 3, 3, 3) -> Z, G (2, 4, 3, 3) at stride 1, no padding.
X, W, B, G = z(2, 3, 5, 5), z(4, 3, 3, 3), z(4), z(2, 4, 3, 3)
X32 = z(2, 3, 5, 5, dtype=np.float32)
# pool: kernel 2 on X -> (2, 3, 2, 2)
GP, ARGMAX = z(2, 3, 2, 2), np.zeros((2, 3, 2, 2), np.int64)
# dense: XD (3, 5), WD (5, 4) -> (3, 4)
XD, WD, BD, GD = z(3, 5), z(5, 4), z(4), z(3, 4)
LOGITS, LABELS = z(3, 4), np.array([0, 3, 1])


def fwd(layer, x):
    layer.forward(x)
    return layer


CASES = [
    # ---------------------------------------------------------------- conv2d
    pytest.param(
        lambda: conv2d(X[0], W), r"input must have 4 dimensions, got shape \(3, 5, 5\)", id="conv2d-input-ndim"
    ),
    pytest.param(
        lambda: conv2d(X, W[0]), r"weight must have 4 dimensions, got shape \(3, 3, 3\)", id="conv2d-weight-ndim"
    ),
    pytest.param(
        lambda: conv2d(X, W[:, :2]), r"input has 3 channels but weight \(4, 2, 3, 3\) expects 2", id="conv2d-channels"
    ),
    pytest.param(
        lambda: conv2d(X, z(4, 3, 8, 3), padding=1),
        r"kernel \(8, 3\).* larger than the padded input \(7, 7\) \(input \(2, 3, 5, 5\), padding \(1, 1\)\)",
        id="conv2d-kernel-larger-than-padded-input",
    ),
    pytest.param(
        lambda: conv2d(X, W, dilation=3),
        r"kernel \(3, 3\) with dilation \(3, 3\) is larger than the padded input \(5, 5\)",
        id="conv2d-dilated-kernel-larger-than-input",
    ),
    pytest.param(lambda: conv2d(X, W, stride=0), r"stride must be >= 1, got 0", id="conv2d-stride-0"),
    pytest.param(lambda: conv2d(X, W, stride=(1, 0)), r"stride must be >= 1, got \(1, 0\)", id="conv2d-stride-pair-0"),
    pytest.param(lambda: conv2d(X, W, dilation=0), r"dilation must be >= 1, got 0", id="conv2d-dilation-0"),
    pytest.param(lambda: conv2d(X, W, padding=-1), r"padding must be >= 0, got -1", id="conv2d-negative-padding"),
    pytest.param(
        lambda: conv2d(X, W, padding=(0, -2)), r"padding must be >= 0, got \(0, -2\)", id="conv2d-neg-pad-pair"
    ),
    pytest.param(
        lambda: conv2d(X, W, stride=1.5), r"stride must be an int or a pair of ints, got 1.5", id="conv2d-float-stride"
    ),
    pytest.param(
        lambda: conv2d(X, W, stride=(1, 2, 3)), r"stride must be .* got \(1, 2, 3\)", id="conv2d-stride-triple"
    ),
    pytest.param(lambda: conv2d(X, W, stride=True), r"stride must be an int or a pair", id="conv2d-bool-stride"),
    pytest.param(
        lambda: conv2d(X32, W), r"input and weight must share a dtype, got float32 and float64", id="conv2d-mixed-dtype"
    ),
    pytest.param(lambda: conv2d(X, W, z(3)), r"bias has shape \(3,\), expected \(4,\)", id="conv2d-bias-shape"),
    pytest.param(
        lambda: conv2d(X, W, z(1, 4)), r"bias must have 1 dimensions, got shape \(1, 4\)", id="conv2d-bias-ndim"
    ),
    pytest.param(
        lambda: conv2d(X, W, z(4, dtype=np.float32)), r"input and bias must share a dtype", id="conv2d-bias-dtype"
    ),
    pytest.param(
        lambda: conv2d(X.astype(np.int64), W),
        r"input must be float32 or float64, got dtype int64",
        id="conv2d-int-input",
    ),
    pytest.param(lambda: conv2d(X.tolist(), W), r"input must be a numpy array, got list", id="conv2d-list-input"),
    # ---------------------------------------------------------------- conv2d_grad_input
    pytest.param(
        lambda: conv2d_grad_input(z(2, 4, 4, 4), W, X.shape),
        r"grad_out has shape \(2, 4, 4, 4\), expected \(2, 4, 3, 3\)",
        id="grad_input-wrong-shape",
    ),
    pytest.param(
        lambda: conv2d_grad_input(z(1, 4, 3, 3), W, X.shape),
        r"grad_out has shape \(1, 4, 3, 3\), expected \(2, 4, 3, 3\)",
        id="grad_input-broadcastable-batch",
    ),
    pytest.param(
        lambda: conv2d_grad_input(z(2, 4, 1, 3), W, X.shape),
        r"grad_out has shape \(2, 4, 1, 3\), expected \(2, 4, 3, 3\)",
        id="grad_input-broadcastable-rows",
    ),
    pytest.param(
        lambda: conv2d_grad_input(z(2, 1, 3, 3), W, X.shape),
        r"grad_out has shape \(2, 1, 3, 3\), expected \(2, 4, 3, 3\)",
        id="grad_input-broadcastable-filters",
    ),
    pytest.param(
        lambda: conv2d_grad_input(G[0], W, X.shape),
        r"grad_out must have 4 dimensions, got shape \(4, 3, 3\)",
        id="grad_input-ndim",
    ),
    pytest.param(
        lambda: conv2d_grad_input(G.astype(np.float32), W, X.shape),
        r"grad_out and weight must share a dtype, got float32 and float64",
        id="grad_input-mixed-dtype",
    ),
    pytest.param(
        lambda: conv2d_grad_input(G, W, (2, 2, 5, 5)),
        r"input has 2 channels but weight \(4, 3, 3, 3\) expects 3",
        id="grad_input-channels",
    ),
    pytest.param(
        lambda: conv2d_grad_input(G, W, (2, 3, 2, 2)),
        r"larger than the padded input \(2, 2\)",
        id="grad_input-kernel-too-big",
    ),
    pytest.param(lambda: conv2d_grad_input(G, W, X.shape, stride=0), r"stride must be >= 1", id="grad_input-stride-0"),
    pytest.param(
        lambda: conv2d_grad_input(G, W, X.shape, padding=-1), r"padding must be >= 0", id="grad_input-neg-pad"
    ),
    pytest.param(
        lambda: conv2d_grad_input(G, W, X.shape, dilation=0), r"dilation must be >= 1", id="grad_input-dilation-0"
    ),
    pytest.param(
        lambda: conv2d_grad_input(G, W, (3, 5, 5)),
        r"input_shape.*\(3, 5, 5\)",
        id="grad_input-input-shape-3d",
    ),
    # ---------------------------------------------------------------- conv2d_grad_weight
    pytest.param(
        lambda: conv2d_grad_weight(z(2, 4, 4, 4), X, 3),
        r"grad_out has shape \(2, 4, 4, 4\), expected \(2, 4, 3, 3\)",
        id="grad_weight-wrong-shape",
    ),
    pytest.param(
        lambda: conv2d_grad_weight(z(1, 4, 3, 3), X, 3),
        r"grad_out has shape \(1, 4, 3, 3\), expected \(2, 4, 3, 3\)",
        id="grad_weight-broadcastable-batch",
    ),
    pytest.param(
        lambda: conv2d_grad_weight(z(2, 4, 3, 1), X, 3),
        r"grad_out has shape \(2, 4, 3, 1\), expected \(2, 4, 3, 3\)",
        id="grad_weight-broadcastable-cols",
    ),
    pytest.param(lambda: conv2d_grad_weight(G[0], X, 3), r"grad_out must have 4 dimensions", id="grad_weight-ndim"),
    pytest.param(lambda: conv2d_grad_weight(G, X[0], 3), r"input must have 4 dimensions", id="grad_weight-input-ndim"),
    pytest.param(lambda: conv2d_grad_weight(G, X, 0), r"kernel_size must be >= 1, got 0", id="grad_weight-kernel-0"),
    pytest.param(
        lambda: conv2d_grad_weight(G, X, (3, 3, 3)),
        r"kernel_size must be an int or a pair",
        id="grad_weight-kernel-triple",
    ),
    pytest.param(
        lambda: conv2d_grad_weight(G, X, 6), r"larger than the padded input \(5, 5\)", id="grad_weight-kernel-too-big"
    ),
    pytest.param(lambda: conv2d_grad_weight(G, X, 3, stride=0), r"stride must be >= 1", id="grad_weight-stride-0"),
    pytest.param(lambda: conv2d_grad_weight(G, X, 3, padding=-1), r"padding must be >= 0", id="grad_weight-neg-pad"),
    pytest.param(
        lambda: conv2d_grad_weight(G.astype(np.float32), X, 3),
        r"share a dtype, got float32 and float64",
        id="grad_weight-mixed-dtype",
    ),
    # ---------------------------------------------------------------- conv2d_grad_bias
    pytest.param(
        lambda: conv2d_grad_bias(G[0]), r"grad_out must have 4 dimensions, got shape \(4, 3, 3\)", id="grad_bias-ndim"
    ),
    pytest.param(lambda: conv2d_grad_bias(G.astype(int)), r"grad_out must be float32 or float64", id="grad_bias-int"),
    # ---------------------------------------------------------------- max_pool2d
    pytest.param(lambda: max_pool2d(X[0], 2), r"input must have 4 dimensions, got shape \(3, 5, 5\)", id="pool-ndim"),
    pytest.param(
        lambda: max_pool2d(X, 6),
        r"pool kernel \(6, 6\) is larger than the padded input \(5, 5\) \(input \(2, 3, 5, 5\)",
        id="pool-kernel-too-big",
    ),
    pytest.param(
        lambda: max_pool2d(X, (2, 8), padding=(0, 1)),
        r"larger than the padded input \(5, 7\)",
        id="pool-kernel-too-wide",
    ),
    pytest.param(lambda: max_pool2d(X, 0), r"kernel_size must be >= 1, got 0", id="pool-kernel-0"),
    pytest.param(lambda: max_pool2d(X, 2, stride=0), r"stride must be >= 1, got 0", id="pool-stride-0"),
    pytest.param(lambda: max_pool2d(X, 2, padding=-1), r"padding must be >= 0, got -1", id="pool-negative-padding"),
    pytest.param(
        lambda: max_pool2d(X, 3, padding=2),
        r"padding \(2, 2\) must be at most half the kernel \(3, 3\)",
        id="pool-pad-gt-half",
    ),
    pytest.param(
        lambda: max_pool2d(X, (2, 3), padding=(0, 2)),
        r"padding \(0, 2\) must be at most half the kernel \(2, 3\)",
        id="pool-pad-gt-half-one-axis",
    ),
    pytest.param(
        lambda: max_pool2d(X, 1, padding=1),
        r"padding \(1, 1\) must be at most half the kernel \(1, 1\)",
        id="pool-k1-pad1",
    ),
    pytest.param(
        lambda: max_pool2d(X.astype(np.int32), 2), r"input must be float32 or float64, got dtype int32", id="pool-int"
    ),
    # ---------------------------------------------------------------- max_pool2d_backward
    pytest.param(
        lambda: max_pool2d_backward(z(2, 3, 3, 3), ARGMAX, X.shape, 2),
        r"grad_out has shape \(2, 3, 3, 3\), expected \(2, 3, 2, 2\)",
        id="pool_backward-wrong-shape",
    ),
    pytest.param(
        lambda: max_pool2d_backward(z(1, 3, 2, 2), ARGMAX, X.shape, 2),
        r"grad_out has shape \(1, 3, 2, 2\), expected \(2, 3, 2, 2\)",
        id="pool_backward-broadcastable-batch",
    ),
    pytest.param(
        lambda: max_pool2d_backward(z(2, 3, 1, 2), ARGMAX, X.shape, 2),
        r"grad_out has shape \(2, 3, 1, 2\), expected \(2, 3, 2, 2\)",
        id="pool_backward-broadcastable-rows",
    ),
    pytest.param(
        lambda: max_pool2d_backward(GP[0], ARGMAX, X.shape, 2),
        r"grad_out must have 4 dimensions",
        id="pool_backward-ndim",
    ),
    pytest.param(
        lambda: max_pool2d_backward(GP, ARGMAX[:1], X.shape, 2),
        r"argmax has shape \(1, 3, 2, 2\), expected \(2, 3, 2, 2\)",
        id="pool_backward-argmax-shape",
    ),
    pytest.param(
        lambda: max_pool2d_backward(GP, ARGMAX, X.shape, 3, padding=2),
        r"padding \(2, 2\) must be at most half",
        id="pool_backward-pad",
    ),
    pytest.param(
        lambda: max_pool2d_backward(GP, np.full((2, 3, 2, 2), 4), X.shape, 2),
        r"argmax.*\[0, 4\)",
        id="pool_backward-argmax-out-of-range",
    ),
    # ---------------------------------------------------------------- relu / relu_backward
    pytest.param(lambda: relu(X.astype(np.int64)), r"input must be float32 or float64, got dtype int64", id="relu-int"),
    pytest.param(lambda: relu([1.0, -1.0]), r"input must be a numpy array, got list", id="relu-list"),
    pytest.param(lambda: relu(np.array(1.0)), r"input must have .* dimensions, got shape \(\)", id="relu-0d"),
    pytest.param(
        lambda: relu_backward(z(2, 3, 5, 4), X),
        r"grad_out has shape \(2, 3, 5, 4\), expected \(2, 3, 5, 5\)",
        id="relu_backward-shape",
    ),
    pytest.param(
        lambda: relu_backward(z(1, 3, 5, 5), X),
        r"grad_out has shape \(1, 3, 5, 5\), expected \(2, 3, 5, 5\)",
        id="relu_backward-broadcastable-batch",
    ),
    pytest.param(
        lambda: relu_backward(z(2, 3, 1, 5), X),
        r"grad_out has shape \(2, 3, 1, 5\), expected \(2, 3, 5, 5\)",
        id="relu_backward-broadcastable-rows",
    ),
    pytest.param(
        lambda: relu_backward(z(3, 5, 5), X),
        r"grad_out must have 4 dimensions, got shape \(3, 5, 5\)",
        id="relu_backward-ndim",
    ),
    pytest.param(
        lambda: relu_backward(z(2, 3, 5, 5, dtype=np.float32), X),
        r"input and grad_out must share a dtype, got float64 and float32",
        id="relu_backward-mixed-dtype",
    ),
    pytest.param(
        lambda: relu_backward(z(2, 2), [[1.0, -1.0], [0.0, 2.0]]),
        r"input must be a numpy array, got list",
        id="relu_backward-input-list",
    ),
    # ---------------------------------------------------------------- leaky_relu, sigmoid, tanh, softmax
    pytest.param(lambda: leaky_relu(X, "0.1"), r"alpha must be a finite real number, got '0.1'", id="leaky-alpha-str"),
    pytest.param(lambda: leaky_relu(X, np.nan), r"alpha must be a finite real number, got nan", id="leaky-alpha-nan"),
    pytest.param(lambda: leaky_relu(X, True), r"alpha must be a finite real number, got True", id="leaky-alpha-bool"),
    pytest.param(
        lambda: leaky_relu_backward(z(2, 3, 5, 1), X),
        r"grad_out has shape \(2, 3, 5, 1\), expected \(2, 3, 5, 5\)",
        id="leaky_relu_backward-broadcastable",
    ),
    pytest.param(lambda: sigmoid(X.astype(np.int64)), r"input must be float32 or float64", id="sigmoid-int"),
    pytest.param(
        lambda: sigmoid_backward(z(1, 3, 5, 5), X),
        r"grad_out has shape \(1, 3, 5, 5\), expected \(2, 3, 5, 5\)",
        id="sigmoid_backward-broadcastable",
    ),
    pytest.param(
        lambda: tanh_backward(X.astype(np.float32), X), r"output and grad_out must share a dtype", id="tanh-dtype"
    ),
    pytest.param(
        lambda: tanh_backward(z(2, 3, 1, 5), X),
        r"grad_out has shape \(2, 3, 1, 5\), expected \(2, 3, 5, 5\)",
        id="tanh_backward-broadcastable",
    ),
    pytest.param(
        lambda: softmax(X, 4), r"axis 4 is out of range for an input with 4 dimensions", id="softmax-axis-range"
    ),
    pytest.param(lambda: softmax(X, 1.0), r"axis must be an int, got 1.0", id="softmax-axis-float"),
    pytest.param(
        lambda: softmax_backward(z(2, 3, 5, 1), X),
        r"grad_out has shape \(2, 3, 5, 1\), expected \(2, 3, 5, 5\)",
        id="softmax_backward-broadcastable",
    ),
    # ---------------------------------------------------------------- avg_pool2d
    pytest.param(lambda: avg_pool2d(X, 2, 1, 2), r"padding \(2, 2\) must be at most half the kernel", id="avg-pad"),
    pytest.param(lambda: avg_pool2d(X, 6), r"pool kernel \(6, 6\) is larger than the padded input", id="avg-big"),
    pytest.param(
        lambda: avg_pool2d_backward(z(2, 3, 2, 1), X.shape, 2),
        r"grad_out has shape \(2, 3, 2, 1\), expected \(2, 3, 2, 2\)",
        id="avg_pool_backward-broadcastable",
    ),
    # ---------------------------------------------------------------- flatten / unflatten
    pytest.param(lambda: flatten(X.astype(np.int64)), r"input must be float32 or float64", id="flatten-int"),
    pytest.param(
        lambda: unflatten(z(2, 74), X.shape), r"grad_out has shape \(2, 74\), expected \(2, 75\)", id="unflatten-shape"
    ),
    pytest.param(
        lambda: unflatten(z(1, 75), X.shape),
        r"grad_out has shape \(1, 75\), expected \(2, 75\)",
        id="unflatten-broadcastable",
    ),
    pytest.param(
        lambda: unflatten(z(150), X.shape), r"grad_out has shape \(150,\), expected \(2, 75\)", id="unflatten-1d"
    ),
    pytest.param(
        lambda: unflatten(np.zeros((2, 75)).tolist(), X.shape),
        r"grad_out must be a numpy array, got list",
        id="unflatten-list",
    ),
    # ---------------------------------------------------------------- dense and its gradients
    pytest.param(
        lambda: dense(X, WD),
        r"input \(2, 3, 5, 5\) flattens to 75 features but weight \(5, 4\) expects 5",
        id="dense-features",
    ),
    pytest.param(
        lambda: dense(XD, z(5, 4, 1)), r"weight must have 2 dimensions, got shape \(5, 4, 1\)", id="dense-weight-ndim"
    ),
    pytest.param(lambda: dense(z(5), WD), r"input must have .* dimensions, got shape \(5,\)", id="dense-input-1d"),
    pytest.param(
        lambda: dense(XD.astype(np.float32), WD),
        r"input and weight must share a dtype, got float32 and float64",
        id="dense-mixed",
    ),
    pytest.param(lambda: dense(XD, WD, z(5)), r"bias has shape \(5,\), expected \(4,\)", id="dense-bias-shape"),
    pytest.param(
        lambda: dense(XD, WD, z(4, dtype=np.float32)), r"input and bias must share a dtype", id="dense-bias-dtype"
    ),
    pytest.param(
        lambda: dense_grad_input(z(3, 5), WD, XD.shape),
        r"grad_out has shape \(3, 5\), expected \(3, 4\)",
        id="dense_grad_input-shape",
    ),
    pytest.param(
        lambda: dense_grad_input(z(1, 4), WD, XD.shape),
        r"grad_out has shape \(1, 4\), expected \(3, 4\)",
        id="dense_grad_input-broadcastable-batch",
    ),
    pytest.param(
        lambda: dense_grad_input(z(3, 1), WD, XD.shape),
        r"grad_out has shape \(3, 1\), expected \(3, 4\)",
        id="dense_grad_input-broadcastable-features",
    ),
    pytest.param(
        lambda: dense_grad_input(z(4), WD, XD.shape), r"grad_out must have 2 dimensions", id="dense_grad_input-ndim"
    ),
    pytest.param(
        lambda: dense_grad_input(GD.astype(np.float32), WD, XD.shape),
        r"weight and grad_out must share a dtype, got float64 and float32",
        id="dense_grad_input-mixed",
    ),
    pytest.param(
        lambda: dense_grad_input(GD, WD, (3, 6)),
        r"input_shape \(3, 6\).*weight \(5, 4\)",
        id="dense_grad_input-input-shape-vs-weight",
    ),
    pytest.param(
        lambda: dense_grad_weight(z(2, 4), XD),
        r"grad_out \(2, 4\) and input \(3, 5\) disagree on the batch size",
        id="dense_grad_weight-batch",
    ),
    pytest.param(
        lambda: dense_grad_weight(z(1, 4), XD),
        r"grad_out \(1, 4\) and input \(3, 5\) disagree on the batch size",
        id="dense_grad_weight-broadcastable-batch",
    ),
    pytest.param(lambda: dense_grad_weight(z(4), XD), r"grad_out must have 2 dimensions", id="dense_grad_weight-ndim"),
    pytest.param(
        lambda: dense_grad_weight(GD.astype(np.float32), XD),
        r"share a dtype, got float32 and float64|float64 and float32",
        id="dense_grad_weight-mixed",
    ),
    pytest.param(
        lambda: dense_grad_bias(z(4)), r"grad_out must have 2 dimensions, got shape \(4,\)", id="dense_grad_bias-ndim"
    ),
    # ---------------------------------------------------------------- softmax_cross_entropy
    pytest.param(
        lambda: softmax_cross_entropy(LOGITS, LABELS.astype(float)),
        r"labels must be 3 integers for logits \(3, 4\), got float64 \(3,\)",
        id="ce-float-labels",
    ),
    pytest.param(
        lambda: softmax_cross_entropy(LOGITS, LABELS[:2]),
        r"labels must be 3 integers for logits \(3, 4\), got int64 \(2,\)",
        id="ce-labels-count",
    ),
    pytest.param(
        lambda: softmax_cross_entropy(LOGITS, LABELS[:, None]),
        r"labels must be 3 integers .* \(3, 1\)",
        id="ce-labels-2d",
    ),
    pytest.param(
        lambda: softmax_cross_entropy(LOGITS, np.array([True, False, True])),
        r"labels must be 3 integers .*bool",
        id="ce-bool",
    ),
    pytest.param(
        lambda: softmax_cross_entropy(LOGITS, np.array([0, 4, 1])),
        r"labels must lie in \[0, 4\), got range \[0, 4\]",
        id="ce-label-too-big",
    ),
    pytest.param(
        lambda: softmax_cross_entropy(LOGITS, np.array([0, -1, 1])),
        r"labels must lie in \[0, 4\), got range \[-1, 1\]",
        id="ce-label-negative",
    ),
    pytest.param(
        lambda: softmax_cross_entropy(z(4), LABELS),
        r"logits must have 2 dimensions, got shape \(4,\)",
        id="ce-logits-1d",
    ),
    pytest.param(
        lambda: softmax_cross_entropy(LOGITS.astype(int), LABELS), r"logits must be float32 or float64", id="ce-int"
    ),
    # ---------------------------------------------------------------- layers: backward before forward
    pytest.param(
        lambda: Conv2D(3, 4, 3).backward(G),
        r"Conv2D.backward called before forward",
        id="Conv2D-backward-before-forward",
    ),
    pytest.param(
        lambda: MaxPool2D(2).backward(GP),
        r"MaxPool2D.backward called before forward",
        id="MaxPool2D-backward-before-forward",
    ),
    pytest.param(lambda: ReLU().backward(G), r"ReLU.backward called before forward", id="ReLU-backward-before-forward"),
    pytest.param(lambda: Sigmoid().backward(G), r"Sigmoid.backward called before forward", id="Sigmoid-before-forward"),
    pytest.param(lambda: LeakyReLU("a"), r"alpha must be a finite real number", id="LeakyReLU-alpha"),
    pytest.param(lambda: Softmax("a"), r"axis must be an int, got 'a'", id="Softmax-axis"),
    pytest.param(
        lambda: fwd(LeakyReLU(), X).backward(z(2, 3, 5, 1)),
        r"grad_out has shape \(2, 3, 5, 1\), expected \(2, 3, 5, 5\)",
        id="LeakyReLU-grad-broadcastable",
    ),
    pytest.param(
        lambda: fwd(Tanh(), X).backward(z(1, 3, 5, 5)),
        r"grad_out has shape \(1, 3, 5, 5\), expected \(2, 3, 5, 5\)",
        id="Tanh-grad-broadcastable",
    ),
    pytest.param(
        lambda: fwd(Softmax(), X).backward(X.astype(np.float32)), r"must share a dtype", id="Softmax-grad-dtype"
    ),
    pytest.param(
        lambda: fwd(AvgPool2D(2), X).backward(z(2, 3, 1, 2)),
        r"grad_out has shape \(2, 3, 1, 2\), expected \(2, 3, 2, 2\)",
        id="AvgPool2D-grad-broadcastable",
    ),
    pytest.param(
        lambda: Flatten().backward(z(2, 75)),
        r"Flatten.backward called before forward",
        id="Flatten-backward-before-forward",
    ),
    pytest.param(
        lambda: Dense(5, 4).backward(GD), r"Dense.backward called before forward", id="Dense-backward-before-forward"
    ),
    pytest.param(
        lambda: Sequential(ReLU(), Flatten()).backward(z(2, 75)),
        r"backward called before forward",
        id="Sequential-before-forward",
    ),
    # ---------------------------------------------------------------- layers: wrong upstream gradient
    pytest.param(
        lambda: fwd(Conv2D(3, 4, 3), X).backward(z(2, 4, 4, 4)),
        r"grad_out has shape \(2, 4, 4, 4\), expected \(2, 4, 3, 3\)",
        id="Conv2D-grad-shape",
    ),
    pytest.param(
        lambda: fwd(Conv2D(3, 4, 3), X).backward(z(1, 4, 3, 3)),
        r"grad_out has shape \(1, 4, 3, 3\), expected \(2, 4, 3, 3\)",
        id="Conv2D-grad-broadcastable",
    ),
    pytest.param(
        lambda: fwd(Conv2D(3, 4, 3), X).backward(G.astype(np.float32)),
        r"forward input and grad_out must share a dtype, got float64 and float32",
        id="Conv2D-grad-dtype",
    ),
    pytest.param(
        lambda: fwd(MaxPool2D(2), X).backward(z(2, 3, 2, 1)),
        r"grad_out has shape \(2, 3, 2, 1\), expected \(2, 3, 2, 2\)",
        id="MaxPool2D-grad-broadcastable",
    ),
    pytest.param(
        lambda: fwd(MaxPool2D(2), X).backward(GP[0]), r"grad_out must have 4 dimensions", id="MaxPool2D-grad-ndim"
    ),
    pytest.param(
        lambda: fwd(MaxPool2D(2), X).backward(GP.astype(np.float32)), r"must share a dtype", id="MaxPool2D-grad-dtype"
    ),
    pytest.param(
        lambda: fwd(ReLU(), X).backward(z(2, 3, 5, 1)),
        r"grad_out has shape \(2, 3, 5, 1\), expected \(2, 3, 5, 5\)",
        id="ReLU-grad-broadcastable",
    ),
    pytest.param(lambda: fwd(ReLU(), X).backward(X.astype(np.float32)), r"must share a dtype", id="ReLU-grad-dtype"),
    pytest.param(
        lambda: fwd(Flatten(), X).backward(z(1, 75)),
        r"grad_out has shape \(1, 75\), expected \(2, 75\)",
        id="Flatten-grad-broadcastable",
    ),
    pytest.param(
        lambda: fwd(Flatten(), X).backward(X),
        r"grad_out must have 2 dimensions, got shape \(2, 3, 5, 5\)",
        id="Flatten-grad-ndim",
    ),
    pytest.param(
        lambda: fwd(Dense(5, 4), XD).backward(z(3, 1)),
        r"grad_out has shape \(3, 1\), expected \(3, 4\)",
        id="Dense-grad-broadcastable",
    ),
    pytest.param(
        lambda: fwd(Dense(5, 4), XD).backward(z(3, 5)),
        r"grad_out has shape \(3, 5\), expected \(3, 4\)",
        id="Dense-grad-shape",
    ),
    pytest.param(
        lambda: fwd(Dense(5, 4), XD).backward(GD.astype(np.float32)), r"must share a dtype", id="Dense-grad-dtype"
    ),
    pytest.param(
        lambda: fwd(Sequential(Conv2D(3, 4, 3), ReLU(), Flatten()), X).backward(z(2, 35)),
        r"grad_out has shape \(2, 35\), expected \(2, 36\)",
        id="Sequential-grad-shape",
    ),
    # ---------------------------------------------------------------- layers: forward arguments
    pytest.param(
        lambda: Conv2D(3, 4, 3).forward(X32),
        r"input and Conv2D.params\['weight'\] must share a dtype, got float32 and float64",
        id="Conv2D-forward-mixed-dtype",
    ),
    pytest.param(
        lambda: Dense(5, 4, dtype=np.float32).forward(XD),
        r"input and Dense.params\['weight'\] must share a dtype, got float64 and float32",
        id="Dense-forward-mixed-dtype",
    ),
    pytest.param(
        lambda: Conv2D(2, 4, 3).forward(X),
        r"input has 3 channels but weight \(4, 2, 3, 3\) expects 2",
        id="Conv2D-forward-channels",
    ),
    pytest.param(
        lambda: Dense(6, 4).forward(XD),
        r"flattens to 5 features but weight \(6, 4\) expects 6",
        id="Dense-forward-features",
    ),
    pytest.param(lambda: MaxPool2D(2).forward(X[0]), r"input must have 4 dimensions", id="MaxPool2D-forward-ndim"),
    # ---------------------------------------------------------------- layer constructors
    pytest.param(lambda: Conv2D(3, 4, 0), r"kernel_size must be >= 1, got 0", id="Conv2D-kernel-0"),
    pytest.param(lambda: Conv2D(3, 4, (3, 0)), r"kernel_size must be >= 1, got \(3, 0\)", id="Conv2D-kernel-pair-0"),
    pytest.param(lambda: Conv2D(3, 4, 3, stride=0), r"stride must be >= 1, got 0", id="Conv2D-stride-0"),
    pytest.param(lambda: Conv2D(3, 4, 3, padding=-1), r"padding must be >= 0, got -1", id="Conv2D-negative-padding"),
    pytest.param(
        lambda: Conv2D(3, 4, 3, dilation=(1, 0)), r"dilation must be >= 1, got \(1, 0\)", id="Conv2D-dilation-0"
    ),
    pytest.param(lambda: Conv2D(0, 4, 3), r"in_channels must be >= 1, got 0", id="Conv2D-in-channels-0"),
    pytest.param(lambda: Conv2D(3, 0, 3), r"out_channels must be >= 1, got 0", id="Conv2D-out-channels-0"),
    pytest.param(
        lambda: Conv2D((3, 5), 4, 3),
        r"in_channels must be an int",
        id="Conv2D-in-channels-pair",
    ),
    pytest.param(
        lambda: MaxPool2D(3, padding=2),
        r"padding \(2, 2\) must be at most half the kernel \(3, 3\)",
        id="MaxPool2D-pad",
    ),
    pytest.param(lambda: MaxPool2D(0), r"kernel_size must be >= 1", id="MaxPool2D-kernel-0"),
    pytest.param(lambda: MaxPool2D(2, stride=0), r"stride must be >= 1", id="MaxPool2D-stride-0"),
    pytest.param(lambda: Dense(0, 3), r"in_features must be >= 1, got 0", id="Dense-in-features-0"),
    pytest.param(lambda: Dense(3, -1), r"out_features must be >= 1, got -1", id="Dense-out-features-negative"),
]


@pytest.mark.parametrize("call, match", CASES)
def test_bad_argument_raises_a_clear_value_error(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_every_backward_function_and_layer_is_tried_with_a_broadcastable_gradient():
    """Guard: the table keeps a 'broadcastable' wrong-shape gradient row for each backward."""
    ids = {p.id for p in CASES}
    for name in (
        "grad_input",
        "grad_weight",
        "pool_backward",
        "relu_backward",
        "unflatten",
        "dense_grad_input",
        "dense_grad_weight",
        "Conv2D-grad",
        "MaxPool2D-grad",
        "ReLU-grad",
        "Flatten-grad",
        "Dense-grad",
        "leaky_relu_backward",
        "sigmoid_backward",
        "tanh_backward",
        "softmax_backward",
        "avg_pool_backward",
        "LeakyReLU-grad",
        "Tanh-grad",
        "AvgPool2D-grad",
    ):
        assert any(i.startswith(name) and "broadcastable" in i for i in ids), name


def test_a_rejected_call_leaves_a_layer_usable(rng):
    """A bad gradient must not corrupt the cached forward state."""
    layer = Conv2D(3, 4, 3, rng=0)
    x = rng.standard_normal((2, 3, 5, 5))
    y = layer.forward(x)
    with pytest.raises(ValueError):
        layer.backward(np.zeros((1, 4, 3, 3)))
    g = rng.standard_normal(y.shape)
    np.testing.assert_array_equal(layer.backward(g), conv2d_grad_input(g, layer.params["weight"], x.shape))
