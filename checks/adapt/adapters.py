"""Adapters: a user's layer, as they wrote it, presented to the pipeline as a canonical Subject.

A ``LayerSpec`` says how to build the layer for a geometry, its layouts, where its parameters and
their gradients live, and what it supports. ``ClassSubject`` then, per call:

forward(inputs):  build once; if the parameters do not exist yet (lazy layers), run one forward to
                  create them; install the case's parameters in the user's layout; call forward on
                  the input in the user's layout (a function layer of several inputs: forward(a, b, ...)
                  in the order ``LayerSpec.inputs`` names them); map the output back to canonical.
backward(G):      map G to the user's output layout; reset accumulated gradients; stand a recording
                  optimizer in if the layer hands gradients to one; call backward; read dL/dX (several
                  inputs: the tuple (dA, dB, ...) in forward's order) and the parameter gradients from
                  wherever they live (attributes, the return value, the optimizer, or the parameter
                  change of an SGD step: g = (W_before - W_after) / lr);
                  restore the parameters, so backward is a pure function of the last forward.
"""

from __future__ import annotations

import keyword
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from checks.adapt import layouts, paths
from checks.adapt.guard import Cause, LayerFault
from checks.case import Case
from checks.geometry import Geometry

GRADIENT_SOURCES = ("attributes", "returned", "sgd", "optimizer")
Bound = int | tuple[int, int]


@dataclass(frozen=True)
class Param:
    """attr: path of the parameter on the layer ("filters", "W", "params['w']"); layout: a weight
    layout from checks.adapt.layouts (biases: None, reshaped to whatever shape the layer keeps); grad:
    path of its gradient after backward (with gradients="attributes")."""

    attr: str
    layout: str | None = None
    grad: str | None = None


@dataclass(frozen=True)
class Supports:
    """What the layer can do; generation stays inside it. Each bound is an int (fixed) or an
    inclusive (min, max) pair. Defaults are small on purpose: shrinking finds minimal failures and
    loop-based layers stay fast.

    channels: input channels (conv, pool); filters: conv output channels; stride "kernel": pools
    whose stride always equals their window; square: square kernels, strides, paddings and dilations (a
    layer that takes one int for each; its inputs are still drawn non-square); square_input: square inputs
    too (a layer that only handles H == W);
    padding: a bound, or "valid" (no padding) / "same" (conv: stride 1, odd kernels, p = d*(k-1)/2) for a
    layer that takes those strings; remainder: False for layers that need the stride to divide the input
    exactly; bias: None draws with and without, else fixed; features / out_features: dense in and out
    sizes (features: each feature axis); features_ndim: how many feature axes a dense input has (1 = (N, D) only); ndim:
    the input rank of an elementwise layer or a softmax; alpha: a leaky ReLU's negative slope, a float
    (fixed) or an inclusive (min, max) pair of floats in [0, 1); axis: the softmax axis; dtypes: the float
    dtypes the layer accepts. eps: a batch norm's eps (a float, or a (min, max) pair of floats); alt: a batch
    norm's alternative backward (False: none; None: cases for both backwards; True: only it); p: the dropout
    parameter handed to the layer, a float or a (min, max) pair of floats in (0, 1); classes: a loss's number
    of classes M; reduction: a loss's "mean" over the batch or "sum" (or a tuple of both: drawn)."""

    batch: Bound = (1, 3)
    channels: Bound = (1, 3)
    filters: Bound = (1, 3)
    kernel: Bound = (1, 3)
    stride: Bound | str = (1, 2)
    padding: Bound | str = (0, 1)
    dilation: Bound = 1
    output: Bound = (1, 4)
    square: bool = False
    square_input: bool = False
    remainder: bool = True
    bias: bool | None = None
    features: Bound = (1, 6)
    features_ndim: Bound = (1, 3)
    out_features: Bound = (1, 5)
    ndim: Bound = (2, 4)
    alpha: float | tuple[float, float] = (0.01, 0.3)
    axis: int = -1
    dtypes: tuple[str, ...] = ("float64",)
    eps: float | tuple[float, float] = 1e-5
    alt: bool | None = False
    p: float | tuple[float, float] = (0.2, 0.8)
    classes: Bound = (2, 5)
    reduction: str | tuple[str, ...] = "mean"


@dataclass(frozen=True)
class Origin:
    """Where a LayerSpec came from, so that a report can say how to load it again: target
    ("path/to/file.py:Name", relative to ``root`` when given), the kind and preset it was adapted with,
    and the LayerSpec fields replaced on top (``overrides``, as (field, value) pairs)."""

    target: str
    kind: str | None = None
    preset: str | None = None
    overrides: tuple[tuple[str, object], ...] = ()
    root: str | None = None


@dataclass
class LayerSpec:
    """Everything the harness needs to check one user layer (see the module docstring).

    kind: one of checks.kinds.USER_NAMES; build(geometry) -> the layer object;
    gradients: where parameter gradients come from, one of GRADIENT_SOURCES; returns_input_grad:
    False for layers whose backward returns no dL/dX (e.g. a first layer returning None); origin:
    where it came from (set by checks.adapt.targets.load and the presets), for reproduction snippets;
    lr_argument: the learning rate handed to backward as its second argument, backward(G, lr) (None: backward
    takes G alone and an SGD step reads the layer's own rate at ``lr_attr``); adapted: one line saying what a
    preset chose (methods, attributes, how the learning rate is passed), shown in the report's header.
    """

    kind: str
    build: Callable[[Geometry], Any]
    input_layout: str = "NCHW"
    output_layout: str | None = None
    params: Mapping[str, Param] = field(default_factory=dict)
    gradients: str = "attributes"
    lr_attr: str = "lr"
    optimizer_attr: str = "optimizer"
    reset: str | None = None
    returns_input_grad: bool = True
    forward_method: str = "forward"
    backward_method: str = "backward"
    supports: Supports = field(default_factory=Supports)
    dtype: Any = np.float64
    name: str = ""
    origin: Origin | None = field(default=None, compare=False)
    lr_argument: float | None = None
    adapted: str = ""
    shapes: Mapping[str, tuple[int, ...]] | None = None
    reference: Callable[[dict[str, np.ndarray]], np.ndarray] | None = None
    """A function layer's own reference forward, fn({"input": X, <param>: ...}) -> Z in NumPy (a layer of several
    inputs: each input by its name): judges ``forward`` only (it runs in the worker, like the layer: it is the
    user's code)."""
    inputs: tuple[str, ...] = ("input",)
    """A function layer's inputs by name, in the order forward takes them: forward(a, b) -> Z and backward(G) ->
    (dA, dB) in that order (one input: dX itself); each needs its shape in ``shapes``. Other kinds: one "input"."""

    def __post_init__(self) -> None:
        if self.gradients not in GRADIENT_SOURCES:
            raise ValueError(f"gradients={self.gradients!r}; expected one of {GRADIENT_SOURCES}")
        _require_params(self.kind, self.params)
        self.inputs = _require_inputs(self.kind, self.inputs, self.params)
        self.shapes = _require_shapes(self.kind, self.shapes, self.params, self.inputs)
        if self.reference is not None and (self.shapes is None or not callable(self.reference)):
            what = "a function fn(inputs) -> Z" if self.shapes is not None else f"not for a {self.kind!r} layer"
            raise ValueError(f"reference= is {what} (a built-in kind is judged against its own reference)")
        if self.shapes is not None:  # declared shapes are the layer's own: no layout to map them through
            if (self.input_layout, self.output_layout) not in (("NCHW", None), ("ND", None), ("ND", "ND")):
                raise ValueError(f"a {self.kind!r} layer takes its arrays as declared in shapes; drop the layouts")
            self.input_layout, self.output_layout = "ND", "ND"
        for layout in (self.input_layout, self.output_layout or self.input_layout):
            if layout not in layouts.ACTIVATION_LAYOUTS:
                raise ValueError(f"unknown layout {layout!r}; known: {layouts.ACTIVATION_LAYOUTS}")

    @property
    def out_layout(self) -> str:
        return self.output_layout or self.input_layout

    def subject(self, case: Case) -> ClassSubject:
        """The SubjectFactory: a fresh adapter (and a fresh layer) per case."""
        return ClassSubject(self, case)

    def declaration(self) -> Declaration:
        """What the checker needs to know about the layer, as plain data (no callables)."""
        return Declaration(
            kind=self.kind,
            input_layout=self.input_layout,
            output_layout=self.output_layout,
            params=dict(self.params),
            supports=self.supports,
            returns_input_grad=self.returns_input_grad,
            name=self.name,
            origin=self.origin,
            adapted=self.adapted,
            shapes=self.shapes,
            reference=self.reference is not None,
            inputs=self.inputs,
        )


@dataclass(frozen=True)
class Declaration:
    """A LayerSpec as plain data: everything the checker reads about a layer without running it (its kind,
    layouts, parameters with their layouts, what it supports, where it came from). The worker sends it to
    the checker as JSON (``to_dict``); ``from_dict`` accepts nothing but what a declaration can hold.
    ``adapted``: what a preset chose, one line ("" for a LayerSpec written by hand)."""

    kind: str
    input_layout: str = "NCHW"
    output_layout: str | None = None
    params: Mapping[str, Param] = field(default_factory=dict)
    supports: Supports = field(default_factory=Supports)
    returns_input_grad: bool = True
    name: str = ""
    origin: Origin | None = None
    adapted: str = ""
    shapes: Mapping[str, tuple[int, ...]] | None = None
    reference: bool = False
    """Whether the layer declared its own reference forward (``LayerSpec.reference``; the worker holds it)."""
    inputs: tuple[str, ...] = ("input",)
    """The inputs forward takes, by name and in its order (``LayerSpec.inputs``)."""

    @property
    def out_layout(self) -> str:
        return self.output_layout or self.input_layout

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "input_layout": self.input_layout,
            "output_layout": self.output_layout,
            "params": {name: [p.attr, p.layout, p.grad] for name, p in self.params.items()},
            "supports": {k: list(v) if isinstance(v, tuple) else v for k, v in vars(self.supports).items()},
            "returns_input_grad": self.returns_input_grad,
            "name": self.name,
            "origin": None if self.origin is None else vars(self.origin) | {"overrides": dict(self.origin.overrides)},
            "adapted": self.adapted,
            "shapes": None if self.shapes is None else {k: list(v) for k, v in self.shapes.items()},
            "reference": self.reference,
            "inputs": list(self.inputs),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Declaration:
        """The declaration ``data`` describes; ValueError (or TypeError) for anything else."""
        from checks.kinds import USER_NAMES

        if set(data) != set(cls.__dataclass_fields__):
            raise ValueError(f"fields {sorted(data)}, expected {sorted(cls.__dataclass_fields__)}")
        if data["kind"] not in USER_NAMES:
            raise ValueError(f"kind {data['kind']!r}")
        for layout in (data["input_layout"], data["output_layout"] or data["input_layout"]):
            if layout not in layouts.ACTIVATION_LAYOUTS:
                raise ValueError(f"layout {layout!r}")
        params = {}
        _require_params(data["kind"], dict(data["params"]))
        inputs = _require_inputs(data["kind"], data["inputs"], dict(data["params"]))
        for name, value in dict(data["params"]).items():
            attr, layout, grad = value
            if layout is not None and layout not in layouts.WEIGHT_LAYOUTS:
                raise ValueError(f"parameter {name!r} in layout {layout!r}")
            params[name] = Param(_string(attr), layout, None if grad is None else _string(grad))
        supports = Supports(**{k: _bound(k, v) for k, v in dict(data["supports"]).items()})
        origin = data["origin"]
        if origin is not None:
            origin = Origin(
                _string(origin["target"]),
                origin.get("kind"),
                origin.get("preset"),
                tuple(sorted(dict(origin.get("overrides") or {}).items())),
                origin.get("root"),
            )
        return cls(
            data["kind"],
            data["input_layout"],
            data["output_layout"],
            params,
            supports,
            bool(data["returns_input_grad"]),
            _string(data["name"]),
            origin,
            _line(data["adapted"]),
            _require_shapes(data["kind"], data["shapes"], params, inputs),
            _reference(data["reference"], data["shapes"]),
            inputs,
        )


def _reference(value: object, shapes: object) -> bool:
    """Whether a reference forward was declared: a bool, and only for a layer that declares its shapes."""
    if not isinstance(value, bool):
        raise TypeError(f"reference {value!r} is not a bool")
    if value and shapes is None:
        raise ValueError("a reference forward for a kind whose shapes are drawn")
    return value


def _string(value: object) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{value!r} is not a string")
    return value


def _line(value: object) -> str:
    """A string printed as one line of the report's header: no line breaks of any kind."""
    text = _string(value)
    if text and text.splitlines() != [text]:
        raise ValueError(f"{text[:40]!r}... is more than one line")
    return text


def _require_params(kind: str, params: Mapping[str, object]) -> None:
    """ValueError unless every declared parameter is one a layer of ``kind`` has (checks.kinds.PARAMS), naming
    the allowed ones."""
    from checks.kinds import any_params
    from checks.kinds import params as allowed_for

    if any_params(kind):
        reserved = sorted(n for n in params if n in ("input", "output") or not isinstance(n, str) or not n)
        if reserved:
            raise ValueError(f"a {kind!r} layer's parameters may have any name but 'input', 'output' or ''")
        return
    allowed = allowed_for(kind)
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        names = " and ".join(repr(n) for n in allowed)
        may = f"may declare the parameters {names}" if allowed else "has no parameters to declare"
        raise ValueError(f"a {kind!r} layer {may}; params names {unknown}")


def _require_inputs(kind: str, inputs: object, params: Mapping[str, object]) -> tuple[str, ...]:
    """The names of the inputs forward takes, in its order, as a tuple: for a kind that declares its shapes
    (checks.kinds.DECLARED_SHAPES) one or more distinct Python identifiers, none of them "output" or a parameter's
    name; every other kind takes the one input "input". ValueError naming what to change otherwise."""
    from checks.kinds import declares_shapes

    if isinstance(inputs, str) or not isinstance(inputs, (tuple, list)) or not inputs:
        raise ValueError(f"inputs={inputs!r}: name forward's arguments in its order, e.g. inputs=('a', 'b')")
    names = tuple(inputs)
    if not declares_shapes(kind):
        if names != ("input",):
            raise ValueError(f"inputs= is for a 'function' layer; a {kind!r} layer takes one input: drop inputs=")
        return names
    bad = [n for n in names if not isinstance(n, str) or not n.isidentifier() or keyword.iskeyword(n)]
    if bad:
        raise ValueError(f"inputs names {bad[0]!r}, not a Python identifier: name each input like forward's argument")
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ValueError(f"inputs names {twice[0]!r} twice: each input needs a name of its own")
    taken = [n for n in names if n == "output" or n in params]
    if taken:
        what = "the output's name in shapes=" if taken[0] == "output" else "also a parameter's name (params=)"
        raise ValueError(f"inputs names {taken[0]!r}, which is {what}: rename the input")
    return names


def _require_shapes(
    kind: str, shapes: Mapping[str, object] | None, params: Mapping[str, object], inputs: tuple[str, ...] = ("input",)
) -> dict[str, tuple[int, ...]] | None:
    """The declared shapes as {array: tuple of ints}, for a kind that declares them (checks.kinds.DECLARED_SHAPES):
    every input (``inputs``), "output" and exactly the declared parameters, every size a positive int (the output may
    be 0-d); ValueError naming what to write otherwise. None for a kind whose shapes are drawn (which may not declare
    any)."""
    from checks.kinds import declares_shapes

    if not declares_shapes(kind):
        if shapes is not None:
            raise ValueError(f"a {kind!r} layer's shapes are drawn, not declared; drop shapes=")
        return None
    wanted = [*inputs, "output", *params]
    example = ", ".join(f"{n!r}: (...)" for n in wanted)
    if not isinstance(shapes, Mapping) or set(shapes) != set(wanted):
        got = "nothing" if shapes is None else sorted(map(str, shapes)) if isinstance(shapes, Mapping) else shapes
        raise ValueError(f"a {kind!r} layer needs its shapes declared, LayerSpec(shapes={{{example}}}); got {got}")
    out: dict[str, tuple[int, ...]] = {}
    for name in wanted:
        value = shapes[name]
        sizes = tuple(value) if isinstance(value, (tuple, list)) else None
        if sizes is None or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 1 for n in sizes):
            raise ValueError(f"shapes[{name!r}] = {value!r}: expected a tuple of positive ints")
        if not sizes and name != "output":
            raise ValueError(f"shapes[{name!r}] = (): only the output may be a scalar")
        out[name] = sizes
    return out


def _bound(name: str, value: object) -> object:
    """A Supports field from JSON: ints, [min, max] pairs (as tuples), bools, None, "kernel", dtype names; the
    float fields (alpha, eps, p) a number or a [min, max] pair of numbers; reduction a name or a list of names."""
    if name in FLOAT_FIELDS:
        return _number_bound(name, value)
    if name == "reduction":
        return _reduction(value)
    if isinstance(value, list):
        if name == "dtypes":
            if not value or not all(v in ("float32", "float64") for v in value):
                raise ValueError(f"dtypes={tuple(value)!r}: expected one or more of 'float32', 'float64'")
            return tuple(value)
        if len(value) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            raise ValueError(f"{name}={value!r}")
        return tuple(value)
    if value is None or isinstance(value, (bool, int)) or value == "kernel":
        return value
    if name == "padding" and value in ("same", "valid"):
        return value
    raise ValueError(f"{name}={value!r}")


FLOAT_FIELDS = ("alpha", "eps", "p")
"""The Supports fields whose bounds are real numbers, not ints."""
REDUCTIONS = ("mean", "sum")


def _reduction(value: object) -> object:
    """A loss's reduction from JSON: "mean" or "sum", or a list of them (as a tuple)."""
    names = value if isinstance(value, list) else [value]
    if not names or not all(isinstance(v, str) and v in REDUCTIONS for v in names):
        raise ValueError(f"reduction={value!r}")
    return tuple(names) if isinstance(value, list) else value


def _number_bound(name: str, value: object) -> object:
    """A float field's bound from JSON: a number, or a [min, max] pair of numbers (as a tuple); no bools."""

    def number(v: object) -> bool:
        return isinstance(v, (int, float)) and not isinstance(v, bool)

    if number(value):
        return value
    if isinstance(value, list) and len(value) == 2 and all(number(v) for v in value):
        return tuple(value)
    raise ValueError(f"{name}={value!r}")


class RecordingOptimizer:
    """Stands in for the layer's optimizer: ``update(param, grad)`` records grad by the param's identity."""

    def __init__(self) -> None:
        self.seen: list[tuple[object, np.ndarray]] = []

    def update(self, param: object, grad: np.ndarray, *args: object, **kwargs: object) -> None:
        self.seen.append((param, np.array(grad, copy=True)))

    step = apply = update

    def grad_for(self, param: object) -> np.ndarray | None:
        for p, g in reversed(self.seen):
            if p is param:
                return g
        return None


class ClassSubject:
    """A LayerSpec bound to one case: the canonical forward/backward the pipeline calls."""

    def __init__(self, spec: LayerSpec, case: Case) -> None:
        self.spec, self.case = spec, case
        self.layer = spec.build(case.geometry)
        self.shapes = self._user_shapes()
        self._installed: dict[str, np.ndarray] = {}
        self.raw: dict[str, object] = {}
        """The last backward's gradients exactly as the layer returned them (before any layout mapping)."""

    def _user_shapes(self) -> str:
        """The case's arrays as the layer sees them, for fault messages: its layout, its attribute names
        ("input (5, 5, 1), filters (8, 3, 3)"), falling back to the canonical shape where none is known."""
        parts = []
        for name, value in self.case.inputs.items():
            label, shape = name, value.shape
            try:
                if name == "input":
                    shape = layouts.to_user(value, self.spec.input_layout).shape
                elif name in self.spec.params:
                    label, shape = self.spec.params[name].attr, self._to_user_param(name, value).shape
            except Exception:  # noqa: BLE001 - a layer whose attributes cannot be read: the canonical shape
                pass
            parts.append(f"{label} {tuple(shape)}")
        return ", ".join(parts)

    @property
    def learning_rate(self) -> float | None:
        """The learning rate backward is handed (``spec.lr_argument``), else the layer's own at ``spec.lr_attr``
        when it has a number there."""
        if self.spec.lr_argument is not None:
            return float(self.spec.lr_argument)
        try:
            return float(paths.resolve(self.layer, self.spec.lr_attr))  # type: ignore[arg-type]
        except Exception:  # no such attribute, or not a number: no lr to quote
            return None

    # -- parameters ------------------------------------------------------------------------------
    def _to_user_param(self, name: str, value: np.ndarray) -> np.ndarray:
        param = self.spec.params[name]
        if param.layout is not None:
            return layouts.weight_to_user(value, param.layout)
        current = paths.resolve(self.layer, param.attr) if paths.exists(self.layer, param.attr) else None
        shape = np.shape(current) if current is not None and np.size(current) == value.size else value.shape
        return np.ascontiguousarray(value.reshape(shape))

    def _to_canonical_grad(self, name: str, grad: object) -> np.ndarray:
        expected = self.case.inputs[name].shape
        if grad is None:
            raise LayerFault("backward", f"no gradient for {name!r} was found", self.shapes, cause=Cause.MISSING)
        array = np.asarray(grad)
        param = self.spec.params[name]
        try:
            if param.layout is not None:
                return layouts.weight_to_canonical(array, param.layout)
        except ValueError as exc:
            raise LayerFault("backward", f"gradient for {name!r}: {exc}", self.shapes, cause=Cause.SHAPE) from None
        if array.size != int(np.prod(expected)):
            raise LayerFault(
                "backward",
                f"gradient for {name!r} has shape {array.shape}, expected {expected} entries in any shape",
                self.shapes,
                cause=Cause.SHAPE,
                actual_shape=array.shape,
            )
        return array.reshape(expected)

    def _install(self, inputs: Mapping[str, np.ndarray]) -> None:
        for name in self.spec.params:
            if name in inputs:
                value = self._to_user_param(name, inputs[name]).astype(self.case.dtype, copy=True)
                paths.assign(self.layer, self.spec.params[name].attr, value)
                self._installed[name] = value.copy()

    def _restore(self) -> None:
        for name, value in self._installed.items():
            paths.assign(self.layer, self.spec.params[name].attr, value.copy())

    # -- calls -----------------------------------------------------------------------------------
    def _call(self, method: str, *args: object) -> object:
        fn = getattr(self.layer, method, None)
        if not callable(fn):
            raise LayerFault("adapt", f"the layer has no method {method!r}", self.shapes, cause=Cause.ADAPT)
        return fn(*args)

    def forward(self, inputs: Mapping[str, np.ndarray]) -> np.ndarray:
        # forward(x), or a function layer's forward(a, b, ...) in the order its spec names them (spec.inputs)
        names = self.spec.inputs
        xs = [layouts.to_user(inputs[n], self.spec.input_layout).astype(self.case.dtype, copy=False) for n in names]
        if any(not paths.exists(self.layer, p.attr) for p in self.spec.params.values()):
            self._call(self.spec.forward_method, *(x.copy() for x in xs))  # a lazy layer creates its parameters now
        self._install(inputs)
        befores = [x.copy() for x in xs]
        # a loss is called forward(scores, labels): the case's labels are the second argument
        labels = () if self.case.labels is None else (np.array(self.case.labels, copy=True),)
        y = self._call(self.spec.forward_method, *xs, *labels)
        for name, x, before in zip(names, xs, befores, strict=True):
            _mirror_writes(x, before, inputs[name], self.spec.input_layout)
        return self._canonical(y, self.spec.out_layout, self.case.geometry.output_shape, "forward", "output")

    @property
    def has_reference(self) -> bool:
        return self.spec.reference is not None

    def reference(self, inputs: Mapping[str, np.ndarray]) -> np.ndarray:
        """Z of the spec's own reference forward at copies of ``inputs`` (a declared-shape layer: its arrays are
        as declared, so no layout is mapped); its dtype is its own (a float64 NumPy reference is fine)."""
        if self.spec.reference is None:
            raise LayerFault("reference forward", "no reference forward was declared", self.shapes, cause=Cause.ADAPT)
        z = self.spec.reference({k: np.array(v, copy=True) for k, v in inputs.items()})
        return self._canonical(z, "ND", self.case.geometry.output_shape, "reference forward", "reference output")

    def _canonical(self, y: object, layout: str, canonical_shape: tuple, stage: str, what: str) -> np.ndarray:
        if not isinstance(y, np.ndarray):
            if y is None:
                raise LayerFault(stage, f"returned None instead of the {what}", self.shapes, cause=Cause.TYPE)
            if isinstance(y, (tuple, list)):
                raise LayerFault(
                    stage,
                    f"returned a {type(y).__name__} of length {len(y)} instead of the {what} array",
                    self.shapes,
                    cause=Cause.TYPE,
                )
            if not np.isscalar(y):
                detail = f"returned {type(y).__name__} instead of an ndarray {what}"
                raise LayerFault(stage, detail, self.shapes, cause=Cause.TYPE)
            y = np.asarray(y)
        expected = layouts.to_user(np.empty(canonical_shape), layout).shape
        if y.shape != expected:
            detail = f"{what} has shape {y.shape}, expected {expected} (layout {layout})"
            raise LayerFault(stage, detail, self.shapes, cause=Cause.SHAPE, actual_shape=y.shape)
        return layouts.to_canonical(y, layout)

    def backward(self, upstream: np.ndarray) -> dict[str, np.ndarray]:
        spec = self.spec
        g = layouts.to_user(upstream, spec.out_layout).astype(self.case.dtype, copy=False)
        self._reset()
        recorder = None
        if spec.gradients == "optimizer":
            recorder = RecordingOptimizer()
            paths.assign(self.layer, spec.optimizer_attr, recorder)
        before = {n: np.array(paths.resolve(self.layer, p.attr), copy=True) for n, p in spec.params.items()}
        live = {n: paths.resolve(self.layer, p.attr) for n, p in spec.params.items()}
        g_before = g.copy()
        self.raw = {}
        try:
            lr = () if spec.lr_argument is None else (spec.lr_argument,)
            result = self._call(spec.backward_method, g, *lr)
            _mirror_writes(g, g_before, upstream, spec.out_layout)
            grads = self._read(result, before, live, recorder)
        finally:
            self._restore()
        return grads

    def _reset(self) -> None:
        reset = self.spec.reset
        if reset is None:
            return
        if reset == "zero":
            for p in self.spec.params.values():
                if p.grad and paths.exists(self.layer, p.grad):
                    paths.assign(self.layer, p.grad, np.zeros_like(np.asarray(paths.resolve(self.layer, p.grad))))
        else:
            self._call(reset)

    def _read(
        self, result: object, before: dict, live: dict, recorder: RecordingOptimizer | None
    ) -> dict[str, np.ndarray]:
        spec = self.spec
        grads: dict[str, np.ndarray] = {}
        dx = result
        if spec.gradients == "returned":
            if not isinstance(result, (tuple, list)) or len(result) != 2:
                raise LayerFault(
                    "backward",
                    f"expected (dX, [parameter gradients]) from backward, got {_describe(result)}",
                    self.shapes,
                    cause=Cause.TYPE,
                )
            dx, returned = result
            if not isinstance(returned, (tuple, list)) or len(returned) != len(spec.params):
                raise LayerFault(
                    "backward",
                    f"expected {len(spec.params)} parameter gradients, got {_describe(returned)}",
                    self.shapes,
                    cause=Cause.TYPE,
                )
            raw = dict(zip(spec.params, returned, strict=True))
        elif spec.gradients == "attributes":
            raw = {}
            for name, p in spec.params.items():
                if not p.grad:
                    raise LayerFault(
                        "adapt", f"Param for {name!r} names no grad attribute", self.shapes, cause=Cause.ADAPT
                    )
                try:
                    raw[name] = paths.resolve(self.layer, p.grad)
                except (AttributeError, KeyError, IndexError, TypeError) as exc:
                    raise LayerFault(
                        "backward",
                        f"gradient {p.grad!r} not found on the layer ({type(exc).__name__}: {exc})",
                        self.shapes,
                        cause=Cause.MISSING,
                    ) from None
        elif spec.gradients == "optimizer":
            raw = {name: recorder.grad_for(live[name]) for name in spec.params}  # type: ignore[union-attr]
        else:
            raw = self._sgd_gradients(before)
        self.raw = {name: _array_or_none(value) for name, value in raw.items()}
        if spec.returns_input_grad and len(spec.inputs) > 1:
            grads.update(self._input_grads(dx))
        elif spec.returns_input_grad:
            self.raw[spec.inputs[0]] = _array_or_none(dx)
        # A gradient that cannot be read is reported against that gradient alone (as a LayerFault
        # value), so a layer whose backward returns None can still be judged on its weights.
        if spec.returns_input_grad and len(spec.inputs) == 1:
            name = spec.inputs[0]
            shape = self.case.geometry.input_shape if name == "input" else self.case.inputs[name].shape
            grads[name] = _or_fault(lambda: self._canonical(dx, spec.input_layout, shape, "backward", "input gradient"))
        for name in spec.params:
            if name in self.case.inputs:
                grads[name] = _or_fault(lambda name=name: self._to_canonical_grad(name, raw.get(name)))
        return grads

    def _input_grads(self, returned: object) -> dict[str, np.ndarray | LayerFault]:
        """The input gradients of a layer of several inputs: backward returns (dA, dB, ...) in the order forward
        takes (A, B, ...). Anything else (one array, a tuple of another length) is a fault of every input's
        gradient, saying what came back; a gradient of another input's shape says whose shape it has."""
        names = self.spec.inputs
        order = f"({', '.join('d' + n for n in names)})"
        if not isinstance(returned, (tuple, list)) or len(returned) != len(names):
            detail = (
                f"returned {_describe(returned)}; a layer of {len(names)} inputs returns their gradients as a tuple "
                f"{order}, in the order forward takes them"
            )
            fault = LayerFault("backward", detail, self.shapes, cause=Cause.TYPE)
            return dict.fromkeys(names, fault)
        out: dict[str, np.ndarray | LayerFault] = {}
        # the order is blamed only when the returned shapes are the inputs' shapes in another order
        got = [getattr(v, "shape", None) for v in returned]
        wanted = [self.case.inputs[n].shape for n in names]
        reordered = got != wanted and sorted(map(str, got)) == sorted(map(str, wanted))
        for name, value in zip(names, returned, strict=True):
            self.raw[name] = _array_or_none(value)
            out[name] = _or_fault(lambda name=name, value=value: self._input_grad(name, value, order, reordered))
        return out

    def _input_grad(self, name: str, value: object, order: str, reordered: bool = False) -> np.ndarray:
        """Input ``name``'s gradient as returned, checked like dX (an array of its declared shape); ``reordered``:
        the returned shapes are the inputs' in another order, so a shape that is another input's names it."""
        expected = self.case.inputs[name].shape
        shape = value.shape if isinstance(value, np.ndarray) else None
        whose = [n for n in self.spec.inputs if n != name and self.case.inputs[n].shape == shape]
        if reordered and shape is not None and shape != expected and whose:  # shown: another input's shape
            detail = (
                f"gradient for {name!r} has shape {shape}, expected {expected}; that is the shape of {whose[0]!r}: "
                f"backward returns {order} in the order forward takes the inputs"
            )
            raise LayerFault("backward", detail, self.shapes, cause=Cause.SHAPE, actual_shape=shape)
        return self._canonical(value, self.spec.input_layout, expected, "backward", f"gradient for {name!r}")

    def _sgd_gradients(self, before: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """g = (W_before - W_after) / lr, from the step the layer took inside backward (with the lr it was
        handed, or its own)."""
        lr = self.spec.lr_argument
        try:
            lr = float(paths.resolve(self.layer, self.spec.lr_attr) if lr is None else lr)  # type: ignore[arg-type]
        except (AttributeError, KeyError, IndexError, TypeError, ValueError):
            raise LayerFault(
                "adapt",
                f"gradients='sgd' needs a learning rate at {self.spec.lr_attr!r}",
                self.shapes,
                cause=Cause.ADAPT,
            ) from None
        if lr == 0:
            detail = "the layer's learning rate is 0: no step to recover a gradient from"
            raise LayerFault("adapt", detail, self.shapes, cause=Cause.ADAPT)
        out = {}
        for name, p in self.spec.params.items():
            after = np.asarray(paths.resolve(self.layer, p.attr), dtype=np.float64)
            if after.shape != before[name].shape:
                raise LayerFault(
                    "backward",
                    f"parameter {p.attr!r} changed shape from {before[name].shape} to {after.shape}",
                    self.shapes,
                    cause=Cause.SHAPE,
                )
            out[name] = ((before[name].astype(np.float64) - after) / lr).astype(self.case.dtype)
        return out


def _array_or_none(value: object) -> np.ndarray | None:
    try:
        return None if value is None else np.array(value, copy=True)
    except Exception:  # something no array can be made of: nothing raw to show
        return None


def _mirror_writes(user: np.ndarray, before: np.ndarray, canonical: np.ndarray, layout: str) -> None:
    """The layer got a copy in its own layout; if it wrote into it, write the same change into the
    caller's canonical array, so no_mutation sees it whatever the layout."""
    if not np.array_equal(user, before, equal_nan=True) and isinstance(canonical, np.ndarray):
        try:
            canonical[...] = layouts.to_canonical(user, layout)
        except (ValueError, TypeError):
            pass  # the layer changed the array's shape: no_mutation still sees the values differ


def _or_fault(read: Callable[[], np.ndarray]) -> np.ndarray | LayerFault:
    try:
        return read()
    except LayerFault as fault:
        return fault


def _describe(value: object) -> str:
    if isinstance(value, (tuple, list)):
        return f"a {type(value).__name__} of length {len(value)}"
    if isinstance(value, np.ndarray):
        return f"an array of shape {value.shape}"
    return type(value).__name__
