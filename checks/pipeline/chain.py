"""A user's whole network: dL/d(input) and dL/d(every parameter) against finite differences of the network's own
loss, the layer at fault found by checking every layer in place, and the SGD step its layers take.

The network lives in a worker (checks.adapt.chain; reached through any ``Net``, checks.sandbox.network in
practice); everything here is the checker's: the cases, the finite differences, the verdicts, the report.

Finite differences never judge across a kink. The layers' kinks (max-pool switches, ReLU zeros) cannot be seen
from outside, so each direction v is differenced with two steps, h and h/2, and judged only where the two central
differences agree and the one-sided differences show no jump at the point (a smooth function: the asymmetry
(L(p+hv) - 2 L(p) + L(p-hv)) / h halves with h; at a kink it stays the size of the jump). A direction that fails
either test is 'not judged' and another is drawn. Large arrays are judged along a few random directions,
a failing gradient is then differenced entry by entry on a sample, to show where it is wrong.

| check | scalar | claimed gradient | where |
|---|---|---|---|
| ``composition`` | - | - | every layer identified as a reference kind (checks.pipeline.composed) |
| ``grad_input`` | network loss L(x) | what layer 1's backward returns | the case's input |
| ``grad_<param>@<n>`` | L(theta) | (theta_before - theta_after) / lr of layer n's step | theta |
| ``layer@<n>`` | sum(f_n(a) * G_n) | layer n's returned gradient and its steps | its input a_n in the network |
| ``sgd_update`` | - | the step at two learning rates | every parameter |
| ``sgd_order`` | - | the input gradient at two learning rates | every layer that steps |
| ``training`` | mean batch loss | - | a few epochs of SGD |

``grad_input`` and ``grad_<param>@<n>`` have a second oracle when every layer is identified as a reference kind:
the torch composition of those kinds (checks.pipeline.composed), differentiated by autograd in the user's own
layouts and compared entry by entry within the exact tolerance (a gradient recovered from a step is allowed the
rounding of that step, 4 eps |theta| / lr). When a layer is not identified, ``composition`` is skipped, says
which layer and what was tried, and the gradients are judged by finite differences alone.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Protocol

import numpy as np

from checks.adapt.chain import gradient_spellings, loss_and_grad
from checks.adapt.guard import Cause, LayerFault
from checks.compare import Comparison, compare
from checks.findings import FAIL, NOT_JUDGED, PASS, SKIP, Finding
from checks.oracles import torch_oracle
from checks.pipeline import composed
from checks.report import PropertyReport, Report, aggregate

NETWORK = "network"
"""The kind a whole network is reported as (``--kind network``)."""
LR = 2.0**-10
"""The learning rate of the checked backward: a power of two, so (before - after) / lr divides exactly."""
LR_OTHER = 2.0**-9
"""The second learning rate: a step must scale with lr, the input gradient must not depend on it."""
CASES = 3
DIRECTIONS = 3
"""Random directions judged per gradient and case."""
ATTEMPTS = 12
"""Directions drawn at most per gradient and case (a direction crossing a kink is not judged)."""
STEP = 1e-5
"""The first finite-difference step, times max(1, rms of the point), along a direction of rms 1."""
RTOL = 1e-6
"""A directional derivative fails when it is off by more than RTOL times the gradient's norm (plus rounding)."""
SAMPLED = 24
"""Entries differenced one by one to show where a failing gradient is wrong."""
TRAIN_STEPS, TRAIN_BATCH, TRAIN_LR = 4, 4, 2.0**-6
"""Epochs of per-sample SGD, images in the fixed batch, and their learning rate: the loss must go down."""
WORST = 5


class NetFault(Exception):
    """A call into the network misbehaved: ``fault`` says how, ``layer`` which layer (None: the worker itself)."""

    def __init__(self, fault: LayerFault, layer: int | None) -> None:
        super().__init__(str(fault))
        self.fault, self.layer = fault, layer


@dataclass(frozen=True)
class LayerInfo:
    """One layer as the worker adapted it: its position, class name, calls and parameters (name -> shape);
    ``grads``: parameter -> the attribute its gradient is read from (a layer that takes no step); ``cls``: where
    its class is defined (module, qualname, file) and what its name and constructor suggest, for its own check."""

    index: int
    name: str
    calls: str
    params: dict[str, tuple[int, ...]]
    takes_lr: bool
    grads: dict[str, str] = field(default_factory=dict)
    cls: dict | None = None
    dtypes: dict[str, str] = field(default_factory=dict)
    """parameter -> the dtype the layer holds it in (a float32 array's step rounds in float32)."""

    def eps(self, p: str) -> float:
        """The machine epsilon of parameter p as the layer holds it (float64 when unknown)."""
        return float(np.finfo(np.dtype(self.dtypes.get(p, "float64"))).eps)

    @property
    def shown(self) -> str:
        return f"layer {self.index + 1} {self.name} (index {self.index})"

    def gradient_of(self, p: str) -> bool:
        """Whether parameter p's gradient can be read: from its step (a layer taking lr) or from an attribute."""
        return self.takes_lr or p in self.grads


@dataclass(frozen=True)
class NetInfo:
    """The adapted network: its layers, the declared input shape, the output at the probe input, the loss it
    ends in, whether it is one model object (no attribution), and a fault met while adapting it."""

    layers: tuple[LayerInfo, ...]
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    loss: str
    model: bool = False
    probe_fault: NetFault | None = None

    @property
    def classes(self) -> int:
        return self.output_shape[-1]


@dataclass
class Run:
    """One forward and backward at one learning rate: per layer its input, output, the upstream gradient it
    received, the gradient it returned (None: it returned None), its parameters before the step, the gradient
    recovered from the step, and whether the step moved each parameter."""

    loss: float
    inputs: list[np.ndarray]
    outputs: list[np.ndarray]
    upstream: list[np.ndarray]
    returned: list[np.ndarray | None]
    params: list[dict[str, np.ndarray]]
    grads: list[dict[str, np.ndarray]]
    moved: list[dict[str, bool]]


class Net(Protocol):
    """What the checker asks of a network (checks.sandbox.network.RemoteNetwork); every method raises NetFault."""

    def run(self, x: np.ndarray, labels: np.ndarray, lr: float, loss: str) -> Run: ...

    def losses(
        self, x: np.ndarray, labels: np.ndarray, loss: str, layer: int, name: str, points: np.ndarray
    ) -> np.ndarray: ...

    def layer_losses(self, layer: int, name: str, a: np.ndarray, g: np.ndarray, points: np.ndarray) -> np.ndarray: ...

    def train(self, xs: np.ndarray, labels: np.ndarray, steps: int, lr: float, loss: str) -> np.ndarray: ...


Scalar = Callable[[np.ndarray], np.ndarray]
"""The scalar at a batch of points (k, *shape) -> (k,)."""


# -- finite differences that never judge across a kink ------------------------------------------------------------


@dataclass(frozen=True)
class Probe:
    """One direction: the claimed directional derivative <g, v>, the finite difference (None: not judged, and
    ``why``), and the tolerance."""

    claimed: float
    fd: float | None
    tol: float
    why: str = ""

    @property
    def failed(self) -> bool:
        return self.fd is not None and abs(self.claimed - self.fd) > self.tol


def step_for(point: np.ndarray) -> float:
    """h = STEP * max(1, rms(point)): relative for large values, absolute near 0."""
    return STEP * max(1.0, float(np.sqrt(np.mean(np.square(point))))) if point.size else STEP


def difference(values: np.ndarray, h: float, claimed: float, scale: float) -> Probe:
    """Judge one direction from L at p, p + hv, p - hv, p + hv/2, p - hv/2 (``values`` in that order).

    D(h) = (L(p+hv) - L(p-hv)) / 2h; judged when |D(h) - D(h/2)| and the change of the one-sided asymmetry
    |A(h) - 2 A(h/2)|, A(h) = (L(p+hv) - 2 L(p) + L(p-hv)) / h, are both within a quarter of the tolerance
    tol = RTOL * max(scale, |D(h/2)|) + 10 * rounding, rounding = 4 eps max|L| / h."""
    base, plus, minus, plus2, minus2 = (float(v) for v in values)
    rounding = 4 * np.finfo(np.float64).eps * max(abs(base), abs(plus), abs(minus), 1e-300) / h
    d1, d2 = (plus - minus) / (2 * h), (plus2 - minus2) / h
    a1, a2 = (plus - 2 * base + minus) / h, (plus2 - 2 * base + minus2) / (h / 2)
    tol = RTOL * max(scale, abs(d2)) + 10 * rounding
    if not all(math.isfinite(v) for v in (d1, d2, a1, a2)):
        return Probe(claimed, None, tol, "the loss is not finite at a perturbed point")
    if abs(d1 - d2) > tol / 4:
        return Probe(claimed, None, tol, "the two step sizes disagree (a kink within a step)")
    if abs(a1 - 2 * a2) > tol / 4:
        return Probe(claimed, None, tol, "the one-sided differences jump (a kink at the point)")
    return Probe(claimed, d2, tol)


def _points(point: np.ndarray, directions: list[np.ndarray], h: float) -> np.ndarray:
    rows = [point]
    for v in directions:
        rows += [point + h * v, point - h * v, point + h / 2 * v, point - h / 2 * v]
    return np.stack(rows)


def _probes(phi: Scalar, point: np.ndarray, claimed: np.ndarray, directions: list[np.ndarray]) -> list[Probe]:
    h = step_for(point)
    values = phi(_points(point, directions, h))
    scale = float(np.linalg.norm(claimed))
    return [
        difference(values[[0, 1 + 4 * k, 2 + 4 * k, 3 + 4 * k, 4 + 4 * k]], h, float(np.sum(claimed * v)), scale)
        for k, v in enumerate(directions)
    ]


def random_directions(shape: tuple[int, ...], count: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Gaussian directions scaled to rms 1 (so <g, v> is of the size of |g|, whatever the array's size)."""
    out = []
    for _ in range(count):
        v = rng.standard_normal(shape)
        out.append(v / max(float(np.sqrt(np.mean(v * v))), 1e-300))
    return out


@dataclass
class Judged:
    """A gradient judged along random directions: every probe, judged or not."""

    probes: list[Probe] = field(default_factory=list)

    @property
    def judged(self) -> list[Probe]:
        return [p for p in self.probes if p.fd is not None]

    @property
    def status(self) -> str:
        if any(p.failed for p in self.probes):
            return FAIL
        return PASS if self.judged else NOT_JUDGED

    def worst(self) -> Probe | None:
        judged = self.judged
        return max(judged, key=lambda p: abs(p.claimed - p.fd) / p.tol) if judged else None  # type: ignore[operator]


def judge(phi: Scalar, point: np.ndarray, claimed: np.ndarray, rng: np.random.Generator) -> Judged:
    """Judge ``claimed`` = d phi / d point along DIRECTIONS random directions, drawing more (up to ATTEMPTS in
    all) where a direction is not judged."""
    result = Judged()
    want = DIRECTIONS
    while want > 0 and len(result.probes) < ATTEMPTS:
        batch = _probes(phi, point, claimed, random_directions(point.shape, want, rng))
        result.probes += batch
        want -= sum(p.fd is not None for p in batch)
        if any(p.failed for p in batch):
            break
    return result


@dataclass(frozen=True)
class Entry:
    """One entry differenced on its own: its index in the array as the layer holds it, both values."""

    index: tuple[int, ...]
    layer: float
    fd: float
    tol: float

    @property
    def error(self) -> float:
        return abs(self.layer - self.fd)

    def text(self) -> str:
        return f"{self.index}: layer {self.layer:.6g}, fd {self.fd:.6g} (abs err {self.error:.3g})"


def sample_entries(
    phi: Scalar, point: np.ndarray, claimed: np.ndarray, rng: np.random.Generator, count: int = SAMPLED
) -> list[Entry]:
    """Up to ``count`` entries differenced one by one (half the largest claimed, half at random), judged ones
    only, worst first."""
    flat = np.abs(claimed).reshape(-1)
    top = list(np.argsort(-flat, kind="stable")[: count // 2])
    rest = [int(i) for i in rng.permutation(flat.size) if i not in set(top)][: count - len(top)]
    chosen = [int(i) for i in top] + rest
    directions = []
    for i in chosen:
        v = np.zeros(point.shape)
        v.reshape(-1)[i] = 1.0
        directions.append(v)
    probes = _probes(phi, point, claimed, directions)
    entries = [
        Entry(tuple(int(d) for d in np.unravel_index(i, point.shape)), p.claimed, p.fd, p.tol)
        for i, p in zip(chosen, probes, strict=True)
        if p.fd is not None
    ]
    return sorted(entries, key=lambda e: -e.error / e.tol)


# -- the step: named mistakes -------------------------------------------------------------------------------------


def fit_scale(probes: list[Probe]) -> tuple[float, float] | None:
    """(c, residual): the least-squares c with claimed = c * fd over the judged directions, and the largest
    residual relative to its tolerance; None when nothing was judged or fd is 0 along every direction."""
    judged = [p for p in probes if p.fd is not None]
    fd = np.array([p.fd for p in judged])
    if not judged or not np.any(np.abs(fd) > np.array([p.tol for p in judged])):
        return None
    claimed = np.array([p.claimed for p in judged])
    c = float(claimed @ fd / (fd @ fd))
    residual = max(abs(p.claimed - c * p.fd) / p.tol for p in judged)  # type: ignore[operator]
    return c, residual


def name_step(probes: list[Probe], moved: bool, lr: float) -> str | None:
    """The mistake a parameter's step makes, when its recovered gradient g_rec = (before - after) / lr equals
    one exactly (within the tolerance along every judged direction) while the verified gradient g is not 0:
    never updated (it did not move), the wrong sign (g_rec = -g: update = +lr g), lr applied twice
    (g_rec = lr g: update = -lr^2 g), or a gradient scaled by c (g_rec = c g)."""
    fit = fit_scale(probes)
    if fit is None:
        return None
    c, residual = fit
    if not moved:
        return "never updated: backward leaves it as it was, though its gradient is not 0"
    if residual > 1:
        return None
    if abs(c + 1) < 1e-6:
        return "wrong sign: the update is +lr * dL/dparam (it climbs the loss)"
    if abs(c - lr) < 1e-6 * lr:
        return f"learning rate applied twice: the update is -lr^2 * dL/dparam (at lr = {lr:g})"
    if abs(c - 1) > 1e-6:
        return f"the update is -lr * {c:.6g} * dL/dparam: scaled by {c:.6g}"
    return None


def same_upstream(run: Run, other: Run, i: int) -> bool:
    """Layer i received the same G in both runs: what it does at two learning rates can be compared (a layer
    after it whose input gradient depends on lr hands it another G)."""
    return bool(np.array_equal(run.upstream[i], other.upstream[i]))


# -- the check ------------------------------------------------------------------------------------------------------


@dataclass
class _Prop:
    """A property being built: its findings and statuses over the cases."""

    name: str
    findings: list[Finding] = field(default_factory=list)
    statuses: list[str] = field(default_factory=list)
    examples: int = 0
    oracle: str = "fd"
    judged_by: list[str] = field(default_factory=list)
    """The oracle of each status (a property may have two: fd and torch)."""

    def add(
        self, status: str, message: str, case: str = "", cause: str | None = None, origin=None, oracle: str = ""
    ) -> None:
        self.statuses.append(status)
        self.judged_by.append(oracle or self.oracle)
        self.findings.append(Finding(self.name, status, message, oracle or self.oracle, case, None, cause, origin))

    def report(self, must_judge: bool = True) -> PropertyReport:
        status = aggregate(self.statuses, must_judge=must_judge)
        same = [f for f in self.findings if f.status == status]
        if status == FAIL:  # two failures, the first of each oracle that failed first
            firsts = [f for k, f in enumerate(same) if all(g.oracle != f.oracle for g in same[:k])]
            same = (firsts + [f for f in same if f not in firsts])[:2]
        findings = same[:8] or self.findings[:1]
        oracles: dict[str, int] = {}
        for s, oracle in zip(self.statuses, self.judged_by, strict=True):
            if s in (PASS, FAIL):  # an oracle that judged nothing is not listed (nor claimed in "judged by")
                oracles[oracle] = oracles.get(oracle, 0) + 1
        return PropertyReport(self.name, status, self.examples, oracles, findings[:8])


def cases(info: NetInfo, seed: int, count: int = CASES) -> list[tuple[np.ndarray, np.ndarray]]:
    """``count`` inputs drawn as the seed article feeds images (image / 255 - 0.5: uniform in [-0.5, 0.5]),
    float64, with labels uniform in [0, classes), from ``seed``."""
    rng = np.random.default_rng([seed, 20261])
    return [
        (rng.uniform(-0.5, 0.5, info.input_shape), rng.integers(0, info.classes, info.output_shape[:-1]))
        for _ in range(count)
    ]


Progress = Callable[[str, PropertyReport | None], None]


class Checker:
    """One network check (see the module docstring); ``report()`` runs it."""

    def __init__(self, net: Net, info: NetInfo, target: str, *, seed: int = 0, count: int = CASES) -> None:
        self.net, self.info, self.target, self.seed = net, info, target, seed
        self.cases = cases(info, seed, count)
        self.rng = np.random.default_rng([seed, 7])
        self.runs: list[Run] = []
        self.other: Run | None = None
        self.props: list[PropertyReport] = []
        self.at_fault: dict | None = None
        self.whole: dict[tuple[int, str], list[Judged]] = {}
        self.local: dict[tuple[int, str], list[Judged]] = {}
        """Each gradient's judgements over the cases: of the whole network's loss, and of its layer in place."""
        self.pieces: list[composed.Piece] | None = None
        self.composed: list[composed.Gradients | str] = []
        """The torch composition's gradients per case, or why that case is not judged by it."""
        self.composition: dict | None = None

    # -- driving ----------------------------------------------------------------------------------------------
    def report(self, progress: Progress | None = None) -> Report:
        steps: list[tuple[str, Callable[[_Prop], None]]] = [
            ("forward", self._forward),
            ("composition", self._composition),
            ("grad_input", self._input),
        ]
        for layer in self.info.layers:
            for p in layer.params:
                steps.append((f"grad_{p}@{layer.index + 1}", lambda prop, i=layer.index, p=p: self._param(prop, i, p)))
        if not self.info.model:
            for layer in reversed(self.info.layers):
                steps.append((f"layer@{layer.index + 1}", lambda prop, i=layer.index: self._layer(prop, i)))
        if any(layer.params and layer.takes_lr for layer in self.info.layers):
            steps += [("sgd_update", self._update), ("sgd_order", self._order), ("training", self._training)]
        for name, step in steps:
            if progress:
                progress(name, None)
            oracle = {"forward": "structure", "sgd_order": "structure", "training": "structure", "composition": "torch"}
            prop = _Prop(name, oracle=oracle.get(name, "fd"))
            ended = self._guard(prop, step)
            self.props.append(prop.report(must_judge=name not in ("forward", "composition")))
            if progress:
                progress(name, self.props[-1])
            if ended:
                break
        return self._assemble()

    def _guard(self, prop: _Prop, step: Callable[[_Prop], None]) -> bool:
        """Run one property; a fault of the network is a failure of it naming the layer, and ends the check."""
        try:
            try:
                step(prop)
            except LayerFault as fault:  # the worker itself died, hung or garbled its reply: no layer to name
                raise NetFault(fault, None) from None
        except NetFault as exc:
            prop.examples = max(prop.examples, 1)
            prop.add(FAIL, self._fault_text(exc), cause=exc.fault.cause.value, origin=exc.fault.origin)
            return True
        return False

    def _fault_text(self, exc: NetFault) -> str:
        where = self.info.layers[exc.layer].shown if exc.layer is not None else "the network"
        return f"{where}: {exc.fault}"

    def _run(self, k: int) -> Run:
        while len(self.runs) <= k:
            x, y = self.cases[len(self.runs)]
            run = self.net.run(x, y, LR, self.info.loss)
            _, g = loss_and_grad(run.outputs[-1], y, self.info.loss)
            if not np.allclose(run.upstream[-1], g, rtol=1e-12, atol=1e-300):
                fault = LayerFault("backward", "the worker's dL/dout is not the loss's gradient", cause=Cause.GARBLED)
                raise NetFault(fault, None)
            self.runs.append(run)
        return self.runs[k]

    def _other(self) -> Run:
        """The first case again, at the other learning rate."""
        if self.other is None:
            x, y = self.cases[0]
            self.other = self.net.run(x, y, LR_OTHER, self.info.loss)
        return self.other

    def _case(self, k: int) -> str:
        return f"case {k + 1} of {len(self.cases)} (seed {self.seed}), input {self.info.input_shape}"

    # -- properties ---------------------------------------------------------------------------------------------
    def _forward(self, prop: _Prop) -> None:
        if self.info.probe_fault is not None:
            raise self.info.probe_fault
        for k in range(len(self.cases)):
            run = self._run(k)
            prop.examples += 1
            if not math.isfinite(run.loss):
                prop.add(FAIL, f"the loss ({self.info.loss}) is not finite", self._case(k))
                return
        how = "-log p[label]: the last layer outputs probabilities" if self.info.loss == "nll" else "softmax_ce"
        prop.add(PASS, f"{len(self.info.layers)} layers chain; loss {how}")

    def _input(self, prop: _Prop) -> None:
        for k, (x, y) in enumerate(self.cases):
            run = self._run(k)
            prop.examples += 1
            if run.returned[0] is None:
                prop.add(SKIP, f"{self.info.layers[0].shown} returns no input gradient (None): dL/dx not checked")
                continue

            def phi(points, x=x, y=y):
                return self.net.losses(x, y, self.info.loss, -1, "input", points)

            self._judged(prop, "dL/dx", self._judge(phi, x, run.returned[0]), k)
            self._against_torch(prop, "dL/dx", k, run.returned[0], None)

    def _param(self, prop: _Prop, i: int, p: str) -> None:
        layer = self.info.layers[i]
        for k, (x, y) in enumerate(self.cases):
            run = self._run(k)
            prop.examples += 1

            def phi(points, x=x, y=y):
                return self.net.losses(x, y, self.info.loss, i, p, points)

            if not layer.gradient_of(p):
                prop.add(
                    NOT_JUDGED,
                    f"{layer.shown} takes no learning rate and keeps no gradient of {p} where one is looked for "
                    f"({', '.join(gradient_spellings(p)[:5])}, ...): its gradient cannot be read",
                )
                continue
            judged = self._judge(phi, run.params[i][p], run.grads[i][p])
            self.whole.setdefault((i, p), []).append(judged)
            where = f" (read from self.{layer.grads[p]})" if p in layer.grads else ""
            self._judged(prop, f"dL/d{p} of {layer.shown}{where}", judged, k)
            step = None if p in layer.grads else run.params[i][p]
            self._against_torch(prop, f"dL/d{p} of {layer.shown}{where}", k, run.grads[i][p], (i, p), step)

    def _layer(self, prop: _Prop, i: int) -> None:
        layer = self.info.layers[i]
        wrong: list[tuple[str, Judged, int]] = []
        twin_wrong: list[tuple[str, Comparison, int]] = []
        for k in range(len(self.cases)):
            run = self._run(k)
            prop.examples += 1
            a, g = run.inputs[i], run.upstream[i]
            arrays = [("input", a, run.returned[i])] if run.returned[i] is not None else []
            arrays += [(p, run.params[i][p], run.grads[i][p]) for p in layer.params if layer.gradient_of(p)]
            for name, point, claimed in arrays:

                def phi(points, name=name, a=a, g=g):
                    return self.net.layer_losses(i, name, a, g, points)

                judged = self._judge(phi, point, claimed)
                self.local.setdefault((i, name), []).append(judged)
                self._judged(prop, f"d/d{name}", judged, k, quiet=True)
                if judged.status == FAIL:
                    wrong.append((name, judged, k))
            twin_wrong += self._twin(prop, layer, k, run)
        if (wrong or twin_wrong) and self.at_fault is None:
            self._blame(prop, layer, wrong, twin_wrong)
        elif wrong or twin_wrong:
            gradients = ", ".join(sorted({f"d/d{n}" for n, *_ in (*wrong, *twin_wrong)}))
            first = self.info.layers[self.at_fault["index"]].shown  # type: ignore[index]
            prop.add(
                FAIL,
                f"{layer.shown}: its backward disagrees too ({gradients}); the first from the loss down is {first}",
                self._case((wrong or twin_wrong)[0][2]),
            )
        else:
            prop.add(PASS, f"{layer.shown}: its backward agrees with its forward at the activations it receives")

    @staticmethod
    def _step_rounding(layer: LayerInfo, p: str, theta: np.ndarray, run: Run) -> np.ndarray:
        """What a gradient recovered from a step, (before - after) / lr, may be off by: 4 eps |theta| / lr, eps of
        the dtype the step rounds in (the parameter's, or the network's when coarser)."""
        eps = max(float(np.finfo(composed.dtype_of(run.outputs)).eps), layer.eps(p))
        return 4 * eps * np.abs(theta) / LR

    def _twin(self, prop: _Prop, layer: LayerInfo, k: int, run: Run) -> list[tuple[str, Comparison, int]]:
        """Layer i at case k against the torch twin of the reference kind it was identified as, at the input and
        upstream gradient it received: a finding with oracle torch (a failure is quiet: the blame says it);
        the gradients that disagree. Nothing when the composition is not built."""
        if self.pieces is None:
            return []
        i, piece = layer.index, self.pieces[layer.index]
        tol = composed.tolerances(run.outputs)
        verdict = composed.judge_layer(piece, run.inputs[i], run.params[i], run.upstream[i], tol)
        if isinstance(verdict, str):
            prop.add(
                NOT_JUDGED, f"not judged by its torch twin ({piece.shown}): {verdict}", self._case(k), oracle="torch"
            )
            return []
        pairs = [("input", run.returned[i], verdict.input, None)] if run.returned[i] is not None else []
        for p in layer.params:
            if layer.gradient_of(p) and (0, p) in verdict.params:
                step = None if p in layer.grads else run.params[i][p]
                pairs.append((p, run.grads[i][p], verdict.params[(0, p)], step))
        unjudged = verdict.at_kink if verdict.at_kink is not None else np.zeros(run.inputs[i].shape, dtype=bool)
        wrong, judged = [], 0
        for name, claimed, expected, step in pairs:
            floor = None if step is None else self._step_rounding(layer, name, step, run)
            mask = ~unjudged if name == "input" else None  # entries at a tie or zero: several valid gradients
            result = compare(claimed, expected, tol.exact, floor=floor, mask=mask)
            judged += result.total
            if not result.ok:
                wrong.append((name, result, k))
        if wrong:
            prop.statuses.append(FAIL)
            prop.judged_by.append("torch")
        elif judged == 0:
            why = "every entry of its input gradient is at a tie or zero, where torch's gradient is one of several"
            prop.add(NOT_JUDGED, f"not judged by its torch twin ({piece.shown}): {why}", self._case(k), oracle="torch")
        else:
            said = ", ".join(f"d/d{name}" for name, *_ in pairs)
            skipped = int(unjudged.sum())
            apart = f" ({skipped} input entries at a tie or zero not judged)" if skipped else ""
            prop.add(PASS, f"{said} agree with its torch twin ({piece.shown}){apart}", self._case(k), oracle="torch")
        return wrong

    def _blame(
        self,
        prop: _Prop,
        layer: LayerInfo,
        wrong: list[tuple[str, Judged, int]],
        twin_wrong: list[tuple[str, Comparison, int]],
    ) -> None:
        """The first layer from the loss down whose backward disagrees (with its own forward's differences, or
        with the torch twin of the reference kind it computes): named, with its worst entries."""
        i = layer.index
        names = sorted({n for n, *_ in (*wrong, *twin_wrong)})
        gradients = ", ".join(f"d/d{n}" + (f" (self.{layer.grads[n]})" if n in layer.grads else "") for n in names)
        message = f"layer at fault: {layer.shown}: its backward disagrees "
        message += "with its own forward" if wrong else "with the torch twin of the reference kind it computes"
        message += f" at the activations it receives in the network ({gradients})"
        self.at_fault = {"index": i, "number": i + 1, "name": layer.name, "gradients": names}
        if wrong:
            name, _, k = wrong[0]
            run = self.runs[k]
            a, g = run.inputs[i], run.upstream[i]
            point = a if name == "input" else run.params[i][name]
            claimed = run.returned[i] if name == "input" else run.grads[i][name]

            def phi(points):
                return self.net.layer_losses(i, name, a, g, points)

            entries = sample_entries(phi, point, claimed, self.rng)  # type: ignore[arg-type]
            bad = [e for e in entries if e.error > e.tol]
            if entries:
                message += (
                    f"; d/d{name}: {len(bad)} of {len(entries)} sampled entries wrong, worst (index in the layer's "
                    f"own layout {tuple(point.shape)}): " + "; ".join(e.text() for e in (bad or entries)[:WORST])
                )
            worst = [{"index": list(e.index), "layer": e.layer, "fd": e.fd} for e in (bad or entries)[:WORST]]
            self.at_fault.update(sampled=len(entries), wrong=len(bad), worst=worst)
        if twin_wrong:
            name, result, k = twin_wrong[0]
            assert self.pieces is not None
            message += (
                f"; its torch twin ({self.pieces[i].shown}) disagrees too: d/d{name} (index in the layer's own "
                f"layout): {result.summary()}"
                if wrong
                else f"; {self.pieces[i].shown}: d/d{name} (index in the layer's own layout): {result.summary()}"
            )
            if not wrong:
                worst = [{"index": list(result.worst_index or ()), "layer": result.worst_actual}]
                worst[0]["torch"] = result.worst_expected
                self.at_fault.update(sampled=result.total, wrong=result.mismatched, worst=worst)
        k = (wrong or twin_wrong)[0][2]
        prop.findings.insert(0, Finding(prop.name, FAIL, message, "fd" if wrong else "torch", self._case(k)))
        prop.statuses.append(FAIL)
        prop.judged_by.append("fd" if wrong else "torch")

    def _update(self, prop: _Prop) -> None:
        """Every parameter's step is -lr times its verified gradient; at two learning rates the recovered
        gradient is the same."""
        run, other = self._run(0), self._other()
        prop.examples = 1
        for layer in self.info.layers:
            if not layer.takes_lr:
                continue
            for p in layer.params:
                shown = f"`{p}` of {layer.shown}"
                moved = any(r.moved[layer.index][p] for r in self.runs)
                # judged against the layer's own forward in place (a wrong layer after it skews the network's)
                verified = self.whole if self.info.model else self.local
                probes = [q for j in verified.get((layer.index, p), []) for q in j.probes]
                mistake = name_step(probes, moved, LR)
                g1, g2 = run.grads[layer.index][p], other.grads[layer.index][p]
                scale = max(float(np.linalg.norm(g1)), float(np.linalg.norm(g2)), 1e-300)
                # each recovered gradient carries its step's rounding, 4 eps |theta| / lr (eps: the parameter's dtype)
                theta = float(np.linalg.norm(run.params[layer.index][p]))
                allowed = RTOL * scale + 4 * layer.eps(p) * theta * (1 / LR + 1 / LR_OTHER)
                if mistake is not None:
                    prop.add(FAIL, f"{shown}: {mistake}", self._case(0))
                elif same_upstream(run, other, layer.index) and float(np.linalg.norm(g1 - g2)) > allowed:
                    ratio = float(np.sum(g2 * g1) / max(float(np.sum(g1 * g1)), 1e-300))
                    prop.add(
                        FAIL,
                        f"{shown}: the step does not scale with lr: (before - after) / lr is {ratio:.6g} times as "
                        f"large at lr = {LR_OTHER:g} as at lr = {LR:g}",
                        self._case(0),
                    )
                elif probes and any(q.failed for q in probes):
                    n = layer.index + 1
                    see = f"grad_{p}@{n}" if self.info.model else f"layer@{n}"
                    prop.add(FAIL, f"{shown}: the step is not -lr * dL/d{p} (see {see})")
                else:
                    prop.add(PASS if probes else NOT_JUDGED, f"{shown}: the step is -lr * dL/d{p}")

    def _order(self, prop: _Prop) -> None:
        """A layer's input gradient does not depend on lr: a step taken before it is computed shows as one."""
        run, other = self._run(0), self._other()
        prop.examples = 1
        for layer in self.info.layers:
            if not (layer.params and layer.takes_lr) or run.returned[layer.index] is None:
                continue
            d1, d2 = run.returned[layer.index], other.returned[layer.index]
            if not same_upstream(run, other, layer.index):
                continue  # a layer after it already hands it a G that depends on lr: that one is named
            scale = max(float(np.linalg.norm(d1)), 1e-300)
            if float(np.linalg.norm(d1 - d2)) > RTOL * scale:  # type: ignore[operator]
                prop.add(
                    FAIL,
                    f"{layer.shown}: its input gradient changes with the learning rate (at the same G): it is "
                    "computed with parameters already updated (the step taken before the input gradient)",
                    self._case(0),
                )
            else:
                prop.add(PASS, f"{layer.shown}: its input gradient does not depend on lr")

    def _training(self, prop: _Prop) -> None:
        batch = self.cases[:TRAIN_BATCH] + cases(self.info, self.seed + 1, max(0, TRAIN_BATCH - len(self.cases)))
        xs = np.stack([x for x, _ in batch])
        ys = np.stack([y for _, y in batch])
        curve = self.net.train(xs, ys, TRAIN_STEPS, TRAIN_LR, self.info.loss)
        prop.examples = 1
        shown = " -> ".join(f"{v:.6g}" for v in curve)
        what = f"{TRAIN_STEPS} epochs of SGD at lr {TRAIN_LR:g} on a fixed batch of {len(batch)}: mean loss {shown}"
        if not np.all(np.isfinite(curve)) or not curve[-1] < curve[0]:
            prop.add(FAIL, f"the loss did not go down: {what}")
        else:
            prop.add(PASS, what)

    def _composition(self, prop: _Prop) -> None:
        """Identify every layer as a reference kind by its forward in every case; compose them in torch."""
        prop.examples = len(self.cases)
        ok, why = torch_oracle.available()
        if not ok or self.info.model:
            self.composition = {"built": False, "unidentified": None}
            why = why if not ok else "a model object without a layers list is one block"
            prop.add(SKIP, f"the torch composition is not built: {why}")
            return
        runs = [self._run(k) for k in range(len(self.cases))]
        tol = composed.tolerances([a for r in runs for a in (*r.inputs, *r.outputs)])
        pieces: list[composed.Piece] = []
        for layer in self.info.layers:
            i = layer.index
            seen = [composed.Seen(r.inputs[i], r.outputs[i], r.params[i]) for r in runs]
            found = composed.identify(i, seen, composed.suggested_kinds(layer.cls), tol)
            if isinstance(found, composed.Unidentified):
                self.composition = {"built": False, "unidentified": i}
                prop.add(SKIP, f"the torch composition is not built: {self._unidentified(layer, found)}")
                return
            pieces.append(found)
        self.pieces = pieces
        shown = "; ".join(f"{la.shown} = {p.shown}" for la, p in zip(self.info.layers, pieces, strict=True))
        for k, (x, y) in enumerate(self.cases):
            self.composed.append(composed.judge_case(pieces, x, runs[k].params, y, self.info.loss, tol))
        self.composition = {
            "built": True,
            "layers": [p.shown for p in pieces],
            "judged": sum(not isinstance(c, str) for c in self.composed),
        }
        prop.add(PASS, f"each layer's forward is a reference kind's in every case: {shown}")

    def _unidentified(self, layer: LayerInfo, found: composed.Unidentified) -> str:
        alone = "the gradients are judged by finite differences of the network alone"
        if found.ambiguous:
            first, second = found.ambiguous
            return (
                f"{layer.shown}: its output in these cases is both that of {first} and that of {second}, whose "
                f"gradients differ (a square weight that reads the same stored either way): which it is cannot be "
                f"told here; {alone}"
            )
        if not found.tried:
            return f"{layer.shown}: no reference kind fits the shapes of its input, output and parameters; {alone}"
        tried = ", ".join(f"{kind} ({n} geometries)" for kind, n in found.tried.items())
        return (
            f"{layer.shown}: its output is not that of any reference kind tried at the shapes and parameters it "
            f"has ({tried}); {alone}"
        )

    def _against_torch(
        self,
        prop: _Prop,
        what: str,
        k: int,
        claimed: np.ndarray,
        key: tuple[int, str] | None,
        step: np.ndarray | None = None,
    ) -> None:
        """The torch composition's verdict on one claimed gradient at case k (nothing when it is not built).
        A gradient recovered from a step (``step``: the parameter before it) is allowed that step's rounding,
        4 eps |theta| / lr."""
        if self.pieces is None or k >= len(self.composed):
            return
        grads = self.composed[k]
        if isinstance(grads, str):
            prop.add(NOT_JUDGED, f"not judged by the torch composition: {what}: {grads}", self._case(k), oracle="torch")
            return
        expected = grads.input if key is None else grads.params[key]
        tol = composed.tolerances(self.runs[k].outputs)
        layer = None if key is None else self.info.layers[key[0]]
        floor = None if step is None or layer is None else self._step_rounding(layer, key[1], step, self.runs[k])
        result = compare(claimed, expected, tol.exact, floor=floor)
        if result.ok:
            prop.add(
                PASS,
                f"{what} agrees with the torch composition ({result.total} entries)",
                self._case(k),
                oracle="torch",
            )
        else:
            prop.add(
                FAIL,
                f"{what} disagrees with the torch composition of the reference kinds (index in the layer's own layout "
                f"{tuple(expected.shape)}): {result.summary()}",
                self._case(k),
                oracle="torch",
            )

    # -- helpers --------------------------------------------------------------------------------------------------
    def _judge(self, phi: Scalar, point: np.ndarray, claimed: np.ndarray) -> Judged:
        return judge(phi, np.asarray(point, dtype=np.float64), np.asarray(claimed, dtype=np.float64), self.rng)

    def _judged(self, prop: _Prop, what: str, judged: Judged, k: int, *, quiet: bool = False) -> None:
        status = judged.status
        worst = judged.worst()
        if status == FAIL and worst is not None:
            message = (
                f"{what} disagrees with finite differences of the network's own forward along a random direction: "
                f"<g, v> = {worst.claimed:.8g}, fd {worst.fd:.8g} (tolerance {worst.tol:.2g})"
            )
            if quiet:
                prop.statuses.append(FAIL)
                prop.judged_by.append(prop.oracle)
                return
        elif status == PASS:
            message = f"{what}: {len(judged.judged)} directions agree"
        else:
            why = next((p.why for p in judged.probes if p.why), "")
            message = f"not judged: {what}: every direction met a kink ({why})"
        prop.add(status, message, self._case(k))

    def _assemble(self) -> Report:
        fault = self.at_fault
        if fault is not None:  # the whole network's failing gradients say where to look
            where = f"; layer at fault: layer {fault['number']} {fault['name']} (index {fault['index']})"
            for p in self.props:
                if p.status == FAIL and p.property.startswith("grad_"):
                    p.findings = [
                        replace(f, message=f.message + where) if f.failed and not f.cause else f for f in p.findings
                    ]
        settings = {
            "seed": self.seed,
            "cases": len(self.cases),
            "network": {
                "input_shape": list(self.info.input_shape),
                "output_shape": list(self.info.output_shape),
                "loss": self.info.loss,
                "model": self.info.model,
                "layers": [
                    {
                        "index": la.index,
                        "name": la.name,
                        "calls": la.calls,
                        "params": {k: list(v) for k, v in la.params.items()},
                        "grads": dict(la.grads),
                    }
                    for la in self.info.layers
                ],
                "at_fault": fault,
                "lr": LR,
                "composition": self.composition,
            },
        }
        return Report(target=self.target, kind=NETWORK, properties=self.props, settings=settings)
