"""The checker's side of a whole network in the worker: load it, run it, difference it, train it.

``open_network(job, input_shape)`` starts a worker (checks.sandbox.worker.Session: the same sandbox, limits and
death/hang handling as for one layer) and has it load the network (checks.adapt.chain); ``RemoteNetwork`` is the
``checks.pipeline.chain.Net`` the checker drives. Nothing the worker sends is trusted: every reply is checked for
its verb, its arrays' names, shapes and finiteness before it is used, and anything else ends the session as
garbled; a layer's fault becomes a ``NetFault`` naming the layer.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from checks.adapt import wire
from checks.adapt.chain import is_spelling
from checks.adapt.guard import Cause, LayerFault
from checks.adapt.survey import CLASS_PRESETS, Found
from checks.job import Job
from checks.pipeline.chain import LR, LayerInfo, NetFault, NetInfo, Run
from checks.report import Report
from checks.sandbox.worker import LoadRefused, Session, reply_origin, reply_text

MAX_LAYERS = 1000


class NetworkSession(Session):
    """A worker session whose target is a network: nothing is loaded at start, ``open_network`` loads it."""

    def _load(self, spelling: tuple[str, str]) -> None:
        return None


def open_network(
    job: Job,
    input_shape: tuple[int, ...] | None,
    *,
    wall_seconds: float | None = None,
    methods: Mapping[str, str] | None = None,
) -> tuple[NetworkSession, RemoteNetwork, NetInfo]:
    """Start a worker and load ``job.target``'s network (LoadRefused when it cannot be adapted); ``methods``:
    the layers' method names, replacing the module's METHODS (the worker checks them)."""
    session = NetworkSession.start(job, wall_seconds=wall_seconds)
    try:
        net = RemoteNetwork(session)
        info = net.load(input_shape, methods)
    except BaseException:
        session.close()
        raise
    return session, net, info


class RemoteNetwork:
    """checks.pipeline.chain.Net over a worker session."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.info: NetInfo | None = None

    # -- requests ------------------------------------------------------------------------------------------
    def _ask(self, verb: str, body: dict, arrays: Mapping[str, np.ndarray], stage: str) -> wire.Message:
        reply = self.session.request(verb, body, arrays, stage=stage, shapes=self._shapes())
        if reply.verb == "fault":
            raise self._fault(reply.body.get("fault"), stage)
        return reply

    def _shapes(self) -> str:
        return "" if self.info is None else f"input {self.info.input_shape}"

    def _garbled(self, stage: str, what: str) -> None:
        self.session._garbled(stage, self._shapes(), what)

    def _fault(self, data: object, stage: str) -> NetFault:
        try:
            assert isinstance(data, dict)
            actual = data.get("actual_shape")
            fault = LayerFault(
                reply_text(data, "stage"),
                reply_text(data, "detail"),
                reply_text(data, "shapes"),
                cause=Cause(data["cause"]),
                actual_shape=None if actual is None else tuple(int(d) for d in actual),
            )
            fault.origin = self.session.shown(reply_origin(data.get("origin")))
            layer = data.get("layer")
            count = MAX_LAYERS if self.info is None else len(self.info.layers)
            assert layer is None or (isinstance(layer, int) and not isinstance(layer, bool) and 0 <= layer < count)
        except (AssertionError, KeyError, TypeError, ValueError):
            self._garbled(stage, "a fault report that does not parse")
        return NetFault(fault, layer)

    def load(self, input_shape: tuple[int, ...] | None, methods: Mapping[str, str] | None = None) -> NetInfo:
        job = self.session.job
        import os

        body = {
            "target": job.target,
            "root": str(Path(job.root or os.getcwd()).resolve()),
            "input_shape": None if input_shape is None else list(input_shape),
            "methods": None if methods is None else dict(methods),
            "call_seconds": job.call_seconds,
            "memory_bytes": job.memory_bytes,
            "import_seconds": job.import_seconds,
            "lr": LR,
        }
        try:
            reply = self.session.request("net_load", body, {}, stage="import", shapes="")
        except LayerFault as fault:
            raise LoadRefused(f"{job.target}: {fault.detail}", fault.cause.value, fault.origin) from None
        if reply.verb == "refused":
            try:
                reason, cause = reply_text(reply.body, "reason"), reply.body.get("cause")
                origin = self.session.shown(reply_origin(reply.body.get("origin")))
            except (KeyError, TypeError):
                self._garbled("import", "a refusal that does not parse")
            raise LoadRefused(reason, cause if isinstance(cause, str) else None, origin)
        if reply.verb != "net_loaded":
            self._garbled("import", f"a {reply.verb!r} reply to net_load")
        self.info = self._info(reply)
        return self.info

    def _info(self, reply: wire.Message) -> NetInfo:
        b = reply.body
        try:
            shape = tuple(int(d) for d in b["input_shape"])
            layers = []
            for k, (data, takes) in enumerate(zip(b["layers"], b["takes_lr"], strict=True)):
                assert data["index"] == k and isinstance(takes, bool)
                params = {str(p): tuple(int(d) for d in s) for p, s in data["params"].items()}
                grads = {str(p): str(s) for p, s in (data.get("grads") or {}).items()}
                assert set(grads) <= set(params) and all(is_spelling(s) for s in grads.values())
                cls = _class(data.get("cls"))
                name, calls = reply_text(data, "name"), reply_text(data, "calls")
                dtypes = {str(p): str(d) for p, d in (data.get("dtypes") or {}).items()}
                assert set(dtypes) <= set(params) and all(
                    np.issubdtype(np.dtype(d), np.floating) for d in dtypes.values()
                )
                layers.append(LayerInfo(k, name, calls, params, takes, grads, cls, dtypes))
            # parameter and gradient names: checks.adapt.chain.SPELLING (W, params['W'], weights[0], W.data)
            assert 0 < len(layers) <= MAX_LAYERS and all(is_spelling(p) for la in layers for p in la.params)
            loss = b.get("declared_loss") or b["loss"]
            assert loss in ("softmax_ce", "nll")
            output = reply.arrays.get("output")
            out_shape = tuple(output.shape) if output is not None else (2,)
            info = NetInfo(tuple(layers), shape, out_shape, loss, bool(b["model"]))
        except (AssertionError, KeyError, TypeError, ValueError, AttributeError):
            self._garbled("import", "a network description that does not parse")
        if b.get("probe_fault") is not None:
            self.info = info
            fault = self._fault(b["probe_fault"], "forward")
            return NetInfo(info.layers, shape, out_shape, info.loss, info.model, fault)
        return info

    def run(self, x: np.ndarray, labels: np.ndarray, lr: float, loss: str) -> Run:
        reply = self._ask("net_run", {"lr": lr, "loss": loss}, {"x": x, "labels": labels}, "backward")
        if reply.verb != "net_ran":
            self._garbled("backward", f"a {reply.verb!r} reply to net_run")
        return self._run(reply, x)

    def _run(self, reply: wire.Message, x: np.ndarray) -> Run:
        info, a, b = self.info, reply.arrays, reply.body
        assert info is not None
        n = len(info.layers)
        try:
            inputs = [a[f"in:{i}"] for i in range(n)]
            outputs = [a[f"out:{i}"] for i in range(n)]
            assert np.array_equal(inputs[0], x) and all(inputs[i + 1].shape == outputs[i].shape for i in range(n - 1))
            assert outputs[-1].shape == info.output_shape
            returned_flags = [bool(b["returned"].get(str(i), False)) for i in range(n)]
            upstream, returned, params, grads, moved = [], [], [], [], []
            for i, layer in enumerate(info.layers):
                has_up = f"up:{i}" in a
                upstream.append(a[f"up:{i}"] if has_up else np.zeros(outputs[i].shape))
                assert upstream[i].shape == outputs[i].shape
                dx = a.get(f"dx:{i}") if returned_flags[i] else None
                assert dx is None or dx.shape == inputs[i].shape
                returned.append(dx)
                params.append({p: a[f"param:{i}:{p}"] for p in layer.params} if has_up else {})
                grads.append({p: a[f"grad:{i}:{p}"] for p in layer.params} if has_up else {})
                moved.append({p: bool(b["moved"][str(i)][p]) for p in layer.params} if has_up else {})
                for p in layer.params if has_up else ():
                    assert params[i][p].shape == grads[i][p].shape == layer.params[p]
            # the G each layer received is the gradient the layer after it returned
            assert all(
                returned[i + 1] is None or np.array_equal(upstream[i], returned[i + 1])
                for i in range(n - 1)
                if f"up:{i}" in a
            )
            loss = b["loss"]
            value = math.inf if loss is None else float(loss)
        except (AssertionError, KeyError, TypeError, ValueError, AttributeError):
            self._garbled("backward", "a network run that does not parse")
        arrays = [*inputs, *outputs, *upstream, *(d for d in returned if d is not None)]
        arrays += [v for d in (*params, *grads) for v in d.values()]
        if not all(v.dtype.kind == "f" and np.all(np.isfinite(v)) for v in arrays):
            self._garbled("backward", "arrays that are not finite floats")
        return Run(value, inputs, outputs, upstream, returned, params, grads, moved)

    def _losses(self, verb: str, body: dict, arrays: dict[str, np.ndarray], count: int) -> np.ndarray:
        reply = self._ask(verb, body, arrays, "forward")
        losses = reply.arrays.get("losses")
        if reply.verb != "net_losses" or losses is None or losses.shape != (count,) or losses.dtype != np.float64:
            self._garbled("forward", f"a {reply.verb!r} reply where losses were due")
        return losses

    def losses(
        self, x: np.ndarray, labels: np.ndarray, loss: str, layer: int, name: str, points: np.ndarray
    ) -> np.ndarray:
        body = {"loss": loss, "layer": layer, "name": name}
        return self._losses("net_losses", body, {"x": x, "labels": labels, "points": points}, len(points))

    def layer_losses(self, layer: int, name: str, a: np.ndarray, g: np.ndarray, points: np.ndarray) -> np.ndarray:
        body = {"layer": layer, "name": name}
        return self._losses("net_layer_losses", body, {"a": a, "upstream": g, "points": points}, len(points))

    def train(self, xs: np.ndarray, labels: np.ndarray, steps: int, lr: float, loss: str) -> np.ndarray:
        body: dict[str, Any] = {"steps": steps, "lr": lr, "loss": loss}
        return self._losses("net_train", body, {"xs": xs, "labels": labels}, steps + 1)


# -- the layer at fault, checked on its own ----------------------------------------------------------------------


def _class(data: object) -> dict | None:
    """A layer's class as the worker describes it (checks.adapt.chain.class_data), checked to be plain data of
    the expected form; None when it is absent."""
    if data is None:
        return None
    assert isinstance(data, dict)
    module, qualname, file = data["module"], data["qualname"], data.get("file")
    assert isinstance(module, str) and isinstance(qualname, str) and len(module) + len(qualname) < 1000
    assert file is None or (isinstance(file, str) and file.endswith(".py") and len(file) < 4096)
    found = Found.from_dict(data["found"])
    assert found.name == qualname and len(found.guesses) <= 32
    assert all(preset is None or preset in CLASS_PRESETS for _, preset in found.guesses)
    return {"module": module, "qualname": qualname, "file": file, "found": found}


Check = Callable[[Job], Report]
"""checks.api.check_job with the settings the caller wants (the checker's side never imports checks.api here)."""


def own_check(job: Job, layer: LayerInfo, check: Check) -> tuple[str, Report | None]:
    """(one line, the report): ``layer``'s class checked on its own the way ``check FILE`` checks it (its kind
    and convention guessed from its name and constructor, a guess believed when its forward agrees with the
    kind's reference: checks.infer.confirm), with ``job``'s settings; the report is None, and the line says
    why, when the class cannot be loaded on its own or its kind cannot be told."""
    from checks import infer
    from checks.adapt.targets import TargetError

    cls = layer.cls
    shown = f"{layer.shown} on its own"
    if cls is None or cls["file"] is None or not Path(cls["file"]).is_file():
        return f"{shown}: not checked: its class is not defined in a .py file a worker can load", None
    if cls["module"] == "__main__" or "." in cls["qualname"]:
        return f"{shown}: not checked: {cls['qualname']} is not at module level of {cls['file']}", None
    template = replace(job, target=cls["file"], kind=None, preset=None, only=None, label="")
    try:
        inferred = infer.confirm(template, cls["found"], check)
        if not inferred.checkable:
            return f"{shown}: not checked: {inferred.why}", None
        report = check(inferred.job(template))
    except (TargetError, LoadRefused) as exc:
        return f"{shown}: not checked: {cls['qualname']} cannot be loaded from {cls['file']}: {exc}", None
    except LayerFault as fault:  # its worker died or garbled while loading: the network's verdict stands
        return f"{shown}: not checked: its check ended while loading it: {fault}", None
    report.settings["inferred"] = inferred.why
    return f"{shown}: {cls['qualname']} in {Path(cls['file']).name} checked as {inferred.why}", report


def check_at_fault(job: Job, report: Report, info: NetInfo, check: Check) -> Report | None:
    """When the network check named a layer at fault, that layer's own check (``own_check``): its line goes to
    ``settings.network.at_fault.own_check``, its report to ``settings.network.at_fault.report`` (as the JSON
    holds one) and is returned (None: no layer at fault, or it could not be checked)."""
    network = report.settings.get("network")
    at_fault = network.get("at_fault") if isinstance(network, dict) else None
    if not at_fault:
        return None
    line, own = own_check(job, info.layers[at_fault["index"]], check)
    at_fault["own_check"] = line
    at_fault["report"] = None if own is None else json.loads(own.to_json())
    return own
