"""The properties a backward pass must have. Each takes a Trial and returns Findings.

- forward: output shape, dtype, finite, equal to the oracle's output.
- grad_<name>: the gradient for "input" or a parameter, against PyTorch (exact) and finite differences
  of the layer's own forward (where no kink is within a step); at an exact kink of ReLU / max-pool,
  subgradient membership instead.
- oracle_agreement: where both judge, finite differences and PyTorch agree with each other.
- linearity: backward(aG + bH) = a backward(G) + b backward(H).
- determinism: the same forward and backward twice give identical arrays.
- no_mutation: forward leaves its inputs alone, backward leaves G alone.
- quiet: the layer prints nothing.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import replace

import numpy as np

from checks.adapt.guard import LayerFault
from checks.compare import compare, compare_directional
from checks.findings import FAIL, INCONCLUSIVE, PASS, SKIP, Finding
from checks.oracles import kinks
from checks.oracles.fd import FDDirectional, FDGradient
from checks.pipeline.trial import Trial

Property = Callable[[Trial], list[Finding]]
LINEAR_A, LINEAR_B = 0.75, -1.25  # exact binary fractions: the combination adds no rounding of its own


def _finding(t: Trial, prop: str, ok: bool, message: str, oracle: str | None, comparison=None) -> Finding:
    return Finding(prop, PASS if ok else FAIL, message, oracle, t.case.describe(), comparison)


def _fault(t: Trial, prop: str, fault: LayerFault) -> list[Finding]:
    finding = Finding(prop, FAIL, str(fault), "structure", t.case.describe(), cause=fault.cause.value)
    return [replace(finding, origin=getattr(fault, "origin", None))]


def forward(t: Trial) -> list[Finding]:
    """Z has the geometry's shape and the input's dtype, is finite, and equals the oracle's Z (for a kind judged
    from its own output: is an output of that kind at all)."""
    try:
        z = t.output
    except LayerFault as fault:
        return _fault(t, "forward", fault)
    own = t.kind.own_output
    if own is not None:
        m = own.forward(t.pristine.inputs, t.case.geometry, z, t.tol.forward)
        reason = m.reason + ("" if m.comparison is None else f"; {m.comparison.summary()}")
        return [_finding(t, "forward", m.ok, reason, "structure", m.comparison)]
    if t.kind.forward is None:
        return _own_reference(t, z)
    if t.torch is not None:
        expected, oracle = t.torch.output, "torch"
    else:
        expected, oracle = t.reference[0], "reference"
    c = compare(z, expected, t.tol.forward, floor=t.rounding_floor)
    return [_finding(t, "forward", c.ok, c.summary(), oracle, c)]


USER_REFERENCE = "user_reference"
"""The oracle of a forward judged against the layer's own declared reference (``LayerSpec(reference=fn)``)."""


def _own_reference(t: Trial, z: np.ndarray) -> list[Finding]:
    """Z of a kind with no reference of ours equals the reference forward the layer declared, within the forward
    tolerance; with none declared only its shape, dtype and finiteness held (t.output), and its values are SKIP.
    A reference that raises or answers badly fails ``forward``, named as the reference's fault."""
    try:
        expected = t.declared_reference
    except LayerFault as fault:  # its stage, "reference forward", names it: the layer's own forward was fine
        return _fault(t, "forward", fault)
    if expected is None:
        why = f"no reference forward for a {t.kind.name} layer: Z's values not judged (shape, dtype, finiteness are)"
        return [Finding("forward", SKIP, why, None, t.case.describe())]
    c = compare(z, expected, t.tol.forward, floor=t.rounding_floor)
    return [_finding(t, "forward", c.ok, f"against your reference forward: {c.summary()}", USER_REFERENCE, c)]


def _at_kink_membership(t: Trial, actual: np.ndarray) -> Finding:
    """The kind's subgradient verdict at an exact kink; the Membership, with what it measured, stays on the
    trial (``Trial.memberships``) so that the report explains it without rerunning the layer."""

    def probe(g: np.ndarray) -> np.ndarray:
        return t.grad_at(g, "input")

    c = t.pristine
    labelled = {} if c.labels is None else {"labels": c.labels}  # a loss's kinks depend on its labels
    m = t.kind.membership(c.inputs, c.geometry, c.upstream, actual, probe, t.tol.exact, **labelled)
    t.memberships["input"] = m
    return _finding(
        t,
        "grad_input",
        m.ok,
        m.reason + ("" if m.comparison is None else f"; {m.comparison.summary()}"),
        "subgradient",
        m.comparison,
    )


def fd_allowance(t: Trial, name: str, estimate: FDGradient) -> np.ndarray:
    """The absolute allowance of an element-wise finite difference per entry: its rounding noise and, for a kind
    that bounds it (Kind.fd_truncation: batch norm, whose curvature grows as 1 / sigma^3), the truncation error
    of a central difference at the trial's step."""
    floor = np.maximum(estimate.noise, t.fd_floor(name))
    if t.kind.fd_truncation is None:
        return floor
    c = t.pristine
    x = np.asarray(c.inputs[name], dtype=np.float64)
    h = t.tol.eps * (np.maximum(1.0, np.abs(x)) if t.relative_step else np.ones(x.shape))
    return floor + t.kind.fd_truncation(c.inputs, c.geometry, c.upstream, name, h)


def _fd_findings(t: Trial, prop: str, name: str, actual: np.ndarray) -> Finding:
    estimate = t.fd(name)
    if isinstance(estimate, FDGradient):
        if not estimate.trusted.any():
            return Finding(prop, INCONCLUSIVE, "every finite-difference step crosses a kink", "fd", t.case.describe())
        floor = fd_allowance(t, name, estimate)
        c = compare(actual, estimate.value, t.tol.fd, mask=estimate.trusted, floor=floor)
        skipped = int(estimate.value.size - estimate.trusted.sum())
        note = f" ({skipped} entries within a step of a kink not judged)" if skipped else ""
        return _finding(t, prop, c.ok, c.summary() + note, "fd", c)
    return _directional(t, prop, actual, estimate)


def _directional(t: Trial, prop: str, actual: np.ndarray, estimate: FDDirectional) -> Finding:
    judged = [(u, p) for u, p in zip(estimate.directions, estimate.projections, strict=True) if p is not None]
    if not judged:
        return Finding(prop, INCONCLUSIVE, "every directional step crosses a kink", "fd", t.case.describe())
    for k, (u, projection) in enumerate(judged):
        terms = np.asarray(actual, dtype=np.float64) * u
        c = compare_directional(float(terms.sum()), projection, float(np.abs(terms).sum()), t.tol.fd)
        if not c.ok:
            return _finding(
                t,
                prop,
                False,
                f"direction {k}: <grad, u> = {c.worst_actual:.6g}, finite difference {c.worst_expected:.6g}",
                "fd",
                c,
            )
    return _finding(t, prop, True, f"{len(judged)} random directions agree", "fd")


OWN_OUTPUT_FORWARDS = 24
"""Further forwards on the same input that tell whether a kind judged from its own output (dropout) changes its
output between calls. One is not enough: a fresh mask on a 1-entry input with keep 0.8 repeats itself 4 times in 5,
so the failure would come and go while hypothesis shrinks the case; after 24 more it stays hidden < 0.5% of the time."""


def _output_changes(t: Trial, z: np.ndarray) -> bool:
    """Whether some further forward on the same input (up to OWN_OUTPUT_FORWARDS) differs from ``z``."""
    return any(not np.array_equal(z, t.forward(), equal_nan=True) for _ in range(OWN_OUTPUT_FORWARDS))


def _own_output_gradient(t: Trial, prop: str) -> list[Finding]:
    """dL/dX of a kind judged from the layer's own output (Kind.own_output: dropout's mask is the layer's): a
    forward and the backward after it, the gradient judged against THAT forward's Z; the layer's choice is kept
    in the case's notes for the explanation. Finite differences judge too, unless the layer's output changes
    between two forwards on the same input (then its forward is not a function to difference)."""
    own, c = t.kind.own_output, t.pristine
    z = t.forward()
    grad = t._gradient(t.guarded("backward", t.subject.backward, np.array(c.upstream, copy=True)), "input")
    m = own.gradient(c.inputs, c.geometry, c.upstream, z, grad, t.tol.exact)
    t.memberships["input"] = m
    c.notes.update(own.notes(c.inputs, z))
    steady = np.array_equal(z, t.output) and not _output_changes(t, z)
    note = "" if steady else " (its output changed between two forwards on the same input: see determinism)"
    reason = m.reason + ("" if m.comparison is None else f"; {m.comparison.summary()}") + note
    findings = [_finding(t, prop, m.ok, reason, "subgradient", m.comparison)]
    if "fd" in t.options.oracles:
        if steady:
            findings.append(_fd_findings(t, prop, "input", t.grad("input")))
        else:
            why = "the layer's output changes between calls: no finite difference of it means anything"
            findings.append(Finding(prop, INCONCLUSIVE, why, "fd", t.case.describe()))
    return findings


def gradient(name: str) -> Property:
    """The property grad_<name>: the layer's dL/d(name) is right."""
    prop = f"grad_{name}"

    def check(t: Trial) -> list[Finding]:
        if name not in t.case.inputs:
            return [Finding(prop, SKIP, f"this case has no {name!r}", None, t.case.describe())]
        try:
            actual = t.grad(name)
            if name == "input" and t.kind.own_output is not None:
                return _own_output_gradient(t, prop)
            if name == "input" and t.at_kink and t.kind.membership is not None:
                return [_at_kink_membership(t, actual)]
            findings = []
            if t.torch is not None:
                c = compare(actual, t.torch.grads[name], t.tol.exact, floor=t.rounding_floor)
                if not c.ok and t.kind.hidden_kinks and kinks.near_kink(t.sites, t.rounding_floor):
                    # Inside a network a kink is not visible in the inputs: at a tie (or a tie within
                    # rounding) several gradients are valid and torch's is just one of them.
                    findings.append(
                        Finding(
                            prop,
                            INCONCLUSIVE,
                            f"at a kink inside the network, torch's gradient is one valid choice; {c.summary()}",
                            "torch",
                            t.case.describe(),
                            c,
                        )
                    )
                else:
                    findings.append(_finding(t, prop, c.ok, c.summary(), "torch", c))
            else:
                findings.append(Finding(prop, SKIP, t.torch_skip_reason, "torch", t.case.describe()))
            if "fd" in t.options.oracles:
                findings.append(_fd_findings(t, prop, name, actual))
            return findings
        except LayerFault as fault:
            return _fault(t, prop, fault)

    check.__name__ = prop
    return check


def oracle_agreement(t: Trial) -> list[Finding]:
    """Finite differences and PyTorch give the same gradient wherever both apply."""
    if t.kind.own_output is not None:
        why = "no exact twin to agree with: the kind is judged from the layer's own output"
        return [Finding("oracle_agreement", SKIP, why, None, t.case.describe())]
    if t.kind.torch is None:
        why = f"one oracle: a {t.kind.name} layer is judged by differences of its own forward only"
        return [Finding("oracle_agreement", SKIP, why, None, t.case.describe())]
    if t.torch is None or "fd" not in t.options.oracles:
        return [Finding("oracle_agreement", SKIP, "needs both the torch and the fd oracle", None, t.case.describe())]
    findings = []
    try:
        for name in t.names:
            exact = t.torch.grads[name]
            estimate = t.fd(name)
            if isinstance(estimate, FDGradient):
                floor = fd_allowance(t, name, estimate)
                c = compare(exact, estimate.value, t.tol.fd, mask=estimate.trusted, floor=floor)
                findings.append(_finding(t, "oracle_agreement", c.ok, f"{name}: {c.summary()}", "fd+torch", c))
            else:
                findings.append(_directional(t, "oracle_agreement", exact, estimate))
    except LayerFault as fault:
        return _fault(t, "oracle_agreement", fault)
    return findings


def linearity(t: Trial) -> list[Finding]:
    """backward(aG + bH) = a backward(G) + b backward(H) for a second random upstream H."""
    g = t.pristine.upstream
    rng = np.random.default_rng(t.options.seed + 1)
    h = (rng.uniform(0.1, 2.0, g.shape) * rng.choice([-1.0, 1.0], g.shape)).astype(g.dtype)
    try:
        combined = t.backward((LINEAR_A * g + LINEAR_B * h).astype(g.dtype))
        separate_g, separate_h = t.grads, t.backward(h)
    except LayerFault as fault:
        return _fault(t, "linearity", fault)
    # Non-finite gradients are grad_<name>'s failure; comparing NaN with NaN here would only repeat it.
    names = [
        n
        for n in t.names
        if all(t.usable(grads, n) and np.isfinite(grads[n]).all() for grads in (combined, separate_g, separate_h))
    ]
    if not names:
        return [Finding("linearity", SKIP, "the layer returned no gradient to test", None, t.case.describe())]
    for name in names:
        try:
            expected = LINEAR_A * np.asarray(separate_g[name], np.float64) + LINEAR_B * np.asarray(
                separate_h[name], np.float64
            )
            c = compare(np.asarray(combined[name], np.float64), expected, t.tol.exact, floor=t.rounding_floor)
        except ValueError as exc:  # shapes that do not even match each other
            return [_finding(t, "linearity", False, f"{name}: {exc}", "structure")]
        if not c.ok:
            return [
                _finding(
                    t,
                    "linearity",
                    False,
                    f"{name}: backward is not linear in the upstream gradient; {c.summary()}",
                    "structure",
                    c,
                )
            ]
    return [_finding(t, "linearity", True, "backward is linear in the upstream gradient", "structure")]


def determinism(t: Trial) -> list[Finding]:
    """Two identical forward+backward runs give bit-identical arrays."""
    try:
        z1, g1 = t.output, t.grads
        z2 = t.forward()
        g2 = t.backward(t.pristine.upstream)
        changed = not np.array_equal(z1, z2, equal_nan=True)
        changed = changed or (t.kind.own_output is not None and _output_changes(t, z1))
    except LayerFault as fault:
        return _fault(t, "determinism", fault)
    if changed:
        fix = "" if t.kind.own_output is None else f": {t.kind.own_output.fix}"
        message = f"forward gave different outputs for the same input{fix}"
        return [_finding(t, "determinism", False, message, "structure")]
    for name in sorted(set(g1) | set(g2)):
        a, b = g1.get(name), g2.get(name)
        if t.usable(g1, name) != t.usable(g2, name) or (
            t.usable(g1, name) and not np.array_equal(a, b, equal_nan=True)
        ):
            return [
                _finding(
                    t,
                    "determinism",
                    False,
                    f"backward gave different {name!r} gradients for the same input",
                    "structure",
                )
            ]
    return [_finding(t, "determinism", True, "same results twice", "structure")]


def no_mutation(t: Trial) -> list[Finding]:
    """forward must not write into its inputs (nor parameters), backward not into G."""
    inputs = {k: v.copy() for k, v in t.pristine.inputs.items()}
    upstream = t.pristine.upstream.copy()
    try:
        t.guarded("forward", t.subject.forward, inputs)
        changed = [k for k in inputs if not np.array_equal(inputs[k], t.pristine.inputs[k])]
        if changed:
            return [_finding(t, "no_mutation", False, f"forward modified its argument(s) {changed}", "structure")]
        t.guarded("backward", t.subject.backward, upstream)
    except LayerFault as fault:
        return _fault(t, "no_mutation", fault)
    if not np.array_equal(upstream, t.pristine.upstream):
        return [_finding(t, "no_mutation", False, "backward modified the upstream gradient it was given", "structure")]
    changed = [k for k in inputs if not np.array_equal(inputs[k], t.pristine.inputs[k])]
    if changed:
        return [
            _finding(
                t, "no_mutation", False, f"backward modified {changed} (an SGD step inside backward?)", "structure"
            )
        ]
    return [_finding(t, "no_mutation", True, "inputs and upstream gradient untouched", "structure")]


def quiet(t: Trial) -> list[Finding]:
    """The layer writes nothing to stdout or stderr (checked after the other properties ran)."""
    try:
        t.output, t.grads  # noqa: B018 - make sure the layer has run at least once
    except LayerFault:
        pass
    text = t.transcript.text
    if text:
        first = text.strip().splitlines()[0][:80] if text.strip() else repr(text[:20])
        return [
            _finding(
                t,
                "quiet",
                False,
                f"the layer printed {t.transcript.total} characters (first line: {first!r})",
                "structure",
            )
        ]
    return [_finding(t, "quiet", True, "no output", "structure")]


STRUCTURAL: dict[str, Property] = {
    "linearity": linearity,
    "determinism": determinism,
    "no_mutation": no_mutation,
    "quiet": quiet,
}


def property_names(names: list[str]) -> list[str]:
    """Every property for a case with inputs ``names``, in report order."""
    return ["forward", *(f"grad_{n}" for n in names), "oracle_agreement", *STRUCTURAL]


def get(prop: str) -> Property:
    """The property function for a name from ``property_names``."""
    if prop == "forward":
        return _without_twin(forward)
    if prop == "oracle_agreement":
        return _without_twin(oracle_agreement)
    if prop.startswith("grad_"):
        return _without_twin(gradient(prop[len("grad_") :]))
    if prop in STRUCTURAL:
        return _without_twin(STRUCTURAL[prop])
    raise ValueError(f"unknown property {prop!r}")


def _without_twin(check: Property) -> Property:
    """``check``, after dropping the torch result of a trial whose kind is judged from the layer's own output: our
    twin computes OUR choice (dropout: our mask), which is not the layer's, so nothing after (an explanation
    included) may take it for the right answer; the reference layer reads the layer's choice from the notes."""

    @functools.wraps(check)
    def run_check(t: Trial) -> list[Finding]:
        if t.kind.own_output is not None:
            t.torch = None
        return check(t)

    return run_check


def run(t: Trial, props: list[str] | None = None) -> list[Finding]:
    """All findings of the named properties (default: all of them) for one trial."""
    return [f for prop in (props or property_names(t.names)) for f in get(prop)(t)]
