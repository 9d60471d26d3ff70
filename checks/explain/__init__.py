"""Explain a failing gradient: where it is wrong, in the user's own layout, why, and how to reproduce it.

``annotate(report, spec)`` runs after a check. For every failing gradient property (grad_input,
grad_weight, grad_bias) whose minimal failing Trial the runner kept, it sets

- ``PropertyReport.details`` (checks.explain.where.Details): the worst entries (or windows) in the layer's
  own layout, the minimal case, and a copy-pasteable reproduction snippet (checks.explain.rerun);
- ``PropertyReport.diagnosis`` (checks.explain.evidence.Diagnosis): the pattern summary
  (checks.explain.patterns) and the named mistake (checks.explain.mistakes).

Everything is read off what the check measured (the trial's gradients, the raw values the layer
returned, the subgradient verdict's evidence): the layer is not run again.
"""

from __future__ import annotations

import numpy as np

from checks.explain.evidence import Diagnosis, Evidence
from checks.explain.mistakes import diagnose
from checks.explain.patterns import patterns
from checks.explain.rerun import reproduce, snippet
from checks.explain.where import (
    DEFAULT_K,
    NO_ENTRIES,
    ONLY_FD,
    Details,
    Entry,
    Window,
    expected_grads,
    fill,
    layer_value,
    layout_of,
)
from checks.findings import FAIL
from checks.pipeline.trial import Trial
from checks.report import Report

__all__ = ["DEFAULT_K", "Details", "Diagnosis", "Entry", "Window", "annotate", "explain", "reproduce", "snippet"]


def minimums(spec) -> dict[str, int | None] | None:
    """The smallest geometry the spec allows, per geometry field (None: fixed, says nothing)."""
    if spec is None:
        return None
    s = spec.supports

    def low(bound: object) -> int | None:
        return bound[0] if isinstance(bound, tuple) and bound[0] != bound[1] else None

    return {
        "batch": low(s.batch),
        "in_channels": low(s.channels),
        "channels": low(s.channels),
        "filters": low(s.filters),
        "kernel": low(s.kernel),
        "stride": low(s.stride),
        "padding": low(s.padding),
        "dilation": low(s.dilation),
        "out_features": low(s.out_features),
    }


def explain(
    trial: Trial,
    name: str,
    spec=None,
    *,
    k: int = DEFAULT_K,
    findings: list | None = None,
    target: str = "",
    needs: list | None = None,
) -> tuple[Details, Diagnosis]:
    """Details and Diagnosis for the gradient ``name`` of the (failing) trial; ``findings`` are the
    property's findings (a failed "subgradient" one means the verdict was taken at a kink)."""
    case = trial.pristine
    shape = tuple(case.inputs[name].shape)
    layout = layout_of(spec, case.kind, name, len(shape))
    out_layout = layout_of(spec, case.kind, "output", len(case.geometry.output_shape))
    value = layer_value(trial, name, layout)
    correct, source = expected_grads(trial)
    if name not in correct:  # a kind with no reference, differenced along random directions only
        raise LookupError(NO_ENTRIES)
    expected = correct[name]
    raw_shape = None if value.raw is None else tuple(np.shape(value.raw))
    user_shape = tuple(layout.to_user(np.empty(shape), raw_shape).shape)
    axes = layout.axes()
    details = Details(
        gradient=name,
        verdict="values",
        layout=layout.name,
        axes=axes if axes is not None and len(axes) == len(user_shape) else None,
        shape=user_shape,
        actual_shape=raw_shape if raw_shape is not None else value.fault_shape,
        expected_source=source,
        case=case,
        expected_value=expected,
    )
    mask = fill(trial, details, value, expected, layout, raw_shape, out_layout, k, findings or [])
    details.mask = mask
    evidence = Evidence(
        case=case,
        name=name,
        actual=value.canonical,
        correct=correct,
        tol=trial.tol.fd if source == ONLY_FD else trial.tol.exact,
        raw=value.raw,
        out_layout=out_layout.name,
        lr=trial.learning_rate,
        minimums=minimums(spec),
        mask=mask,
        needs=list(needs or []),
    )
    details.reproduction = snippet(target, spec, case, name)
    if source == ONLY_FD:
        return details, blind_diagnosis(evidence, details)
    return details, diagnose(evidence)


def blind_diagnosis(evidence: Evidence, details: Details) -> Diagnosis:
    """The diagnosis against finite differences alone (a kind with no reference): the patterns, each within the fd
    tolerance, and only when the differences judged every entry (a pattern over entries nobody judged would be a
    claim not shown); never a named mistake, since every mistake is defined by a kind's right formula."""
    shown = patterns(evidence) if details.unjudged == 0 and details.mask is not None else []
    return Diagnosis(evidence.name, [], shown)


def annotate(report: Report, spec=None, *, k: int = DEFAULT_K) -> None:
    """Set ``details`` and ``diagnosis`` on every failing gradient property of ``report`` that kept
    its minimal failing trial. Never raises: a failure to explain is recorded in ``details.error``."""
    for p in report.properties:
        if p.status != FAIL or not p.property.startswith("grad_") or getattr(p, "trial", None) is None:
            continue
        name = p.property[len("grad_") :]
        try:
            p.details, p.diagnosis = explain(
                p.trial, name, spec, k=k, findings=p.findings, target=report.target, needs=p.needs
            )
        except Exception as exc:  # the report must survive whatever the layer or the explanation does
            p.details = Details(name, "fault", None, None, (), None, "", error=f"{type(exc).__name__}: {exc}")
        behind = getattr(p, "behind", None)
        for prop, finding, trial in [] if behind is None else behind.failed:
            if prop.startswith("grad_"):  # the bug behind the fault, named when a known mistake matches it
                try:
                    _, diagnosis = explain(trial, prop[len("grad_") :], spec, k=k, findings=[finding])
                except Exception:  # noqa: BLE001 - naming is a bonus; the failure itself is already reported
                    continue
                if diagnosis.mistake:
                    behind.mistakes[prop] = diagnosis.mistake
