"""The intended computation of each layer kind, in NumPy through our reference layers (cnn/).

``forward(case_kind, geometry, inputs, labels)`` returns the output Z and the kink sites met on the
way (ReLU inputs, pool inputs), which is what ``checks.oracles.kinks`` needs to decide whether finite
differences may judge.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np

import cnn
from checks.geometry import (
    ConvGeometry,
    DenseGeometry,
    ElementwiseGeometry,
    Geometry,
    LossGeometry,
    NetworkGeometry,
    PoolGeometry,
)
from checks.oracles.kinks import KinkSite

Arrays = Mapping[str, np.ndarray]
Forward = tuple[np.ndarray, list[KinkSite]]


def conv_forward(g: ConvGeometry, a: Arrays, labels: np.ndarray | None) -> Forward:
    """Z = conv2d(X, K, B) with the geometry's stride, padding and dilation."""
    return cnn.conv2d(a["input"], a["weight"], a.get("bias"), g.stride, g.padding, g.dilation), []


def maxpool_forward(g: PoolGeometry, a: Arrays, labels: np.ndarray | None) -> Forward:
    """Y = max_pool2d(X); the pool input is a kink site."""
    y, _ = cnn.max_pool2d(a["input"], g.kernel, g.stride, g.padding)
    return y, [KinkSite("pool", a["input"], g)]


def relu_forward(g: ElementwiseGeometry, a: Arrays, labels: np.ndarray | None) -> Forward:
    """Y = max(X, 0); X is a kink site."""
    return cnn.relu(a["input"]), [KinkSite("relu", a["input"])]


def flatten_forward(g: ElementwiseGeometry, a: Arrays, labels: np.ndarray | None) -> Forward:
    """(N, ...) -> (N, D)."""
    return cnn.flatten(a["input"]), []


def dense_forward(g: DenseGeometry, a: Arrays, labels: np.ndarray | None) -> Forward:
    """Y = flatten(X) W + b."""
    return cnn.dense(a["input"], a["weight"], a.get("bias")), []


def softmax_ce_forward(g: LossGeometry, a: Arrays, labels: np.ndarray | None) -> Forward:
    """L = mean_n -log softmax(z_n)[y_n], as a 0-d array."""
    loss, _ = cnn.softmax_cross_entropy(a["input"], labels)
    return np.asarray(loss, dtype=a["input"].dtype), []


def network_forward(g: NetworkGeometry, a: Arrays, labels: np.ndarray | None) -> Forward:
    """conv1 -> relu -> pool1 -> conv2 -> relu -> pool2 -> flatten -> dense -> softmax-CE."""
    sites: list[KinkSite] = []
    x = a["input"]
    for conv_name, conv_g, pool_g in (("conv1", g.conv1, g.pool1), ("conv2", g.conv2, g.pool2)):
        z = cnn.conv2d(
            x, a[f"{conv_name}.weight"], a.get(f"{conv_name}.bias"), conv_g.stride, conv_g.padding, conv_g.dilation
        )
        sites.append(KinkSite("relu", z))
        r = cnn.relu(z)
        sites.append(KinkSite("pool", r, pool_g))
        x, _ = cnn.max_pool2d(r, pool_g.kernel, pool_g.stride, pool_g.padding)
    logits = cnn.dense(x, a["dense.weight"], a.get("dense.bias"))
    loss, _ = cnn.softmax_cross_entropy(logits, labels)
    return np.asarray(loss, dtype=x.dtype), sites


FORWARDS: dict[str, Callable[[Geometry, Arrays, np.ndarray | None], Forward]] = {
    "conv": conv_forward,
    "maxpool": maxpool_forward,
    "relu": relu_forward,
    "flatten": flatten_forward,
    "dense": dense_forward,
    "softmax_ce": softmax_ce_forward,
    "network": network_forward,
}


def forward(kind: str, geometry: Geometry, inputs: Arrays, labels: np.ndarray | None = None) -> Forward:
    """Z and the kink sites of ``kind`` at ``inputs`` (canonical layout)."""
    return FORWARDS[kind](geometry, inputs, labels)
