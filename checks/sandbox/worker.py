"""The checker's side of the worker: start the process that holds the user's layer, talk to it, end it.

``Session.start(job)`` launches ``python -I -m checks.adapt.serve`` in a sandbox (checks.sandbox.jail: its own
namespaces and a throwaway uid where the machine allows it, else its own process group), with the job's
folder visible read-only, and has it load the job's target. ``session.declaration`` is the layer's spec as
plain data (checks.adapt.adapters.Declaration); ``session.subject`` is the SubjectFactory the pipeline
uses: each ``RemoteSubject`` forwards construct / forward / backward / losses requests to the worker.

Nothing the worker says is a verdict, and nothing it sends is trusted: frames are parsed strictly
(checks.adapt.wire), every reply is checked for the fields its request allows, and arrays arrive as numeric
ndarrays only; the pipeline then validates shapes, dtypes and values as for any subject. A worker that dies
(any exit status, a signal), misses its deadline, or answers anything else becomes a ``LayerFault`` with a
typed cause (CRASH, TIMEOUT, GARBLED), naming the request and the input shapes; the session is over then.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from checks.adapt import wire
from checks.adapt.adapters import Declaration
from checks.adapt.guard import Cause, LayerFault
from checks.case import Case
from checks.job import Job
from checks.sandbox import jail

GRACE = 5.0
"""Seconds the checker waits beyond a call's own limit before it calls the worker hung (the worker's guard
stops a Python-level hang itself at the limit; only a hang inside C needs the checker)."""
REPLY_LIMIT = 1 << 30
STDERR_TAIL = 64 * 1024
HEADROOM = 1 << 30
"""Address space allowed beyond the layer's budget: the interpreter, numpy and the user's imports."""
WORKER_ENV = {
    "PATH": "/usr/local/bin:/usr/bin:/bin",
    "OPENBLAS_NUM_THREADS": "1",  # one thread: the process limit counts threads, and checks run in parallel
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "PYTHONHASHSEED": "0",
    "PYTHONDONTWRITEBYTECODE": "1",
    "LANG": "C.UTF-8",
}
SIGNAL_WORDS = {
    "SIGSEGV": "crashed with a segmentation fault (SIGSEGV)",
    "SIGBUS": "crashed with a bus error (SIGBUS)",
    "SIGILL": "crashed on an illegal instruction (SIGILL)",
    "SIGFPE": "crashed on an arithmetic fault (SIGFPE)",
    "SIGABRT": "aborted (SIGABRT)",
    "SIGXFSZ": "was killed for writing a file above the size limit (SIGXFSZ)",
    "SIGXCPU": "was killed for using up its CPU time (SIGXCPU)",
    "SIGKILL": "was killed (SIGKILL: the memory limit, or the system's out-of-memory killer?)",
}


class LoadRefused(Exception):
    """The worker could not load the target (``str()`` is one line); ``cause`` is the guard's cause name, if any."""

    def __init__(self, reason: str, cause: str | None = None, origin: dict | None = None) -> None:
        super().__init__(reason)
        self.cause = cause
        self.origin = origin


@dataclass
class Session:
    """One worker for one check (see the module docstring)."""

    job: Job
    caps: jail.Capabilities
    handle: jail.Jail
    to_worker: int
    from_worker: int
    logs: Path
    declaration: Declaration | None = None
    dead: LayerFault | None = None
    next_id: int = 0
    deadline: float | None = None
    """The whole check's wall-clock deadline (time.monotonic()), if it has one."""
    stack: str = field(default="", repr=False)
    found: list = field(default_factory=list)
    """After a survey: the layers the file defines (checks.adapt.survey.Found), not yet confirmed."""

    # -- life ------------------------------------------------------------------------------------------
    @classmethod
    def start(
        cls,
        job: Job,
        *,
        readonly: list[str | tuple[str, str]] | None = None,
        wall_seconds: float | None = None,
        spelling: tuple[str, str] = ("--kind", "--preset"),
        survey: bool = False,
    ) -> Session:
        """Launch a worker for ``job`` and load its target (LoadRefused when it cannot be loaded); with
        ``survey``, list the layers its file defines instead (``Session.found``). ``readonly``:
        the folders it may read, or (folder, snapshot) pairs (default: the target's folder, through a snapshot
        where the worker's uid could not read the original)."""
        caps = sandbox()
        logs = Path(tempfile.mkdtemp(prefix="cnn-gradcheck-worker-"))
        if readonly is None:
            readonly = _views(job, caps, logs)
        requests_r, requests_w = os.pipe()
        replies_r, replies_w = os.pipe()
        stdout = open(logs / "stdout", "wb")  # noqa: SIM115 - handed to the worker, closed below
        stderr = open(logs / "stderr", "wb")  # noqa: SIM115
        budget = job.memory_bytes
        limits = jail.Limits(memory_bytes=(budget or 8 << 30) + HEADROOM, cpu_seconds=_cpu_seconds(job, wall_seconds))
        argv = [caps.python, "-I", "-m", "checks.adapt.serve", str(requests_r), str(replies_w)]
        try:
            handle = jail.launch(
                argv,
                caps,
                readonly=readonly,
                limits=limits,
                env=WORKER_ENV,
                stdout=stdout,
                stderr=stderr,
                pass_fds=(requests_r, replies_w),
            )
        except BaseException:
            for fd in (requests_r, requests_w, replies_r, replies_w):
                os.close(fd)
            raise
        finally:
            stdout.close()
            stderr.close()
        os.close(requests_r)
        os.close(replies_w)
        session = cls(job, caps, handle, requests_w, replies_r, logs)
        if wall_seconds is not None:
            session.deadline = time.monotonic() + wall_seconds
        try:
            if survey:
                session._survey()
            else:
                session._load(spelling)
        except BaseException:
            session.close()
            raise
        return session

    def _load(self, spelling: tuple[str, str]) -> None:
        job = self.job
        body = {
            "target": job.target,
            "kind": job.kind,
            "preset": job.preset,
            "overrides": dict(job.overrides),
            "root": str(Path(job.root or os.getcwd()).resolve()),
            "call_seconds": job.call_seconds,
            "memory_bytes": job.memory_bytes,
            "import_seconds": job.import_seconds,
            "kind_option": spelling[0],
            "preset_option": spelling[1],
        }
        wait = None if job.import_seconds is None else job.import_seconds + GRACE
        try:
            reply = self.request("load", body, {}, stage="import", shapes="", seconds=wait)
        except LayerFault as fault:
            raise LoadRefused(f"{job.target}: {fault.detail}", fault.cause.value, fault.origin) from None
        if reply.verb == "refused":
            try:
                reason, cause = reply_text(reply.body, "reason"), reply.body.get("cause")
                origin = self.shown(reply_origin(reply.body.get("origin")))
            except (KeyError, TypeError):
                self._garbled("import", "", "a refusal that does not parse")
            raise LoadRefused(reason, cause if isinstance(cause, str) else None, origin)
        if reply.verb != "loaded" or not isinstance(reply.body.get("declaration"), dict):
            self._garbled("import", "", f"a {reply.verb!r} reply to load")
        try:
            self.declaration = Declaration.from_dict(reply.body["declaration"])
        except (KeyError, TypeError, ValueError) as exc:
            self._garbled("import", "", f"a declaration that does not parse ({exc})")

    def _survey(self) -> None:
        """Ask the worker which layers the target's file defines; every entry is checked before it is believed."""
        from checks.adapt.survey import Found
        from checks.adapt.targets import PRESETS
        from checks.kinds import USER_NAMES

        job = self.job
        body = {"target": job.target, "root": str(Path(job.root or os.getcwd()).resolve())}
        body["import_seconds"] = job.import_seconds
        wait = None if job.import_seconds is None else job.import_seconds + GRACE
        try:
            reply = self.request("survey", body, {}, stage="import", shapes="", seconds=wait)
        except LayerFault as fault:
            raise LoadRefused(f"{job.target}: {fault.detail}", fault.cause.value, fault.origin) from None
        if reply.verb == "refused":
            try:
                reason, cause = reply_text(reply.body, "reason"), reply.body.get("cause")
            except (KeyError, TypeError):
                self._garbled("import", "", "a refusal that does not parse")
            raise LoadRefused(reason, cause if isinstance(cause, str) else None, None)
        layers = reply.body.get("layers")
        if reply.verb != "surveyed" or not isinstance(layers, list) or len(layers) > MAX_FOUND:
            self._garbled("import", "", f"a {reply.verb!r} reply to survey")
        self.found = []
        for data in layers:
            try:
                found = Found.from_dict(data)
            except (KeyError, TypeError, ValueError):
                self._garbled("import", "", "a survey entry that does not parse")
            names_ok = found.name == "" or (found.name.isidentifier() and len(found.name) <= 200)
            guesses_ok = all(k in USER_NAMES and (p is None or p in PRESETS) for k, p in found.guesses)
            if not (names_ok and guesses_ok and len(found.guesses) <= 50 and len(found.why) <= 500):
                self._garbled("import", "", "a survey entry that names no layer of ours")
            self.found.append(found)

    def close(self) -> None:
        """End the worker and everything it started; remove its logs. Idempotent."""
        with contextlib.suppress(OSError, wire.WireError):
            if self.dead is None:
                wire.send(self.to_worker, wire.Message("bye"))
        self.handle.teardown()
        for fd in (self.to_worker, self.from_worker):
            with contextlib.suppress(OSError):
                os.close(fd)
        self.to_worker = self.from_worker = -1
        import shutil

        shutil.rmtree(self.logs, ignore_errors=True)

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def subject(self, case: Case) -> RemoteSubject:
        """The SubjectFactory: the user's layer built in the worker for ``case``."""
        return RemoteSubject(self, case)

    # -- requests --------------------------------------------------------------------------------------
    def request(
        self,
        verb: str,
        body: dict,
        arrays: Mapping[str, np.ndarray],
        *,
        stage: str,
        shapes: str,
        seconds: float | None = None,
    ) -> wire.Message:
        """Send one request and wait for its reply (``tick`` frames extend the wait: each means one more
        call into the layer finished). Raises LayerFault when the worker is dead, late or garbled."""
        if self.dead is not None:
            raise self.dead
        try:
            wire.send(self.to_worker, wire.Message(verb, body, dict(arrays)))
        except wire.Closed:
            self._died(stage, shapes)
        limit = self.job.call_seconds
        wait = seconds if seconds is not None else (None if limit is None else limit + GRACE)
        while True:
            deadline = None if wait is None else time.monotonic() + wait
            if self.deadline is not None:
                deadline = self.deadline if deadline is None else min(deadline, self.deadline)
            try:
                reply = wire.receive(self.from_worker, REPLY_LIMIT, deadline)
            except wire.Late:
                self._hung(stage, shapes, wait)
            except wire.Closed:
                self._died(stage, shapes)
            except wire.WireError as exc:
                self._garbled(stage, shapes, str(exc))
            if reply.verb != "tick":
                break
        printed = reply.body.get("printed", "")
        if not isinstance(printed, str):
            self._garbled(stage, shapes, "printed text that is not text")
        if printed:
            sys.stdout.write(printed)  # inside a guarded call this lands in the trial's transcript
        return reply

    def _end(self, fault: LayerFault) -> None:
        self.dead = fault
        self.handle.teardown()
        raise fault

    def _hung(self, stage: str, shapes: str, wait: float | None) -> None:
        self.stack = self._ask_for_stack()
        whole = self.deadline is not None and time.monotonic() >= self.deadline
        detail = "the whole check ran out of time" if whole else f"did not return within {wait:g} s (a hang?)"
        fault = LayerFault(stage, detail, shapes, cause=Cause.TIMEOUT)
        fault.origin = self.shown(_innermost(self.stack, self._visible_roots()))
        self._end(fault)

    def _died(self, stage: str, shapes: str) -> None:
        try:
            status = self.handle.wait(10)
        except Exception:  # noqa: BLE001 - the status is only for the message
            status = None
        stderr = self.stderr_tail()
        fault = LayerFault(stage, f"the layer's process {_death(status)}", shapes, cause=Cause.CRASH)
        fault.origin = self.shown(_innermost(stderr, self._visible_roots()))
        self._end(fault)

    def _garbled(self, stage: str, shapes: str, what: str) -> None:
        self._end(LayerFault(stage, f"the layer's process answered {what}", shapes, cause=Cause.GARBLED))

    def _ask_for_stack(self) -> str:
        """faulthandler in the worker prints its Python stack on SIGUSR1 (even inside a C call): wait until
        the dump is written (it stops growing) or a few seconds pass."""
        before = self.stderr_tail()
        self.handle.send_signal(signal.SIGUSR1)
        end, size, steady = time.monotonic() + 5.0, -1, 0
        while time.monotonic() < end:
            text = self.stderr_tail()
            if text.count("(most recent call first)") > before.count("(most recent call first)"):
                steady = steady + 1 if len(text) == size else 0
                size = len(text)
                if steady >= 3:
                    return text[len(before) :] if text.startswith(before) else text
            time.sleep(0.02)
        return ""

    def stderr_tail(self, chars: int = STDERR_TAIL) -> str:
        try:
            with open(self.logs / "stderr", "rb") as f:
                f.seek(0, os.SEEK_END)
                f.seek(max(0, f.tell() - chars * 4))
                return f.read().decode("utf-8", errors="replace")[-chars:]
        except OSError:
            return ""

    def _visible_roots(self) -> list[str]:
        return _visible(self.job)

    def shown(self, origin: dict | None) -> dict | None:
        """``origin`` with its file relative to the job's root (as the user names it), where it is under it."""
        if origin is None:
            return None
        root = Path(self.job.root or os.getcwd()).resolve()
        path = Path(origin["file"])
        if path.is_absolute() and root in path.parents:
            return {**origin, "file": path.relative_to(root).as_posix()}
        return origin


MAX_FOUND = 200
"""The most layers a surveyed file may list (a file defining more is answered as garbled)."""


class RemoteSubject:
    """A Subject whose layer lives in the worker (see checks.subject for the contract)."""

    def __init__(self, session: Session, case: Case) -> None:
        self.session = session
        session.next_id += 1
        self.id = session.next_id
        self.case = case
        self.shapes = ", ".join(f"{k} {v.shape}" for k, v in case.inputs.items())
        self.raw: dict[str, np.ndarray] = {}
        self.learning_rate: float | None = None
        arrays = {f"input:{k}": v for k, v in case.inputs.items()}
        arrays["upstream"] = case.upstream
        if case.labels is not None:
            arrays["labels"] = case.labels
        geometry = {"type": type(case.geometry).__name__, "fields": case.geometry._asdict()}
        self.construction = {"case": {"kind": case.kind, "geometry": geometry, "mode": case.mode}}, arrays
        self.last_inputs: dict[str, np.ndarray] | None = None  # the latest forward's, to redo it after a revival
        self._construct()

    def _construct(self) -> None:
        body, arrays = self.construction
        reply = self.session.request(
            "construct", {"id": self.id, **body}, arrays, stage="construct", shapes=self.shapes
        )
        if reply.verb == "fault":
            raise self._fault(reply.body.get("fault"), "construct")
        self._expect(reply, "ok", "construct")

    def _ask(self, verb: str, body: dict, arrays: Mapping[str, np.ndarray], stage: str) -> wire.Message:
        reply = self.session.request(verb, {"id": self.id, **body}, arrays, stage=stage, shapes=self.shapes)
        if reply.verb == "gone" and reply.body.get("id") == self.id:
            # The worker keeps a bounded number of layers; a trial kept for its report outlives its layer
            # there. Build it again from the same case, as the factory would, and redo the request (a
            # backward first needs the forward it follows).
            self._construct()
            if verb == "backward" and self.last_inputs is not None:
                step = {f"input:{k}": v for k, v in self.last_inputs.items()}
                verb, arrays = "step", {**step, **arrays}
            reply = self.session.request(verb, {"id": self.id, **body}, arrays, stage=stage, shapes=self.shapes)
        if reply.verb == "fault":
            raise self._fault(reply.body.get("fault"), stage)
        return reply

    def _expect(self, reply: wire.Message, verb: str, stage: str, arrays: tuple[str, ...] = ()) -> wire.Message:
        if reply.verb != verb or any(a not in reply.arrays for a in arrays):
            self.session._garbled(stage, self.shapes, f"a {reply.verb!r} reply where {verb!r} was due")
        return reply

    def _fault(self, data: object, stage: str) -> LayerFault:
        """The worker's fault report as a LayerFault; anything malformed ends the session (GARBLED)."""
        try:
            assert isinstance(data, dict)
            cause = Cause(data["cause"])
            shape = data.get("actual_shape")
            actual = None if shape is None else tuple(int(d) for d in shape)
            stage, detail = reply_text(data, "stage"), reply_text(data, "detail")
            shapes = data.get("shapes")  # in the layer's own layout and names (display only)
            shapes = shapes[:300] if isinstance(shapes, str) and shapes.isprintable() else self.shapes
            fault = LayerFault(stage, detail, shapes, cause=cause, actual_shape=actual)
            fault.origin = self.session.shown(reply_origin(data.get("origin")))
        except (AssertionError, KeyError, TypeError, ValueError):
            self.session._garbled(stage, self.shapes, "a fault report that does not parse")
        return fault

    def forward(self, inputs: Mapping[str, np.ndarray]) -> np.ndarray:
        self.last_inputs = {k: np.array(v) for k, v in inputs.items()}
        reply = self._expect(self._ask("forward", {}, dict(inputs), "forward"), "output", "forward", ("output",))
        for key, value in reply.arrays.items():  # the layer wrote into its inputs: so does this call
            name = key[len("mutated:") :]
            if key.startswith("mutated:") and name in inputs and np.shape(inputs[name]) == value.shape:
                inputs[name][...] = value
        return reply.arrays["output"]

    @property
    def has_reference(self) -> bool:
        """Whether the layer declared its own reference forward (its Declaration says so)."""
        return self.session.declaration is not None and self.session.declaration.reference

    def reference(self, inputs: Mapping[str, np.ndarray]) -> np.ndarray:
        """Z of the layer's reference forward, computed in the worker (the reference is the user's code); the
        checker validates it (checks.pipeline.trial.Trial.declared_reference) like any answer."""
        reply = self._ask("reference", {}, dict(inputs), "reference forward")
        return self._expect(reply, "output", "reference forward", ("output",)).arrays["output"]

    def backward(self, upstream: np.ndarray) -> dict[str, np.ndarray | LayerFault]:
        reply = self._expect(self._ask("backward", {}, {"upstream": upstream}, "backward"), "grads", "backward")
        return self._grads(reply, upstream)

    def forward_backward(
        self, inputs: Mapping[str, np.ndarray], upstream: np.ndarray
    ) -> tuple[np.ndarray, dict[str, np.ndarray | LayerFault]]:
        """A forward at ``inputs`` then a backward at G, in one request (see checks.subject)."""
        self.last_inputs = {k: np.array(v) for k, v in inputs.items()}
        arrays = {f"input:{k}": v for k, v in inputs.items()}
        arrays["upstream"] = upstream
        reply = self._expect(self._ask("step", {}, arrays, "backward"), "grads", "backward", ("output",))
        return reply.arrays["output"], self._grads(reply, upstream)

    def _grads(self, reply: wire.Message, upstream: np.ndarray) -> dict[str, np.ndarray | LayerFault]:
        faults = reply.body.get("faults", {})
        rate = reply.body.get("learning_rate")
        if not isinstance(faults, dict) or not (rate is None or isinstance(rate, (int, float))):
            self.session._garbled("backward", self.shapes, "a backward reply that does not parse")
        grads: dict[str, np.ndarray | LayerFault] = {
            k[len("grad:") :]: v for k, v in reply.arrays.items() if k.startswith("grad:")
        }
        grads.update({name: self._fault(data, "backward") for name, data in faults.items()})
        self.raw = {k[len("raw:") :]: v for k, v in reply.arrays.items() if k.startswith("raw:")}
        self.learning_rate = float(rate) if rate is not None and np.isfinite(rate) else None
        if "mutated:upstream" in reply.arrays and reply.arrays["mutated:upstream"].shape == np.shape(upstream):
            upstream[...] = reply.arrays["mutated:upstream"]
        return grads

    def losses(
        self,
        inputs: Mapping[str, np.ndarray],
        upstream: np.ndarray,
        name: str,
        *,
        index: np.ndarray | None = None,
        values: np.ndarray | None = None,
        points: np.ndarray | None = None,
    ) -> np.ndarray:
        """L = sum(Z * G) at each perturbed point, computed in the worker in few requests (see serve)."""
        arrays = {f"input:{k}": np.asarray(v, dtype=np.float64) for k, v in inputs.items()}
        arrays["upstream"] = np.asarray(upstream, dtype=np.float64)
        if points is not None:
            arrays["points"] = np.asarray(points, dtype=np.float64)
        else:
            arrays["index"] = np.asarray(index, dtype=np.int64)
            arrays["values"] = np.asarray(values, dtype=np.float64)
        body = {"name": name, "dtype": str(self.case.dtype)}
        reply = self._expect(self._ask("losses", body, arrays, "forward"), "losses", "forward", ("losses",))
        losses = reply.arrays["losses"]
        expected = len(points) if points is not None else len(arrays["index"])
        if losses.shape != (expected,) or losses.dtype != np.float64:
            self.session._garbled("forward", self.shapes, "losses of the wrong shape")
        if not np.all(np.isfinite(losses)):
            detail = "L = sum(Z * G) is not finite at a perturbed point (the output overflows?)"
            raise LayerFault("forward", detail, self.shapes, cause=Cause.NONFINITE)
        return losses


# -- helpers ---------------------------------------------------------------------------------------------

_CAPS: dict[str, jail.Capabilities] = {}


def sandbox() -> jail.Capabilities:
    """What isolation this machine gives the worker (probed once per process)."""
    if "caps" not in _CAPS:
        _CAPS["caps"] = jail.probe(sys.executable, imports=("numpy", "checks.adapt.serve"))
    return _CAPS["caps"]


def _visible(job: Job) -> list[str]:
    """The folders the worker may read: a file target's own folder, or for a dotted module name the job's
    root (the current directory by default) where its package starts; never / itself."""
    from checks.adapt import targets

    root = Path(job.root or os.getcwd()).resolve()
    try:
        parsed = targets.parse(job.target)
    except targets.TargetError:
        return []
    folder = (root / parsed.location).resolve().parent if parsed.is_file else root
    return [str(folder)] if folder != Path("/") and folder.is_dir() else []


def _views(job: Job, caps: jail.Capabilities, logs: Path) -> list[str | tuple[str, str]]:
    """What the worker is shown of ``_visible(job)``: each folder itself where any uid may read it, else (in
    namespaces mode, where the worker has a uid of its own) a snapshot of it shown in its place."""
    from checks.sandbox import snapshot

    views: list[str | tuple[str, str]] = []
    for k, folder in enumerate(_visible(job)):
        if not caps.namespaces or _readable_by_anyone(Path(folder)):
            views.append(folder)
            continue
        try:
            snap = snapshot.take(folder, logs / f"view-{k}")
        except snapshot.SnapshotError:
            views.append(folder)  # the import will say what it cannot read
            continue
        views.append((folder, str(snap.path)))
    return views


def _readable_by_anyone(folder: Path) -> bool:
    """Every folder on the way is searchable by others, the folder readable, and its .py files too."""
    import stat

    try:
        for part in [folder, *folder.parents]:
            mode = part.stat().st_mode
            if not mode & stat.S_IXOTH:
                return False
        if not folder.stat().st_mode & stat.S_IROTH:
            return False
        return all(p.stat().st_mode & stat.S_IROTH for p in folder.glob("*.py"))
    except OSError:
        return False


def _cpu_seconds(job: Job, wall_seconds: float | None) -> int:
    return int(max(600.0, 4 * (wall_seconds or 0.0), 4 * (job.import_seconds or 0.0)))


def reply_text(data: Mapping[str, Any], key: str) -> str:
    value = data.get(key, "")
    if not isinstance(value, str):
        raise TypeError(f"{key} is not text")
    return value[:2000]


def reply_origin(data: object) -> dict | None:
    if data is None:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("line"), int):
        raise TypeError("an origin that does not parse")
    return {
        "file": reply_text(data, "file"),
        "line": data["line"],
        "function": reply_text(data, "function"),
        "text": reply_text(data, "text"),
    }


def _death(status: int | None) -> str:
    if status is None:
        return "ended and could not be waited for"
    if status < 0:
        try:
            name = signal.Signals(-status).name
        except ValueError:
            name = f"signal {-status}"
        return SIGNAL_WORDS.get(name, f"was killed by {name}")
    return f"exited with status {status} (os._exit or sys.exit outside a call?)"


_FRAME = re.compile(r'^\s*File "(?P<file>[^"]+)", line (?P<line>\d+) in (?P<func>\S+)', re.MULTILINE)


def _innermost(dump: str, roots: list[str]) -> dict | None:
    """The innermost frame of the last faulthandler stack in ``dump`` that lies in the user's files (under
    ``roots``), else None."""
    start = dump.rfind("(most recent call first):")
    if start < 0:
        return None
    block = dump[start:]
    frames = [m for m in _FRAME.finditer(block) if any(m["file"].startswith(r.rstrip("/") + "/") for r in roots)]
    if not frames:
        return None
    m = frames[0]
    return {
        "file": m["file"],
        "line": int(m["line"]),
        "function": m["func"],
        "text": source_line(m["file"], int(m["line"])),
    }


def source_line(path: str, line: int, limit: int = 1 << 20) -> str:
    """Line ``line`` of the user's file ``path``, read without following symlinks, blocking on a FIFO or
    reading more than ``limit`` bytes; "" when it cannot be read that way."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return ""
    try:
        import stat

        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_size > limit:
            return ""
        lines = os.read(fd, limit).decode("utf-8", errors="replace").splitlines()
        return lines[line - 1].strip()[:200] if 0 < line <= len(lines) else ""
    except OSError:
        return ""
    finally:
        os.close(fd)
