"""The Python API: check a layer described by a LayerSpec and get a Report.

from checks import LayerSpec, Param, Supports, check
spec = LayerSpec("conv", build=lambda g: MyConv(g.in_channels, g.filters, g.kernel[0]),
                 params={"weight": Param("W", "FCHW", grad="dW"), "bias": Param("b", grad="db")},
                 supports=Supports(stride=1, padding=0, square=True))
report = check(spec)
print(report.render()); report.passed
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace

from checks import explain
from checks.adapt import targets
from checks.adapt.adapters import Declaration, LayerSpec
from checks.adapt.guard import Cause, Limits
from checks.findings import FAIL, NOT_JUDGED
from checks.job import SHRINK_SECONDS, Job
from checks.pipeline import faults, needs, properties
from checks.pipeline.runner import Runner
from checks.pipeline.trial import Options
from checks.report import PropertyReport, Report
from checks.settings import DEFAULT_MAX_EXAMPLES, ORACLES
from checks.strategies._spec import cases as spec_cases
from checks.strategies._spec import supports as spec_supports
from checks.subject import SubjectFactory

Progress = Callable[[str, PropertyReport | None], None]
CAUSES = {c.value for c in Cause}


def property_names(spec: LayerSpec | Declaration) -> list[str]:
    """The properties that apply: no grad_input for a layer declared not to return it (a function layer of several
    inputs: a grad_<name> for each of them)."""
    names = [*spec.inputs, *spec.params] if spec.returns_input_grad else list(spec.params)
    return properties.property_names(names)


IN_PROCESS = "in-process: the layer ran in the checker's own process (not a gate)"


def load(job: Job) -> LayerSpec:
    """The LayerSpec the job's target names, loaded in THIS process (``--in-process``, and the pytest
    plugin's collection); ``checks.adapt.targets.TargetError`` when it cannot be loaded."""
    return targets.load(job.target, kind=job.kind, preset=job.preset, root=job.root, overrides=dict(job.overrides))


def declaration(job: Job, *, spelling: tuple[str, str] = ("--kind", "--preset")) -> Declaration:
    """The declaration of the job's layer, as a worker reads it (this process never imports the user's
    code); ``checks.adapt.targets.TargetError`` when it cannot be loaded. ``spelling``: how the kind and
    preset options are written in messages (the pytest plugin prefixes them)."""
    with _session(job, spelling=spelling) as session:
        assert session.declaration is not None
        return session.declaration


def _session(job: Job, **options: object):
    from checks.sandbox.worker import LoadRefused, Session

    try:
        return Session.start(job, **options)
    except LoadRefused as exc:
        raise targets.TargetError(str(exc), Cause(exc.cause) if exc.cause in CAUSES else None, exc.origin) from None


def check_job(
    job: Job,
    *,
    progress: Progress | None = None,
    in_process: bool = False,
    wall_seconds: float | None = None,
    readonly: Sequence[str] | None = None,
    on_loaded: Callable[[Declaration, str], None] | None = None,
) -> Report:
    """Check the job's layer; ``checks.adapt.targets.TargetError`` when its target cannot be loaded.

    The layer runs in a worker process of its own, sandboxed where the machine allows it
    (checks.sandbox.worker: this process never imports the user's code, so nothing the layer does can
    change the verdict); ``readonly`` are the folders it may read (default: the job's root).
    ``wall_seconds`` bounds the whole check. ``in_process=True`` imports the layer here instead, for
    debugging it under pdb; such a report says it is not a gate. ``on_loaded(declaration, isolation)`` is
    called once the layer is loaded, before the first property.
    """
    if in_process:
        spec = load(job)
        if on_loaded:
            on_loaded(spec.declaration(), IN_PROCESS)
        return _run(spec.declaration(), spec.subject, job, progress, IN_PROCESS, local=True)
    session = _session(job, readonly=list(readonly) if readonly is not None else None, wall_seconds=wall_seconds)
    with session:
        assert session.declaration is not None
        if on_loaded:
            on_loaded(session.declaration, session.caps.reason)
        return _run(session.declaration, session.subject, job, progress, session.caps.reason, local=False)


def _run(
    declaration: Declaration,
    factory: SubjectFactory,
    job: Job,
    progress: Progress | None,
    isolation: str,
    *,
    local: bool,
) -> Report:
    """The pipeline on one layer: cases for its declaration, every applicable property, the explanation.
    A layer in another process enforces its own per-call limits; one in this process gets the guard's."""
    limits = Limits(seconds=job.call_seconds, memory_bytes=job.memory_bytes) if local else Limits(None, None)
    options = Options(oracles=tuple(job.oracles), limits=limits, seed=job.seed)
    runner = Runner(
        spec_cases(declaration),
        factory,
        options,
        job.max_examples,
        job.seed,
        progress,
        shrink_seconds=job.shrink_seconds,
        shrinking=getattr(progress, "shrinking", None),  # a progress object may also show a failure shrinking
    )
    props = list(job.only) if job.only else property_names(declaration)
    target = job.label or (declaration.origin.target if declaration.origin else "") or declaration.name
    report = runner.run(props, target=target or declaration.kind, kind=declaration.kind)
    report.settings["sandbox"] = isolation
    for p in report.properties:  # what each value failure needs, shown by running the layer without it
        if p.status == FAIL and p.property.startswith("grad_") and p.trial is not None:
            if not any(f.failed and f.cause for f in p.findings):
                p.needs = needs.verified(p.trial, p.property, factory, options, explain.minimums(declaration))
    _look_behind(report, declaration, factory, options)
    explain.annotate(report, declaration)  # failing gradients: where, pattern, named mistake, reproduction
    return report


def _look_behind(report: Report, declaration: Declaration, factory: SubjectFactory, options: Options) -> None:
    """A fault raised on a line that writes sizes down: what the layer does at those sizes (faults.behind)."""
    others = [p.property for p in report.properties if p.status == NOT_JUDGED]
    s = spec_supports(declaration)
    bounded = ("channels", "filters", "kernel", "features", "out_features")
    fixed: dict[str, int | None] = {f: None for f in bounded if isinstance(getattr(s, f), int)}
    if "channels" in fixed:
        fixed["in_channels"] = None
    for p in report.properties:
        if p.status == FAIL and p.trial is not None:
            fault = next((f for f in p.findings if f.failed and f.cause), None)
            if fault is not None:
                p.behind = faults.behind(p.trial, p.property, fault, others, factory, options, fixed)
                return  # one fault, looked behind once


def check(
    spec: LayerSpec | type | object,
    *,
    max_examples: int = DEFAULT_MAX_EXAMPLES,
    seed: int | None = 0,
    oracles: Sequence[str] = ORACLES,
    only: Sequence[str] | None = None,
    limits: Limits | None = None,
    progress: Progress | None = None,
    target: str | None = None,
    in_process: bool = False,
    shrink_seconds: float | None = SHRINK_SECONDS,
) -> Report:
    """Run every applicable property (or ``only`` those) on the layer ``spec`` describes.

    The layer runs in a sandboxed worker process when the worker can load the same spec: the spec says
    where it came from (``LayerSpec.origin``, set by the presets and by ``checks.adapt.targets.load``), or
    it is a LayerSpec at module level of an importable file. Otherwise (a spec built in a notebook or in
    ``__main__``), or with ``in_process=True``, it runs in this process and the report says so.

    ``spec`` may also be a layer class, or a layer object (its class is checked, built afresh for each case):
    its kind and convention are inferred as for ``cnn-gradcheck check FILE`` (checks.infer), and the report
    says what was inferred (``settings["inferred"]``)."""
    limits = limits or Limits()
    settings = {
        "seed": seed or 0,
        "max_examples": max_examples,
        "oracles": tuple(oracles),
        "only": tuple(only) if only else None,
        "call_seconds": limits.seconds,
        "memory_bytes": limits.memory_bytes,
        "label": target or "",
        "shrink_seconds": shrink_seconds,
    }
    if not isinstance(spec, LayerSpec):
        return _check_class(spec, Job("-", **settings), progress)
    job = _job_for(spec)
    if job is not None and not in_process:
        return check_job(replace(job, **settings), progress=progress)
    local = Job(target or spec.name or spec.kind, kind=spec.kind, **settings)
    why = IN_PROCESS if in_process else IN_PROCESS.replace("(not a gate)", "(no file to load it from: not a gate)")
    return _run(spec.declaration(), spec.subject, local, progress, why, local=True)


def _check_class(obj: object, settings: Job, progress: Progress | None) -> Report:
    """Check a layer class (or an object's class) from the file that defines it, its kind inferred."""
    from checks import infer

    cls = obj if isinstance(obj, type) else type(obj)
    module = sys.modules.get(cls.__module__)
    path = getattr(module, "__file__", None)
    name = cls.__qualname__
    if module is None or path is None or cls.__module__ == "__main__" or "." in name:
        raise TypeError(
            f"cannot check {name}: the sandboxed worker loads a layer from a .py file and {name} is not at module "
            "level of one (defined in a notebook or __main__?): save it in a file, or describe it with a "
            "LayerSpec and check(spec, in_process=True)"
        )
    job = replace(settings, target=f"{path}:{name}")
    found = next((f for f in infer.survey(job) if f.name == name), None)
    if found is None:
        raise TypeError(f"cannot check {name}: {path} defines no layer class {name} with a forward and a backward")
    inferred = infer.confirm(job, found, check_job)
    if not inferred.checkable:
        raise TypeError(f"{name}: {inferred.why}")
    report = check_job(inferred.job(job), progress=progress)
    instance = "" if obj is cls else f" (an instance: its class {name}, built afresh for each case)"
    report.settings["inferred"] = inferred.why + instance
    return report


def _job_for(spec: LayerSpec) -> Job | None:
    """A Job that makes a worker load this same spec, or None when no file can."""
    origin = spec.origin
    if origin is not None:
        return Job(origin.target, kind=origin.kind, preset=origin.preset, overrides=origin.overrides, root=origin.root)
    module = sys.modules.get(getattr(spec.build, "__module__", "") or "")
    path = getattr(module, "__file__", None)
    if module is None or path is None or module.__name__ == "__main__":
        return None
    names = [name for name, value in vars(module).items() if value is spec]
    return Job(f"{path}:{names[0]}") if names else None


def check_network_job(
    job: Job,
    input_shape: tuple[int, ...] | None = None,
    *,
    progress: Progress | None = None,
    wall_seconds: float | None = None,
    cases: int | None = None,
    methods: Mapping[str, str] | None = None,
) -> Report:
    """Check the whole network ``job.target`` names (checks.pipeline.chain), its layers in a sandboxed worker;
    ``checks.adapt.targets.TargetError`` when it cannot be loaded or adapted (no input shape, the layers do not
    chain, a layer without the methods of one)."""
    from checks.pipeline import chain
    from checks.sandbox.network import check_at_fault, open_network
    from checks.sandbox.worker import LoadRefused

    try:
        session, net, info = open_network(job, input_shape, wall_seconds=wall_seconds, methods=methods)
    except LoadRefused as exc:
        raise targets.TargetError(str(exc), Cause(exc.cause) if exc.cause in CAUSES else None, exc.origin) from None
    with session:
        checker = chain.Checker(net, info, job.label or job.target, seed=job.seed, count=cases or chain.CASES)
        report = checker.report(progress)
        report.settings["sandbox"] = session.caps.reason
    # the layer at fault's own ordinary check (None: no layer at fault, or it could not be checked on its own)
    own = check_at_fault(job, report, info, lambda j: check_job(j, wall_seconds=wall_seconds))
    report.at_fault_report = own
    return report


def check_network(
    target: str,
    *,
    input_shape: Sequence[int] | None = None,
    methods: Mapping[str, str] | None = None,
    seed: int = 0,
    cases: int | None = None,
    limits: Limits | None = None,
    progress: Progress | None = None,
) -> Report:
    """Check a network of your layers end to end: ``target`` is ``path/to/net.py:build`` (a function returning
    the layers in forward order, a list of them, or a model object); ``input_shape`` unless the module declares
    INPUT_SHAPE; ``methods`` ({"forward": "go", "backward": "learn"}) when the layers' methods have names the
    checker does not know and the module declares no METHODS (it replaces METHODS). dL/dx and dL/d(every
    parameter) against finite differences of the network's loss, each layer checked in place (the first from the
    loss down that disagrees is named), and the SGD step of layers that update themselves in backward. The
    network runs in a sandboxed worker process. When a layer is at fault, its class is then checked on its own
    (kind inferred as for ``check FILE``): ``report.at_fault_report``, and
    ``report.settings["network"]["at_fault"]["own_check"]`` says what was inferred or why it was not checked."""
    limits = limits or Limits()
    job = Job(target, seed=seed, call_seconds=limits.seconds, memory_bytes=limits.memory_bytes)
    shape = None if input_shape is None else tuple(int(d) for d in input_shape)
    if methods is not None and not (
        isinstance(methods, Mapping) and all(isinstance(k, str) and isinstance(v, str) for k, v in methods.items())
    ):
        raise TypeError(f"methods={methods!r:.80}: expected a dict such as {{'forward': 'go', 'backward': 'learn'}}")
    declared = None if methods is None else dict(methods)  # which roles and names: the worker checks them
    return check_network_job(job, shape, progress=progress, cases=cases, methods=declared)
