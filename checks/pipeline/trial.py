"""One case checked against one subject: the named steps of the pipeline, each computed once, on demand.

make subject -> forward -> backward(G) -> oracles (numpy reference, torch, finite differences)
-> comparisons (checks.pipeline.properties). Every call into the subject goes through checks.adapt.guard, so a
misbehaving layer raises LayerFault, which the properties turn into failed findings.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from checks import kinds
from checks.adapt.guard import Cause, LayerFault, Limits, Transcript, call
from checks.case import Case
from checks.compare import Membership
from checks.oracles import fd, kinks, torch_oracle
from checks.subject import Subject, SubjectFactory
from checks.tolerances import DtypeTolerances, tolerances_for


@dataclass
class Options:
    """How a trial runs: which oracles, tolerance overrides, per-call limits, the seed for directions."""

    oracles: tuple[str, ...] = ("torch", "fd")
    tolerance_overrides: Mapping[str, object] | None = None
    limits: Limits = field(default_factory=Limits)
    seed: int = 0


ROUNDING_ULPS = 256


def no_gradient_oracle(options: Options) -> str | None:
    """Why no oracle can give a gradient's value away from kinks (None when one can): fd was not
    requested and torch was not requested or does not import. Membership at kinks alone judges only
    the kink entries, so it does not count."""
    if "fd" in options.oracles:
        return None
    if "torch" not in options.oracles:
        return f"no gradient oracle requested (--oracles {','.join(options.oracles) or 'none'})"
    ok, why = torch_oracle.available()
    return None if ok else f"the only gradient oracle requested is torch, and {why}"


class Trial:
    """Lazily evaluated pipeline state for ``case`` and the subject ``factory`` builds for it."""

    def __init__(self, case: Case, factory: SubjectFactory, options: Options | None = None) -> None:
        self.case = case
        self.pristine = case.copy()
        self.factory = factory
        self.options = options or Options()
        self.transcript = Transcript()
        self.kind = kinds.get(case.kind)
        self.tol: DtypeTolerances = tolerances_for(case.dtype, self.options.tolerance_overrides)
        self.shapes = ", ".join(f"{k} {v.shape}" for k, v in case.inputs.items())
        self.raw_grads: dict[str, object] = {}
        """The gradients exactly as the layer returned them (its own layout and shape) at the case's G,
        when its subject keeps them (``raw``): the report shows a wrongly shaped gradient as it was."""
        self.memberships: dict[str, Membership] = {}
        """The subgradient verdicts taken on this trial, by gradient: what they measured, for the report."""

    # -- the subject -----------------------------------------------------------------------------
    def guarded(self, stage: str, fn, *args):
        return call(stage, fn, *args, shapes=self.shapes, limits=self.options.limits, transcript=self.transcript)

    @cached_property
    def subject(self) -> Subject:
        return self.guarded("construct", self.factory, self.case)

    def forward(self, inputs: Mapping[str, np.ndarray] | None = None) -> np.ndarray:
        """Z from the subject at fresh copies of the inputs, validated: an ndarray of the expected
        shape and dtype (copies, so a layer that writes into its arguments cannot corrupt the case)."""
        source = self.pristine.inputs if inputs is None else inputs
        inputs = {k: np.array(v, copy=True) for k, v in source.items()}
        z = self.guarded("forward", self.subject.forward, inputs)
        return self._validated("forward", "output", z, self.case.geometry.output_shape, self.case.dtype)

    def backward(self, upstream: np.ndarray) -> dict[str, np.ndarray]:
        """A fresh forward at the case, then backward(upstream): gradients keyed by input name. A subject
        that does both in one call (``forward_backward``: a layer in another process) is asked once."""
        upstream = np.array(upstream, copy=True)
        if hasattr(self.subject, "forward_backward"):
            inputs = {k: np.array(v, copy=True) for k, v in self.pristine.inputs.items()}
            z, grads = self.guarded("backward", self.subject.forward_backward, inputs, upstream)
            self._validated("forward", "output", z, self.case.geometry.output_shape, self.case.dtype)
        else:
            self.forward()
            grads = self.guarded("backward", self.subject.backward, upstream)
        if not isinstance(grads, Mapping):
            detail = f"adapter returned {type(grads).__name__}, not a mapping"
            raise LayerFault("backward", detail, self.shapes, cause=Cause.TYPE)
        return dict(grads)

    @staticmethod
    def usable(grads: Mapping[str, object], name: str) -> bool:
        """True when ``grads`` holds an actual numeric array for ``name`` (not None, not a recorded fault, not
        an array of objects)."""
        value = grads.get(name)
        return isinstance(value, np.ndarray) and value.dtype.kind in "fiub"

    def _validated(self, stage: str, what: str, value: object, shape: tuple, dtype: np.dtype) -> np.ndarray:
        if value is None:
            raise LayerFault(stage, f"returned None instead of the {what}", self.shapes, cause=Cause.TYPE)
        if not isinstance(value, np.ndarray):
            if np.isscalar(value) and shape == ():
                value = np.asarray(value, dtype=dtype)
            else:
                detail = f"returned {type(value).__name__} instead of an ndarray {what}"
                raise LayerFault(stage, detail, self.shapes, cause=Cause.TYPE)
        if value.shape != tuple(shape):
            detail = f"{what} has shape {value.shape}, expected {tuple(shape)}"
            raise LayerFault(stage, detail, self.shapes, cause=Cause.SHAPE, actual_shape=value.shape)
        if value.dtype != dtype:
            raise LayerFault(stage, f"{what} has dtype {value.dtype}, expected {dtype}", self.shapes, cause=Cause.DTYPE)
        if not np.all(np.isfinite(value)):
            bad = int(np.size(value) - np.isfinite(value).sum())
            detail = f"{what} has {bad} non-finite (NaN/inf) entries"
            raise LayerFault(stage, detail, self.shapes, cause=Cause.NONFINITE)
        return value

    @cached_property
    def output(self) -> np.ndarray:
        return self.forward()

    @cached_property
    def grads(self) -> dict[str, np.ndarray]:
        """backward(G) at the case; each expected gradient validated (missing ones raise on access)."""
        grads = self.backward(self.case.upstream)
        self.raw_grads = dict(getattr(self.subject, "raw", None) or {})
        return grads

    @property
    def learning_rate(self) -> float | None:
        """The layer's own learning rate, when its subject knows it (a layer that steps inside backward)."""
        try:
            return getattr(self.subject, "learning_rate", None)
        except LayerFault:
            return None

    def grad(self, name: str) -> np.ndarray:
        """dL/d(name) at the case's upstream gradient, validated."""
        return self._gradient(self.grads, name)

    def grad_at(self, upstream: np.ndarray, name: str) -> np.ndarray:
        """dL/d(name) for another upstream gradient (fresh forward first), validated."""
        return self._gradient(self.backward(upstream), name)

    def _gradient(self, grads: Mapping[str, object], name: str) -> np.ndarray:
        value = grads.get(name)
        if isinstance(value, LayerFault):
            raise value
        if value is None:
            detail = f"no gradient for {name!r} (got {sorted(grads) or 'none'})"
            raise LayerFault("backward", detail, self.shapes, cause=Cause.MISSING)
        return self._validated(
            "backward", f"gradient for {name!r}", value, self.case.inputs[name].shape, self.case.dtype
        )

    @property
    def names(self) -> list[str]:
        """The gradients the layer owes: "input" and every parameter."""
        return list(self.case.inputs)

    # -- oracles ---------------------------------------------------------------------------------
    @cached_property
    def reference(self) -> tuple[np.ndarray, list[kinks.KinkSite]]:
        """The kind's reference forward at the case: Z and the kink sites met on the way. A kind with no reference
        (``function``) has no kink sites we can see, and the layer's own Z stands in for the magnitudes the
        rounding allowances read (zeros if its forward fails: that failure is the forward property's)."""
        if self.kind.forward is None:
            try:
                return self.output, []
            except LayerFault:
                return np.zeros(self.case.geometry.output_shape, self.case.dtype), []
        return self.kind.forward(self.case.geometry, self.pristine.inputs, self.case.labels)

    @cached_property
    def declared_reference(self) -> np.ndarray | None:
        """Z of the layer's OWN reference forward (``LayerSpec(reference=fn)``, a kind with none of ours), None when
        it declared none. User code: asked of the subject (in the worker), guarded, and validated like the layer's
        Z (shape, finiteness; any float dtype, compared in float64): what goes wrong is a LayerFault at stage
        "reference forward"."""
        if self.kind.forward is not None or not getattr(self.subject, "has_reference", False):
            return None
        inputs = {k: np.array(v, copy=True) for k, v in self.pristine.inputs.items()}
        z = self.guarded("reference forward", self.subject.reference, inputs)
        floating = isinstance(z, np.ndarray) and z.dtype.kind == "f"
        dtype = z.dtype if floating else self.case.dtype
        return self._validated("reference forward", "reference output", z, self.case.geometry.output_shape, dtype)

    @property
    def sites(self) -> list[kinks.KinkSite]:
        return self.reference[1]

    @cached_property
    def at_kink(self) -> bool:
        return kinks.at_kink(self.sites)

    @cached_property
    def torch(self) -> torch_oracle.TorchResult | None:
        if self.kind.torch is None or "torch" not in self.options.oracles or not torch_oracle.available()[0]:
            return None
        c = self.pristine
        return torch_oracle.gradients(self.kind.torch, c.geometry, c.inputs, c.upstream, c.labels)

    @cached_property
    def rounding_floor(self) -> float:
        """An absolute allowance for rounding: ROUNDING_ULPS units of the case dtype's roundoff times the
        largest magnitude the computation involves. A gradient entry that is a sum cancelling to ~0
        (a bias gradient over G summing to 0) is rounding noise in both the layer and the oracle."""
        arrays = [self.reference[0], *self.pristine.inputs.values(), self.pristine.upstream]
        if self.torch is not None:
            arrays += [self.torch.output, *self.torch.grads.values()]
        magnitude = max([1.0, *(float(np.max(np.abs(a), initial=0.0)) for a in arrays)])
        return ROUNDING_ULPS * float(np.finfo(self.case.dtype).eps) * magnitude

    def fd_floor(self, name: str) -> np.ndarray:
        """The rounding bound of each central difference: ~u * sum|Z * G| / 2h (L itself may cancel,
        so |L| would underestimate it), never below the estimate's own noise."""
        terms = float(np.sum(np.abs(np.asarray(self.reference[0], np.float64) * self.pristine.upstream)))
        x = self.pristine.inputs[name]
        h = self.tol.eps * (np.maximum(1.0, np.abs(np.asarray(x, np.float64))) if self.relative_step else 1.0)
        return fd.rounding_noise(terms, h, self.case.dtype)

    @property
    def relative_step(self) -> bool:
        """A step scaled by |x|, except for curved kinds (see checks.oracles.fd)."""
        return not self.kind.curved

    @property
    def torch_skip_reason(self) -> str:
        if self.kind.torch is None:
            return f"no torch twin of a {self.kind.name} layer: it is judged by differences of its own forward"
        if "torch" not in self.options.oracles:
            return "torch oracle not requested"
        return torch_oracle.available()[1]

    def _signature(self):
        if not self.sites:
            return None
        c = self.pristine
        return lambda point: kinks.signature(self.kind.forward(c.geometry, point, c.labels)[1])

    def _forward_in_case_dtype(self, inputs: Mapping[str, np.ndarray]) -> np.ndarray:
        # The differences are taken in float64, but the layer is fed its own dtype (a float32
        # layer may refuse float64); the step stays far above float32 rounding (see tolerances).
        return self.forward({k: v.astype(self.case.dtype, copy=False) for k, v in inputs.items()})

    def fd_loss(self) -> fd.Loss | fd.BatchLoss:
        """L = sum(Z * G) of the subject's own forward: asked of the subject in batches when it answers
        them (a layer in another process: one request per gradient), else point by point."""
        if hasattr(self.subject, "losses"):
            return _SubjectLosses(self)
        return fd.scalar_loss(self._forward_in_case_dtype, self.pristine.upstream)

    def fd(self, name: str) -> fd.FDGradient | fd.FDDirectional:
        """Finite differences of the SUBJECT's own forward: element-wise for small arrays, else directional."""
        cache = self.__dict__.setdefault("_fd_cache", {})
        if name not in cache:
            x = self.pristine.inputs[name]
            loss = self.fd_loss()
            if self.kind.blind_fd is not None:  # kinks we cannot see: differences that never judge across one
                rng = np.random.default_rng(self.options.seed)
                cache[name] = self.kind.blind_fd(loss, self.pristine.inputs, name, self.tol, self.case.dtype, rng)
            elif x.size <= self.tol.max_elementwise:
                cache[name] = fd.elementwise(
                    loss,
                    self.pristine.inputs,
                    name,
                    self.tol.eps,
                    self._signature(),
                    self.case.dtype,
                    relative=self.relative_step,
                )
            else:
                rng = np.random.default_rng(self.options.seed)
                directions = fd.random_directions(x.shape, self.tol.directions, rng)
                cache[name] = fd.directional(
                    loss, self.pristine.inputs, name, directions, self.tol.eps, self._signature(), self.relative_step
                )
        return cache[name]


@dataclass(frozen=True)
class _SubjectLosses:
    """fd.BatchLoss over a subject that evaluates batches itself (``losses``), every call guarded."""

    trial: Trial

    def _ask(self, base, name: str, **points: np.ndarray) -> np.ndarray:
        t = self.trial
        inputs = {k: np.asarray(v, dtype=np.float64) for k, v in base.items()}
        return t.guarded("forward", lambda: t.subject.losses(inputs, t.pristine.upstream, name, **points))

    def at_entries(self, base, name: str, index: np.ndarray, values: np.ndarray) -> np.ndarray:
        return self._ask(base, name, index=index, values=values)

    def at_arrays(self, base, name: str, points: np.ndarray) -> np.ndarray:
        return self._ask(base, name, points=points)
