"""What a failure needs, shown rather than guessed: the minimal failing case with one of its geometry's features
reduced (batch 1, one channel, one filter, kernel 1, stride 1, no padding, no dilation, one output, no stride
remainder), rebuilt with fresh values and run through the same property. A feature is needed when the reduced
case is judged and PASSES: "the error needs batch > 1: with batch 1 the same layer passes". When the reduced case
fails too, or cannot be judged, or is not a geometry the layer supports, nothing is claimed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from hypothesis import HealthCheck, Phase, find, settings
from hypothesis import strategies as st

from checks import kinds
from checks import strategies as cs
from checks.case import Case
from checks.findings import FAIL, PASS
from checks.geometry import ConvGeometry, DenseGeometry, Geometry, PoolGeometry
from checks.pipeline import properties
from checks.pipeline.trial import Options, Trial
from checks.subject import SubjectFactory

FLOORS: dict[type, dict[str, int]] = {
    ConvGeometry: {"batch": 1, "in_channels": 1, "filters": 1, "kernel": 1, "stride": 1, "padding": 0, "dilation": 1},
    PoolGeometry: {"batch": 1, "channels": 1, "kernel": 1, "stride": 1, "padding": 0},
    DenseGeometry: {"batch": 1, "out_features": 1},
}
"""The smallest value of each geometry field a reduction tries (the layer's supports may raise it)."""
_FIND = settings(
    max_examples=1,
    derandomize=True,
    database=None,
    deadline=None,
    phases=[Phase.generate],
    suppress_health_check=list(HealthCheck),
)


@dataclass(frozen=True)
class Need:
    """field: what the failure needs more than its floor of ("batch", "stride", "remainder"); value: what the
    minimal case has; floor: what the passing reduced case has; text: one line for people."""

    field: str
    value: object
    floor: object
    text: str

    def to_dict(self) -> dict:
        return {"field": self.field, "value": self.value, "floor": self.floor, "text": self.text}


def reductions(g: Geometry, minimums: Mapping[str, int | None] | None) -> list[tuple[str, object, Geometry]]:
    """(field, reduced value, reduced geometry) for each field of ``g`` above its floor, where the reduced
    geometry is valid and the layer supports it (``minimums``: the smallest value per field the layer supports;
    None: the field is fixed, so nothing is reduced). A spatial hyper-parameter (kernel, stride, padding,
    dilation) is reduced with the output size and the remainder kept: only that one feature changes."""
    out = []
    raised = dict(minimums or {})
    for name, floor in FLOORS.get(type(g), {}).items():
        if name in raised and raised[name] is None:
            continue
        floor = max(floor, raised.get(name) or floor)
        value = getattr(g, name)
        if (max(value) if isinstance(value, tuple) else value) <= floor:
            continue
        reduced_value = (floor, floor) if isinstance(value, tuple) else floor
        reduced = g._replace(**{name: reduced_value})
        if name in ("kernel", "stride", "padding", "dilation"):
            reduced = _same_output(g, reduced)
        if reduced is not None and _valid(reduced):
            out.append((name, reduced_value, reduced))
    if isinstance(g, (ConvGeometry, PoolGeometry)):
        without = _without_remainder(g)
        if without is not None and _valid(without):
            out.append(("remainder", 0, without))
    return out


def _axes(g: ConvGeometry | PoolGeometry) -> list[tuple[int, int, int, int, int]]:
    """Per spatial axis (input size, kernel, stride, padding, dilation)."""
    dilation = getattr(g, "dilation", (1, 1))
    return list(zip((g.height, g.width), g.kernel, g.stride, g.padding, dilation, strict=True))


def _same_output(g: ConvGeometry | PoolGeometry, reduced: ConvGeometry | PoolGeometry) -> Geometry | None:
    """``reduced`` with its input resized so that it has ``g``'s output size and remainder (as far as the
    new stride allows a remainder): H = (Ho - 1) s + d (k - 1) + 1 - 2p + r."""
    sizes = []
    for (size, k, s, p, d), (_, k2, s2, p2, d2), out in zip(_axes(g), _axes(reduced), g.output_shape[2:], strict=True):
        remainder = min((size + 2 * p - d * (k - 1) - 1) % s, s2 - 1)
        sizes.append((out - 1) * s2 + d2 * (k2 - 1) + 1 - 2 * p2 + remainder)
    if min(sizes) < 1:
        return None
    return reduced._replace(height=sizes[0], width=sizes[1])


def _valid(g: Geometry) -> bool:
    if any(d < 1 for d in g.output_shape[1:]) or any(d < 1 for d in g.input_shape):
        return False
    if isinstance(g, PoolGeometry):
        return all(p <= k // 2 for p, k in zip(g.padding, g.kernel, strict=True))
    return True


def _without_remainder(g: ConvGeometry | PoolGeometry) -> Geometry | None:
    """The same geometry with the input cut to the rows and columns the windows reach (no remainder)."""
    sizes = [size - (size + 2 * p - d * (k - 1) - 1) % s for size, k, s, p, d in _axes(g)]
    if tuple(sizes) == (g.height, g.width):
        return None
    return g._replace(height=sizes[0], width=sizes[1])


def case_like(case: Case, geometry: Geometry) -> Case | None:
    """A case of ``geometry`` drawn the way the failing one was (its value mode and dtype), deterministically."""
    strategy = cs.cases(case.kind, st.just(geometry), mode=case.mode, dtype=case.dtype)
    try:
        return find(strategy, lambda c: True, settings=_FIND)
    except Exception:  # noqa: BLE001 - a geometry the strategies cannot fill says nothing
        return None


def verified(
    trial: Trial,
    prop: str,
    factory: SubjectFactory,
    options: Options,
    minimums: Mapping[str, int | None] | None,
) -> list[Need]:
    """The features the failure of ``prop`` on ``trial``'s case needs (see the module docstring)."""
    needs = []
    check = properties.get(prop)
    for name, floor, geometry in reductions(trial.case.geometry, minimums):
        case = case_like(trial.pristine, geometry)
        if case is None or not _informative(case, prop):
            continue
        findings = check(Trial(case, factory, options))
        statuses = {f.status for f in findings}
        if FAIL in statuses or PASS not in statuses:
            continue
        value = getattr(trial.case.geometry, name) if name != "remainder" else "some"
        if name == "remainder":
            text = "wrong when the stride leaves a remainder: the same layer passes when the windows reach every row"
        else:
            text = f"needs {name} > {_scalar(floor)}: with {name} {_scalar(floor)} the same layer passes"
        needs.append(Need(name, _plain(value), _plain(floor), text))
    return needs


def _informative(case: Case, prop: str) -> bool:
    """The right gradient of ``prop`` is not zero everywhere in ``case``: a reduced case whose every window
    reads only padding cannot show a wrong gradient, so its passing would say nothing."""
    name = prop[len("grad_") :] if prop.startswith("grad_") else "input"
    if name not in case.inputs:
        return False
    subject = kinds.reference_subject(case.copy())
    subject.forward(case.copy().inputs)
    right = subject.backward(case.upstream.copy()).get(name)
    return right is not None and bool(np.any(np.asarray(right) != 0))


def _scalar(value: object) -> object:
    return value[0] if isinstance(value, tuple) and len(set(value)) == 1 else value


def _plain(value: object) -> object:
    if isinstance(value, tuple):
        return [int(v) for v in value]
    return int(value) if isinstance(value, (int, np.integer)) else value
