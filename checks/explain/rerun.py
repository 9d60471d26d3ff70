"""How to rerun a failure: a Python snippet that rebuilds the minimal case, and ``reproduce`` that runs it.

``snippet(target, spec, case, name)`` writes the case's arrays exactly (shortest round-trip digits) and
a call ``reproduce("path.py:Name", case, kind=..., preset=..., options=..., gradient=...)`` built from
where the spec came from (``LayerSpec.origin``); a spec with no known origin (one written in a notebook)
gets ``reproduce(spec, case, ...)`` with a line asking for it. ``reproduce`` runs the layer on the case
through the same adapters and prints its gradient next to the expected one, in the layer's own layout,
with the checker's own verdict on it. Emitted snippets import it as ``checks.explain.reproduce``.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path

import numpy as np

from checks import kinds
from checks.adapt import layouts, targets
from checks.adapt.adapters import LayerSpec
from checks.case import Case
from checks.explain.where import expected_grads, layer_value, layout_of
from checks.pipeline import properties
from checks.pipeline.trial import Options, Trial

__all__ = ["as_case", "reproduce", "snippet"]


def _literal(a: np.ndarray, indent: str) -> str:
    """``np.array(...)`` that rebuilds ``a`` exactly (shortest round-trip digits), continuation lines aligned."""
    prefix = f"{indent}np.array("
    body = np.array2string(
        a, separator=", ", floatmode="unique", threshold=sys.maxsize, max_line_width=110, prefix=prefix
    )
    dtype = "" if a.dtype == np.float64 else f", dtype=np.{a.dtype}"
    return f"np.array({body}{dtype})"


def _shown_target(spec: LayerSpec | None, target: str) -> str | None:
    """The TARGET text that loads the spec again from the current directory, if it is known."""
    origin = getattr(spec, "origin", None)
    text = origin.target if origin is not None else target if ".py:" in (target or "") else None
    if text is None:
        return None
    parsed = targets.parse(text)
    root = origin.root if origin is not None else None
    if not parsed.is_file or root is None or Path(parsed.location).is_absolute():
        return text
    path = Path(root) / parsed.location
    relative = os.path.relpath(path)
    shown = relative if not relative.startswith("..") else str(path)
    return f"{shown}:{parsed.name or ''}"


def snippet(target: str, spec: LayerSpec | None, case: Case, name: str) -> str:
    """A short Python snippet that rebuilds ``case`` and reruns the layer on it via ``reproduce``."""
    origin = getattr(spec, "origin", None)
    file_target = _shown_target(spec, target)
    geometry = type(case.geometry).__name__
    lines = [
        f"# grad_{name} of {target or 'your layer'}: the minimal failing case",
        "# arrays in canonical layout (NCHW, weights (F, C, kh, kw) or (D, M));",
        "# reproduce() hands them to your layer in its own layout",
        "import numpy as np",
        "from checks.explain import reproduce",
        f"from checks.geometry import {geometry}",
        "",
        "case = {",
        f'    "kind": {json.dumps(case.kind)},',
        f'    "geometry": {case.geometry!r},',
        '    "inputs": {',
        *(f'        "{k}": {_literal(v, " " * (len(k) + 12))},' for k, v in case.inputs.items()),
        "    },",
        f'    "upstream": {_literal(case.upstream, " " * 16)},',
    ]
    if case.labels is not None:
        lines.append(f'    "labels": np.array({case.labels.tolist()!r}),')
    lines.append("}")
    if file_target is not None:
        options = f", kind={json.dumps(case.kind)}"
        if origin is not None and origin.preset:
            options += f", preset={json.dumps(origin.preset)}"
        if origin is not None and origin.overrides:
            options += f", options={dict(origin.overrides)!r}"
        lines.append(f"reproduce({json.dumps(file_target)}, case{options}, gradient={json.dumps(name)})")
    else:
        lines.append("spec = ...  # the LayerSpec you passed to checks.check()")
        lines.append(f"reproduce(spec, case, gradient={json.dumps(name)})")
    return "\n".join(lines)


def as_case(case: Case | Mapping) -> Case:
    """A Case from the dict a snippet builds (or a Case, unchanged)."""
    if isinstance(case, Case):
        return case
    inputs = {k: np.asarray(v) for k, v in case["inputs"].items()}
    labels = case.get("labels")
    return Case(
        case["kind"],
        case["geometry"],
        inputs,
        np.asarray(case["upstream"], dtype=next(iter(inputs.values())).dtype),  # the one dtype of every array
        None if labels is None else np.asarray(labels),
        case.get("mode", "separated"),
    )


def reproduce(
    target: str | LayerSpec,
    case: Case | Mapping,
    *,
    kind: str | None = None,
    preset: str | None = None,
    options: Mapping[str, object] | None = None,
    gradient: str | None = None,
    out: Callable[[str], None] = print,
) -> dict[str, dict[str, object]]:
    """Run the layer ``target`` (a LayerSpec, or 'path.py:Name' loaded as ``cnn-gradcheck check`` does,
    with the LayerSpec fields in ``options`` replaced) on ``case`` and print each gradient (or only
    ``gradient``) next to the expected one, in the layer's own layout.

    Returns {name: {"layer": array or None, "expected": array, "ok": bool}} (user layout)."""
    case = as_case(case)
    if isinstance(target, LayerSpec):
        spec = replace(target, **dict(options)) if options else target
    else:
        spec = targets.load(target, kind=kind, preset=preset, overrides=options)
    # a kind with no reference (function) has no exact oracle: its differences judge, as in the check itself
    oracles = ("fd",) if kinds.get(case.kind).blind_fd is not None else ("torch",)
    trial = Trial(case, spec.subject, Options(oracles=oracles))
    for name in getattr(spec, "inputs", ("input",)):  # a function layer of several inputs: each, in forward's order
        in_layout = layout_of(spec, case.kind, "input", case.inputs[name].ndim)
        out(f"{name} as your layer receives it (layout {in_layout.name}):\n{in_layout.to_user(case.inputs[name])}")
    out(f"dL/dout given to backward (layout {spec.out_layout}):\n{layouts.to_user(case.upstream, spec.out_layout)}")
    correct, source = expected_grads(trial)
    results: dict[str, dict[str, object]] = {}
    for name in [gradient] if gradient else list(case.inputs):
        layout = layout_of(spec, case.kind, name, case.inputs[name].ndim)
        value = layer_value(trial, name, layout)
        raw_shape = None if value.raw is None else tuple(np.shape(value.raw))
        expected = layout.to_user(correct[name].astype(case.dtype), raw_shape)
        shown = value.raw if value.raw is not None else f"(nothing readable: {value.fault})"
        out(f"dL/d{name} from your layer (layout {layout.name or 'as stored'}):\n{shown}")
        out(f"expected ({source}):\n{expected}")
        findings = properties.get(f"grad_{name}")(trial)  # the harness's own verdict (subgradient at a kink)
        for finding in findings:
            out(finding.line())
        ok = not any(f.failed for f in findings)
        if name == "input" and trial.at_kink and trial.kind.membership is not None:
            out("note: the case is at a kink (tied maximum / ReLU input 0): other splits of G are valid too")
        results[name] = {"layer": value.raw, "expected": expected, "ok": ok}
    return results
