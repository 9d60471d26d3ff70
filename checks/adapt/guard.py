"""Run a call into the layer under test so that any misbehaviour becomes a LayerFault, never a crash.

Covered in-process: exceptions of any kind (including ``sys.exit``), calls that do not return within
a time limit (SIGALRM, main thread only; a C call that never yields is only stopped by running the
check in a subprocess, see ``--isolate``), allocations beyond a memory budget (RLIMIT_AS raised to
"current + budget" for the duration of the call), and output written to stdout/stderr (captured and
reported, so a chatty layer cannot flood the report).
"""

from __future__ import annotations

import contextlib
import io
import os
import signal
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from enum import Enum
from typing import TypeVar

from checks.job import CALL_SECONDS, MEMORY_BYTES

T = TypeVar("T")

try:
    import resource
except ImportError:  # not on Windows: no memory limit there
    resource = None  # type: ignore[assignment]


class Cause(str, Enum):
    """Why a call into the layer failed. Downstream code (the runner, the sandbox, the report) decides
    by this field, never by the wording of a message."""

    RAISED = "raised"  # an exception from the layer's own code
    EXIT = "exit"  # sys.exit / SystemExit
    TIMEOUT = "timeout"  # did not return within the time limit
    MEMORY = "memory"  # MemoryError under the memory budget
    TYPE = "type"  # returned None, or not an array / mapping
    SHAPE = "shape"  # an array of the wrong shape
    DTYPE = "dtype"  # an array of the wrong dtype
    NONFINITE = "nonfinite"  # NaN or inf entries
    MISSING = "missing"  # no gradient for a name the layer owes
    ADAPT = "adapt"  # the adapter cannot drive the layer as described (method, attribute, learning rate)
    CRASH = "crash"  # the layer's process died (a signal, or an exit status outside any call)
    GARBLED = "garbled"  # the layer's process answered something that is not a reply

    @property
    def fatal(self) -> bool:
        """A hang, a memory blow-up or a dead process: exploring further would only repeat it, slowly, or
        cannot go on at all."""
        return self in (Cause.TIMEOUT, Cause.MEMORY, Cause.CRASH, Cause.GARBLED)


class LayerFault(Exception):
    """The layer under test misbehaved; ``str()`` names the stage, the detail and the input shapes.

    ``cause`` is the typed reason; ``actual_shape`` is the shape the layer returned when the cause is
    SHAPE (the report shows it in the user's layout); ``origin`` where in the user's code it was raised."""

    def __init__(
        self,
        stage: str,
        detail: str,
        shapes: str = "",
        *,
        cause: Cause = Cause.RAISED,
        actual_shape: tuple[int, ...] | None = None,
    ) -> None:
        self.stage, self.detail, self.shapes = stage, detail, shapes
        self.cause, self.actual_shape = cause, actual_shape
        self.origin: dict | None = None
        """Where in the user's own code it happened, when known: {file, line, function, text}."""
        where = f" (inputs: {shapes})" if shapes else ""
        super().__init__(f"{stage}: {detail}{where}")

    def as_dict(self) -> dict:
        """The fault as plain data for the wire (its cause typed by name, where in the user's code it was
        raised; ``layer``: which layer of a network, when set)."""
        data = {
            "stage": self.stage,
            "cause": self.cause.value,
            "detail": self.detail,
            "shapes": self.shapes,
            "actual_shape": None if self.actual_shape is None else list(self.actual_shape),
            "origin": self.origin,
        }
        if hasattr(self, "layer"):
            data["layer"] = self.layer
        return data


class _Timeout(BaseException):
    """Raised by the alarm handler; a BaseException so a bare ``except Exception`` in the layer cannot eat it."""


@dataclass
class Limits:
    """Per-call limits: wall-clock seconds and extra address space in bytes (None = unlimited)."""

    seconds: float | None = CALL_SECONDS
    memory_bytes: int | None = MEMORY_BYTES


@dataclass
class Transcript:
    """What the layer printed across all guarded calls of one check: the first ``KEEP`` characters, and how
    many there were in all (a layer that floods its output cannot flood the checker's memory)."""

    KEEP = 1 << 20
    chunks: list[str] = field(default_factory=list)
    total: int = 0

    def add(self, text: str) -> None:
        kept = sum(len(c) for c in self.chunks)
        if kept < self.KEEP:
            self.chunks.append(text[: self.KEEP - kept])
        self.total += len(text)

    @property
    def text(self) -> str:
        return "".join(self.chunks)


@contextlib.contextmanager
def _alarm(seconds: float | None) -> Iterator[None]:
    if not seconds or threading.current_thread() is not threading.main_thread() or not hasattr(signal, "setitimer"):
        yield
        return

    def on_alarm(signum, frame):
        raise _Timeout()

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def address_space() -> int | None:
    """This process's mapped address space in bytes (/proc/self/statm), or None where it cannot be read."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        return None


@contextlib.contextmanager
def _memory_cap(extra: int | None) -> Iterator[None]:
    current = address_space() if extra and resource is not None else None
    if current is None:
        yield
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    cap = current + extra
    if hard != resource.RLIM_INFINITY:
        cap = min(cap, hard)
    try:
        resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
    except (ValueError, OSError):
        yield
        return
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


_HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # the checks package


def origin_of(exc: BaseException | None) -> dict | None:
    """Where in the user's own code ``exc`` was raised (or a time limit interrupted it): the innermost
    frame outside this package and outside the Python installation (numpy included), with its line's
    text; None when no frame is the user's."""
    import sys
    import traceback

    if exc is None or exc.__traceback__ is None:
        return None
    skip = tuple({_HERE, sys.prefix, sys.base_prefix, os.path.dirname(os.__file__)})
    frames = [
        f
        for f in traceback.extract_tb(exc.__traceback__)
        if not f.filename.startswith(skip) and not f.filename.startswith("<")
    ]
    if not frames:
        return None
    f = frames[-1]
    return {"file": f.filename, "line": f.lineno, "function": f.name, "text": (f.line or "").strip()[:200]}


def _located(fault: LayerFault, exc: BaseException) -> LayerFault:
    fault.origin = origin_of(exc)
    return fault


def call(
    stage: str,
    fn: Callable[..., T],
    *args: object,
    shapes: str = "",
    limits: Limits | None = None,
    transcript: Transcript | None = None,
) -> T:
    """fn(*args), with every way it can go wrong turned into a ``LayerFault`` with its typed cause."""
    limits = limits or Limits()
    buffer = io.StringIO()
    try:
        with contextlib.redirect_stdout(buffer), contextlib.redirect_stderr(buffer):
            with _memory_cap(limits.memory_bytes), _alarm(limits.seconds):
                return fn(*args)
    except (KeyboardInterrupt, LayerFault):
        raise
    except _Timeout as exc:
        detail = f"did not return within {limits.seconds:g} s (hang or infinite loop?)"
        raise _located(LayerFault(stage, detail, shapes, cause=Cause.TIMEOUT), exc) from None
    except MemoryError as exc:
        budget = "" if limits.memory_bytes is None else f" (budget {limits.memory_bytes / 1024**3:.1f} GiB)"
        fault = LayerFault(stage, f"ran out of memory{budget}: {exc}", shapes, cause=Cause.MEMORY)
        raise _located(fault, exc) from None
    except SystemExit as exc:
        raise _located(LayerFault(stage, f"called sys.exit({exc.code!r})", shapes, cause=Cause.EXIT), exc) from None
    except BaseException as exc:
        raise _located(LayerFault(stage, f"raised {type(exc).__name__}: {exc}", shapes), exc) from exc
    finally:
        if transcript is not None and buffer.getvalue():
            transcript.add(buffer.getvalue())
