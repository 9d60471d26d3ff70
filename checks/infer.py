"""Point at a file: find its layers, tell each one's kind and convention, and check them all.

A worker lists what the file defines and guesses, from names and signatures, how each layer might be driven
(checks.adapt.survey). A guess is then confirmed here the way everything is: the layer's forward is checked
against the guessed kind's reference on a few small cases (the property ``forward``). The first guess whose
forward agrees is the layer's kind; a layer whose name names a kind but whose forward agrees with none is
still checked as that kind, and the report says so; a layer nothing can be said of is listed with what to
declare. Every step runs the user's code in a sandboxed worker, never here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from checks.adapt.survey import Found, name_kinds
from checks.adapt.targets import TargetError, parse
from checks.findings import PASS
from checks.job import Job
from checks.report import Report

PROBE_EXAMPLES = 3
"""Cases the forward of a guess is checked on: enough to tell relu from leaky_relu or max from average."""


@dataclass(frozen=True)
class Inferred:
    """One layer of a file: where it is (``target``), its kind and preset (None: not inferred), and ``why``:
    one line saying what the kind rests on, or what to declare when nothing could be inferred."""

    target: str
    name: str
    kind: str | None
    preset: str | None
    why: str

    @property
    def checkable(self) -> bool:
        return self.kind is not None

    def job(self, template: Job) -> Job:
        """The Job that checks this layer with ``template``'s settings."""
        return replace(template, target=self.target, kind=self.kind, preset=self.preset, only=None)


def layer_target(file_target: str, found: Found) -> str:
    """TARGET for one found layer: ``file.py:Name``, or ``file.py`` for the file's function pairs."""
    location = parse(file_target).location
    return f"{location}:{found.name}" if found.name else location


def survey(job: Job) -> list[Found]:
    """What the file of ``job.target`` defines, as its worker sees it (raises LoadRefused when it cannot be
    imported)."""
    from checks.sandbox.worker import Session

    with Session.start(replace(job, kind=None, preset=None), survey=True) as session:
        return list(session.found)


Checker = Callable[[Job], Report]


def confirm(job: Job, found: Found, check: Checker) -> Inferred:
    """The first of ``found``'s guesses whose forward agrees with its kind's reference (see the module
    docstring); ``check`` runs a Job (checks.api.check_job)."""
    target = layer_target(job.target, found)
    shown = found.name or f"{Path(parse(job.target).location).name} function pairs"
    fallback: Inferred | None = None
    refusals: list[str] = []
    for kind, preset in found.guesses:
        if preset is None:  # a LayerSpec says everything itself
            return Inferred(target, shown, kind, None, f"{kind}: {found.why}")
        try:
            probe = check(
                replace(job, target=target, kind=kind, preset=preset, only=("forward",), max_examples=PROBE_EXAMPLES)
            )
        except TargetError as exc:  # the preset cannot adapt the class (e.g. its constructor): not this guess
            refusals.append(f"{kind}/{preset}: {exc}")
            continue
        if probe.error:
            refusals.append(f"{kind}/{preset}: {probe.error}")
            continue
        forward = next((p for p in probe.properties if p.property == "forward"), None)
        if forward is not None and forward.status == PASS:
            return Inferred(
                target, shown, kind, preset, f"{kind}, {preset}: {found.why}; its forward agrees with {kind}"
            )
        if fallback is None and kind in name_kinds(found.name):
            fallback = Inferred(
                target,
                shown,
                kind,
                preset,
                f"{kind}, {preset}: {found.why}; its forward does NOT agree with {kind}: checked as {kind} by its name",
            )
    if fallback is not None:
        return fallback
    tried = ", ".join(f"{k}/{p}" for k, p in found.guesses) or "nothing to try"
    because = f" ({refusals[0]})" if refusals else ""
    return Inferred(
        target,
        shown,
        None,
        None,
        f"cannot tell its kind ({found.why}; tried {tried}{because}): "
        f"declare it: {target} --kind KIND --preset seed|nchw, or a LayerSpec",
    )


def infer(job: Job, check: Checker) -> list[Inferred]:
    """Every layer of ``job``'s file with its kind and preset confirmed (see ``confirm``)."""
    return [confirm(job, found, check) for found in survey(job)]
