"""The Python API: check a layer described by a LayerSpec and get a Report.

from checks import LayerSpec, Param, Supports, check
spec = LayerSpec("conv", build=lambda g: MyConv(g.in_channels, g.filters, g.kernel[0]),
                 params={"weight": Param("W", "FCHW", grad="dW"), "bias": Param("b", grad="db")},
                 supports=Supports(stride=1, padding=0, square=True))
report = check(spec)
print(report.render()); report.passed
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace

import numpy as np
from hypothesis import strategies as st

from checks import explain
from checks import strategies as cs
from checks.adapt import layouts
from checks.adapt.adapters import LayerSpec, Supports
from checks.adapt.guard import Limits
from checks.pipeline import properties
from checks.pipeline.runner import Runner
from checks.pipeline.trial import Options
from checks.report import PropertyReport, Report
from checks.settings import DEFAULT_MAX_EXAMPLES

MODES = {
    "conv": ("separated", "mixed"),
    "dense": ("separated", "mixed"),
    "maxpool": ("separated", "ties"),
    "relu": ("separated", "zeros", "ties"),
    "flatten": ("separated",),
}


def _layout_units(spec: LayerSpec) -> Supports:
    """Tighten the supports by what the layouts imply (HW: one image, one channel; D: one vector)."""
    s = spec.supports
    units = set(layouts.unit_axes(spec.input_layout)) | set(layouts.unit_axes(spec.out_layout))
    if 0 in units:
        s = replace(s, batch=1)
    if 1 in units and spec.kind in ("conv", "maxpool"):
        s = replace(s, channels=1)
    if spec.kind == "conv" and 1 in units and spec.out_layout == spec.input_layout:
        s = replace(s, filters=1)
    for param in spec.params.values():
        if param.layout == "FHW":
            s = replace(s, channels=1)
    if "bias" not in spec.params:
        s = replace(s, bias=False)
    return s


def _at_least(bound: object, low: int) -> object:
    """The bound narrowed to values >= low where it allows any (else unchanged)."""
    if isinstance(bound, int) or not isinstance(bound, tuple):
        return bound
    lo, hi = bound
    return (min(max(lo, low), hi), hi)


def _lowest(bound: object) -> object:
    return bound if not isinstance(bound, tuple) else bound[0]


def _highest(bound: object) -> object:
    return bound if not isinstance(bound, tuple) else bound[1]


def _regime(s: Supports, kind: str) -> Supports:
    """The corner of the supports where the classic bugs show: more than one output position, kernels
    bigger than 1, overlapping pools (smallest stride), strided and padded convs, batches > 1."""
    narrowed = replace(s, output=_at_least(s.output, 2), kernel=_at_least(s.kernel, 2), batch=_at_least(s.batch, 2))
    if kind == "maxpool" and s.stride != "kernel":
        narrowed = replace(narrowed, stride=_lowest(s.stride))
    if kind == "conv":
        narrowed = replace(narrowed, stride=_highest(s.stride), padding=_at_least(s.padding, 1))
    if kind == "dense":
        narrowed = replace(narrowed, out_features=_at_least(s.out_features, 2))
    return narrowed


def geometries(spec: LayerSpec) -> st.SearchStrategy:
    """Geometries inside what the spec supports (and its layouts allow): half of the draws from the
    corner where the classic bugs show (see _regime), so a small budget still reaches it."""
    s = _layout_units(spec)
    general = _geometries(spec, s)
    try:
        corner = _geometries(spec, _regime(s, spec.kind))
    except ValueError:  # the supports leave no such corner (e.g. padding cannot fit a 1x1 kernel)
        return general
    return st.one_of(corner, general)


def _geometries(spec: LayerSpec, s: Supports) -> st.SearchStrategy:
    if spec.kind == "conv":
        strategy = cs.conv_geometries(
            batch=s.batch,
            in_channels=s.channels,
            filters=s.filters,
            kernel=s.kernel,
            stride=s.stride,
            padding=s.padding,
            dilation=s.dilation,
            output=s.output,
            square=s.square,
            bias=s.bias,
            remainder=s.remainder,
        )
    elif spec.kind == "maxpool":
        if s.stride == "kernel":
            lo, hi = (s.kernel, s.kernel) if isinstance(s.kernel, int) else s.kernel
            strategy = st.integers(lo, hi).flatmap(
                lambda k: cs.pool_geometries(
                    batch=s.batch,
                    channels=s.channels,
                    kernel=k,
                    stride=k,
                    padding=s.padding,
                    output=s.output,
                    square=s.square,
                    remainder=s.remainder,
                )
            )
        else:
            strategy = cs.pool_geometries(
                batch=s.batch,
                channels=s.channels,
                kernel=s.kernel,
                stride=s.stride,
                padding=s.padding,
                output=s.output,
                square=s.square,
                remainder=s.remainder,
            )
    elif spec.kind == "relu":
        strategy = cs.elementwise_geometries(ndim=s.ndim)
    elif spec.kind == "flatten":
        strategy = cs.flatten_geometries(ndim=s.ndim)
    elif spec.kind == "dense":
        one_vector = spec.input_layout == "D"
        strategy = cs.dense_geometries(
            batch=s.batch,
            features_ndim=1 if one_vector else s.features_ndim,
            side=s.features if one_vector else (1, 4),
            out_features=s.out_features,
            bias=s.bias,
        )
    else:
        raise ValueError(f"no user-layer checks for kind {spec.kind!r}")
    return strategy


def cases(spec: LayerSpec) -> st.SearchStrategy:
    """Cases for the spec: its geometries, the value modes that matter for its kind, its dtypes."""
    dtypes = [np.dtype(d) for d in spec.supports.dtypes]
    modes = st.sampled_from(MODES[spec.kind])
    return st.sampled_from(dtypes).flatmap(lambda dt: cs.cases(spec.kind, geometries(spec), mode=modes, dtype=dt))


def property_names(spec: LayerSpec) -> list[str]:
    """The properties that apply: no grad_input for a layer declared not to return it."""
    names = ["input", *spec.params] if spec.returns_input_grad else list(spec.params)
    return properties.property_names(names)


def check(
    spec: LayerSpec,
    *,
    max_examples: int = DEFAULT_MAX_EXAMPLES,
    seed: int | None = 0,
    oracles: Sequence[str] = ("torch", "fd"),
    only: Sequence[str] | None = None,
    limits: Limits | None = None,
    progress: Callable[[str, PropertyReport | None], None] | None = None,
    target: str | None = None,
) -> Report:
    """Run every applicable property (or ``only`` those) on the layer ``spec`` describes."""
    options = Options(oracles=tuple(oracles), limits=limits or Limits(), seed=seed or 0)
    runner = Runner(cases(spec), spec.subject, options, max_examples, seed, progress)
    props = list(only) if only else property_names(spec)
    report = runner.run(props, target=target or spec.name or spec.kind, kind=spec.kind)
    explain.annotate(report, spec)  # failing gradients: where, pattern, named mistake, reproduction
    return report
