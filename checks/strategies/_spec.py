"""Cases for a user's layer: what its declaration supports (``Supports``, layouts, parameters) turned into
the bounds of its kind's strategies.

A layout that fixes a canonical axis at size 1 (HW: one image of one channel; D: one vector) fixes the
``Supports`` field that sizes that axis (checks.kinds.LETTER_FIELDS reads the kind's axis letters).
Half of the geometries come from the corner of the supports where the classic bugs show (more than one
output position, kernels bigger than 1, batches > 1, plus the kind's own corner), so a small example
budget still reaches it; shrinking is free to leave the corner.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from hypothesis import strategies as st

from checks import kinds
from checks.adapt import layouts
from checks.strategies._bounds import at_least
from checks.strategies._cases import cases as kind_cases


def _unit_fields(kind: kinds.Kind, array: str, layout: str | None) -> set[str]:
    """The Supports fields that ``layout`` fixes at 1 for ``array`` of ``kind``."""
    if layout is None:
        return set()
    units = layouts.unit_axes(layout)
    if not units:
        return set()
    letters = kind.letters(array, max(units) + 1) or kind.axes.get(array, "").split("|")[0]
    return {kinds.LETTER_FIELDS[letters[i]] for i in units if i < len(letters) and letters[i] in kinds.LETTER_FIELDS}


def supports(spec) -> object:
    """The spec's supports tightened by what its layouts imply, and without a bias when it has none."""
    kind = kinds.get(spec.kind)
    fixed = _unit_fields(kind, "input", spec.input_layout) | _unit_fields(kind, "output", spec.out_layout)
    for name, param in spec.params.items():
        fixed |= _unit_fields(kind, name, param.layout)
    s = replace(spec.supports, **{field: 1 for field in sorted(fixed)})
    if "bias" not in spec.params:
        s = replace(s, bias=False)
    return s


def corner(kind: kinds.Kind, s):
    """More than one output position, kernels bigger than 1, batches > 1, then the kind's own corner."""
    narrowed = replace(s, output=at_least(s.output, 2), kernel=at_least(s.kernel, 2), batch=at_least(s.batch, 2))
    return kind.corner(narrowed) if kind.corner else narrowed


def geometries(spec) -> st.SearchStrategy:
    """Geometries inside what the spec supports (and its layouts allow): half of the draws from the
    corner where the classic bugs show (see ``corner``)."""
    kind = kinds.get(spec.kind)
    if kind.user_geometries is None:
        raise ValueError(f"no user-layer checks for kind {spec.kind!r}")
    s = supports(spec)
    general = kind.user_geometries(s, spec.input_layout)
    try:
        narrow = kind.user_geometries(corner(kind, s), spec.input_layout)
    except ValueError:  # the supports leave no such corner (e.g. padding cannot fit a 1x1 kernel)
        return general
    # The general strategy first: half of the draws still come from the corner, but shrinking moves
    # towards the first branch, so a minimal failing case can leave the corner instead of being held in it.
    return st.one_of(general, narrow)


def cases(spec) -> st.SearchStrategy:
    """Cases for the spec: its geometries, the value modes that matter for its kind, its dtypes."""
    dtypes = [np.dtype(d) for d in spec.supports.dtypes]
    modes = st.sampled_from(kinds.get(spec.kind).modes)
    return st.sampled_from(dtypes).flatmap(lambda dt: kind_cases(spec.kind, geometries(spec), mode=modes, dtype=dt))
