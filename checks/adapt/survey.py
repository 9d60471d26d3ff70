"""Point at a file: the layers a module defines and, for each, the kinds and conventions it may be checked as,
guessed from its name and its signatures. Runs in the worker (it imports the user's module); nothing of the
user's is called here but the import. The checker then confirms a guess by checking the layer's forward against
the kind's reference (checks.infer): a guess is never the verdict.

Standard library only (plus what checks.adapt.targets and presets import): this module runs in the worker.
"""

from __future__ import annotations

import inspect
import re
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

NAME_HINTS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (r"leaky", ("leaky_relu",)),
    (r"relu", ("relu", "leaky_relu")),
    (r"sigmoid|logistic", ("sigmoid",)),
    (r"tanh", ("tanh",)),
    (r"avg|average|mean.?pool", ("avgpool",)),
    (r"pool", ("maxpool", "avgpool")),
    (r"conv", ("conv",)),
    (r"dense|fully.?connected|linear|affine|^fc|fc$", ("dense",)),
    (r"softmax", ("softmax",)),
    (r"flatten", ("flatten",)),
)
"""A class name (lower case) -> the kinds it suggests, in order; the first hints found come first."""

CLASS_PRESETS: dict[str, tuple[str, ...]] = {
    "seed": ("conv", "maxpool", "relu", "dense", "dense+softmax"),
    "nchw": ("conv", "maxpool", "relu", "dense", "flatten", "sigmoid", "tanh", "softmax", "avgpool", "dense+softmax"),
}
"""The kinds each class preset can drive (checks.adapt.presets)."""

SIGNATURE_HINTS: tuple[tuple[tuple[str, ...], tuple[str, ...]], ...] = (
    (("num_filters", "n_filters", "filter_size", "out_channels", "kernel_size", "num_kernels"), ("conv",)),
    (
        ("input_size", "num_classes", "in_features", "out_features", "input_dim", "output_dim", "input_len", "nodes"),
        ("dense",),
    ),
    (("size", "pool_size", "pool", "window"), ("maxpool", "avgpool")),
)
"""Constructor argument names -> the kinds they suggest; a constructor without arguments suggests an activation."""
FUSED_HINTS: tuple[tuple[str, str, str], ...] = (("softmax", "dense", "dense+softmax"),)
"""(kind the name suggests, kind the constructor suggests, the fused kind guessed before both): a class named
Softmax built as Softmax(input_len, nodes) holds a dense layer's weights, so it is first guessed as the two."""
_SEED_ARGS = (
    "num_filters",
    "filter_size",
    "input_size",
    "input_len",
    "num_classes",
    "nodes",
    "size",
    "lr",
    "learning_rate",
)
MAX_GUESSES = 4
"""How many (kind, preset) guesses the checker may confirm for a class its name says nothing about."""


@dataclass(frozen=True)
class Found:
    """A layer of the module: ``name`` ("" for the module's function pairs), the (kind, preset) guesses in
    order (preset None: a LayerSpec, used as it is), and ``why``: what the guesses rest on, in a few words."""

    name: str
    guesses: tuple[tuple[str, str | None], ...]
    why: str

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "guesses": [list(g) for g in self.guesses], "why": self.why}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Found:
        guesses = tuple((str(k), None if p is None else str(p)) for k, p in data["guesses"])
        return cls(str(data["name"]), guesses, str(data["why"]))


def name_kinds(name: str) -> list[str]:
    """The kinds a class name suggests, in the order of NAME_HINTS."""
    lowered = name.lower()
    kinds: list[str] = []
    for pattern, suggested in NAME_HINTS:
        if re.search(pattern, lowered):
            kinds += [k for k in suggested if k not in kinds]
    return kinds


def _arg_names(cls: type) -> list[str]:
    try:
        return [p for p in inspect.signature(cls).parameters if p not in ("self", "args", "kwargs")]
    except (TypeError, ValueError):  # a builtin or a class whose signature cannot be read
        return []


def class_guesses(cls: type) -> tuple[list[tuple[str, str]], str]:
    """(kind, preset) guesses for a class, and what they rest on."""
    args = _arg_names(cls)
    hinted = name_kinds(cls.__name__)
    seed_like = any(a in _SEED_ARGS for a in args) or not args
    presets = ("seed", "nchw") if seed_like else ("nchw", "seed")
    signed = signature_kinds(args)
    fused = [f for named, built, f in FUSED_HINTS if named in hinted and built in signed]
    kinds = fused + hinted + [k for k in signed if k not in hinted]
    guesses = [(k, p) for k in kinds for p in presets if k in CLASS_PRESETS[p]]
    basis = f"name {cls.__name__}" if hinted else "no kind in its name"
    basis += f", constructor ({', '.join(args)})" if args else ", constructor ()"
    return (guesses if hinted else guesses[:MAX_GUESSES]), basis


def signature_kinds(args: list[str]) -> list[str]:
    """The kinds constructor arguments suggest (SIGNATURE_HINTS); none at all suggests an activation."""
    if not args:
        return ["relu", "sigmoid", "tanh", "softmax"]
    kinds: list[str] = []
    for names, suggested in SIGNATURE_HINTS:
        if any(a in names for a in args):
            kinds += [k for k in suggested if k not in kinds]
    return kinds


def survey(module: ModuleType, location: str) -> list[Found]:
    """Every layer ``module`` defines: its LayerSpecs, its classes with a forward and a backward-like method
    (by any of the names the presets accept), and its CS231n-style function pairs, one entry per kind."""
    from checks.adapt.adapters import LayerSpec
    from checks.adapt.targets import pair_kinds

    found: list[Found] = []
    for attr, value in vars(module).items():
        if attr.startswith("_"):
            continue
        if isinstance(value, LayerSpec):
            found.append(Found(attr, ((value.kind, None),), "a LayerSpec"))
        elif isinstance(value, type) and getattr(value, "__module__", None) == module.__name__:
            if _has_layer_methods(value):  # a layer even when nothing suggests its kind: listed, to be declared
                guesses, why = class_guesses(value)
                found.append(Found(attr, tuple(guesses), why))
    kinds = pair_kinds(module)
    if kinds:
        found += [Found("", ((k, "function_pair"),), f"{k} function pair in {Path(location).name}") for k in kinds]
    return found


FORWARD_NAMES = ("forward", "forward_prop", "forward_pass", "__call__")
BACKWARD_NAMES = ("backward", "backprop", "back_prop", "backward_pass", "backward_prop")


def _has_layer_methods(cls: type) -> bool:
    has_forward = any(callable(getattr(cls, n, None)) for n in FORWARD_NAMES if n != "__call__")
    has_backward = any(callable(getattr(cls, n, None)) for n in BACKWARD_NAMES)
    return has_forward and has_backward
