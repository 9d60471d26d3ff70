"""The worker: the process that holds the user's layer and answers the checker's requests over two pipes.

Started by the checker (checks.sandbox.worker) as ``python -I -m checks.adapt.serve REQUEST_FD REPLY_FD``,
usually inside a sandbox (checks.sandbox.jail). It imports the user's code, adapts it with the convention's
adapter (checks.adapt), and answers, one frame each (checks.adapt.wire):

- ``load`` {target, kind, preset, overrides, root, call_seconds, memory_bytes} -> ``loaded`` {declaration}
  (the LayerSpec as plain data) or ``refused`` {reason, cause};
- ``construct`` {id, case} + the case's arrays -> ``ok`` or ``fault``;
- ``forward`` {id} + inputs -> ``output`` (Z, and any input the layer wrote into, canonical) or ``fault``;
- ``backward`` {id} + G -> ``grads`` (each gradient canonical, or its fault; each as the layer returned it;
  G if the layer wrote into it; the layer's learning rate) or ``fault``;
- ``reference`` {id} + inputs -> ``output`` (Z of the LayerSpec's own reference forward, a function layer's) or
  ``fault``;
- ``step`` {id} + inputs and G -> a forward, then a backward: ``grads`` with the output too, or ``fault``;
- ``losses`` {id, name} + base inputs, G and the perturbed points -> ``losses`` (L = sum(Z * G) at each, in
  float64), sending a ``tick`` every half second so that the checker can tell a slow batch from a hang;
- ``net_load``, ``net_run``, ``net_losses``, ``net_layer_losses``, ``net_train``: a user's whole network
  (checks.adapt.chain);
- ``bye`` -> exits.

Every call into the user's code goes through checks.adapt.guard (its exceptions, sys.exit, time and memory
limits and printing become a fault with a typed cause), and every reply carries what the layer printed.
Nothing here is a verdict: the checker validates every answer and decides. The worker cannot import the
checker itself (strategies, oracles, verdicts, reports), hypothesis, torch or the reference layers in cnn:
an import hook refuses them, so a layer has nothing of the checker's to patch, in its own process or any other.

Standard library and numpy only.
"""

from __future__ import annotations

import faulthandler
import importlib.abc
import os
import signal
import sys
import time
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path
from typing import Any

ALLOWED = ("checks.adapt", "checks.case", "checks.geometry", "checks.job", "checks.settings")
"""The parts of the project the worker may import (with their submodules): the user's side, and the plain
data it is given. Also the ``checks`` package itself (its lazy face hands out the spec classes) and the
kind registry ``checks.kinds`` alone (the names of the kinds), not the kind modules."""
REFUSED_TOPS = ("hypothesis", "torch", "cnn")
MAX_SUBJECTS = 256
MAX_PRINTED = 64 * 1024
TICK_SECONDS = 0.5
"""A batch of calls tells the checker it is alive at least this often (each tick restarts its wait)."""


class _CheckerImportBlocker(importlib.abc.MetaPathFinder):
    """Refuses imports of the checker's own parts and of the libraries only the checker uses."""

    def find_spec(self, name: str, path: object = None, target: object = None) -> None:
        top = name.split(".")[0]
        allowed = name in ("checks", "checks.kinds") or any(name == a or name.startswith(a + ".") for a in ALLOWED)
        if top in REFUSED_TOPS or (top == "checks" and not allowed):
            raise ImportError(
                f"{name} is not available inside the layer's sandbox (it belongs to the checker, which never "
                "runs next to the layer)",
                name=name,
            )
        return None


def install_blocker() -> None:
    if not any(isinstance(f, _CheckerImportBlocker) for f in sys.meta_path):
        sys.meta_path.insert(0, _CheckerImportBlocker())


class Server:
    """One worker's state: the loaded spec, the per-call limits, and the subjects built so far."""

    def __init__(self, request_fd: int, reply_fd: int) -> None:
        from checks.adapt import wire
        from checks.adapt.guard import Limits, Transcript

        self.wire = wire
        self.request_fd, self.reply_fd = request_fd, reply_fd
        self.spec: Any = None
        self.limits = Limits()
        self.transcript = Transcript()
        self.sent = 0  # characters of the transcript already sent
        self.subjects: OrderedDict[int, Any] = OrderedDict()
        self.ticked = 0.0
        self.network: Any = None  # a whole network (checks.adapt.chain), after net_load

    # -- the loop -----------------------------------------------------------------------------------
    def run(self) -> int:
        wire = self.wire
        while True:
            try:
                request = wire.receive(self.request_fd)
            except wire.Closed:
                return 0
            if request.verb == "bye":
                return 0
            handler = getattr(self, f"_{request.verb}", None)
            if handler is None or request.verb.startswith("_"):
                self._reply("refused", {"reason": f"unknown request {request.verb!r}", "cause": "garbled"})
                continue
            try:
                handler(request)
            except wire.Closed:
                return 0
            except Exception as exc:  # the adapter met something of the layer's it could not handle
                from checks.adapt.guard import LayerFault, origin_of

                fault = LayerFault(request.verb, f"the adapter could not handle the layer: {type(exc).__name__}: {exc}")
                fault.origin = origin_of(exc)
                self._fault(fault)

    def _reply(self, verb: str, body: dict | None = None, arrays: Mapping[str, Any] | None = None) -> None:
        text = self.transcript.text
        body = dict(body or {})
        body["printed"] = text[self.sent : self.sent + MAX_PRINTED]
        self.sent = len(text)
        self.wire.send(self.reply_fd, self.wire.Message(verb, body, dict(arrays or {})))

    def _fault(self, fault: Any) -> None:
        self._reply("fault", {"fault": fault.as_dict()})

    def _guarded(self, stage: str, fn: Any, *args: Any, shapes: str = "") -> Any:
        from checks.adapt.guard import call

        return call(stage, fn, *args, shapes=shapes, limits=self.limits, transcript=self.transcript)

    def _output(self, stage: str, fn: Any, inputs: Mapping[str, Any], shapes: str, what: str = "output") -> Any:
        """Z = fn(inputs) under the guard, as an array that may cross the pipe (LayerFault otherwise)."""
        return carried(stage, what, self._guarded(stage, fn, inputs, shapes=shapes), shapes)

    # -- requests -----------------------------------------------------------------------------------
    def _load(self, request: Any) -> None:
        from checks.adapt import targets
        from checks.adapt.guard import Limits

        b = request.body
        self.limits = Limits(seconds=b.get("call_seconds"), memory_bytes=b.get("memory_bytes"))
        try:
            self.spec = targets.load(
                b["target"],
                kind=b.get("kind"),
                preset=b.get("preset"),
                root=b.get("root"),
                overrides=b.get("overrides") or None,
                import_seconds=b.get("import_seconds"),
                kind_option=b.get("kind_option", "--kind"),
                preset_option=b.get("preset_option", "--preset"),
            )
        except targets.TargetError as exc:
            cause = getattr(exc.cause, "value", exc.cause)
            self._reply("refused", {"reason": str(exc), "cause": cause, "origin": exc.origin})
            return
        self._reply("loaded", {"declaration": self.spec.declaration().to_dict()})

    def _survey(self, request: Any) -> None:
        """The layers a file defines and how each might be checked (checks.adapt.survey), for `check FILE`."""
        from checks.adapt import survey, targets

        b = request.body
        try:
            target = targets.parse(b["target"])
            root = Path(b["root"]) if b.get("root") else None
            module = targets.import_target(target, root, b.get("import_seconds"))
            found = survey.survey(module, target.location)
        except targets.TargetError as exc:
            cause = getattr(exc.cause, "value", exc.cause)
            self._reply("refused", {"reason": str(exc), "cause": cause, "origin": exc.origin})
            return
        self._reply("surveyed", {"layers": [f.to_dict() for f in found]})

    def _construct(self, request: Any) -> None:
        from checks.adapt.guard import LayerFault

        case = case_from(request.body["case"], request.arrays)
        shapes = ", ".join(f"{k} {v.shape}" for k, v in case.inputs.items())
        try:
            subject = self._guarded("construct", self.spec.subject, case, shapes=shapes)
        except LayerFault as fault:
            self._fault(fault)
            return
        self.subjects[int(request.body["id"])] = subject
        while len(self.subjects) > MAX_SUBJECTS:
            self.subjects.popitem(last=False)
        self._reply("ok")

    def _subject(self, request: Any) -> Any:
        subject = self.subjects.get(int(request.body["id"]))
        if subject is None:  # evicted (MAX_SUBJECTS): the checker constructs it again and repeats the request
            self._reply("gone", {"id": request.body["id"]})
        return subject

    def _forward(self, request: Any) -> None:
        from checks.adapt.guard import LayerFault

        subject = self._subject(request)
        if subject is None:
            return
        inputs = {k: v.copy() for k, v in request.arrays.items()}
        try:
            out = self._output("forward", subject.forward, inputs, subject.shapes)
        except LayerFault as fault:
            self._fault(fault)
            return
        arrays = {"output": out}
        for name, value in inputs.items():
            if not _same(value, request.arrays[name]):
                arrays[f"mutated:{name}"] = value
        self._reply("output", {}, arrays)

    def _reference(self, request: Any) -> None:
        """Z of the spec's reference forward (user code, so guarded like the layer) at copies of the inputs."""
        from checks.adapt.guard import LayerFault

        subject = self._subject(request)
        if subject is None:
            return
        inputs = {k: v.copy() for k, v in request.arrays.items()}
        try:
            out = self._output("reference forward", subject.reference, inputs, subject.shapes, "reference output")
        except LayerFault as fault:
            self._fault(fault)
            return
        self._reply("output", {}, {"output": out})

    def _step(self, request: Any) -> None:
        """A forward at the inputs, then a backward at G: one request for what a check always does in pairs."""
        from checks.adapt.guard import LayerFault

        subject = self._subject(request)
        if subject is None:
            return
        inputs = {k[len("input:") :]: v.copy() for k, v in request.arrays.items() if k.startswith("input:")}
        try:
            out = self._output("forward", subject.forward, inputs, subject.shapes)
        except LayerFault as fault:
            self._fault(fault)
            return
        self._backward(request, {"output": out})

    def _backward(self, request: Any, extra: Mapping[str, Any] | None = None) -> None:
        from checks.adapt.guard import LayerFault

        subject = self._subject(request)
        if subject is None:
            return
        upstream = request.arrays["upstream"].copy()
        try:
            grads = self._guarded("backward", subject.backward, upstream, shapes=subject.shapes)
        except LayerFault as fault:
            self._fault(fault)
            return
        arrays: dict[str, Any] = dict(extra or {})
        faults: dict[str, dict] = {}
        for name, value in grads.items():
            try:
                arrays[f"grad:{name}"] = carried("backward", f"gradient for {name!r}", value, subject.shapes)
            except LayerFault as fault:
                faults[name] = fault.as_dict()
        for name, value in (getattr(subject, "raw", None) or {}).items():
            raw = _carryable(value)
            if raw is not None:
                arrays[f"raw:{name}"] = raw
        if not _same(upstream, request.arrays["upstream"]):
            arrays["mutated:upstream"] = upstream
        rate = getattr(subject, "learning_rate", None)
        self._reply("grads", {"faults": faults, "learning_rate": rate}, arrays)

    def _losses(self, request: Any) -> None:
        """L = sum(Z * G) in float64 at each point: the base inputs with input ``name`` replaced by
        ``points[k]`` (whole arrays), or with entry ``index[k]`` of it set to ``values[k]``."""
        import numpy as np

        from checks.adapt.guard import Cause, LayerFault

        subject = self._subject(request)
        if subject is None:
            return
        self.ticked = time.monotonic()
        b, a = request.body, request.arrays
        name, dtype = b["name"], np.dtype(b["dtype"])
        base = {k[len("input:") :]: v for k, v in a.items() if k.startswith("input:")}
        g = np.asarray(a["upstream"], dtype=np.float64)
        if "points" in a:
            points = [(None, p) for p in a["points"]]
        else:
            points = [(int(i), float(v)) for i, v in zip(a["index"], a["values"], strict=True)]
        losses = np.empty(len(points))
        for k, (index, value) in enumerate(points):
            inputs = {n: v.astype(dtype, copy=True) for n, v in base.items()}
            if index is None:
                inputs[name] = np.asarray(value).astype(dtype)
            else:
                x = base[name].copy()
                x.reshape(-1)[index] = value
                inputs[name] = x.astype(dtype)
            try:
                z = self._output("forward", subject.forward, inputs, subject.shapes)
                if z.dtype != dtype:
                    raise LayerFault(
                        "forward", f"output has dtype {z.dtype}, expected {dtype}", subject.shapes, cause=Cause.DTYPE
                    )
                if not np.all(np.isfinite(z)):
                    detail = f"output has {int(z.size - np.isfinite(z).sum())} non-finite (NaN/inf) entries"
                    raise LayerFault("forward", detail, subject.shapes, cause=Cause.NONFINITE)
            except LayerFault as fault:
                self._fault(fault)
                return
            losses[k] = float(np.sum(np.asarray(z, dtype=np.float64) * g))
            if time.monotonic() - self.ticked > TICK_SECONDS:
                self.wire.send(self.reply_fd, self.wire.Message("tick", {"done": k + 1}))
                self.ticked = time.monotonic()
        self._reply("losses", {}, {"losses": losses})

    # -- a whole network (checks.adapt.chain answers these) -----------------------------------------
    def _net_load(self, request: Any) -> None:
        from checks.adapt import chain

        chain.serve(self, request)

    _net_run = _net_losses = _net_layer_losses = _net_train = _net_load


# -- values that cross -----------------------------------------------------------------------------------


def _carryable(value: Any) -> Any:
    """``value`` as an array the wire carries (float, int, bool), or None."""
    import numpy as np

    from checks.adapt import wire

    try:
        array = np.asarray(value)
    except Exception:  # anything no array can be made of
        return None
    return array if array.dtype.name in wire.DTYPES else None


def carried(stage: str, what: str, value: Any, shapes: str) -> Any:
    """``value`` if it is an ndarray the wire can carry; else the fault that says what it was."""
    import numpy as np

    from checks.adapt.guard import Cause, LayerFault

    if not isinstance(value, np.ndarray):
        if isinstance(value, LayerFault):
            raise value
        got = "None" if value is None else type(value).__name__
        raise LayerFault(stage, f"returned {got} instead of an ndarray {what}", shapes, cause=Cause.TYPE)
    if _carryable(value) is None:
        raise LayerFault(stage, f"{what} has dtype {value.dtype}, not a float array", shapes, cause=Cause.DTYPE)
    return value


def _same(a: Any, b: Any) -> bool:
    import numpy as np

    return a.shape == b.shape and bool(np.array_equal(a, b, equal_nan=True))


def case_from(body: Mapping[str, Any], arrays: Mapping[str, Any]) -> Any:
    """The Case the checker sent: kind, geometry {type, fields}, mode; arrays input, parameters, upstream, labels."""
    from checks import geometry as geometries
    from checks.case import Case

    spec = body["geometry"]
    cls = getattr(geometries, spec["type"])
    fields = {k: _tupled(v) for k, v in spec["fields"].items()}
    inputs = {k[len("input:") :]: v for k, v in arrays.items() if k.startswith("input:")}
    return Case(body["kind"], cls(**fields), inputs, arrays["upstream"], arrays.get("labels"), body.get("mode", ""))


def _tupled(value: Any) -> Any:
    """A geometry field from JSON with its lists (nested ones too: a function layer's (name, shape) pairs) as
    tuples, as the geometry held them: hashable again."""
    return tuple(_tupled(v) for v in value) if isinstance(value, list) else value


def main(argv: list[str]) -> int:
    install_blocker()
    request_fd, reply_fd = int(argv[1]), int(argv[2])
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    faulthandler.enable(file=sys.stderr, all_threads=False)  # a segfault prints where, for the checker to read
    if hasattr(signal, "SIGUSR1"):  # the checker asks for the stack before it ends a hung worker
        faulthandler.register(signal.SIGUSR1, file=sys.stderr, all_threads=False)
    return Server(request_fd, reply_fd).run()


if __name__ == "__main__":
    sys.exit(main(sys.argv))
