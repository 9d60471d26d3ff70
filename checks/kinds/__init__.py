"""Layer kinds: everything the checker knows about one kind of layer, one record (``Kind``) in one module.

A kind module reads top to bottom like an op in a small autograd library: the reference forward with
the places it is not differentiable (kink sites), its torch twin, the geometries it is drawn on, its
canonical layouts and axis letters, how a gradient at a kink is judged (subgradient membership), the
regions a wrong gradient can be confined to, and the known mistakes people make in its backward.
Adding a kind is adding a module here (and its name to NAMES) plus its tests.

This file is standard library only: ``cnn-gradcheck --help`` reads NAMES and must not pay for numpy.
The kind modules are imported on first ``get``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

    from checks.case import Case
    from checks.compare import Membership
    from checks.subject import Subject

NAMES = (
    "conv",
    "maxpool",
    "relu",
    "dense",
    "flatten",
    "sigmoid",
    "tanh",
    "leaky_relu",
    "softmax",
    "avgpool",
    "batchnorm",
    "dropout",
    "softmax_ce",
    "svm_loss",
    "dense+softmax",
    "function",
    "network",
)
"""Every kind the pipeline knows, in the order reports and tables list them."""
USER_NAMES = tuple(name for name in NAMES if name != "network")
"""The kinds a user's layer can be checked as (``--kind``); the network is internal (it exercises the oracles)."""

PARAMS = {
    "conv": ("weight", "bias"),
    "dense": ("weight", "bias"),
    "batchnorm": ("gamma", "beta"),
    "dense+softmax": ("weight", "bias"),
}
"""Kind -> the parameters a layer of that kind may declare (``LayerSpec.params``); a kind not listed has none.
Here, in the standard-library registry, so that the user's side can check a declaration without loading a kind."""


ANY_PARAMS = ("function",)
"""Kinds whose parameters are whatever the LayerSpec names (a layer of any computation)."""
DECLARED_SHAPES = ("function",)
"""Kinds whose geometry is not drawn but declared (``LayerSpec.shapes``): the checker cannot know its shapes."""


def params(kind: str) -> tuple[str, ...]:
    """The parameter names a layer of ``kind`` may declare (see PARAMS; a kind in ANY_PARAMS: see any_params)."""
    return PARAMS.get(kind, ())


def any_params(kind: str) -> bool:
    """Whether a layer of ``kind`` may declare parameters of any name (ANY_PARAMS)."""
    return kind in ANY_PARAMS


def declares_shapes(kind: str) -> bool:
    """Whether a layer of ``kind`` must declare its shapes (DECLARED_SHAPES) instead of having them drawn."""
    return kind in DECLARED_SHAPES


LETTER_FIELDS = {"n": "batch", "c": "channels", "f": "filters", "m": "out_features"}
"""Canonical axis letter -> the ``Supports`` field that sizes it (a layout that fixes the axis at 1 fixes
the field at 1)."""

Grads = dict[str, "np.ndarray"]


def _always(case: Case) -> bool:
    return True


@dataclass(frozen=True)
class OwnOutput:
    """How a kind whose forward depends on the layer's own hidden choice (dropout: its mask) is judged from the
    layer's own forward output Z instead of a twin of ours.

    forward(inputs, geometry, z, tol) -> Membership: is Z an output of this kind at all (dropout: Z / X takes
    only 0 and one scale where X != 0). gradient(inputs, geometry, upstream, z, grad, tol) -> Membership: the
    verdict on dL/dX given the Z of the same call (it replaces torch and the reference for dL/dX). notes(inputs,
    z) -> {key: array}: what the reference layer needs to reproduce that choice (read by ``reference_layer`` from
    ``Case.notes``, so that an explanation compares with the layer's own choice). fix: how to make a layer whose
    output changes between two forwards on the same input reproducible (said when determinism fails)."""

    forward: Callable[..., Membership]
    gradient: Callable[..., Membership]
    notes: Callable[..., dict[str, Any]]
    fix: str


@dataclass(frozen=True)
class Mistake:
    """A known backward-pass mistake, as the wrong gradient(s) it produces in canonical layout.

    name: a stable key (docs/report-schema.md); gradient: the gradient it is filed under; explanation:
    what went wrong, one line; formula: the right formula; wrong(case, correct) -> {name: wrong gradient}
    for every gradient it changes (the others stay correct); applies(case): whether it is visible in
    this case at all; also: further forms of the same mistake (another way to write the same bug);
    same(wrong, layer): how the layer's raw value is matched against a wrong gradient when "equal
    within the exact tolerance" is not the right test (an empty crop matches any empty array);
    kind: set by the registry."""

    name: str
    gradient: str
    explanation: str
    formula: str
    wrong: Callable[[Case, Grads], Grads]
    applies: Callable[[Case], bool] = _always
    also: tuple[Callable[[Case, Grads], Grads], ...] = ()
    same: Callable[[Any, Any], bool] | None = None
    kind: str = ""

    @property
    def forms(self) -> tuple[Callable[[Case, Grads], Grads], ...]:
        return (self.wrong, *self.also)


Region = tuple[str, "np.ndarray | None", str]
"""(pattern name, canonical mask of the region, text): where a wrong gradient may be confined."""


@dataclass(frozen=True)
class Kind:
    """One kind of layer (see the module docstring). Arrays are canonical: NCHW activations, conv
    weights (F, C, kh, kw), dense weights (D, M).

    - geometry: its geometry type (checks.geometry); default_geometries(): its strategy with default bounds.
    - forward(geometry, arrays, labels) -> (Z, kink sites): the reference, in numpy through cnn/; None for a
      kind with no reference (``function``: only the layer's own forward, differenced).
    - torch(F, geometry, tensors, labels) -> Z: the same computation in torch.nn.functional; None: no twin.
    - reference_layer(case) -> Subject: our own layer from cnn/, for the meta tests and the mistakes.
    - modes: the value modes a check of a user's layer draws from (checks.strategies.MODES).
    - axes: canonical axis letters per array ("input", "output" and each parameter); "*" stands for any
      number of further axes. layouts: the canonical layout name per array (checks.adapt.layouts), None
      for an array kept in whatever shape the layer holds it (biases).
    - user_geometries(supports, input_layout) -> strategy: geometries inside what a user's layer
      supports; None for kinds a user's layer cannot be checked as. corner(supports) -> supports: the
      part of the supports where the classic bugs of this kind show.
    - membership(inputs, geometry, upstream, grad, probe, tol) -> Membership: the verdict on dL/dX at an
      exact kink (probe(G') reruns the layer's backward at another upstream gradient; a case with labels, a
      loss's, passes them too as ``labels=``); None for kinds without kinks in their input.
    - hidden_kinks: kinks sit inside the computation, not at its input (a network), so at a tie the
      exact oracle's gradient is only one valid choice.
    - curved: the function is not piecewise linear (softmax): finite differences take an absolute step.
    - regions(case, name) -> [Region]: regions a mismatch of gradient ``name`` may be confined to.
    - mistakes: the known mistakes of this kind's backward.
    - fd_truncation(inputs, geometry, upstream, name, h) -> per-entry bound on the truncation error of a central
      difference of step h for gradient ``name`` (a curved kind whose third derivative has a closed form: batch
      norm); None where rounding dominates it.
    - own_output: how a kind whose output rests on the layer's own hidden choice (dropout's mask) is judged from
      the layer's output (OwnOutput); None for every kind our twins compute in full.
    - declared(shapes, params, inputs) -> geometry: the one geometry of a kind whose shapes the LayerSpec declares
      (``function``); None for kinds whose geometries are drawn.
    - blind_fd(loss, inputs, name, tol, dtype, rng) -> FDGradient | FDDirectional: finite differences for a kind
      whose kinks are invisible to us (no reference, so no kink sites): an entry or direction is trusted only
      where steps h and h/2 agree and the one-sided differences do not jump; None: the usual differences.
    - candidates(a, z, params, canonical) -> iterator of checks.kinds.fit.Candidate: the geometries and layouts
      under which a layer met in a user's network, with input a, output z and parameters params, could be this
      kind (checks.pipeline.composed keeps the first whose reference forward reproduces z); None: never tried.
    - torch_tiebreak(F, geometry, tensors) -> Z: the torch twin with the other choice at its kinks (the last
      maximum of a tied window, slope 1 at 0); None for a kind without kinks.
    - params (a property): the parameters a layer of this kind may declare (PARAMS).
    """

    name: str
    geometry: type
    forward: Callable[..., tuple[Any, list]] | None
    torch: Callable[..., Any] | None
    reference_layer: Callable[[Case], Subject]
    default_geometries: Callable[..., Any]
    axes: Mapping[str, str]
    layouts: Mapping[str, str | None]
    modes: tuple[str, ...] = ("separated",)
    user_geometries: Callable[[Any, str], Any] | None = None
    corner: Callable[[Any], Any] | None = None
    membership: Callable[..., Membership] | None = None
    hidden_kinks: bool = False
    curved: bool = False
    regions: Callable[[Case, str], list[Region]] | None = None
    mistakes: tuple[Mistake, ...] = field(default=())
    fd_truncation: Callable[..., Any] | None = None
    own_output: OwnOutput | None = None
    declared: Callable[..., Any] | None = None
    blind_fd: Callable[..., Any] | None = None
    candidates: Callable[..., Any] | None = None
    torch_tiebreak: Callable[..., Any] | None = None

    @property
    def params(self) -> tuple[str, ...]:
        return params(self.name)

    def letters(self, array: str, ndim: int) -> str | None:
        """The canonical axis letters of ``array`` at rank ``ndim``, or None. A pattern may list
        alternatives ("nd|n*", the first that fits wins); a trailing "*" stands for further axes, named
        i, j, k, l."""
        for pattern in self.axes.get(array, "").split("|") if array in self.axes else ():
            if pattern.endswith("*"):
                extra = ndim - len(pattern) + 1
                if 0 <= extra <= 4:
                    return pattern[:-1] + "ijkl"[:extra]
            elif len(pattern) == ndim:
                return pattern
        return None


_MODULES = {name: f"checks.kinds.{name.replace('+', '_')}" for name in NAMES}
"""Kind name -> its module; a fused kind's "+" is "_" in the module's name (dense+softmax: dense_softmax)."""


def get(name: str) -> Kind:
    """The Kind record named ``name`` (ValueError naming the known kinds otherwise)."""
    if name not in _MODULES:
        raise ValueError(f"unknown layer kind {name!r}; known: {', '.join(NAMES)}")
    return importlib.import_module(_MODULES[name]).KIND


def all_kinds() -> list[Kind]:
    return [get(name) for name in NAMES]


def reference_subject(case: Case) -> Subject:
    """Our own layer from cnn/ for the case's kind and geometry (its parameters come from the case)."""
    return get(case.kind).reference_layer(case)


def mistakes() -> list[Mistake]:
    """Every kind's known mistakes, in NAMES order: the one catalogue the meta tests and the diagnosis read."""
    return [m for kind in all_kinds() for m in kind.mistakes]


def by_name(name: str) -> Mistake:
    for m in mistakes():
        if m.name == name:
            return m
    raise KeyError(f"no mistake named {name!r}; known: {[m.name for m in mistakes()]}")


def catalogue(kind: str, *entries: Mistake) -> tuple[Mistake, ...]:
    """A kind module's mistakes, each stamped with the kind's name."""
    from dataclasses import replace

    return tuple(replace(m, kind=kind) for m in entries)
