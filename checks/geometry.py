"""Geometries: the shapes and hyper-parameters of one layer instance, one NamedTuple per layer kind.

Every geometry is canonical (NCHW, weights (F, C, kh, kw), dense weight (D, M)) and knows the shapes
it implies, so strategies, oracles and adapters never recompute them.
"""

from __future__ import annotations

import math
from typing import NamedTuple

Pair = tuple[int, int]


def _out(size: int, kernel: int, stride: int, padding: int, dilation: int) -> int:
    """floor((size + 2p - d*(k-1) - 1) / s) + 1."""
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


class ConvGeometry(NamedTuple):
    """conv2d on X (N, C, H, W) with K (F, C, kh, kw), optional B (F,)."""

    batch: int
    in_channels: int
    height: int
    width: int
    filters: int
    kernel: Pair
    stride: Pair = (1, 1)
    padding: Pair = (0, 0)
    dilation: Pair = (1, 1)
    bias: bool = True

    @property
    def input_shape(self) -> tuple[int, ...]:
        return (self.batch, self.in_channels, self.height, self.width)

    @property
    def param_shapes(self) -> dict[str, tuple[int, ...]]:
        shapes = {"weight": (self.filters, self.in_channels, *self.kernel)}
        if self.bias:
            shapes["bias"] = (self.filters,)
        return shapes

    @property
    def output_shape(self) -> tuple[int, ...]:
        ho = _out(self.height, self.kernel[0], self.stride[0], self.padding[0], self.dilation[0])
        wo = _out(self.width, self.kernel[1], self.stride[1], self.padding[1], self.dilation[1])
        return (self.batch, self.filters, ho, wo)


class PoolGeometry(NamedTuple):
    """max_pool2d (-inf padding) or avg_pool2d (zero padding, counted in the divisor) on X (N, C, H, W);
    floor mode, padding of at most half the kernel."""

    batch: int
    channels: int
    height: int
    width: int
    kernel: Pair
    stride: Pair
    padding: Pair = (0, 0)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return (self.batch, self.channels, self.height, self.width)

    @property
    def param_shapes(self) -> dict[str, tuple[int, ...]]:
        return {}

    @property
    def output_shape(self) -> tuple[int, ...]:
        ho = _out(self.height, self.kernel[0], self.stride[0], self.padding[0], 1)
        wo = _out(self.width, self.kernel[1], self.stride[1], self.padding[1], 1)
        return (self.batch, self.channels, ho, wo)

    @property
    def overlapping(self) -> bool:
        return self.stride[0] < self.kernel[0] or self.stride[1] < self.kernel[1]


class ElementwiseGeometry(NamedTuple):
    """A shape-preserving layer without parameters (ReLU, sigmoid, tanh) on X of ``shape``."""

    shape: tuple[int, ...]

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.shape)

    @property
    def param_shapes(self) -> dict[str, tuple[int, ...]]:
        return {}

    @property
    def output_shape(self) -> tuple[int, ...]:
        return tuple(self.shape)


class LeakyReluGeometry(NamedTuple):
    """leaky_relu on X of ``shape`` (batch first) with negative slope ``alpha``: Y = X where X > 0, alpha * X
    elsewhere; output shape = input shape."""

    shape: tuple[int, ...]
    alpha: float

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.shape)

    @property
    def param_shapes(self) -> dict[str, tuple[int, ...]]:
        return {}

    @property
    def output_shape(self) -> tuple[int, ...]:
        return tuple(self.shape)


class SoftmaxGeometry(NamedTuple):
    """softmax over ``axis`` (default the last) of X of ``shape`` (batch first); output shape = input shape."""

    shape: tuple[int, ...]
    axis: int = -1

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.shape)

    @property
    def param_shapes(self) -> dict[str, tuple[int, ...]]:
        return {}

    @property
    def output_shape(self) -> tuple[int, ...]:
        return tuple(self.shape)


class FlattenGeometry(NamedTuple):
    """flatten on X of ``shape`` (batch first): output (N, prod(rest))."""

    shape: tuple[int, ...]

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.shape)

    @property
    def param_shapes(self) -> dict[str, tuple[int, ...]]:
        return {}

    @property
    def output_shape(self) -> tuple[int, ...]:
        return (self.shape[0], math.prod(self.shape[1:]))


class BatchNormGeometry(NamedTuple):
    """Training-mode batch norm on X of ``shape`` (N, D) or (N, C, H, W): statistics per channel (axis 1) over
    every other axis, gamma and beta (C,); output shape = input shape. ``alt``: the case runs the layer's
    alternative backward (a CS231n ``batchnorm_backward_alt``), for a layer that declares one."""

    shape: tuple[int, ...]
    eps: float = 1e-5
    alt: bool = False

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.shape)

    @property
    def param_shapes(self) -> dict[str, tuple[int, ...]]:
        return {"gamma": (self.shape[1],), "beta": (self.shape[1],)}

    @property
    def output_shape(self) -> tuple[int, ...]:
        return tuple(self.shape)


class DropoutGeometry(NamedTuple):
    """Inverted dropout in training mode on X of ``shape`` (batch first); output shape = input shape. ``p`` and
    ``seed`` are what the layer is given: p its dropout parameter (a drop or a keep probability, the layer's
    convention), seed what fixes its mask. The mask itself is the layer's own."""

    shape: tuple[int, ...]
    p: float = 0.5
    seed: int = 0

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.shape)

    @property
    def param_shapes(self) -> dict[str, tuple[int, ...]]:
        return {}

    @property
    def output_shape(self) -> tuple[int, ...]:
        return tuple(self.shape)


class DenseGeometry(NamedTuple):
    """Y = flatten(X) W + b on X (N, *features), W (D, M) with D = prod(features), b (M,)."""

    batch: int
    features: tuple[int, ...]
    out_features: int
    bias: bool = True

    @property
    def in_features(self) -> int:
        return math.prod(self.features)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return (self.batch, *self.features)

    @property
    def param_shapes(self) -> dict[str, tuple[int, ...]]:
        shapes = {"weight": (self.in_features, self.out_features)}
        if self.bias:
            shapes["bias"] = (self.out_features,)
        return shapes

    @property
    def output_shape(self) -> tuple[int, ...]:
        return (self.batch, self.out_features)


class LossGeometry(NamedTuple):
    """A loss (softmax cross-entropy, multiclass hinge) on scores (N, M) with integer labels (N,); the output is a
    scalar: the per-sample terms' mean over the batch (``reduction`` "mean") or their sum ("sum")."""

    batch: int
    classes: int
    reduction: str = "mean"

    @property
    def input_shape(self) -> tuple[int, ...]:
        return (self.batch, self.classes)

    @property
    def param_shapes(self) -> dict[str, tuple[int, ...]]:
        return {}

    @property
    def output_shape(self) -> tuple[int, ...]:
        return ()


class NetworkGeometry(NamedTuple):
    """conv -> relu -> maxpool -> conv -> relu -> maxpool -> flatten -> dense -> softmax-CE."""

    batch: int
    in_channels: int
    height: int
    width: int
    conv1: ConvGeometry
    pool1: PoolGeometry
    conv2: ConvGeometry
    pool2: PoolGeometry
    dense: DenseGeometry

    @property
    def input_shape(self) -> tuple[int, ...]:
        return (self.batch, self.in_channels, self.height, self.width)

    @property
    def param_shapes(self) -> dict[str, tuple[int, ...]]:
        shapes: dict[str, tuple[int, ...]] = {}
        for prefix, part in (("conv1", self.conv1), ("conv2", self.conv2), ("dense", self.dense)):
            shapes.update({f"{prefix}.{k}": v for k, v in part.param_shapes.items()})
        return shapes

    @property
    def output_shape(self) -> tuple[int, ...]:
        return ()


class FunctionGeometry(NamedTuple):
    """A layer of any computation (the ``function`` kind) at the shapes its LayerSpec declares: nothing is drawn,
    the batch included. ``params``: (name, shape) pairs in the declaration's order (pairs, not a dict, so the
    geometry stays a hashable NamedTuple and crosses to the worker as JSON).

    | layer | ``input`` | ``inputs`` |
    |---|---|---|
    | forward(x), the one input "input" (today's) | x's shape | ``()`` |
    | forward(a, b, ...) (``LayerSpec(inputs=...)``) | the first input's shape | every (name, shape) pair, in order |
    """

    input: tuple[int, ...]
    output: tuple[int, ...]
    params: tuple[tuple[str, tuple[int, ...]], ...] = ()
    inputs: tuple[tuple[str, tuple[int, ...]], ...] = ()

    def __repr__(self) -> str:
        # a one-input layer's geometry reads as it always did (reports, reproduction snippets)
        extra = f", inputs={self.inputs!r}" if self.inputs else ""
        return f"FunctionGeometry(input={self.input!r}, output={self.output!r}, params={self.params!r}{extra})"

    @property
    def input_shape(self) -> tuple[int, ...]:
        """The shape of the (first) input."""
        return tuple(self.input)

    @property
    def input_shapes(self) -> dict[str, tuple[int, ...]]:
        """Every input forward takes, name -> shape, in the order it takes them."""
        if not self.inputs:
            return {"input": tuple(self.input)}
        return {str(name): tuple(shape) for name, shape in self.inputs}

    @property
    def param_shapes(self) -> dict[str, tuple[int, ...]]:
        return {str(name): tuple(shape) for name, shape in self.params}

    @property
    def output_shape(self) -> tuple[int, ...]:
        return tuple(self.output)


Geometry = (
    ConvGeometry
    | PoolGeometry
    | ElementwiseGeometry
    | LeakyReluGeometry
    | SoftmaxGeometry
    | BatchNormGeometry
    | DropoutGeometry
    | FlattenGeometry
    | DenseGeometry
    | LossGeometry
    | NetworkGeometry
    | FunctionGeometry
)
