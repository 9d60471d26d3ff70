"""Cases for a user's layer: what its declaration supports (``Supports``, layouts, parameters) turned into
the bounds of its kind's strategies.

A layout that fixes a canonical axis at size 1 (HW: one image of one channel; D: one vector) fixes the
``Supports`` field that sizes that axis (checks.kinds.LETTER_FIELDS reads the kind's axis letters); a bound
that leaves 1 out (``channels=3`` on an HW layer) admits no geometry.
Half of the geometries come from the corner of the supports where the classic bugs show (more than one
output position, kernels bigger than 1, batches > 1, plus the kind's own corner), so a small example
budget still reaches it; shrinking is free to leave the corner.

Every bound is checked when the strategy is built, not at its first draw: a declaration whose ``Supports``
admit no geometry raises ``SupportsError`` (one line naming the fields; a ``TargetError``, so the front ends
report a layer they cannot use, exit 2, never a hypothesis traceback).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument

from checks import kinds
from checks.adapt import layouts
from checks.adapt.targets import TargetError
from checks.strategies._bounds import at_least, span
from checks.strategies._cases import cases as kind_cases


class SupportsError(TargetError, ValueError):
    """A declaration whose ``Supports`` admit no geometry (or no dtype); ``str()`` is one line naming the
    conflicting fields, ``fields`` holds them where they are known."""

    def __init__(self, kind: str, reason: str, fields: tuple[str, ...] = (), what: str = "geometry") -> None:
        super().__init__(f"its Supports admit no {kind} {what}: {reason}")
        self.fields = fields


def _unit_fields(kind: kinds.Kind, array: str, layout: str | None) -> set[str]:
    """The Supports fields that ``layout`` fixes at 1 for ``array`` of ``kind``."""
    if layout is None:
        return set()
    units = layouts.unit_axes(layout)
    if not units:
        return set()
    letters = kind.letters(array, max(units) + 1) or kind.axes.get(array, "").split("|")[0]
    return {kinds.LETTER_FIELDS[letters[i]] for i in units if i < len(letters) and letters[i] in kinds.LETTER_FIELDS}


def _admits_one(bound: object) -> bool:
    """Whether a bound (an int, or an inclusive (min, max) pair) lets its field be 1; anything else is left to
    the strategy's own checks."""
    if isinstance(bound, bool):
        return True
    if isinstance(bound, int):
        return bound == 1
    if isinstance(bound, tuple) and len(bound) == 2 and all(isinstance(b, int) for b in bound):
        return bound[0] <= 1 <= bound[1]
    return True


def supports(spec) -> object:
    """The spec's supports tightened by what its layouts imply, and without a bias when it has none;
    SupportsError when a layout fixes a field at 1 that the supports keep above 1."""
    kind = kinds.get(spec.kind)
    arrays = [("input", spec.input_layout), ("output", spec.out_layout)]
    arrays += [(name, param.layout) for name, param in spec.params.items()]
    fixed_by: dict[str, str] = {}  # field -> the array whose layout fixes it at 1
    for array, layout in arrays:
        for name in sorted(_unit_fields(kind, array, layout)):
            fixed_by.setdefault(name, f"the {array} layout {layout}")
    conflicts = [name for name in sorted(fixed_by) if not _admits_one(getattr(spec.supports, name))]
    if conflicts:
        reason = "; ".join(
            f"{name}={getattr(spec.supports, name)!r}, but {fixed_by[name]} holds exactly one" for name in conflicts
        )
        raise SupportsError(spec.kind, reason, tuple(conflicts))
    s = replace(spec.supports, **{field: 1 for field in sorted(fixed_by)})
    if "bias" not in spec.params:
        s = replace(s, bias=False)
    return s


def corner(kind: kinds.Kind, s):
    """More than one output position, kernels bigger than 1, batches > 1, then the kind's own corner."""
    narrowed = replace(s, output=at_least(s.output, 2), kernel=at_least(s.kernel, 2), batch=at_least(s.batch, 2))
    return kind.corner(narrowed) if kind.corner else narrowed


def _built(kind: kinds.Kind, s, input_layout: str):
    """``kind.user_geometries(s, input_layout)`` with every bound checked now (ValueError or hypothesis's
    InvalidArgument otherwise). A pool whose stride is its window draws the window per example, so its
    geometries are built for the smallest and the largest window here too."""
    if s.stride == "kernel":
        window = span("kernel", s.kernel, minimum=1)
        for k in sorted({window.lo, window.hi}):
            kind.user_geometries(replace(s, kernel=k, stride=k), input_layout)
    strategy = kind.user_geometries(s, input_layout)
    strategy.validate()
    return strategy


def geometries(spec) -> st.SearchStrategy:
    """Geometries inside what the spec supports (and its layouts allow): half of the draws from the
    corner where the classic bugs show (see ``corner``); SupportsError when there are none."""
    kind = kinds.get(spec.kind)
    if kind.declared is not None:  # shapes the spec declares (a layer of any computation): the one geometry
        return st.just(kind.declared(spec.shapes, spec.params, spec.inputs))
    if kind.user_geometries is None:
        raise ValueError(f"no user-layer checks for kind {spec.kind!r}")
    s = supports(spec)
    try:
        general = _built(kind, s, spec.input_layout)
    except (ValueError, InvalidArgument) as exc:  # the strategy's own words name the field and its value
        raise SupportsError(spec.kind, str(exc)) from None
    try:
        narrow = _built(kind, corner(kind, s), spec.input_layout)
    except (ValueError, InvalidArgument):  # the supports leave no such corner (e.g. padding cannot fit a 1x1 kernel)
        return general
    # The general strategy first: half of the draws still come from the corner, but shrinking moves
    # towards the first branch, so a minimal failing case can leave the corner instead of being held in it.
    return st.one_of(general, narrow)


def _dtypes(spec) -> list[np.dtype]:
    names = tuple(spec.supports.dtypes)
    try:
        dtypes = [np.dtype(d) for d in names]
    except TypeError:
        dtypes = []
    if not dtypes or any(d not in (np.float32, np.float64) for d in dtypes):
        reason = f"dtypes={names!r}: expected one or more of 'float32', 'float64'"
        raise SupportsError(spec.kind, reason, ("dtypes",), "dtype")
    return dtypes


def cases(spec) -> st.SearchStrategy:
    """Cases for the spec: its geometries, the value modes that matter for its kind, its dtypes (all checked
    here: SupportsError when they admit nothing)."""
    dtypes = _dtypes(spec)
    drawn = geometries(spec)
    modes = st.sampled_from(kinds.get(spec.kind).modes)
    return st.sampled_from(dtypes).flatmap(lambda dt: kind_cases(spec.kind, drawn, mode=modes, dtype=dt))
