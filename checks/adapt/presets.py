"""Presets: LayerSpecs for the common conventions, so those need no Python from the user.

- ``seed(kind, cls)``: the seed article's style: one image, channels last, SGD step inside backward.
  conv: cls(num_filters[, filter_size][, lr]) on (H, W) -> (H', W', F), filters (F, k, k), no bias,
  stride 1, no padding (a constructor without a size argument means a fixed kernel, read off the
  filters); maxpool: cls(size) on (H, W, C), window = stride = size, any size (the output floors H // size);
  relu: any shape; dense: cls(input_size, num_classes[, lr]) on a 1-D vector, weights (n, m),
  biases (m,).
- ``function_pair(kind, namespace)``: CS231n style functions on NCHW batches,
  conv_forward(x, w, b, {"stride", "pad"}) -> (out, cache), conv_backward(dout, cache) -> (dx, dw, db);
  max_pool_forward(x, {"pool_height", "pool_width", "stride"}); avg_pool_forward(x, the same pool_param,
  plus "pad" when the padding is not 0); relu_forward(x); leaky_relu_forward(x, {"alpha": a});
  sigmoid_forward(x); tanh_forward(x); softmax_forward(x) (over the last axis); each activation's
  *_backward(dout, cache) -> dx; affine_forward(x, w, b) with x flattened to (N, D), w (D, M).
- ``nchw(kind, cls)``: a class on NCHW batches already in our own interface (params/grads dicts).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

import numpy as np

from checks.adapt.adapters import LayerSpec, Origin, Param, Supports
from checks.geometry import ConvGeometry, DenseGeometry, Geometry, PoolGeometry

PRESETS = ("seed", "function_pair", "nchw")

_FILTERS = ("num_filters", "n_filters", "filters", "out_channels", "num_kernels")
_KERNEL = ("filter_size", "kernel_size", "size", "k", "ksize")
_DENSE_IN = ("input_size", "in_features", "input_len", "n_inputs", "input_dim")
_DENSE_OUT = ("num_classes", "output_size", "out_features", "n_outputs", "output_dim", "nodes")


def _origin(obj: Any, name: str | None, kind: str, preset: str) -> Origin | None:
    """Where the class (or module) a preset wraps lives, as a TARGET, when its source file is known and
    loading that file again does not run a script (``__main__``)."""
    if getattr(obj, "__module__", getattr(obj, "__name__", None)) == "__main__":
        return None
    try:
        path = inspect.getsourcefile(obj)
    except TypeError:
        return None
    if not path:
        return None
    return Origin(f"{path}:{name or ''}", kind, preset)


def _arg_names(cls: Callable) -> list[str]:
    try:
        return list(inspect.signature(cls).parameters)
    except (TypeError, ValueError):
        return []


def _first(names: list[str], candidates: tuple[str, ...]) -> str | None:
    return next((n for n in candidates if n in names), None)


def _seed_conv(cls: Callable) -> LayerSpec:
    names = _arg_names(cls)
    f_arg, k_arg = _first(names, _FILTERS), _first(names, _KERNEL)
    supports = Supports(batch=1, channels=1, stride=1, padding=0, dilation=1, square=True, bias=False)
    if k_arg is None:  # fixed kernel: read it off a probe instance's filters (F, k, k)
        probe = cls(**{f_arg: 1}) if f_arg else cls(1)
        k = int(np.shape(probe.filters)[-1])
        supports = replace(supports, kernel=k)

    def build(g: Geometry) -> Any:
        assert isinstance(g, ConvGeometry)
        kwargs = {f_arg or names[0]: g.filters}
        if k_arg:
            kwargs[k_arg] = g.kernel[0]
        return cls(**kwargs)

    return LayerSpec(
        "conv",
        build,
        input_layout="HW",
        output_layout="HWC",
        params={"weight": Param("filters", "FHW")},
        gradients="sgd",
        supports=supports,
        name=getattr(cls, "__name__", ""),
    )


def _seed_pool(cls: Callable) -> LayerSpec:
    names = _arg_names(cls)
    k_arg = _first(names, _KERNEL)

    def build(g: Geometry) -> Any:
        assert isinstance(g, PoolGeometry)
        return cls(**{k_arg: g.kernel[0]}) if k_arg else cls()

    kernel = (2, 3) if k_arg else int(getattr(cls(), "size", 2))
    supports = Supports(
        batch=1, channels=(1, 3), kernel=kernel, stride="kernel", padding=0, square=True, remainder=True
    )
    return LayerSpec("maxpool", build, input_layout="HWC", supports=supports, name=getattr(cls, "__name__", ""))


def _seed_relu(cls: Callable) -> LayerSpec:
    return LayerSpec("relu", lambda g: cls(), input_layout="ND", name=getattr(cls, "__name__", ""))


def _seed_dense(cls: Callable) -> LayerSpec:
    names = _arg_names(cls)
    i_arg, o_arg = _first(names, _DENSE_IN), _first(names, _DENSE_OUT)

    def build(g: Geometry) -> Any:
        assert isinstance(g, DenseGeometry)
        if i_arg and o_arg:
            return cls(**{i_arg: g.in_features, o_arg: g.out_features})
        return cls(g.in_features, g.out_features)

    params = {"weight": Param("weights", "DM"), "bias": Param("biases")}
    supports = Supports(batch=1, features=(1, 8), out_features=(1, 5), bias=True)
    return LayerSpec(
        "dense",
        build,
        input_layout="D",
        output_layout="D",
        params=params,
        gradients="sgd",
        supports=supports,
        name=getattr(cls, "__name__", ""),
    )


_SEED = {"conv": _seed_conv, "maxpool": _seed_pool, "relu": _seed_relu, "dense": _seed_dense}


def seed(kind: str, cls: Callable) -> LayerSpec:
    """A seed-article style class (see the module docstring) as a LayerSpec."""
    if kind not in _SEED:
        raise ValueError(f"the seed preset covers {sorted(_SEED)}, not {kind!r}")
    return replace(_SEED[kind](cls), origin=_origin(cls, getattr(cls, "__name__", None), kind, "seed"))


class FunctionPairLayer:
    """Holds the parameters as attributes w and b and the cache between forward and backward, so a
    pair of functions looks like a layer; backward stores dw/db and returns dx."""

    def __init__(self, kind: str, forward: Callable, backward: Callable, geometry: Geometry) -> None:
        self.kind, self._forward, self._backward, self.geometry = kind, forward, backward, geometry
        shapes = geometry.param_shapes
        self.w = np.zeros(shapes["weight"]) if "weight" in shapes else None
        self.b = np.zeros(shapes["bias"]) if "bias" in shapes else None
        self.cache = None

    def _extra(self) -> tuple:
        g = self.geometry
        if self.kind == "conv":
            return (self.w, self.b, {"stride": g.stride[0], "pad": g.padding[0]})
        if self.kind in ("maxpool", "avgpool"):
            pool_param = {"pool_height": g.kernel[0], "pool_width": g.kernel[1], "stride": g.stride[0]}
            if g.padding[0]:  # only a padded pool has "pad": the classic pair has no such key
                pool_param["pad"] = g.padding[0]
            return (pool_param,)
        if self.kind == "leaky_relu":
            return ({"alpha": g.alpha},)
        if self.kind == "dense":
            return (self.w, self.b)
        return ()

    def forward(self, x: np.ndarray) -> np.ndarray:
        result = self._forward(x, *self._extra())
        if not isinstance(result, tuple) or len(result) != 2:
            raise TypeError(f"{self._forward.__name__} must return (out, cache), got {type(result).__name__}")
        out, self.cache = result
        return out

    def backward(self, dout: np.ndarray) -> np.ndarray:
        result = self._backward(dout, self.cache)
        if self.kind in ("conv", "dense"):
            if not isinstance(result, tuple) or len(result) != 3:
                raise TypeError(f"{self._backward.__name__} must return (dx, dw, db), got {type(result).__name__}")
            dx, self.dw, self.db = result
            return dx
        return result


_PAIR_NAMES = {
    "conv": ("conv_forward", "conv_backward"),
    "maxpool": ("max_pool_forward", "max_pool_backward"),
    "relu": ("relu_forward", "relu_backward"),
    "dense": ("affine_forward", "affine_backward"),
    "sigmoid": ("sigmoid_forward", "sigmoid_backward"),
    "tanh": ("tanh_forward", "tanh_backward"),
    "leaky_relu": ("leaky_relu_forward", "leaky_relu_backward"),
    "softmax": ("softmax_forward", "softmax_backward"),
    "avgpool": ("avg_pool_forward", "avg_pool_backward"),
}
_PAIR_SUPPORTS = {
    "conv": Supports(square=True, dilation=1, stride=(1, 2), padding=(0, 1), bias=True),
    "maxpool": Supports(padding=0, stride=(1, 2), square=True),
    "relu": Supports(),
    "dense": Supports(bias=True),
    "sigmoid": Supports(),
    "tanh": Supports(),
    "leaky_relu": Supports(),
    "softmax": Supports(axis=-1),  # softmax_forward(x) takes no axis: the last one
    "avgpool": Supports(padding=(0, 1), stride=(1, 2), square=True),
}


def function_pair(kind: str, namespace: Mapping[str, Any] | Any) -> LayerSpec:
    """CS231n-style functions found by name in ``namespace`` (a module or a dict), as a LayerSpec.

    The ``_naive`` and ``_fast`` suffixes are accepted too (conv_forward_naive, ...).
    """
    if kind not in _PAIR_NAMES:
        raise ValueError(f"the function_pair preset covers {sorted(_PAIR_NAMES)}, not {kind!r}")
    lookup = namespace if isinstance(namespace, Mapping) else vars(namespace)
    found = []
    for base in _PAIR_NAMES[kind]:
        fn = next((lookup[n] for n in (base, base + "_naive", base + "_fast") if callable(lookup.get(n))), None)
        if fn is None:
            raise ValueError(f"no function {base} (or {base}_naive / {base}_fast) found")
        found.append(fn)
    forward, backward = found
    params = {}
    if kind in ("conv", "dense"):
        params = {"weight": Param("w", "FCHW" if kind == "conv" else "DM", "dw"), "bias": Param("b", None, "db")}
    layout = "NCHW" if kind in ("conv", "maxpool", "avgpool") else "ND"
    origin = _origin(namespace, None, kind, "function_pair") if not isinstance(namespace, Mapping) else None
    return LayerSpec(
        kind,
        lambda g: FunctionPairLayer(kind, forward, backward, g),
        input_layout=layout,
        params=params,
        gradients="attributes",
        supports=_PAIR_SUPPORTS[kind],
        name=forward.__name__,
        origin=origin,
    )


def nchw(kind: str, cls: Callable, build: Callable[[Geometry], Any] | None = None) -> LayerSpec:
    """A class in our own interface (cnn.layers-like: params/grads dicts, NCHW, weight (F,C,kh,kw) / (D,M))."""
    params = {}
    if kind in ("conv", "dense"):
        params = {
            "weight": Param("params['weight']", None, "grads['weight']"),
            "bias": Param("params['bias']", None, "grads['bias']"),
        }
    return LayerSpec(
        kind,
        build or (lambda g: cls()),
        input_layout="NCHW" if kind in ("conv", "maxpool") else "ND",
        params=params,
        origin=_origin(cls, getattr(cls, "__name__", None), kind, "nchw"),
    )
