"""Hypothesis strategies for gradient checks: geometries, values and whole Cases.

- Geometries are valid by construction (nothing is filtered): per axis the output size, kernel,
  stride, dilation and a remainder the stride does not reach are drawn, then the padding, and the
  input size is derived from Ho = floor((H + 2p - d(k-1) - 1) / s) + 1. Bounds are keyword-only,
  each an int (fixed) or an inclusive ``(min, max)`` pair, validated with ValueError up front. Every
  strategy shrinks towards its smallest geometry (batch 1, 1 channel, kernel 1, stride 1, no
  padding, output 1).
- Values are drawn through hypothesis in a mode (MODES): "separated" for finite differences,
  "ties" and "zeros" for kinks, "mixed" for magnitudes. ``upstream`` draws a signed, never constant G.
- ``cases(kind)`` puts them together into a checks.case.Case.

Everything else (the _modules) is internal.
"""

from checks.strategies._bounds import Bound
from checks.strategies._cases import cases
from checks.strategies._geometries import (
    batchnorm_geometries,
    conv_geometries,
    dense_geometries,
    dropout_geometries,
    elementwise_geometries,
    flatten_geometries,
    leaky_relu_geometries,
    loss_geometries,
    network_geometries,
    pool_geometries,
    softmax_geometries,
)
from checks.strategies._values import MIN_ABS, MIN_GAP, MODES, parameters, upstream, values

__all__ = [
    "MIN_ABS",
    "MIN_GAP",
    "MODES",
    "Bound",
    "batchnorm_geometries",
    "cases",
    "conv_geometries",
    "dense_geometries",
    "dropout_geometries",
    "elementwise_geometries",
    "flatten_geometries",
    "leaky_relu_geometries",
    "loss_geometries",
    "network_geometries",
    "parameters",
    "pool_geometries",
    "softmax_geometries",
    "upstream",
    "values",
]
