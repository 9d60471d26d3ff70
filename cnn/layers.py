"""Stateful layers: thin wrappers that cache the forward input and call the functional core.

Protocol shared by every layer: ``forward(x) -> y``, ``backward(grad_out) -> grad_in``, ``params`` and
``grads`` dicts with the same keys. backward computes gradients and never touches ``params``;
applying them is the optimizer's job (see ``cnn.optim.SGD``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from cnn import activation, conv, loss, normalization, pool
from cnn import fully_connected as fc
from cnn._args import count, pair, require_array, require_same_dtype, require_shape
from cnn.dropout import dropout, dropout_backward, dropout_mask, keep_probability

IntOrPair = int | Sequence[int]


class Layer:
    """Base: parameter and gradient dicts, the cached input, and the checks every backward needs."""

    def __init__(self) -> None:
        self.params: dict[str, np.ndarray] = {}
        self.grads: dict[str, np.ndarray] = {}
        self._input: np.ndarray | None = None

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.forward(x)

    def forward(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def parameters(self) -> list[np.ndarray]:
        return list(self.params.values())

    def _remember(self, x: np.ndarray) -> np.ndarray:
        for name, value in self.params.items():
            require_same_dtype(x, value, f"input and {type(self).__name__}.params[{name!r}]")
        self._input = x
        return x

    def _recall(self, grad_out: np.ndarray, expected_shape: tuple[int, ...]) -> np.ndarray:
        if self._input is None:
            raise ValueError(f"{type(self).__name__}.backward called before forward")
        require_array(grad_out, "grad_out", len(expected_shape))
        require_shape(grad_out, expected_shape, "grad_out")
        require_same_dtype(self._input, grad_out, "forward input and grad_out")
        return self._input

    def __repr__(self) -> str:
        shapes = ", ".join(f"{k}={v.shape}" for k, v in self.params.items())
        return f"{type(self).__name__}({shapes})"


def _init_rng(rng: np.random.Generator | int | None) -> np.random.Generator:
    return rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)


class Conv2D(Layer):
    """Z = conv2d(X, K, B) on (N, C, H, W); K (F, C, kh, kw), B (F,). He-normal initial weights."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: IntOrPair,
        stride: IntOrPair = 1,
        padding: IntOrPair = 0,
        dilation: IntOrPair = 1,
        bias: bool = True,
        *,
        dtype: np.dtype | type = np.float64,
        rng: np.random.Generator | int | None = None,
    ) -> None:
        super().__init__()
        c = count(in_channels, "in_channels")
        f = count(out_channels, "out_channels")
        self.kernel_size = pair(kernel_size, "kernel_size", minimum=1)
        self.stride, self.padding, self.dilation = conv.conv_geometry(stride, padding, dilation)
        fan_in = c * self.kernel_size[0] * self.kernel_size[1]
        w = _init_rng(rng).normal(0.0, np.sqrt(2.0 / fan_in), (f, c, *self.kernel_size))
        self.params["weight"] = w.astype(dtype)
        if bias:
            self.params["bias"] = np.zeros(f, dtype=dtype)

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._remember(x)
        z = conv.conv2d(x, self.params["weight"], self.params.get("bias"), self.stride, self.padding, self.dilation)
        self._output_shape = z.shape
        return z

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        x = self._recall(grad_out, getattr(self, "_output_shape", ()))
        w = self.params["weight"]
        geometry = (self.stride, self.padding, self.dilation)
        self.grads["weight"] = conv.conv2d_grad_weight(grad_out, x, self.kernel_size, *geometry)
        if "bias" in self.params:
            self.grads["bias"] = conv.conv2d_grad_bias(grad_out)
        return conv.conv2d_grad_input(grad_out, w, x.shape, *geometry)


class MaxPool2D(Layer):
    """Y = max over each kh x kw window (stride defaults to the kernel, -inf padding)."""

    def __init__(self, kernel_size: IntOrPair, stride: IntOrPair | None = None, padding: IntOrPair = 0) -> None:
        super().__init__()
        self.kernel_size, self.stride, self.padding = pool.pool_geometry(kernel_size, stride, padding)

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._remember(x)
        y, self._argmax = pool.max_pool2d(x, self.kernel_size, self.stride, self.padding)
        return y

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        x = self._recall(grad_out, self._argmax.shape if hasattr(self, "_argmax") else ())
        return pool.max_pool2d_backward(grad_out, self._argmax, x.shape, self.kernel_size, self.stride, self.padding)


class ReLU(Layer):
    """Y = max(X, 0); mask on the input."""

    def forward(self, x: np.ndarray) -> np.ndarray:
        return activation.relu(self._remember(x))

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        x = self._recall(grad_out, self._input.shape if self._input is not None else ())
        return activation.relu_backward(grad_out, x)


class LeakyReLU(Layer):
    """Y = X where X > 0, alpha * X elsewhere; the slope is taken on the input."""

    def __init__(self, alpha: float = 0.01) -> None:
        super().__init__()
        self.alpha = activation.negative_slope(alpha)

    def forward(self, x: np.ndarray) -> np.ndarray:
        return activation.leaky_relu(self._remember(x), self.alpha)

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        x = self._recall(grad_out, self._input.shape if self._input is not None else ())
        return activation.leaky_relu_backward(grad_out, x, self.alpha)


class _OutputBased(Layer):
    """An activation whose backward reads its forward's OUTPUT (sigmoid, tanh, softmax): forward keeps it."""

    def _keep(self, y: np.ndarray) -> np.ndarray:
        self._output = y
        return y

    def _recall_output(self, grad_out: np.ndarray) -> np.ndarray:
        self._recall(grad_out, self._input.shape if self._input is not None else ())
        return self._output


class Sigmoid(_OutputBased):
    """Y = 1 / (1 + exp(-X)); backward from Y."""

    def forward(self, x: np.ndarray) -> np.ndarray:
        return self._keep(activation.sigmoid(self._remember(x)))

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        return activation.sigmoid_backward(grad_out, self._recall_output(grad_out))


class Tanh(_OutputBased):
    """Y = tanh(X); backward from Y."""

    def forward(self, x: np.ndarray) -> np.ndarray:
        return self._keep(activation.tanh(self._remember(x)))

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        return activation.tanh_backward(grad_out, self._recall_output(grad_out))


class Softmax(_OutputBased):
    """P = softmax(X) over ``axis`` (default the last); backward from P."""

    def __init__(self, axis: int = -1) -> None:
        super().__init__()
        if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
            raise ValueError(f"axis must be an int, got {axis!r}")
        self.axis = int(axis)

    def forward(self, x: np.ndarray) -> np.ndarray:
        return self._keep(activation.softmax(self._remember(x), self.axis))

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        return activation.softmax_backward(grad_out, self._recall_output(grad_out), self.axis)


class AvgPool2D(Layer):
    """Y = mean over each kh x kw window (stride defaults to the kernel, zero padding counted in the divisor)."""

    def __init__(self, kernel_size: IntOrPair, stride: IntOrPair | None = None, padding: IntOrPair = 0) -> None:
        super().__init__()
        self.kernel_size, self.stride, self.padding = pool.pool_geometry(kernel_size, stride, padding)

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._remember(x)
        y = pool.avg_pool2d(x, self.kernel_size, self.stride, self.padding)
        self._output_shape = y.shape
        return y

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        x = self._recall(grad_out, getattr(self, "_output_shape", ()))
        return pool.avg_pool2d_backward(grad_out, x.shape, self.kernel_size, self.stride, self.padding)


class BatchNorm(Layer):
    """Training-mode batch norm: y = gamma * (x - mu) / sqrt(var + eps) + beta, statistics per channel (axis 1)
    over every other axis: (N, D) per feature, (N, C, H, W) per channel (spatial). gamma starts at 1, beta at 0."""

    def __init__(
        self, num_features: int, eps: float = normalization.DEFAULT_EPS, *, dtype: np.dtype | type = np.float64
    ) -> None:
        super().__init__()
        c = count(num_features, "num_features")
        self.eps = normalization.epsilon(eps)
        self.params["gamma"] = np.ones(c, dtype=dtype)
        self.params["beta"] = np.zeros(c, dtype=dtype)

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._remember(x)
        return normalization.batch_norm(x, self.params["gamma"], self.params["beta"], self.eps)

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        x = self._recall(grad_out, self._input.shape if self._input is not None else ())
        self.grads["gamma"] = normalization.batch_norm_grad_gamma(grad_out, x, self.eps)
        self.grads["beta"] = normalization.batch_norm_grad_beta(grad_out)
        return normalization.batch_norm_grad_input(grad_out, x, self.params["gamma"], self.eps)


class Dropout(Layer):
    """Inverted dropout in training mode: y = x * m / (1 - p), p the DROP probability. The mask m is drawn from
    ``seed`` on every forward, so the same input shape always gets the same mask (reproducible)."""

    def __init__(self, p: float = 0.5, seed: int = 0) -> None:
        super().__init__()
        self.keep = keep_probability(p)
        self.p, self.seed = float(p), int(seed)

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._remember(x)
        self.mask = dropout_mask(x.shape, self.p, self.seed)
        return dropout(x, self.mask, self.keep)

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        self._recall(grad_out, self._input.shape if self._input is not None else ())
        return dropout_backward(grad_out, self.mask, self.keep)


class _Loss:
    """A loss on scores (N, M) with labels (N,): forward(scores, labels) -> the 0-d loss in the scores' dtype;
    backward(grad_out=1.0) -> dL/dscores times the scalar upstream gradient (1 for a loss used last)."""

    def __init__(self, reduction: str = "mean") -> None:
        loss.reduction_divisor(reduction, 1)  # refuses an unknown reduction now, not at the first forward
        self.reduction = reduction
        self._dscores: np.ndarray | None = None

    def _compute(self, scores: np.ndarray, labels: np.ndarray) -> tuple[float, np.ndarray]:
        raise NotImplementedError

    def forward(self, scores: np.ndarray, labels: np.ndarray) -> np.ndarray:
        value, self._dscores = self._compute(scores, labels)
        return np.asarray(value, dtype=scores.dtype)

    def backward(self, grad_out: np.ndarray | float = 1.0) -> np.ndarray:
        if self._dscores is None:
            raise ValueError(f"{type(self).__name__}.backward called before forward")
        g = np.asarray(grad_out)
        if g.shape != ():
            raise ValueError(f"grad_out of a loss must be a scalar, got shape {g.shape}")
        return (self._dscores * g).astype(self._dscores.dtype, copy=False)


class SoftmaxCrossEntropyLoss(_Loss):
    """L = -(1/N) sum_n log softmax(z_n)[y_n] ("mean") or the sum ("sum")."""

    def _compute(self, scores: np.ndarray, labels: np.ndarray) -> tuple[float, np.ndarray]:
        return loss.softmax_cross_entropy(scores, labels, self.reduction)


class SVMLoss(_Loss):
    """L = (1/N) sum_i sum_{j != y_i} max(0, x_ij - x_iy_i + 1) ("mean") or the sum ("sum")."""

    def _compute(self, scores: np.ndarray, labels: np.ndarray) -> tuple[float, np.ndarray]:
        return loss.svm_loss(scores, labels, self.reduction)


class Flatten(Layer):
    """(N, ...) -> (N, D)."""

    def forward(self, x: np.ndarray) -> np.ndarray:
        return fc.flatten(self._remember(x))

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        shape = self._input.shape if self._input is not None else (0,)
        x = self._recall(grad_out, (shape[0], int(np.prod(shape[1:], dtype=np.int64))))
        return fc.unflatten(grad_out, x.shape)


class Dense(Layer):
    """Y = flatten(X) W + b, W (in_features, out_features) = (D, M), b (M,)."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        *,
        dtype: np.dtype | type = np.float64,
        rng: np.random.Generator | int | None = None,
    ) -> None:
        super().__init__()
        d = count(in_features, "in_features")
        m = count(out_features, "out_features")
        self.params["weight"] = _init_rng(rng).normal(0.0, np.sqrt(2.0 / d), (d, m)).astype(dtype)
        if bias:
            self.params["bias"] = np.zeros(m, dtype=dtype)

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._remember(x)
        return fc.dense(x, self.params["weight"], self.params.get("bias"))

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        n = self._input.shape[0] if self._input is not None else 0
        x = self._recall(grad_out, (n, self.params["weight"].shape[1]))
        self.grads["weight"] = fc.dense_grad_weight(grad_out, x)
        if "bias" in self.params:
            self.grads["bias"] = fc.dense_grad_bias(grad_out)
        return fc.dense_grad_input(grad_out, self.params["weight"], x.shape)


class Sequential(Layer):
    """Layers applied in order; backward runs them in reverse. ``params``/``grads`` keys are "i.name"."""

    def __init__(self, *layers: Layer) -> None:
        # No Layer.__init__: params and grads are views over the children, not dicts of our own.
        self._input = None
        self.layers = list(layers)

    def forward(self, x: np.ndarray) -> np.ndarray:
        for layer in self.layers:
            x = layer.forward(x)
        return x

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        for layer in reversed(self.layers):
            grad_out = layer.backward(grad_out)
        return grad_out

    @property  # type: ignore[override]
    def params(self) -> dict[str, np.ndarray]:
        return _Prefixed(self.layers, "params")

    @property  # type: ignore[override]
    def grads(self) -> dict[str, np.ndarray]:
        return _Prefixed(self.layers, "grads")

    def __repr__(self) -> str:
        inner = ", ".join(repr(layer) for layer in self.layers)
        return f"Sequential({inner})"


class _Prefixed(dict):
    """A dict view "i.name" -> layers[i].<attr>[name]; assigning an item writes through to the layer."""

    def __init__(self, layers: list[Layer], attr: str) -> None:
        super().__init__(
            (f"{i}.{name}", value) for i, layer in enumerate(layers) for name, value in getattr(layer, attr).items()
        )
        self._layers, self._attr = layers, attr

    def __setitem__(self, key: str, value: np.ndarray) -> None:
        index, _, name = key.partition(".")
        target = getattr(self._layers[int(index)], self._attr)
        if name not in target:
            raise KeyError(key)
        target[name] = value
        super().__setitem__(key, value)
