"""A user's whole network, held in the worker: its layers in forward order, how each is driven, its parameters,
and the requests the checker makes of it (``checks.pipeline.chain`` judges the answers; nothing here is a verdict).

The target names a function that returns the layers (``net.py:build``), a module-level list of them, or a model
object (with a ``layers`` list, or only forward/backward: then the model is one layer). Each layer is driven by
the names of METHOD_NAMES (``forward`` / ``fprop`` / ``__call__`` / ..., ``backward`` / ``backprop`` / ``bprop``
/ ...) or by the names the network declares (``METHODS = {"forward": "go", "backward": "learn"}`` in its module,
or the checker's ``methods``), the learning rate as backward's second argument or at ``self.lr``. Its parameters
are float arrays held by the layer (attributes, or one step inside one: SPELLING) that forward leaves alone and
that either backward moves at a learning rate > 0 or the forward's output depends on; a parameter's gradient is
recovered from the step, g = (before - after) / lr, or read where the layer keeps it (GRAD_SPELLINGS), and every
parameter is put back after every backward, so the network's state never drifts. Every read and write of a
parameter goes through ``read_at`` / ``write_at``.

Requests (``serve`` dispatches them; every call into the user's code goes through checks.adapt.guard):

- ``net_load`` {target, root, input_shape, methods, call_seconds, memory_bytes, import_seconds, lr} -> ``net_loaded``
  {input_shape, layers, takes_lr, model, loss, declared_loss, probe_fault} + the output at a fixed probe input;
  ``refused`` when the network cannot be adapted (no layers, a method missing, no input shape, the layers do not
  chain); a layer that misbehaves on the probe is not a refusal: ``probe_fault`` says which, for the checker to
  report as a failed check;
- ``net_run`` {lr, loss} + x, labels -> ``net_ran``: every layer's input and output, the loss, the upstream
  gradient each layer received, the gradient it returned, each parameter's recovered gradient;
- ``net_losses`` {layer, name, loss} + x, labels, points -> the network loss with input ``name`` (layer -1) or
  parameter ``name`` of ``layer`` set to each point;
- ``net_layer_losses`` {layer, name} + a, upstream, points -> sum(f_i(a) * G_i) at each point (layer i alone);
- ``net_train`` {steps, lr, loss} + xs, labels -> the mean loss over the batch before each epoch of per-sample
  SGD steps and after the last (the parameters are put back afterwards).

Standard library and numpy only.
"""

from __future__ import annotations

import inspect
import itertools
import math
import re
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from checks.adapt import presets, survey
from checks.adapt.guard import Cause, LayerFault

LOSSES = ("softmax_ce", "nll")
"""softmax_ce: -log softmax(z)[label] over the last axis; nll: -log p[label] (the last layer is a softmax)."""
BUILD_NAMES = ("build", "network", "model", "layers", "net")
"""What a target without a name may be called in the module, in this order."""
LR_ATTRIBUTES = ("lr", "learning_rate", "alpha")
"""Where a layer whose backward takes no learning rate keeps it (or the optimizer it hands its gradients to)."""
OPTIMIZER_ATTRIBUTES = ("optimizer", "optim", "opt", "solver")
"""Where a layer keeps the optimizer whose step backward takes (``self.optimizer.update(self.W, dW)``): its
learning rate is then ``self.optimizer.lr`` (a spelling of the field form), set and restored like ``self.lr``."""
PROBE_NUDGE = 1e-3
"""How far a parameter backward never moves is nudged to see whether the forward reads it."""
METHOD_NAMES: dict[str, tuple[str, ...]] = {
    "forward": (
        *presets.SEED_FORWARD,
        "fprop",
        "forward_propagation",
        "feedforward",
        "feed_forward",
        "__call__",
    ),
    "backward": (
        *presets.SEED_BACKWARD,
        "bprop",
        "backward_propagation",
        "back_propagation",
        "backpropagate",
    ),
}
"""What a layer's forward and backward may be called, the first its class defines winning (``__call__`` last: a
layer that also has a ``forward`` usually calls it from ``__call__``). Other names are declared: METHODS_NAME."""
METHODS_NAME = "METHODS"
"""The module-level mapping a network's file declares its own method names in: {"forward": ..., "backward": ...}."""
SPELLING = re.compile(
    r"(?P<head>[^\W\d]\w*)"
    r"(?:\['(?P<key>[A-Za-z0-9_]{1,64})'\]|\[(?P<index>0|[1-9][0-9]{0,3})\]|\.(?P<field>[^\W\d]\w*))?"
)
"""How a parameter, and a kept gradient, is named here, on the wire and in reports (anything else is garbled):

| form | example | what it reads |
|---|---|---|
| attribute | ``W`` | ``layer.W`` |
| key | ``params['W']`` | ``layer.params['W']``, a dict's str key of ASCII letters, digits and _ (at most 64) |
| index | ``weights[0]`` | ``layer.weights[0]``, a list's or tuple's index, or a dict's int key (0 to 9999) |
| field | ``W.data`` | ``layer.W.data``, an attribute of a plain object (a parameter object) |

One step from an attribute at most: nothing deeper is looked into."""
MAX_SPELLING = 160
PARAM_FIELDS = ("data", "value")
"""The attribute a parameter object (``self.W = Param(value)``) keeps its array in, the first found."""
NESTED_ENTRIES = 32
"""Entries looked at in one dict, list or tuple attribute."""
MAX_NESTED = 64
"""Arrays found inside containers and parameter objects, per layer."""
GRAD_SPELLINGS: dict[str, tuple[str, ...]] = {
    "attribute": ("d{p}", "d{lower}", "d_{p}", "grad_{p}", "{p}_grad", "grads[{p!r}]", "gradients[{p!r}]"),
    "key": (
        "grads[{k!r}]",
        "gradients[{k!r}]",
        "d{c}[{k!r}]",
        "d_{c}[{k!r}]",
        "grad_{c}[{k!r}]",
        "{c}_grad[{k!r}]",
        "grads[{dk!r}]",
        "d{k}",
        "d{lower}",
        "grad_{k}",
        "{k}_grad",
    ),
    "index": ("grads[{k}]", "gradients[{k}]", "d{c}[{k}]", "d_{c}[{k}]", "grad_{c}[{k}]", "{c}_grad[{k}]"),
    "field": ("{c}.grad", "{c}.gradient", "d{c}", "d{lower}", "grad_{c}", "{c}_grad", "grads[{c!r}]"),
}
"""Where a layer that takes no step may keep a parameter's gradient, by the parameter's form (SPELLING): for ``W``
dW, dw, d_W, grad_W, W_grad, grads['W'], gradients['W'] (the spellings the presets read); for ``params['W']``
grads['W'], gradients['W'], dparams['W'], ..., grads['dW'], dW; for ``weights[0]`` grads[0], dweights[0], ...;
for ``W.data`` W.grad, W.gradient, dW, .... {p}: the spelling, {c}: its attribute, {k}: its key or index,
{dk}: "d" + key, {lower}: the key (or attribute) in lower case. The first that holds a float array of the
parameter's shape after backward is used."""
SHAPE_WORDS = ("shape", "broadcast", "align", "dimension", "size", "index", "mismatch", "operand", "to unpack")
"""Words of numpy's errors for an array of the wrong shape: such an error on the probe means the layers do not
chain (an adaptation error), anything else is the layer's own fault."""


class NetworkError(ValueError):
    """The network cannot be adapted as described; ``str()`` is one line saying what to change."""


# -- the loss -----------------------------------------------------------------------------------------------


def loss_for(output: np.ndarray) -> str:
    """``nll`` when every row of the output (last axis, more than one class) is a probability vector (entries
    >= 0 summing to 1 within 1e-9): the last layer is a softmax; ``softmax_ce`` otherwise."""
    z = np.asarray(output, dtype=np.float64)
    if z.ndim == 0 or z.shape[-1] < 2 or not np.all(np.isfinite(z)):
        return "softmax_ce"
    return "nll" if bool(np.all(z >= 0) and np.allclose(z.sum(axis=-1), 1.0, rtol=0, atol=1e-9)) else "softmax_ce"


def loss_and_grad(output: np.ndarray, labels: np.ndarray, loss: str) -> tuple[float, np.ndarray]:
    """(L, dL/dz) in float64, summed over the rows of z (its last axis holds the classes).

    softmax_ce: L = -sum_r log softmax(z_r)[y_r], dL/dz_r = softmax(z_r) - onehot(y_r);
    nll: L = -sum_r log z_r[y_r], dL/dz_r = -onehot(y_r) / z_r[y_r]."""
    z = np.asarray(output, dtype=np.float64)
    rows = z.reshape(-1, z.shape[-1])
    y = np.asarray(labels).reshape(-1).astype(np.int64)
    at = np.arange(len(rows))
    g = np.zeros_like(rows)
    if loss == "nll":
        p = rows[at, y]
        with np.errstate(divide="ignore", invalid="ignore"):
            value = float(-np.sum(np.log(p))) if np.all(p > 0) else math.inf
            g[at, y] = -1.0 / p
    else:
        shifted = rows - rows.max(axis=1, keepdims=True)
        log_p = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        value = float(-np.sum(log_p[at, y]))
        g = np.exp(log_p)
        g[at, y] -= 1.0
    return value, g.reshape(z.shape)


# -- the network ----------------------------------------------------------------------------------------------


@dataclass
class Layer:
    """One layer: the user's object, how it is called, and its parameters (attribute names)."""

    obj: Any
    index: int
    forward: str
    backward: str
    lr_argument: str | None
    lr_attribute: str | None
    params: list[str] = field(default_factory=list)
    grads: dict[str, str] = field(default_factory=dict)
    """parameter -> the attribute backward leaves its gradient in (GRAD_SPELLINGS), for a layer that takes no step."""

    @property
    def name(self) -> str:
        return type(self.obj).__name__

    @property
    def shown(self) -> str:
        """ "layer 2 MaxPool2 (index 1)": how every message names it."""
        return f"layer {self.index + 1} {self.name} (index {self.index})"

    @property
    def takes_lr(self) -> bool:
        return self.lr_argument is not None or self.lr_attribute is not None

    def describe(self) -> dict:
        how = (
            f"{self.backward}(d, {self.lr_argument})"
            if self.lr_argument
            else f"{self.backward}(d) with self.{self.lr_attribute}"
            if self.lr_attribute
            else f"{self.backward}(d), no learning rate"
        )
        if self.grads:
            how += "; gradients read from " + ", ".join(f"self.{s}" for s in self.grads.values())
        params = {p: list(np.shape(read_at(self.obj, p))) for p in self.params}
        return {
            "index": self.index,
            "name": self.name,
            "calls": f"{self.forward}(x), {how}",
            "params": params,
            "grads": dict(self.grads),
            "dtypes": {p: np.asarray(read_at(self.obj, p)).dtype.name for p in self.params},
            "cls": class_data(type(self.obj)),
        }


def class_data(cls: type) -> dict:
    """Where a layer's class is defined and what checks.adapt.survey guesses of it, as plain data: the checker
    may then check that class on its own (file None: it is not defined in a file the worker can load again)."""
    module = sys.modules.get(cls.__module__)
    path = getattr(module, "__file__", None)
    try:
        guesses, why = survey.class_guesses(cls)
        found = survey.Found(cls.__qualname__, tuple(guesses), why).to_dict()
    except Exception:  # a class whose signature cannot be read: nothing guessed, the checker says so
        found = survey.Found(cls.__qualname__, (), "its constructor cannot be read").to_dict()
    return {
        "module": cls.__module__,
        "qualname": cls.__qualname__,
        "file": str(path) if isinstance(path, str) and path.endswith(".py") else None,
        "found": found,
    }


# -- spellings: where a parameter or a kept gradient lives on a layer -------------------------------------------

Step = tuple[str, str | int | None, str | None]
"""A parsed spelling: (attribute, step, form), form None (attribute), "key", "index" or "field"."""


def parse_spelling(spelling: object) -> Step | None:
    """("W", None, None), ("params", "W", "key"), ("weights", 0, "index"), ("W", "data", "field"); None when
    ``spelling`` is not of SPELLING's form."""
    if not isinstance(spelling, str) or len(spelling) > MAX_SPELLING:
        return None
    m = SPELLING.fullmatch(spelling)
    if m is None or not m["head"].isidentifier() or (m["field"] is not None and not m["field"].isidentifier()):
        return None
    if m["key"] is not None:
        return m["head"], m["key"], "key"
    if m["index"] is not None:
        return m["head"], int(m["index"]), "index"
    if m["field"] is not None:
        return m["head"], m["field"], "field"
    return m["head"], None, None


def is_spelling(text: object) -> bool:
    """Whether ``text`` names a parameter or a gradient as SPELLING allows (the checker's validation)."""
    return parse_spelling(text) is not None


def _plain_object(value: Any) -> bool:
    """An instance of a user class that may hold a parameter in a field (not an array, a number, a builtin
    container, a module, a class or anything callable such as a function or another layer)."""
    return not (
        isinstance(value, (np.ndarray, np.generic, type))
        or inspect.ismodule(value)
        or type(value).__module__ == "builtins"
        or callable(value)
    )


def read_at(obj: Any, spelling: str) -> Any:
    """The value at ``spelling`` on ``obj`` (obj.W, obj.params['W'], obj.weights[0], obj.W.data); None when
    nothing is there (a missing attribute, key or index, or the layer's own code raising while it is read)."""
    parsed = parse_spelling(spelling)
    if parsed is None:
        return None
    head, step, form = parsed
    try:
        value = getattr(obj, head, None)
        if form is None:
            return value
        if form == "field":
            return getattr(value, step, None) if _plain_object(value) else None  # type: ignore[arg-type]
        if isinstance(value, dict):
            return value.get(step)
        if form == "index" and isinstance(value, (list, tuple)) and step < len(value):  # type: ignore[operator]
            return value[step]  # type: ignore[index]
    except Exception:  # a property or container of the layer's that raises: nothing readable there
        return None
    return None


def write_at(obj: Any, spelling: str, value: Any) -> bool:
    """Make ``spelling`` on ``obj`` hold ``value`` (rebinding it where the layer rebound it: a new array, a new dict
    or list, a new parameter object; a tuple is rebuilt around it); nothing is written where it already holds
    ``value``. False when the spelling no longer leads anywhere it can be written."""
    parsed = parse_spelling(spelling)
    if parsed is None:
        return False
    head, step, form = parsed
    try:
        if read_at(obj, spelling) is value:
            return True
        if form is None:
            setattr(obj, head, value)
            return True
        container = getattr(obj, head, None)
        if form == "field" and _plain_object(container):
            setattr(container, step, value)  # type: ignore[arg-type]
        elif isinstance(container, dict):
            container[step] = value
        elif isinstance(container, list) and step < len(container):  # type: ignore[operator]
            container[step] = value  # type: ignore[index]
        elif type(container) is tuple and step < len(container):  # type: ignore[operator]
            setattr(obj, head, container[:step] + (value,) + container[step + 1 :])  # type: ignore[misc,operator]
        else:
            return False
    except Exception:  # the layer's own __setattr__ / container refusing: the in-place write is all there is
        return False
    return True


def _float_array(value: Any) -> bool:
    return isinstance(value, np.ndarray) and value.dtype.kind == "f" and value.size > 0


def _inside(name: str, value: Any) -> list[tuple[str, Any]]:
    """(spelling, entry) one step inside attribute ``name``: a dict's first NESTED_ENTRIES items, a list's or
    tuple's, or a plain object's first PARAM_FIELDS; only entries whose spelling SPELLING allows."""
    try:
        if isinstance(value, dict):
            items = itertools.islice(value.items(), NESTED_ENTRIES)
            entries = [(f"{name}[{k!r}]", v) for k, v in items if type(k) in (str, int)]  # repr of our own types only
        elif isinstance(value, (list, tuple)):
            entries = [(f"{name}[{i}]", v) for i, v in enumerate(value[:NESTED_ENTRIES])]
        elif _plain_object(value):
            field = next((f for f in PARAM_FIELDS if _float_array(getattr(value, f, None))), None)
            entries = [] if field is None else [(f"{name}.{field}", getattr(value, field))]
        else:
            return []
    except Exception:  # a container of the layer's whose iteration raises: nothing found in it
        return []
    return [(s, v) for s, v in entries if is_spelling(s)]


def float_arrays(obj: Any) -> dict[str, np.ndarray]:
    """The candidates for parameters, by spelling: the object's own float ndarray attributes, then the float
    arrays one step inside its dict, list and tuple attributes and in its parameter objects' data / value
    (MAX_NESTED at most). An array already found under another spelling is not found again (``self.W`` and
    ``self.params = {"W": self.W}`` are one parameter, ``W``)."""
    try:
        items = [(k, v) for k, v in vars(obj).items() if isinstance(k, str) and k.isidentifier()]
    except TypeError:  # __slots__: nothing found
        return {}
    found = {k: v for k, v in items if _float_array(v)}
    nested = 0
    for name, value in items:
        if name in found:
            continue
        for spelling, array in _inside(name, value):
            if nested >= MAX_NESTED:
                return found
            if _float_array(array) and not any(array is a for a in found.values()):
                found[spelling] = array
                nested += 1
    return found


def gradient_spellings(param: str) -> list[str]:
    """Where a layer may keep ``param``'s gradient, in GRAD_SPELLINGS's order for the parameter's form."""
    parsed = parse_spelling(param)
    if parsed is None:
        return []
    head, step, form = parsed
    names = {
        "p": param,
        "c": head,
        "k": step,
        "dk": f"d{step}",
        "lower": (head if step is None or form == "field" else str(step)).lower(),
    }
    spellings = (t.format(**names) for t in GRAD_SPELLINGS[form or "attribute"])
    return [s for s in dict.fromkeys(spellings) if s != param and is_spelling(s)]


def grad_spelling(obj: Any, param: str, shape: tuple[int, ...]) -> str | None:
    """The first of ``param``'s gradient spellings that holds a float ndarray of ``shape`` on ``obj``, or None."""
    for spelling in gradient_spellings(param):
        value = read_at(obj, spelling)
        if isinstance(value, np.ndarray) and value.dtype.kind == "f" and value.shape == tuple(shape):
            return spelling
    return None


def _grad_names(params: list[str]) -> set[str]:
    """Every spelling GRAD_SPELLINGS gives for ``params`` (dW or grads['W'] for W): gradients, never parameters."""
    return {s for p in params for s in gradient_spellings(p)}


@dataclass
class Network:
    """The layers in forward order; ``model``: the target was one object with forward/backward (no layers)."""

    layers: list[Layer]
    model: bool
    input_shape: tuple[int, ...]


Guarded = Callable[..., Any]
"""guard.call bound to the worker's limits: guarded(stage, fn, *args, shapes=...)."""


def resolve(module: Any, name: str | None, guarded: Guarded, methods: Methods | None = None) -> tuple[list[Any], bool]:
    """(the layer objects in forward order, whether the target is a model without layers)."""
    names = [name] if name else [n for n in BUILD_NAMES if hasattr(module, n)]
    if not names or not hasattr(module, names[0]):
        wanted = name or " / ".join(BUILD_NAMES)
        raise NetworkError(
            f"no {wanted} in the module: name a function returning the layers in forward order (net.py:build), "
            "a list of them, or a model object"
        )
    obj = getattr(module, names[0])
    if inspect.isfunction(obj) or inspect.isclass(obj):  # build() or a model class: called without arguments
        obj = guarded("construct", obj, shapes="")
    if isinstance(obj, (list, tuple)):
        return list(obj), False
    inner = getattr(obj, "layers", None)
    if isinstance(inner, (list, tuple)) and inner:
        return list(inner), False
    if _is_layer(obj, methods or {}):
        return [obj], True
    raise NetworkError(
        f"{names[0]} gave {type(obj).__name__}: expected a list of layers in forward order, an object with a "
        "`layers` list, or a model with forward and backward methods"
    )


Methods = dict[str, str]
"""Declared method names, role ("forward" / "backward") -> name; a role left out is looked up in METHOD_NAMES."""


def declared_methods(value: Any, source: str) -> Methods:
    """The method names a network declares, checked: a dict from "forward" and/or "backward" to identifiers
    ({} for None); NetworkError saying the expected form otherwise. ``source``: where they were declared."""
    if value is None:
        return {}
    ok = isinstance(value, dict) and 0 < len(value) <= len(METHOD_NAMES)
    ok = ok and all(k in METHOD_NAMES and isinstance(v, str) and v.isidentifier() for k, v in value.items())
    if not ok:
        raise NetworkError(
            f"{source} = {value!r:.80}: expected the method names every layer is called by, e.g. "
            "{'forward': 'go', 'backward': 'learn'} (either may be left out)"
        )
    return {str(k): str(v) for k, v in value.items()}


def _has_method(obj: Any, name: str) -> bool:
    """``obj``'s class defines or inherits a method ``name``, not from ``object`` (and not ``type.__call__``,
    which makes every class callable: a class is no layer's forward)."""
    try:
        defined = any(name in vars(k) for k in type(obj).__mro__ if k is not object)
        return defined and callable(getattr(obj, name, None))
    except Exception:  # a class whose attributes raise when read: not callable as a layer
        return False


def _method(obj: Any, role: str, methods: Methods) -> str | None:
    """The name ``obj``'s ``role`` method goes by: the declared one if it has it, else the first of
    METHOD_NAMES[role] it has; None when it has none."""
    if role in methods:
        return methods[role] if _has_method(obj, methods[role]) else None
    return next((n for n in METHOD_NAMES[role] if _has_method(obj, n)), None)


def _is_layer(obj: Any, methods: Methods) -> bool:
    return all(_method(obj, role, methods) is not None for role in METHOD_NAMES)


def adapt_layer(obj: Any, index: int, methods: Methods | None = None, source: str = METHODS_NAME) -> Layer:
    """How to call one layer (NetworkError naming it when it cannot be called as a layer): by the ``methods``
    declared (in ``source``), else by METHOD_NAMES."""
    shown = f"layer {index + 1} {type(obj).__name__} (index {index})"
    methods = methods or {}
    for role, name in methods.items():
        if not _has_method(obj, name):
            raise NetworkError(
                f"{shown} has no method {name!r}, declared as every layer's {role} method ({source}): define it "
                "in the layer, or declare the name its layers share"
            )
    if not _is_layer(obj, methods):
        wanted = [" / ".join(METHOD_NAMES[role]) for role in METHOD_NAMES]
        raise NetworkError(
            f"{shown} is not a layer: expected a {wanted[0]} method and a {wanted[1]} method, or declare the names "
            f"yours go by: {METHODS_NAME} = {{'forward': 'go', 'backward': 'learn'}} in the network's file "
            "(--methods forward=go,backward=learn; check_network(..., methods={...}))"
        )
    cls = type(obj)
    forward, backward = _method(obj, "forward", methods), _method(obj, "backward", methods)
    assert forward is not None and backward is not None  # _is_layer
    try:
        presets.learning_rate_parameter(cls, forward, "x")
        lr_argument = presets.learning_rate_parameter(cls, backward, "d", presets.SEED_LR_ARGUMENTS)
    except presets.AdaptError as exc:
        raise NetworkError(f"{shown}: {exc}") from None
    lr_attribute = None if lr_argument is not None else learning_rate_at(obj)
    return Layer(obj, index, forward, backward, lr_argument, lr_attribute)


def learning_rate_at(obj: Any) -> str | None:
    """Where a layer whose backward takes no learning rate keeps one: ``lr`` (LR_ATTRIBUTES) on the layer, else on
    the optimizer it holds (OPTIMIZER_ATTRIBUTES: ``optimizer.lr``); None when it keeps none (no step taken)."""
    # a bare alpha last: a layer may call its L2 strength or slope alpha while its optimizer holds the rate
    own = [a for a in LR_ATTRIBUTES if a != "alpha"]
    spellings = [*own, *(f"{o}.{a}" for o in OPTIMIZER_ATTRIBUTES for a in LR_ATTRIBUTES), "alpha"]
    return next((s for s in spellings if _number(read_at(obj, s)) is not None), None)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
        return None
    return float(value)


def parse_shape(value: Any) -> tuple[int, ...]:
    """An input shape from INPUT_SHAPE or ``--input-shape`` (a tuple of positive ints; NetworkError otherwise)."""
    try:
        shape = tuple(int(d) for d in value)
        ok = all(d > 0 and d == e for d, e in zip(shape, value, strict=True)) and 0 < len(shape) <= 6
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise NetworkError(f"input shape {value!r}: expected positive ints, e.g. INPUT_SHAPE = (28, 28)")
    return shape


# -- calls into the network ------------------------------------------------------------------------------------


class Calls:
    """The network and every call the requests make into it, each guarded, each naming its layer on a fault."""

    def __init__(self, network: Network, guarded: Guarded, tick: Callable[[], None]) -> None:
        self.network = network
        self.guarded = guarded
        self.tick = tick

    @property
    def layers(self) -> list[Layer]:
        return self.network.layers

    def forward(self, layer: Layer, a: np.ndarray) -> np.ndarray:
        """layer.forward(a copy of a), checked to be a float ndarray; LayerFault with ``layer`` set otherwise."""
        shapes = f"input {tuple(a.shape)}"
        try:
            z = self.guarded("forward", getattr(layer.obj, layer.forward), a.copy(), shapes=shapes)
            if not isinstance(z, np.ndarray) or z.dtype.kind != "f":
                got = "None" if z is None else f"{type(z).__name__} {getattr(z, 'dtype', '')}".strip()
                raise LayerFault("forward", f"returned {got} instead of a float ndarray", shapes, cause=Cause.TYPE)
            if not np.all(np.isfinite(z)):
                raise LayerFault("forward", "output has non-finite entries", shapes, cause=Cause.NONFINITE)
        except LayerFault as fault:
            fault.layer = layer.index  # type: ignore[attr-defined]
            raise
        self.tick()
        return z

    def forward_from(self, start: int, a: np.ndarray) -> np.ndarray:
        for layer in self.layers[start:]:
            a = self.forward(layer, a)
        return a

    def backward(self, layer: Layer, g: np.ndarray, a: np.ndarray, lr: float, restore: bool = True) -> tuple:
        """(dL/da or None, {param: (before - after) / lr}, {param: moved}) of one backward at ``lr``; the
        parameters are put back unless ``restore`` is False."""
        obj, shapes = layer.obj, f"input {tuple(a.shape)}, upstream {tuple(g.shape)}"
        live = {p: parameter(layer, p, "backward") for p in layer.params}
        before = {p: np.array(v, dtype=np.float64, copy=True) for p, v in live.items()}
        saved_lr = read_at(obj, layer.lr_attribute) if layer.lr_attribute else None
        try:
            if layer.lr_attribute:
                write_at(obj, layer.lr_attribute, lr)
            args = (g.copy(), lr) if layer.lr_argument else (g.copy(),)
            if layer.grads and callable(getattr(obj, "zero_grad", None)):  # a layer that accumulates its gradients
                self.guarded("backward", obj.zero_grad, shapes=shapes)
            dx = self.guarded("backward", getattr(obj, layer.backward), *args, shapes=shapes)
            grads, moved = {}, {}
            for p in layer.params:
                after = np.asarray(parameter(layer, p, "backward"), dtype=np.float64)
                if after.shape != before[p].shape:
                    detail = f"parameter {p!r} changed shape from {before[p].shape} to {after.shape}"
                    raise LayerFault("backward", detail, shapes, cause=Cause.SHAPE)
                grads[p] = (
                    self._kept(layer, p, before[p].shape, shapes) if p in layer.grads else (before[p] - after) / lr
                )
                moved[p] = bool(np.any(after != before[p]))
            if dx is not None:
                if not isinstance(dx, np.ndarray) or dx.dtype.kind != "f":
                    raise LayerFault("backward", f"returned {type(dx).__name__}, not a float ndarray", shapes)
                if dx.shape != a.shape:
                    detail = f"input gradient has shape {dx.shape}, its input {a.shape}"
                    raise LayerFault("backward", detail, shapes, cause=Cause.SHAPE, actual_shape=dx.shape)
                if not np.all(np.isfinite(dx)):
                    raise LayerFault("backward", "input gradient has non-finite entries", shapes, cause=Cause.NONFINITE)
        except LayerFault as fault:
            fault.layer = layer.index  # type: ignore[attr-defined]
            raise
        finally:
            if restore:
                self.put_back(layer, live, before)
            if layer.lr_attribute:
                write_at(obj, layer.lr_attribute, saved_lr)
        self.tick()
        return dx, grads, moved

    @staticmethod
    def _kept(layer: Layer, p: str, shape: tuple[int, ...], shapes: str) -> np.ndarray:
        """A copy of the gradient backward left at ``layer.grads[p]`` (LayerFault when it is not one any more)."""
        spelling = layer.grads[p]
        value = read_at(layer.obj, spelling)
        if not isinstance(value, np.ndarray) or value.dtype.kind != "f" or value.shape != shape:
            got = type(value).__name__ if not isinstance(value, np.ndarray) else f"shape {value.shape} {value.dtype}"
            detail = f"self.{spelling}, the gradient of {p!r}, is {got} after backward, not a float array of {shape}"
            raise LayerFault("backward", detail, shapes, cause=Cause.SHAPE)
        return np.array(value, dtype=np.float64, copy=True)

    @staticmethod
    def put_back(layer: Layer, live: Mapping[str, np.ndarray], values: Mapping[str, np.ndarray]) -> None:
        """Each parameter back to ``values``, in its original array (the layer may have rebound the name)."""
        for p, array in live.items():
            array[...] = values[p]
            write_at(layer.obj, p, array)

    def run(self, x: np.ndarray, labels: np.ndarray, lr: float, loss: str) -> tuple[dict, dict[str, np.ndarray]]:
        """One forward and one backward of the whole network (net_run's reply body and arrays)."""
        arrays: dict[str, np.ndarray] = {}
        a = x
        for layer in self.layers:
            arrays[f"in:{layer.index}"] = a.copy()
            a = self.forward(layer, a)
            arrays[f"out:{layer.index}"] = a.copy()
        value, g = loss_and_grad(a, labels, loss)
        body: dict[str, Any] = {"loss": value if math.isfinite(value) else None, "moved": {}, "returned": {}}
        for layer in reversed(self.layers):
            arrays[f"up:{layer.index}"] = g.copy()
            for p in layer.params:
                arrays[f"param:{layer.index}:{p}"] = np.array(parameter(layer, p, "backward"), dtype=np.float64)
            dx, grads, moved = self.backward(layer, g, arrays[f"in:{layer.index}"], lr)
            body["moved"][str(layer.index)] = moved
            for p, grad in grads.items():
                arrays[f"grad:{layer.index}:{p}"] = grad
            body["returned"][str(layer.index)] = dx is not None
            if dx is None:
                if layer.index > 0:
                    raise _fault(layer, "backward", "returned None: the layers before it get no gradient", Cause.TYPE)
                break
            arrays[f"dx:{layer.index}"] = np.asarray(dx, dtype=np.float64)
            g = np.asarray(dx, dtype=np.float64)
        return body, arrays

    def losses(self, x: np.ndarray, labels: np.ndarray, loss: str, layer: int, name: str, points: np.ndarray) -> list:
        """The network loss with the input (layer -1) or parameter ``name`` of ``layer`` at each point."""
        out = []
        if layer < 0:
            for point in points:
                out.append(loss_and_grad(self.forward_from(0, point.astype(x.dtype)), labels, loss)[0])
            return out
        target = self.layers[layer]
        a = x
        for prior in self.layers[:layer]:
            a = self.forward(prior, a)
        array = parameter(target, name, "forward")
        saved = array.copy()
        try:
            for point in points:
                array[...] = point
                out.append(loss_and_grad(self.forward_from(layer, a), labels, loss)[0])
        finally:
            array[...] = saved
            write_at(target.obj, name, array)
        return out

    def layer_losses(self, layer: int, name: str, a: np.ndarray, g: np.ndarray, points: np.ndarray) -> list:
        """sum(f_i(a) * G) with layer i's input (name "input") or its parameter ``name`` at each point."""
        target = self.layers[layer]
        out = []
        if name == "input":
            for point in points:
                out.append(float(np.sum(np.asarray(self.forward(target, point), dtype=np.float64) * g)))
            return out
        array = parameter(target, name, "forward")
        saved = array.copy()
        try:
            for point in points:
                array[...] = point
                out.append(float(np.sum(np.asarray(self.forward(target, a), dtype=np.float64) * g)))
        finally:
            array[...] = saved
            write_at(target.obj, name, array)
        return out

    def train(self, xs: np.ndarray, labels: np.ndarray, steps: int, lr: float, loss: str) -> list:
        """Mean loss over the batch before each of ``steps`` epochs of per-sample SGD steps, and after the last;
        the parameters are put back afterwards."""
        live = {(layer.index, p): parameter(layer, p, "forward") for layer in self.layers for p in layer.params}
        start = {k: np.array(v, copy=True) for k, v in live.items()}
        curve = []
        try:
            for _ in range(steps):
                curve.append(self._mean_loss(xs, labels, loss))
                for x, y in zip(xs, labels, strict=True):
                    self._step(x, y, lr, loss)
            curve.append(self._mean_loss(xs, labels, loss))
        finally:
            for (i, p), array in live.items():
                array[...] = start[(i, p)]
                write_at(self.layers[i].obj, p, array)
        return curve

    def _mean_loss(self, xs: np.ndarray, labels: np.ndarray, loss: str) -> float:
        return float(
            np.mean([loss_and_grad(self.forward_from(0, x), y, loss)[0] for x, y in zip(xs, labels, strict=True)])
        )

    def _step(self, x: np.ndarray, y: np.ndarray, lr: float, loss: str) -> None:
        inputs, a = [], x
        for layer in self.layers:
            inputs.append(a)
            a = self.forward(layer, a)
        g = loss_and_grad(a, y, loss)[1]
        for layer in reversed(self.layers):
            dx = self.backward(layer, g, inputs[layer.index], lr, restore=False)[0]
            if dx is None:
                break
            g = np.asarray(dx, dtype=np.float64)


def parameter(layer: Layer, name: str, stage: str) -> np.ndarray:
    """The array parameter ``name`` of ``layer`` is now (``read_at``); a LayerFault of ``stage`` naming the layer when
    it holds no array there any more (the layer dropped or replaced what held it)."""
    value = read_at(layer.obj, name)
    if not isinstance(value, np.ndarray):
        got = type(value).__name__
        raise _fault(layer, stage, f"parameter self.{name} is {got} now, not the float array it was", Cause.TYPE)
    return value


def _fault(layer: Layer, stage: str, detail: str, cause: Cause) -> LayerFault:
    fault = LayerFault(stage, detail, cause=cause)
    fault.layer = layer.index  # type: ignore[attr-defined]
    return fault


# -- loading: resolve, adapt, chain, find the parameters ----------------------------------------------------------


def _shape_error(fault: LayerFault) -> bool:
    """A fault from numpy about an array's shape (the layers do not chain), not the layer's own misbehaviour."""
    text = fault.detail.lower()
    typed = text.startswith(("raised valueerror", "raised indexerror"))
    return fault.cause is Cause.RAISED and typed and any(w in text for w in SHAPE_WORDS)


def chain_layers(calls: Calls, x: np.ndarray) -> tuple[list[np.ndarray], LayerFault | None]:
    """The probe forward: each layer's input, in order, and the first fault (NetworkError when a layer does
    not accept the shape the previous one gives, or the declared input shape)."""
    inputs, a = [], x
    for layer in calls.layers:
        inputs.append(a)
        try:
            a = calls.forward(layer, a)
        except LayerFault as fault:
            if _shape_error(fault):
                why = fault.detail.removeprefix("raised ")
                if layer.index == 0:
                    raise NetworkError(
                        f"{layer.shown} does not accept the declared input shape {tuple(x.shape)}: {why}"
                    ) from None
                before = calls.layers[layer.index - 1]
                raise NetworkError(
                    f"the layers do not chain: {before.shown} gives shape {tuple(a.shape)}, which {layer.shown} "
                    f"does not accept: {why}"
                ) from None
            return inputs, fault
    inputs.append(a)
    return inputs, None


def find_parameters(calls: Calls, inputs: list[np.ndarray], lr: float, loss: str) -> LayerFault | None:
    """Set each layer's ``params``: float arrays forward leaves alone that backward moves, or that the forward's
    output depends on (nudged by PROBE_NUDGE). The first fault of the probe backward, if any."""
    candidates: dict[int, dict[str, np.ndarray]] = {}
    for layer in calls.layers:  # forward again, watching which arrays it writes (caches, not parameters)
        before = {k: (id(v), v.copy()) for k, v in float_arrays(layer.obj).items()}
        try:
            calls.forward(layer, inputs[layer.index])
        except LayerFault as fault:
            return fault
        after = float_arrays(layer.obj)
        candidates[layer.index] = {
            k: v for k, v in after.items() if k in before and id(v) == before[k][0] and np.array_equal(v, before[k][1])
        }
    for layer in calls.layers:  # every candidate is watched by the probe backward (a kept gradient is not one)
        found = candidates[layer.index]
        layer.params = sorted(set(found) - _grad_names(list(found)))  # dW, grads['W'], W.grad: never parameters
    g = loss_and_grad(inputs[-1], np.zeros(inputs[-1].shape[:-1], dtype=np.int64), loss)[1]
    moved: dict[int, dict[str, bool]] = {}
    fault = None
    for layer in reversed(calls.layers):
        try:
            calls.forward(layer, inputs[layer.index])  # backward follows its own forward
            dx, _, moved[layer.index] = calls.backward(layer, g, inputs[layer.index], lr)
            if not layer.takes_lr:  # no step to read: where does backward leave each gradient?
                for p in layer.params:
                    spelling = grad_spelling(layer.obj, p, np.shape(parameter(layer, p, "backward")))
                    if spelling is not None:
                        layer.grads[p] = spelling
        except LayerFault as exc:
            fault = exc
            break
        if dx is None:
            break
        g = np.asarray(dx, dtype=np.float64)
    for layer in calls.layers:
        kept = []
        for p in layer.params:
            if moved.get(layer.index, {}).get(p) or _read_by_forward(calls, layer, p, inputs[layer.index]):
                kept.append(p)
        layer.params = kept
        layer.grads = {p: s for p, s in layer.grads.items() if p in kept}
        if not kept:  # nothing to step: a number named like a learning rate is the layer's own (a leaky slope alpha)
            layer.lr_attribute = None
    return fault


def _read_by_forward(calls: Calls, layer: Layer, name: str, a: np.ndarray) -> bool:
    """Whether the layer's output at ``a`` changes when parameter ``name`` is nudged (by PROBE_NUDGE, relative)."""
    try:
        array = parameter(layer, name, "forward")
    except LayerFault:
        return False
    saved = array.copy()
    try:
        base = calls.forward(layer, a)
        nudge = (
            PROBE_NUDGE * (1.0 + np.abs(saved)) * np.where(np.arange(saved.size) % 2, 1.0, -1.0).reshape(saved.shape)
        )
        array[...] = saved + nudge
        changed = calls.forward(layer, a)
        return bool(changed.shape != base.shape or np.any(changed != base))
    except LayerFault:
        return False
    finally:
        array[...] = saved
        write_at(layer.obj, name, array)


def probe_input(shape: tuple[int, ...]) -> np.ndarray:
    """The input the network is adapted on: uniform in [-0.5, 0.5] (image / 255 - 0.5), fixed."""
    return np.random.default_rng(0).uniform(-0.5, 0.5, shape)


def load(
    module: Any,
    name: str | None,
    input_shape: Any,
    lr: float,
    guarded: Guarded,
    tick: Callable,
    methods: Any = None,
) -> tuple[Calls, dict, np.ndarray | None]:
    """The network of ``module``: (its calls, the net_loaded body, the probe output or None). ``methods``, when
    given (the checker's), replaces the module's METHODS."""
    where = Path(getattr(module, "__file__", "") or "the module").name
    if methods is not None:
        declared_names = declared_methods(methods, "the methods given (--methods, check_network(methods=...))")
        source = "--methods / methods="
    else:
        declared_names = declared_methods(getattr(module, METHODS_NAME, None), f"{METHODS_NAME} in {where}")
        source = f"{METHODS_NAME} in {where}"
    declared = input_shape if input_shape is not None else getattr(module, "INPUT_SHAPE", None)
    if declared is None:
        raise NetworkError(
            f"no input shape: declare INPUT_SHAPE = (28, 28) in {where} or pass --input-shape 28,28 "
            "(check_network(..., input_shape=(28, 28)) in Python)"
        )
    shape = parse_shape(declared)
    x = probe_input(shape)
    objs, model = resolve(module, name, guarded, declared_names)
    layers = [adapt_layer(obj, i, declared_names, source) for i, obj in enumerate(objs)]
    calls = Calls(Network(layers, model, shape), guarded, tick)
    inputs, fault = chain_layers(calls, x)
    output = inputs[-1] if fault is None else None
    loss = loss_for(output) if output is not None else "softmax_ce"
    if fault is None and output is not None:
        if output.ndim == 0 or output.shape[-1] < 2:
            raise NetworkError(
                f"the network's output has shape {output.shape}: the last axis must hold the class scores"
            )
        fault = find_parameters(calls, inputs, lr, loss)
    body = {
        "input_shape": list(shape),
        "layers": [layer.describe() for layer in layers],
        "takes_lr": [layer.takes_lr for layer in layers],
        "model": model,
        "loss": loss,
        "declared_loss": getattr(module, "LOSS", None) if getattr(module, "LOSS", None) in LOSSES else None,
        "probe_fault": None if fault is None else {"layer": None, **fault.as_dict()},
    }
    return calls, body, output


# -- the requests -----------------------------------------------------------------------------------------------


def serve(server: Any, request: Any) -> None:
    """Answer one ``net_*`` request for checks.adapt.serve.Server (its reply, guard and tick)."""
    from checks.adapt import targets
    from checks.adapt.guard import Limits

    b, arrays = request.body, request.arrays
    verb = request.verb
    if verb == "net_load":
        server.limits = Limits(seconds=b.get("call_seconds"), memory_bytes=b.get("memory_bytes"))
        try:
            target = targets.parse(b["target"])
            root = Path(b["root"]) if b.get("root") else None
            module = targets.import_target(target, root, b.get("import_seconds"))
            calls, body, output = load(
                module,
                target.name,
                b.get("input_shape"),
                float(b["lr"]),
                _guarded(server),
                _ticker(server),
                b.get("methods"),
            )
        except (targets.TargetError, NetworkError) as exc:
            cause = getattr(getattr(exc, "cause", None), "value", getattr(exc, "cause", None))
            server._reply("refused", {"reason": str(exc), "cause": cause, "origin": getattr(exc, "origin", None)})
            return
        except LayerFault as fault:  # building the network (calling build) misbehaved
            server._reply("refused", {"reason": f"building the network: {fault}", "cause": fault.cause.value})
            return
        server.network = calls
        server._reply("net_loaded", body, {} if output is None else {"output": output})
        return
    calls: Calls | None = getattr(server, "network", None)
    if calls is None:
        server._reply("refused", {"reason": "no network loaded", "cause": "garbled"})
        return
    server.ticked = time.monotonic()
    try:
        if verb == "net_run":
            body, out = calls.run(arrays["x"], arrays["labels"], float(b["lr"]), b["loss"])
            server._reply("net_ran", body, out)
        elif verb == "net_losses":
            values = calls.losses(
                arrays["x"], arrays["labels"], b["loss"], int(b["layer"]), b["name"], arrays["points"]
            )
            server._reply("net_losses", {}, {"losses": _finite(values)})
        elif verb == "net_layer_losses":
            values = calls.layer_losses(int(b["layer"]), b["name"], arrays["a"], arrays["upstream"], arrays["points"])
            server._reply("net_losses", {}, {"losses": _finite(values)})
        elif verb == "net_train":
            values = calls.train(arrays["xs"], arrays["labels"], int(b["steps"]), float(b["lr"]), b["loss"])
            server._reply("net_losses", {}, {"losses": _finite(values)})
        else:
            server._reply("refused", {"reason": f"unknown request {verb!r}", "cause": "garbled"})
    except LayerFault as fault:
        server._reply("fault", {"fault": {"layer": None, **fault.as_dict()}})


def _finite(values: list) -> np.ndarray:
    """Losses as float64, a non-finite one as NaN (the checker says which point and why)."""
    return np.array([v if math.isfinite(v) else np.nan for v in values], dtype=np.float64)


def _guarded(server: Any) -> Guarded:
    def call(stage: str, fn: Callable, *args: Any, shapes: str = "") -> Any:
        return server._guarded(stage, fn, *args, shapes=shapes)

    return call


def _ticker(server: Any) -> Callable[[], None]:
    """Tell the checker the worker is alive at least every TICK_SECONDS while a request makes many calls."""

    def tick() -> None:
        now = time.monotonic()
        if now - server.ticked > 0.5:
            server.wire.send(server.reply_fd, server.wire.Message("tick", {"done": 0}))
            server.ticked = now

    return tick
