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

from checks import explain
from checks.adapt import targets
from checks.adapt.adapters import LayerSpec
from checks.adapt.guard import Limits
from checks.job import Job
from checks.pipeline import properties
from checks.pipeline.runner import Runner
from checks.pipeline.trial import Options
from checks.report import PropertyReport, Report
from checks.settings import DEFAULT_MAX_EXAMPLES, ORACLES
from checks.strategies._spec import cases as spec_cases


def property_names(spec: LayerSpec) -> list[str]:
    """The properties that apply: no grad_input for a layer declared not to return it."""
    names = ["input", *spec.params] if spec.returns_input_grad else list(spec.params)
    return properties.property_names(names)


def load(job: Job) -> LayerSpec:
    """The LayerSpec the job's target names (``checks.adapt.targets.TargetError`` when it cannot be loaded)."""
    return targets.load(job.target, kind=job.kind, preset=job.preset, root=job.root, overrides=dict(job.overrides))


def check_job(
    job: Job, *, progress: Callable[[str, PropertyReport | None], None] | None = None, spec: LayerSpec | None = None
) -> Report:
    """Check the job's layer: ``spec`` when the caller loaded it already, else the job's target loaded now
    (``checks.adapt.targets.TargetError`` when it cannot be)."""
    spec = spec if spec is not None else load(job)
    return check(
        spec,
        max_examples=job.max_examples,
        seed=job.seed,
        oracles=job.oracles,
        only=job.only,
        limits=Limits(seconds=job.call_seconds, memory_bytes=job.memory_bytes),
        progress=progress,
        target=job.shown,
    )


def check(
    spec: LayerSpec,
    *,
    max_examples: int = DEFAULT_MAX_EXAMPLES,
    seed: int | None = 0,
    oracles: Sequence[str] = ORACLES,
    only: Sequence[str] | None = None,
    limits: Limits | None = None,
    progress: Callable[[str, PropertyReport | None], None] | None = None,
    target: str | None = None,
) -> Report:
    """Run every applicable property (or ``only`` those) on the layer ``spec`` describes."""
    options = Options(oracles=tuple(oracles), limits=limits or Limits(), seed=seed or 0)
    runner = Runner(spec_cases(spec), spec.subject, options, max_examples, seed, progress)
    props = list(only) if only else property_names(spec)
    report = runner.run(props, target=target or spec.name or spec.kind, kind=spec.kind)
    explain.annotate(report, spec)  # failing gradients: where, pattern, named mistake, reproduction
    return report
