"""Presets: LayerSpecs for the common conventions, so those need no Python from the user.

- ``seed(kind, cls)``: the seed article's style: one image, channels last, SGD step inside backward.
  conv: cls(num_filters[, filter_size][, lr]) on (H, W) -> (H', W', F), filters (F, k, k), no bias,
  stride 1, no padding (a constructor without a size argument means a fixed kernel, read off the
  filters); maxpool: cls(size) on (H, W, C), window = stride = size, any size (the output floors H // size);
  relu: any shape; dense: cls(input_size, num_classes[, lr]) on a 1-D vector, weights (n, m),
  biases (m,). The article's family as written: methods and the learning rate found by name and signature
  (forward / forward_prop / ...; backward(d) with self.lr, or backward(d, lr | alpha | learning_rate)), the
  parameters by building one small instance (filters / kernels / weights / W; ...); see docs/presets.md.
- ``function_pair(kind, namespace)``: CS231n style functions on NCHW batches,
  conv_forward(x, w, b, {"stride", "pad"}) -> (out, cache), conv_backward(dout, cache) -> (dx, dw, db);
  max_pool_forward(x, {"pool_height", "pool_width", "stride"}); avg_pool_forward(x, the same pool_param,
  plus "pad" when the padding is not 0); relu_forward(x); leaky_relu_forward(x, {"alpha": a});
  sigmoid_forward(x); tanh_forward(x); softmax_forward(x) (over the last axis); each activation's
  *_backward(dout, cache) -> dx; affine_forward(x, w, b) with x flattened to (N, D), w (D, M);
  batchnorm_forward(x, gamma, beta, {"mode": "train", "eps", "momentum"}) on (N, D) and/or
  spatial_batchnorm_forward (the same) on (N, C, H, W), their *_backward(dout, cache) -> (dx, dgamma, dbeta),
  and batchnorm_backward_alt when the module has it (then cases run either backward: the geometry's alt);
  dropout_forward(x, {"p", "mode": "train", "seed"}), dropout_backward(dout, cache) -> dx; a loss is ONE
  function returning both: softmax_loss(x, y) -> (loss, dx) and svm_loss(x, y) -> (loss, dx), mean over N.
- ``nchw(kind, cls)``: a class on NCHW batches already in our own interface (params/grads dicts), built as
  cnn.layers builds its own (Conv(in_channels, out_channels, kernel_size, stride=s, padding=p), ...).

A class a preset cannot read as described raises ``AdaptError`` (one line that says what to name or declare;
exit 2), and every preset says what it chose in ``LayerSpec.adapted``.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from checks.adapt import paths
from checks.adapt.adapters import LayerSpec, Origin, Param, Supports
from checks.geometry import ConvGeometry, DenseGeometry, Geometry, LeakyReluGeometry, PoolGeometry

PRESETS = ("seed", "function_pair", "nchw")

_FILTERS = ("num_filters", "n_filters", "filters", "out_channels", "num_kernels")
_KERNEL = ("filter_size", "kernel_size", "size", "k", "ksize")
_DENSE_IN = ("input_size", "in_features", "input_len", "n_inputs", "input_dim")
_DENSE_OUT = ("num_classes", "output_size", "out_features", "n_outputs", "output_dim", "nodes")

# The seed article's family as people write it: what each part may be called (the first name found wins).
SEED_FORWARD = ("forward", "forward_prop", "forward_pass")
SEED_BACKWARD = ("backward", "backprop", "back_prop", "backward_pass", "backward_prop")
SEED_LR_ARGUMENTS = ("lr", "alpha", "learning_rate", "learn_rate")
"""backward(d, <one of these>) takes the learning rate as an argument: the preset passes ``LR_PASSED``."""
SEED_PARAMS = {
    "conv": {"weight": ("filters", "kernels", "weights", "W")},
    "dense": {"weight": ("weights", "W", "w"), "bias": ("biases", "bias", "b")},
}
SEED_BUILDS = {
    "conv": "Cls(num_filters[, filter_size])",
    "maxpool": "Cls([size])",
    "relu": "Cls()",
    "dense": "Cls(input_size, num_classes)",
}
LR_PASSED = 2.0**-6
"""The learning rate handed to backward(d, lr). A power of two, so g = (before - after) / lr divides exactly."""
_PROBE_FILTERS, _PROBE_KERNEL, _PROBE_IN, _PROBE_OUT = 2, 2, 3, 2
"""The small geometry a class is built for at load time, to find its parameters (dense: in != out, so that a
weight stored (out, in) shows)."""
_FIXED_KERNEL_INPUT = 6
"""Side of the image a lazy fixed-kernel conv is probed with (its kernel is not known yet)."""


class AdaptError(ValueError):
    """The class does not fit the preset as the preset reads it (a method, a constructor argument, a parameter
    attribute); ``str()`` is one line that says what to name or declare. Found by inspecting the class and
    building one small instance, in the process that loads the layer."""


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


def _name(cls: Any) -> str:
    return getattr(cls, "__name__", None) or type(cls).__name__


# -- reading a class without running it: methods and constructors, by name and signature ---------------


def find_method(cls: Any, names: tuple[str, ...], role: str) -> str:
    """The first of ``names`` that is a method of ``cls``; AdaptError naming them all when none is."""
    found = next((n for n in names if callable(getattr(cls, n, None))), None)
    if found is None:
        raise AdaptError(
            f"{_name(cls)} has no {role} method: expected one named {' / '.join(names)}; rename it, or describe "
            f"the layer with a LayerSpec ({role}_method='...')"
        )
    return found


def _parameters(cls: Any, method: str) -> list[inspect.Parameter] | None:
    """The parameters of ``method`` as an instance calls it (self left out); None when none can be read."""
    try:
        params = list(inspect.signature(getattr(cls, method)).parameters.values())
    except (TypeError, ValueError):
        return None
    # read off the class, a plain function still lists self (a staticmethod or classmethod does not)
    return params[1:] if inspect.isfunction(inspect.getattr_static(cls, method, None)) and params else params


def learning_rate_parameter(cls: Any, method: str, array: str, lr_names: tuple[str, ...] = ()) -> str | None:
    """How the adapter calls ``cls.method``: method(array), or method(array, lr) when its second positional
    parameter is named in ``lr_names`` (that name is returned; else None). AdaptError when it cannot be called
    either way: it takes no array, or a parameter with no default would get no value."""
    params = _parameters(cls, method)
    if params is None:  # no readable signature (a C function): the call itself will tell
        return None
    kinds = inspect.Parameter
    positional = [p for p in params if p.kind in (kinds.POSITIONAL_ONLY, kinds.POSITIONAL_OR_KEYWORD)]
    takes_varargs = any(p.kind is kinds.VAR_POSITIONAL for p in params)
    lr = positional[1].name if len(positional) > 1 and positional[1].name in lr_names else None
    unfilled = [p.name for p in positional[2 if lr else 1 :] if p.default is p.empty]
    unfilled += [p.name for p in params if p.kind is kinds.KEYWORD_ONLY and p.default is p.empty]
    if (positional or takes_varargs) and not unfilled:
        return lr
    calls = f"{method}({array})" + (f" or {method}({array}, lr)" if lr_names else "")
    why = f"{', '.join(unfilled)} would get no value" if positional or takes_varargs else f"it takes no {array}"
    names = f" (the learning rate's parameter named {' / '.join(lr_names)})" if lr_names else ""
    raise AdaptError(
        f"{_name(cls)}.{method}{inspect.signature(getattr(cls, method))} cannot be called as {calls}{names}: "
        f"{why}; give it a default, or describe the layer with a LayerSpec"
    )


def _buildable(cls: Any, args: tuple, kwargs: dict[str, Any], shown: str, convention: str | None = None) -> None:
    """AdaptError unless ``cls(*args, **kwargs)`` fits the constructor's signature (inspected, not run);
    ``convention``: the forms the preset accepts, when ``shown`` (the call it makes) does not say them all."""
    try:
        signature = inspect.signature(cls)
    except (TypeError, ValueError):  # no readable signature: building it will tell
        return
    try:
        signature.bind(*args, **kwargs)
    except TypeError as exc:
        accepted = f"the preset builds it as {convention}: " if convention else ""
        raise AdaptError(
            f"{_name(cls)}{signature} cannot be built as {shown}: {exc}; {accepted}describe other constructors "
            "with a LayerSpec (build=lambda g: ...)"
        ) from None


# -- probing one small instance: do the parameters the preset will read exist? -------------------------


@dataclass(frozen=True)
class _Wanted:
    """A parameter the preset reads: ``label`` for messages, the candidate ``paths`` in order, ``fits`` whether
    a value found there is it (its number of entries), ``expected`` its shape for messages; ``required``:
    False for a parameter a layer may lack (a bias the constructor cannot switch off)."""

    label: str
    paths: tuple[str, ...]
    fits: Callable[[Any], bool]
    expected: str
    required: bool = True


@dataclass(frozen=True)
class _Probed:
    """One instance built for the probe geometry, and the path found for each parameter with its value."""

    layer: Any
    found: dict[str, str]
    values: dict[str, Any]


def _shape(value: Any) -> tuple[int, ...] | None:
    try:
        return tuple(np.shape(value))
    except Exception:  # noqa: BLE001 - not array-like at all (ragged lists, odd objects): it holds no parameter
        return None


def _entries(value: Any) -> int:
    shape = _shape(value)
    return -1 if shape is None else math.prod(shape)


def _holding(entries: int) -> Callable[[Any], bool]:
    """Fits a value of exactly ``entries`` numbers, in any shape."""
    return lambda value: _entries(value) == entries


def _square_filters(filters: int) -> Callable[[Any], bool]:
    """Fits (F, k, k) filters of ``filters`` * k * k numbers, whatever k (a conv whose kernel is fixed)."""

    def fits(value: Any) -> bool:
        shape = _shape(value) or ()
        return len(shape) >= 2 and shape[-1] == shape[-2] and _entries(value) == filters * shape[-1] ** 2

    return fits


def _present(layer: Any, candidates: tuple[str, ...]) -> list[tuple[str, Any]]:
    return [(path, paths.resolve(layer, path)) for path in candidates if paths.exists(layer, path)]


def _probe(
    build: Callable[[], Any],
    forward: str,
    x: np.ndarray,
    wanted: Mapping[str, _Wanted],
    shown: str,
    *,
    strict: bool = False,
) -> _Probed | None:
    """Build one layer and find each wanted parameter: the first candidate path that exists and fits. A
    parameter with no candidate at all after construction gets one forward(x) first (a lazy layer creates its
    parameters then). AdaptError when a required parameter has no candidate, or none that fits.

    When building or that forward raises, nothing is shown about the parameters: None, so that the check runs
    and reports the layer's own fault (``strict``: the exception propagates instead)."""
    try:
        layer = build()
        if any(not _present(layer, w.paths) for w in wanted.values()):
            getattr(layer, forward)(x.copy())
    except Exception:
        if strict:
            raise
        return None
    found, values = {}, {}
    for param, w in wanted.items():
        present = _present(layer, w.paths)
        fitting = [(path, value) for path, value in present if w.fits(value)]
        if fitting:
            found[param], values[param] = fitting[0]
        elif present:
            path, value = present[0]
            raise AdaptError(
                f"{shown}: its {w.label} `{path}` have shape {_shape(value)} ({_entries(value)} entries), expected "
                f"{w.expected}; store them so, or describe the layer with a LayerSpec "
                f"(params={{'{param}': Param(...)}})"
            )
        elif w.required:
            raise AdaptError(
                f"{shown} has no {w.label}: none of {', '.join(f'`{p}`' for p in w.paths)} exists after construction "
                f"and a forward; name them so, or describe the layer with a LayerSpec "
                f"(params={{'{param}': Param('<attribute>', ...)}})"
            )
    return _Probed(layer, found, values)


def _seed_learning_rate(probed: _Probed | None, lr_name: str | None, shown: str, backward: str) -> str:
    """How the SGD step's rate reaches backward, for the adapted line; AdaptError when backward(d) takes none and
    the probed layer keeps no usable one at self.lr (the step could not be turned back into a gradient)."""
    if lr_name is not None:
        return f"lr passed as the argument `{lr_name}` ({LR_PASSED:g})"
    if probed is not None:
        lr = getattr(probed.layer, "lr", None)
        try:
            rate = float(lr)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            raise AdaptError(
                f"{shown}: {backward}(d) takes no learning rate and the layer keeps none at self.lr, so its SGD "
                f"step cannot be turned back into a gradient; keep the rate at self.lr, take it as {backward}(d, "
                "lr), or describe the layer with a LayerSpec (gradients='attributes', ...)"
            ) from None
        if not math.isfinite(rate) or rate == 0:
            raise AdaptError(
                f"{shown}: self.lr is {rate:g}, so backward takes no SGD step to recover a gradient from; give the "
                "layer a small nonzero learning rate"
            )
    return "lr read from self.lr"


def _seed_input(shape: tuple[int, ...]) -> np.ndarray:
    """Distinct, signed values for a probe forward."""
    size = math.prod(shape)
    return np.linspace(-1.0, 1.0, size).reshape(shape) if size > 1 else np.full(shape, 0.5)


# -- the seed preset ---------------------------------------------------------------------------------------


def _seed_calls(cls: Any) -> tuple[str, str, str | None]:
    """(forward, backward, the name of backward's learning-rate parameter or None): found by name and signature."""
    forward = find_method(cls, SEED_FORWARD, "forward")
    backward = find_method(cls, SEED_BACKWARD, "backward")
    learning_rate_parameter(cls, forward, "x")
    return forward, backward, learning_rate_parameter(cls, backward, "d", SEED_LR_ARGUMENTS)


def _calls_text(forward: str, backward: str, lr_name: str | None) -> str:
    return f"{forward}(x), {backward}(d{', ' + lr_name if lr_name else ''})"


def _seed_conv(cls: Callable) -> LayerSpec:
    names = _arg_names(cls)
    k_arg = _first(names, _KERNEL)
    f_arg = _first(names, _FILTERS) or next((n for n in names if n != k_arg), None)

    def arguments(filters: int, kernel: int) -> tuple[tuple, dict[str, int]]:
        sized = {k_arg: kernel} if k_arg else {}
        return ((), {f_arg: filters, **sized}) if f_arg else ((filters,), sized)

    shown = f"{_name(cls)}({', '.join([f'{f_arg}=F' if f_arg else 'F'] + ([f'{k_arg}=k'] if k_arg else []))})"
    _buildable(cls, *arguments(_PROBE_FILTERS, _PROBE_KERNEL), shown, SEED_BUILDS["conv"])
    forward, backward, lr_name = _seed_calls(cls)
    candidates = SEED_PARAMS["conv"]["weight"]
    supports = Supports(batch=1, channels=1, stride=1, padding=0, dilation=1, square=True, bias=False)
    f = _PROBE_FILTERS
    k = _PROBE_KERNEL
    if k_arg is None:  # a fixed kernel: read it off one instance's filters (F, k, k)
        square = {"weight": _Wanted("filters", candidates, _square_filters(f), f"(F, k, k) with F = {f}")}
        x = _seed_input((_FIXED_KERNEL_INPUT, _FIXED_KERNEL_INPUT))
        args, kwargs = arguments(f, 0)
        fixed = _probe(lambda: cls(*args, **kwargs), forward, x, square, shown, strict=True)
        assert fixed is not None  # strict: a build that raises propagates
        k = int(np.shape(fixed.values["weight"])[-1])
        supports = replace(supports, kernel=k)
    filters = _Wanted("filters", candidates, _holding(f * k * k), f"(F, k, k) = ({f}, {k}, {k})")
    args, kwargs = arguments(f, k)
    probed = _probe(lambda: cls(*args, **kwargs), forward, _seed_input((k + 2, k + 2)), {"weight": filters}, shown)
    attr = probed.found["weight"] if probed is not None else candidates[0]
    rate = _seed_learning_rate(probed, lr_name, shown, backward)

    def build(g: Geometry) -> Any:
        assert isinstance(g, ConvGeometry)
        args, kwargs = arguments(g.filters, g.kernel[0])
        return cls(*args, **kwargs)

    sized = shown if k_arg else f"{shown} with a fixed {k}x{k} kernel"
    return LayerSpec(
        "conv",
        build,
        input_layout="HW",
        output_layout="HWC",
        params={"weight": Param(attr, "FHW")},
        gradients="sgd",
        forward_method=forward,
        backward_method=backward,
        lr_argument=LR_PASSED if lr_name else None,
        supports=supports,
        name=_name(cls),
        adapted=f"seed: {sized}; {_calls_text(forward, backward, lr_name)}; filters `{attr}` (F, k, k); {rate}"
        + ("" if probed is not None else " (not probed: building the layer raised)"),
    )


def _seed_pool(cls: Callable) -> LayerSpec:
    names = _arg_names(cls)
    k_arg = _first(names, _KERNEL)
    shown = f"{_name(cls)}({k_arg + '=k' if k_arg else ''})"
    _buildable(cls, (), {k_arg: _PROBE_KERNEL} if k_arg else {}, shown, SEED_BUILDS["maxpool"])
    forward, backward, lr_name = _seed_calls(cls)

    def build(g: Geometry) -> Any:
        assert isinstance(g, PoolGeometry)
        return cls(**{k_arg: g.kernel[0]}) if k_arg else cls()

    kernel = (2, 3) if k_arg else int(getattr(cls(), "size", 2))
    supports = Supports(
        batch=1, channels=(1, 3), kernel=kernel, stride="kernel", padding=0, square=True, remainder=True
    )
    window = f"{shown}, window = stride = k" if k_arg else f"{shown}, a fixed {kernel}x{kernel} window = stride"
    rate = f"; lr passed as the argument `{lr_name}` ({LR_PASSED:g})" if lr_name else ""
    return LayerSpec(
        "maxpool",
        build,
        input_layout="HWC",
        forward_method=forward,
        backward_method=backward,
        lr_argument=LR_PASSED if lr_name else None,
        supports=supports,
        name=_name(cls),
        adapted=f"seed: {window}; {_calls_text(forward, backward, lr_name)}{rate}",
    )


def _seed_relu(cls: Callable) -> LayerSpec:
    shown = f"{_name(cls)}()"
    _buildable(cls, (), {}, shown)
    forward, backward, lr_name = _seed_calls(cls)
    rate = f"; lr passed as the argument `{lr_name}` ({LR_PASSED:g})" if lr_name else ""
    return LayerSpec(
        "relu",
        lambda g: cls(),
        input_layout="ND",
        forward_method=forward,
        backward_method=backward,
        lr_argument=LR_PASSED if lr_name else None,
        name=_name(cls),
        adapted=f"seed: {shown}; {_calls_text(forward, backward, lr_name)}{rate}",
    )


def _takes_image(layer: Any, forward: str, n: int, m: int) -> bool:
    """Whether ``layer.forward`` flattens an (H, W, C) input of n entries itself (m outputs back)."""
    try:
        return _entries(getattr(layer, forward)(_seed_input((n, 1, 1)))) == m
    except Exception:  # noqa: BLE001 - the layer's own code refusing an image: it takes a vector only
        return False


def _seed_dense(cls: Callable, kind: str = "dense") -> LayerSpec:
    """dense, or dense+softmax (the same class with a softmax at the end of forward): cls(input_size,
    num_classes[, lr]); a fused layer that flattens its input itself is fed an (H, W, C) image."""
    names = _arg_names(cls)
    i_arg, o_arg = _first(names, _DENSE_IN), _first(names, _DENSE_OUT)

    def arguments(n: int, m: int) -> tuple[tuple, dict[str, int]]:
        return ((), {i_arg: n, o_arg: m}) if i_arg and o_arg else ((n, m), {})

    shown = f"{_name(cls)}({i_arg}=n, {o_arg}=m)" if i_arg and o_arg else f"{_name(cls)}(n, m)"
    _buildable(cls, *arguments(_PROBE_IN, _PROBE_OUT), shown, SEED_BUILDS["dense"])
    forward, backward, lr_name = _seed_calls(cls)
    n, m = _PROBE_IN, _PROBE_OUT
    wanted = {
        "weight": _Wanted("weights", SEED_PARAMS["dense"]["weight"], _holding(n * m), f"(n, m) = ({n}, {m})"),
        "bias": _Wanted("biases", SEED_PARAMS["dense"]["bias"], _holding(m), f"(m,) = ({m},)"),
    }
    args, kwargs = arguments(n, m)
    probed = _probe(lambda: cls(*args, **kwargs), forward, _seed_input((n,)), wanted, shown)
    found = probed.found if probed is not None else {name: w.paths[0] for name, w in wanted.items()}
    weight, bias = found["weight"], found["bias"]
    # a weight kept (m, n) (torch.nn.Linear's way) is read as such: the probe's n != m tells the two apart
    layout = "MD" if probed is not None and np.shape(probed.values["weight"]) == (m, n) else "DM"
    rate = _seed_learning_rate(probed, lr_name, shown, backward)

    def build(g: Geometry) -> Any:
        assert isinstance(g, DenseGeometry)
        args, kwargs = arguments(g.in_features, g.out_features)
        return cls(*args, **kwargs)

    params = {"weight": Param(weight, layout), "bias": Param(bias)}
    supports = Supports(batch=1, features=(1, 8), out_features=(1, 5), bias=True)
    shape = "(n, m)" if layout == "DM" else "(m, n)"
    input_layout, fed = "D", ""
    if kind != "dense" and probed is not None and _takes_image(probed.layer, forward, n, m):
        # CHW drops the batch axis and keeps the canonical feature order, so the layer's own flattening of
        # its (H, W, C) image is the reference's: any three feature axes, read as H, W, C
        input_layout, fed = "CHW", "; input an (H, W, C) image the layer flattens"
        supports = replace(supports, features_ndim=3)
    return LayerSpec(
        kind,
        build,
        input_layout=input_layout,
        output_layout="D",
        params=params,
        gradients="sgd",
        forward_method=forward,
        backward_method=backward,
        lr_argument=LR_PASSED if lr_name else None,
        supports=supports,
        name=_name(cls),
        adapted=f"seed: {shown}; {_calls_text(forward, backward, lr_name)}; weights `{weight}` {shape}, biases "
        f"`{bias}` (m,); {rate}{fed}" + ("" if probed is not None else " (not probed: building the layer raised)"),
    )


_SEED = {
    "conv": _seed_conv,
    "maxpool": _seed_pool,
    "relu": _seed_relu,
    "dense": _seed_dense,
    "dense+softmax": lambda cls: _seed_dense(cls, "dense+softmax"),
}


def seed(kind: str, cls: Callable) -> LayerSpec:
    """A seed-article style class (see the module docstring) as a LayerSpec: its methods and learning rate
    found by name and signature, its parameters by building one small instance (AdaptError when they are not
    there: nothing is created in their place)."""
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
        self.gamma = np.ones(shapes["gamma"]) if "gamma" in shapes else None
        self.beta = np.zeros(shapes["beta"]) if "beta" in shapes else None
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
        if self.kind == "batchnorm":
            return (self.gamma, self.beta, {"mode": "train", "eps": g.eps, "momentum": 0.9})
        if self.kind == "dropout":
            return ({"p": g.p, "mode": "train", "seed": g.seed},)
        return ()

    def forward(self, x: np.ndarray, labels: np.ndarray | None = None) -> np.ndarray:
        if self.kind in _LOSS_PAIRS:  # one function, (loss, dx): dx is kept for backward
            result = self._forward(x, labels)
            if not isinstance(result, tuple) or len(result) != 2:
                raise TypeError(f"{self._forward.__name__} must return (loss, dx), got {type(result).__name__}")
            out, self.dx = result
            return out
        result = self._forward(x, *self._extra())
        if not isinstance(result, tuple) or len(result) != 2:
            raise TypeError(f"{self._forward.__name__} must return (out, cache), got {type(result).__name__}")
        out, self.cache = result
        return out

    def backward(self, dout: np.ndarray) -> np.ndarray:
        if self.kind in _LOSS_PAIRS:  # dL/dx of the loss used last, times the scalar upstream gradient
            return self.dx * dout
        result = self._backward(dout, self.cache)
        if self.kind in _THREE_GRADIENTS:
            first, second = _THREE_GRADIENTS[self.kind]
            if not isinstance(result, tuple) or len(result) != 3:
                raise TypeError(
                    f"{self._backward.__name__} must return (dx, {first}, {second}), got {type(result).__name__}"
                )
            dx, grad_1, grad_2 = result
            setattr(self, first, grad_1)
            setattr(self, second, grad_2)
            return dx
        return result


_LOSS_PAIRS = ("softmax_ce", "svm_loss")
"""Kinds whose "pair" is one function (x, y) -> (loss, dx)."""
_THREE_GRADIENTS = {"conv": ("dw", "db"), "dense": ("dw", "db"), "batchnorm": ("dgamma", "dbeta")}
"""Kinds whose backward returns (dx, d<first parameter>, d<second parameter>): the attributes they are kept in."""


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
    "batchnorm": ("batchnorm_forward", "batchnorm_backward"),
    "dropout": ("dropout_forward", "dropout_backward"),
    "softmax_ce": ("softmax_loss",),
    "svm_loss": ("svm_loss",),
}
_SPATIAL_BATCHNORM = ("spatial_batchnorm_forward", "spatial_batchnorm_backward")
"""The batch-norm pair on (N, C, H, W); a module may hold it, the plain pair on (N, D), or both."""
_BATCHNORM_ALT = "batchnorm_backward_alt"
"""CS231n's second, simplified batch-norm backward: when a module has it, cases run either backward."""
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
    "batchnorm": Supports(),  # ndim and alt: from the functions found (_batchnorm_pairs)
    "dropout": Supports(),
    "softmax_ce": Supports(reduction="mean"),  # softmax_loss(x, y) averages over the batch
    "svm_loss": Supports(reduction="mean"),
}


def function_pair(kind: str, namespace: Mapping[str, Any] | Any) -> LayerSpec:
    """CS231n-style functions found by name in ``namespace`` (a module or a dict), as a LayerSpec.

    The ``_naive`` and ``_fast`` suffixes are accepted too (conv_forward_naive, ...).
    """
    if kind not in _PAIR_NAMES:
        raise ValueError(f"the function_pair preset covers {sorted(_PAIR_NAMES)}, not {kind!r}")
    lookup = namespace if isinstance(namespace, Mapping) else vars(namespace)
    supports = _PAIR_SUPPORTS[kind]
    if kind == "batchnorm":
        build, supports, name = _batchnorm_pairs(lookup)
    else:
        found = [_find(lookup, base) for base in _PAIR_NAMES[kind]]
        forward, backward = found[0], found[-1]  # a loss is one function, both at once
        name = forward.__name__

        def build(g: Geometry) -> FunctionPairLayer:
            return FunctionPairLayer(kind, forward, backward, g)

    params = {}
    if kind in ("conv", "dense", "dense+softmax"):
        params = {"weight": Param("w", "FCHW" if kind == "conv" else "DM", "dw"), "bias": Param("b", None, "db")}
    if kind == "batchnorm":
        params = {"gamma": Param("gamma", None, "dgamma"), "beta": Param("beta", None, "dbeta")}
    layout = "NCHW" if kind in ("conv", "maxpool", "avgpool") else "ND"
    origin = _origin(namespace, None, kind, "function_pair") if not isinstance(namespace, Mapping) else None
    return LayerSpec(
        kind,
        build,
        input_layout=layout,
        params=params,
        gradients="attributes",
        supports=supports,
        name=name,
        origin=origin,
    )


def _find(lookup: Mapping[str, Any], base: str, *, required: bool = True) -> Callable | None:
    """The function ``base`` (or base_naive / base_fast) in ``lookup``; ValueError when required and absent."""
    fn = next((lookup[n] for n in (base, base + "_naive", base + "_fast") if callable(lookup.get(n))), None)
    if fn is None and required:
        raise ValueError(f"no function {base} (or {base}_naive / {base}_fast) found")
    return fn


def _batchnorm_pairs(lookup: Mapping[str, Any]) -> tuple[Callable[[Geometry], FunctionPairLayer], Supports, str]:
    """(build, supports, name) for the batch-norm functions of a module: the plain pair on (N, D), the spatial pair
    on (N, C, H, W), or both (the input's rank picks); batchnorm_backward_alt, when present, runs on the cases whose
    geometry says ``alt``."""
    plain = [_find(lookup, base, required=False) for base in _PAIR_NAMES["batchnorm"]]
    spatial = [_find(lookup, base, required=False) for base in _SPATIAL_BATCHNORM]
    alt = _find(lookup, _BATCHNORM_ALT, required=False)
    has_plain, has_spatial = all(plain), all(spatial)
    if not has_plain and not has_spatial:
        raise ValueError(
            "no functions batchnorm_forward / batchnorm_backward nor spatial_batchnorm_forward / "
            "spatial_batchnorm_backward found"
        )
    ndim = (2, 4) if has_plain and has_spatial else 2 if has_plain else 4
    supports = replace(_PAIR_SUPPORTS["batchnorm"], ndim=ndim, alt=None if alt and has_plain else False)

    def build(g: Geometry) -> FunctionPairLayer:
        forward, backward = spatial if len(g.input_shape) == 4 and has_spatial else plain
        if getattr(g, "alt", False) and alt is not None and backward is plain[1]:
            backward = alt
        return FunctionPairLayer("batchnorm", forward, backward, g)

    return build, supports, (plain if has_plain else spatial)[0].__name__


def _pool_arguments(g: Any) -> tuple[tuple, dict[str, Any]]:
    return (g.kernel[0],), {"stride": g.stride[0], "padding": g.padding[0]}


_NCHW_BUILDS: dict[str, tuple[str, Callable[[Any], tuple[tuple, dict[str, Any]]]]] = {
    # kind: (the constructor call, for messages; geometry -> (args, kwargs)), as cnn.layers' constructors take them
    "conv": (
        "Cls(in_channels, out_channels, kernel_size, stride=s, padding=p)",
        lambda g: ((g.in_channels, g.filters, g.kernel[0]), {"stride": g.stride[0], "padding": g.padding[0]}),
    ),
    "maxpool": ("Cls(kernel_size, stride=s, padding=p)", lambda g: _pool_arguments(g)),
    "avgpool": ("Cls(kernel_size, stride=s, padding=p)", lambda g: _pool_arguments(g)),
    "dense": ("Cls(in_features, out_features)", lambda g: ((g.in_features, g.out_features), {})),
    "dense+softmax": ("Cls(in_features, out_features)", lambda g: ((g.in_features, g.out_features), {})),
    "leaky_relu": ("Cls(alpha)", lambda g: ((g.alpha,), {})),
}
_NCHW_PLAIN = ("Cls()", lambda g: ((), {}))
_NCHW_PROBES: dict[str, Geometry] = {
    "conv": ConvGeometry(1, 2, 4, 4, 3, (2, 2)),
    "maxpool": PoolGeometry(1, 1, 4, 4, (2, 2), (2, 2)),
    "avgpool": PoolGeometry(1, 1, 4, 4, (2, 2), (2, 2)),
    "dense": DenseGeometry(1, (3,), 2),
    "dense+softmax": DenseGeometry(1, (3,), 2),
    "leaky_relu": LeakyReluGeometry((1, 4), 0.1),
}
"""The small geometry each kind's class is built for at load time (args checked, parameters found)."""


def _nchw_build(kind: str, cls: Callable, params: dict[str, Param]) -> tuple[Callable, Supports, dict, str]:
    """(build, supports, params, adapted) for a class built the nchw way (``_NCHW_BUILDS``): the constructor's
    signature checked, one instance probed for params['weight'] and params['bias']. The layer is checked as it
    is built: with its bias when it has one, without when it has none (no bias is ever switched off)."""
    call, arguments = _NCHW_BUILDS.get(kind, _NCHW_PLAIN)

    def build(g: Geometry) -> Any:
        args, kwargs = arguments(g)
        return cls(*args, **kwargs)

    shown = call.replace("Cls", _name(cls), 1)
    probe = _NCHW_PROBES.get(kind)
    _buildable(cls, *(arguments(probe) if probe is not None else ((), {})), shown)
    forward = find_method(cls, ("forward",), "forward")
    backward = find_method(cls, ("backward",), "backward")
    learning_rate_parameter(cls, forward, "x")
    learning_rate_parameter(cls, backward, "dout")
    supports = Supports(square=True) if kind in ("conv", "maxpool", "avgpool") else Supports()
    adapted = f"nchw: {shown}; forward(x), backward(dout)"
    if not params or probe is None:
        return build, supports, params, adapted
    shapes = probe.param_shapes
    wanted = {
        name: _Wanted(name, (param.attr,), _holding(math.prod(shapes[name])), f"{shapes[name]}", name == "weight")
        for name, param in params.items()
    }
    # NCHW and ND are the canonical layouts themselves: the probe's input needs no mapping
    probed = _probe(lambda: build(probe), forward, _seed_input(probe.input_shape), wanted, shown)
    if probed is not None and "bias" not in probed.found:
        params = {"weight": params["weight"]}
        return build, replace(supports, bias=False), params, adapted + "; params['weight'] (no bias), grads['weight']"
    both = "; params['weight'], params['bias'], grads['weight'], grads['bias']"
    return build, replace(supports, bias=True), params, adapted + both


def nchw(kind: str, cls: Callable, build: Callable[[Geometry], Any] | None = None) -> LayerSpec:
    """A class in our own interface (cnn.layers-like: params/grads dicts, NCHW, weight (F,C,kh,kw) / (D,M)),
    built as ``_NCHW_BUILDS`` says (e.g. Conv(in_channels, out_channels, kernel_size, stride=s, padding=p)) unless
    ``build`` is given; AdaptError when the class cannot be called so or lacks params['weight']."""
    params = {}
    if kind in ("conv", "dense", "dense+softmax"):
        params = {
            "weight": Param("params['weight']", None, "grads['weight']"),
            "bias": Param("params['bias']", None, "grads['bias']"),
        }
    supports, adapted = Supports(), ""
    if build is None:
        build, supports, params, adapted = _nchw_build(kind, cls, params)
    return LayerSpec(
        kind,
        build,
        input_layout="NCHW" if kind in ("conv", "maxpool", "avgpool") else "ND",
        params=params,
        supports=supports,
        name=_name(cls),
        origin=_origin(cls, getattr(cls, "__name__", None), kind, "nchw"),
        adapted=adapted,
    )
