"""Run ONE check in a fresh child process, so nothing the layer under test does can harm the caller.

``run_isolated(job, timeout=...)`` -> ``IsolatedResult(report, status, reason, seconds, stdout_tail)``: the
checks.job.Job crosses into the child as JSON, the result comes back as JSON.

The child is forked from a multiprocessing *forkserver* (spawn where there is none) that has imported
numpy, hypothesis, the checker and torch once, so a child starts in milliseconds instead of paying the
~5 s torch import per check; the server itself never runs user code. In the child, before the
submission is imported:

- ``os.setsid()``: a process group of its own, so a time-out kills the child and everything it started;
- the working directory is a fresh temporary folder (``work/``) that holds nothing but what ``copy``
  puts there; stdout and stderr (file descriptors 1 and 2, so C-level output too) go to files in the
  job's folder, and faulthandler prints a Python traceback there on a segfault;
- ``RLIMIT_AS`` = the child's address space at start (interpreter + numpy + torch) + ``memory_bytes``,
  soft and hard, so the submission cannot raise it again (unless it runs as root); ``RLIMIT_FSIZE``
  caps every file it writes (its captured output too);
  ``RLIMIT_CORE`` = 0 (no core dumps);
- the result (status, reason, report dict, rendered text, a per-job token) is written as JSON to a
  file in a second temporary folder that is not under the working directory and whose name the child's
  cwd does not reveal; the parent reads it (size-capped), checks the token and the shape of the JSON.

How each way of going wrong is told apart (``status``: reason):

- ``passed`` / ``failed``: the check ran; failed names the failing properties (and the diagnosis);
- ``timeout``: the wall clock ran out: the parent sends SIGUSR1 (faulthandler prints the child's Python
  stack, even from inside a C call), then kills the process group: "timed out after 60 s"; the
  innermost submission line of that stack is ``IsolatedResult.where``. A single call that hung and was
  stopped by the in-process guard (checks.adapt.guard, 10 s per call) is also a time-out;
- ``memory``: a MemoryError under the limit, in the layer (the guard's "ran out of memory" finding) or
  anywhere else in the child: "killed: memory limit 2 GiB exceeded";
- ``crashed``: the interpreter ended without a result: "interpreter exited with code 7 before
  finishing" (``os._exit``, ``sys.exit`` outside a guarded call), or died by a signal
  ("crashed: segmentation fault (SIGSEGV) (in property forward, at sub/layers.py line 15 in forward)",
  located from faulthandler's stack; SIGXFSZ: the file size limit);
- ``error``: the target could not be loaded: "import failed: ..." (syntax error, missing module,
  exception at import) or "could not load: ..." (no such class, cannot adapt it);
- ``internal``: cnn-gradcheck itself raised (not the layer); the reason ends with the exception.

Each reason says what the child was doing when it happened ("while importing the submission", "in
property grad_input"). ``IsolatedResult.exit_code`` maps the status to the command's exit status
(checks.settings.STATUS_EXIT): 0 passed, 1 failed / timeout / memory / crashed, 2 error, 3 internal.

As with any multiprocessing code, a script that calls ``run_isolated`` must guard its top level with
``if __name__ == "__main__":`` (the child re-imports the caller's main module, as spawn does).

Limits of the isolation: the child runs as the same user as the grader. It cannot find the result
path or the grader's output folder from its working directory, but code written to attack the
grader on purpose (reading /proc, killing its parent, or, when run as root, raising its own
RLIMIT_AS again) is not stopped; for hostile code run the grader as an unprivileged user or in a
container.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from checks.adapt.guard import Cause, address_space
from checks.job import Job
from checks.settings import STATUS_EXIT, Exit

GiB = 1024**3
MiB = 1024**2
DEFAULT_TIMEOUT = 600.0
DEFAULT_MEMORY = 2 * GiB
FILE_SIZE_LIMIT = 256 * MiB  # RLIMIT_FSIZE in the child: any single file it writes (its stdout too)
RESULT_LIMIT = 64 * MiB  # a larger result file is not read
TAIL_CHARS = 4000
_MAX_STAGES = 500
DUMP_SECONDS = 10.0  # at most this long a hung child gets to print its stack before it is killed
PRELOAD = [
    "checks.api",
    "checks.adapt.targets",
    "checks.adapt.presets",
    "checks.explain",
    "numpy",
    "hypothesis",
    "torch",
]
STATUSES = ("passed", "failed", "timeout", "memory", "crashed", "error", "internal")

_CHILD_STATUSES = ("passed", "failed", "timeout", "memory", "error", "internal")
_SIGNAL_WORDS = {
    "SIGSEGV": "crashed: segmentation fault (SIGSEGV)",
    "SIGBUS": "crashed: bus error (SIGBUS)",
    "SIGILL": "crashed: illegal instruction (SIGILL)",
    "SIGFPE": "crashed: arithmetic fault (SIGFPE)",
    "SIGABRT": "crashed: aborted (SIGABRT)",
    "SIGXFSZ": f"killed: file size limit {FILE_SIZE_LIMIT // MiB} MiB exceeded (SIGXFSZ)",
    "SIGXCPU": "killed: CPU time limit exceeded (SIGXCPU)",
    "SIGKILL": "killed by SIGKILL from outside the grader (the system's out-of-memory killer?)",
}


def _limit_text(memory_bytes: int | None) -> str:
    return f"memory limit {size_text(memory_bytes)}" if memory_bytes else "memory limit"


def size_text(n: int) -> str:
    """2147483648 -> '2 GiB'; 1610612736 -> '1.5 GiB'; 536870912 -> '512 MiB'."""
    if n >= GiB:
        return f"{n / GiB:g} GiB" if n % (GiB // 4) == 0 else f"{n / GiB:.2f} GiB"
    return f"{n / MiB:g} MiB" if n % MiB == 0 else f"{n / MiB:.1f} MiB"


@dataclass
class IsolatedResult:
    """What one isolated check gave. report: the Report as a dict (``Report.to_dict``), None when the
    check did not finish; status: one of STATUSES; reason: one line naming the cause ("" when passed);
    seconds: wall time of the child; stdout_tail: the end of what the child printed (stdout, then
    stderr), capped; rendered: ``Report.render()`` text ("" without a report); stage: what the child was
    doing last ("import", "load", "check", "check:grad_input", "done"); where: for a crash or a time-out,
    the innermost line of the submission on the Python stack at that moment ("sub/layers.py line 33 in
    backward"), from faulthandler."""

    report: dict | None
    status: str
    reason: str
    seconds: float
    stdout_tail: str = ""
    rendered: str = ""
    stage: str = ""
    target: str = ""
    kind: str = ""
    where: str = ""

    @property
    def passed(self) -> bool:
        return self.status == "passed"

    @property
    def exit_code(self) -> int:
        return int(STATUS_EXIT.get(self.status, Exit.INTERNAL))

    def to_dict(self) -> dict:
        return {
            "target": self.target,
            "kind": self.kind,
            "status": self.status,
            "reason": self.reason,
            "stage": self.stage,
            "where": self.where,
            "seconds": round(self.seconds, 3),
            "stdout_tail": self.stdout_tail,
            "report": self.report,
        }


# -- the child ---------------------------------------------------------------------------------------


def _write_atomic(path: str, text: str) -> None:
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


class _Stage:
    """The child's stages, one line each appended to a file the parent reads (progress, and what the
    child was doing when it died or timed out)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.count = 0

    def __call__(self, stage: str) -> None:
        if self.count >= _MAX_STAGES:
            return
        self.count += 1
        try:
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(stage + "\n")
        except OSError:
            pass

    def progress(self, prop: str, report: object) -> None:
        self(f"check:{prop}" if report is None else f"check:{prop}:done")


def _redirect_output(job: Mapping[str, Any]) -> None:
    for fd, name in ((1, job["stdout"]), (2, job["stderr"])):
        target = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.dup2(target, fd)
        os.close(target)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    sys.stdout = open(1, "w", encoding="utf-8", errors="replace", closefd=False, buffering=1)  # noqa: SIM115
    sys.stderr = open(2, "w", encoding="utf-8", errors="replace", closefd=False, buffering=1)  # noqa: SIM115
    import faulthandler

    faulthandler.enable(file=sys.stderr, all_threads=False)  # a segfault prints the Python stack
    if hasattr(signal, "SIGUSR1"):  # the parent asks for the stack before it kills a hung child
        faulthandler.register(signal.SIGUSR1, file=sys.stderr, all_threads=False)


def _set_limits(memory_bytes: int | None) -> None:
    try:
        import resource
    except ImportError:  # pragma: no cover - not on POSIX
        return
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_FSIZE, (FILE_SIZE_LIMIT, FILE_SIZE_LIMIT))
    if memory_bytes:
        base = address_space() or 0
        cap = base + int(memory_bytes)
        _, hard = resource.getrlimit(resource.RLIMIT_AS)
        if hard != resource.RLIM_INFINITY:
            cap = min(cap, hard)
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))


def _fault_status(report: Any, memory_bytes: int | None) -> tuple[str, str] | None:
    """A fatal finding of the guard in a finished report: a hang or running out of memory."""
    for prop in report.properties:
        for finding in prop.findings:
            if not finding.failed:
                continue
            if finding.cause == Cause.MEMORY.value:
                where = f"in property {prop.property}, {finding.message}"
                return "memory", f"killed: {_limit_text(memory_bytes)} exceeded ({where})"
            if finding.cause == Cause.TIMEOUT.value:
                return "timeout", f"timed out: {finding.message} (in property {prop.property})"
    return None


def _failure_reason(report: Any) -> str:
    parts = []
    for prop in report.properties:
        if prop.status != "fail":
            continue
        mistake = getattr(prop.diagnosis, "mistake", None) if prop.diagnosis is not None else None
        parts.append(f"{prop.property} [{mistake}]" if mistake else prop.property)
    if report.error:
        parts.append(report.error)
    return "failed: " + ", ".join(parts) if parts else "failed"


def _child(job: dict[str, Any]) -> None:
    """Entry point of the child process (see the module docstring). Never returns: os._exit."""
    code = 0
    try:
        os.setsid()
    except OSError:
        pass
    os.chdir(job["cwd"])
    _redirect_output(job)
    stage = _Stage(job["stage"])
    stage("start")
    payload: dict[str, Any] = {"token": job["token"], "report": None, "rendered": ""}
    try:
        _set_limits(job["job"]["memory_bytes"])
        if "torch" in sys.modules:  # parallel jobs: one thread each
            sys.modules["torch"].set_num_threads(1)
        payload.update(_run_check(job, stage))
    except MemoryError:
        payload.update(status="memory", reason=f"killed: {_limit_text(job['job']['memory_bytes'])} exceeded")
    except BaseException as exc:  # noqa: BLE001 - whatever escapes the checker is reported, not raised
        import traceback

        tb = traceback.format_exception(type(exc), exc, exc.__traceback__)
        sys.stderr.write("".join(tb))
        payload.update(status="internal", reason=f"internal error in cnn-gradcheck: {type(exc).__name__}: {exc}")
    payload["stage"] = "done" if payload.get("report") is not None else _read_stage(job["stage"])
    try:
        text = json.dumps(payload, default=str)
    except (TypeError, ValueError) as exc:
        text = json.dumps(
            {"token": job["token"], "status": "internal", "reason": f"result not serialisable: {exc}", "report": None}
        )
    try:
        _write_atomic(job["result"], text)
    except OSError:
        code = 70
    stage("done")
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except Exception:  # noqa: BLE001
        pass
    os._exit(code)  # no atexit handlers, no waiting for threads the submission left running


def _run_check(spec: dict[str, Any], stage: _Stage) -> dict[str, Any]:
    from checks.adapt import targets

    job = Job.from_dict(spec["job"])
    root = Path(job.root or ".")
    stage("import")
    try:
        targets.import_target(targets.parse(job.target), root)
    except targets.TargetError as exc:
        text = str(exc)
        if exc.cause == Cause.MEMORY:
            limit = _limit_text(job.memory_bytes)
            return {"status": "memory", "reason": f"killed: {limit} exceeded (while importing: {text})"}
        if exc.cause == Cause.TIMEOUT:
            return {"status": "timeout", "reason": f"timed out while importing: {text}"}
        return {"status": "error", "reason": f"import failed: {text}"}
    stage("load")
    from checks.api import check_job

    try:
        report = check_job(job, progress=stage.progress)
    except targets.TargetError as exc:
        return {"status": "error", "reason": f"could not load: {exc}"}
    out = {"report": json.loads(report.to_json()), "rendered": report.render()}
    fault = _fault_status(report, job.memory_bytes)
    if fault:
        out["status"], out["reason"] = fault
    elif report.passed:
        out["status"], out["reason"] = "passed", ""
    else:
        out["status"], out["reason"] = "failed", _failure_reason(report)
    return out


def _read_stages(path: str) -> list[str]:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return [line.strip() for line in f.read(64 * 1024).splitlines() if line.strip()]
    except OSError:
        return []


def _read_stage(path: str) -> str:
    stages = _read_stages(path)
    return stages[-1] if stages else ""


# -- the parent --------------------------------------------------------------------------------------

_CONTEXT_LOCK = threading.Lock()
_CONTEXT: Any = None
_LIVE: set[int] = set()  # process groups of running children, for kill_all()
_LIVE_LOCK = threading.Lock()


def _context() -> Any:
    """The multiprocessing context children are started from: a forkserver that preloaded the checker."""
    global _CONTEXT
    with _CONTEXT_LOCK:
        if _CONTEXT is None:
            import multiprocessing

            if "forkserver" in multiprocessing.get_all_start_methods():
                ctx = multiprocessing.get_context("forkserver")
                ctx.set_forkserver_preload(PRELOAD)
            else:  # pragma: no cover - no forkserver on this platform
                ctx = multiprocessing.get_context("spawn")
            _CONTEXT = ctx
        return _CONTEXT


def _noop() -> None:
    """A child that does nothing: starting one waits for the forkserver to finish its preloading."""


_WARM_LOCK = threading.Lock()
_WARM = False


def warm_up() -> None:
    """Start the forkserver and wait until it has imported the checker and torch (a few seconds, once),
    so that this start-up is not counted against the first check's time-out."""
    global _WARM
    with _WARM_LOCK:
        if _WARM:
            return
        from checks.sandbox import isolate

        process = _context().Process(target=isolate._noop, daemon=True)
        process.start()
        process.join()
        _WARM = True


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def kill_all() -> None:
    """Kill every running child's process group (on Ctrl-C in a caller that runs many)."""
    with _LIVE_LOCK:
        pids = list(_LIVE)
    for pid in pids:
        _kill_group(pid)


def _tail(path: Path, chars: int) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - chars * 4))
            data = f.read()
    except OSError:
        return ""
    text = data.decode("utf-8", errors="replace")
    return text[-chars:]


@dataclass(frozen=True)
class _Places:
    """Which files are the submission's (under ``own``) and how paths are shown (relative to ``bases``)."""

    own: tuple[str, ...]
    bases: tuple[str, ...]

    def is_own(self, file: str) -> bool:
        return file.startswith(self.own)

    def show(self, text: str) -> str:
        for base in self.bases:
            text = text.replace(base, "")
        return text


def _places(work: Path, base: Path, target: str, copied: bool) -> _Places:
    own = [str(work) + os.sep]
    if not copied:
        from checks.adapt import targets

        try:
            parsed = targets.parse(target)
        except targets.TargetError:
            parsed = None
        if parsed is not None and parsed.is_file:
            own.append(str((base / parsed.location).resolve().parent) + os.sep)
    return _Places(tuple(own), (str(work) + os.sep, str(base.resolve()) + os.sep))


def _compact(stderr: str, places: _Places) -> str:
    """A faulthandler stack keeps the submission's frames and says how many others it left out; paths
    under the work dir (or the caller's root) become relative (sub/layers.py)."""
    lines, skipped = [], 0
    for line in stderr.splitlines():
        m = _FRAME.match(line)
        if m and not places.is_own(m["file"]):
            skipped += 1
            continue
        if skipped:
            lines.append(f"  ... {skipped} frame(s) of cnn-gradcheck and libraries")
            skipped = 0
        if line.startswith("Extension modules:"):
            continue
        lines.append(places.show(line))
    if skipped:
        lines.append(f"  ... {skipped} frame(s) of cnn-gradcheck and libraries")
    return "\n".join(lines)


def _output_tail(job_dir: Path, places: _Places, chars: int = TAIL_CHARS) -> str:
    out = places.show(_tail(job_dir / "stdout.txt", chars).rstrip())
    err = _compact(_tail(job_dir / "stderr.txt", 4 * chars), places).rstrip()[-chars:]
    parts = [out] if out else []
    if err:
        parts.append(f"--- stderr ---\n{err}" if out else err)
    return "\n".join(parts)[-chars:]


def _where(stage: str) -> str:
    """'import' -> 'while importing the submission'; 'check:grad_input' -> 'in property grad_input'."""
    if stage in ("", "start"):
        return "while starting"
    if stage == "import":
        return "while importing the submission"
    if stage == "load":
        return "while adapting the layer"
    if stage.startswith("check:"):
        prop = stage.split(":")[1]
        return f"after property {prop}" if stage.endswith(":done") else f"in property {prop}"
    if stage == "check":
        return "while starting the check"
    if stage == "done":
        return "after finishing"
    return f"at stage {stage}"


def _read_result(path: Path, token: str) -> dict | None:
    """The child's result, or None when missing, too large, not JSON, or not the shape it must have."""
    try:
        if path.stat().st_size > RESULT_LIMIT:
            return None
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("token") != token:
        return None
    if data.get("status") not in _CHILD_STATUSES or not isinstance(data.get("reason", ""), str):
        return None
    report = data.get("report")
    if report is not None and not (
        isinstance(report, dict) and isinstance(report.get("properties"), list) and "schema_version" in report
    ):
        return None
    if not isinstance(data.get("rendered", ""), str):
        return None
    return data


_FRAME = re.compile(r'^\s*File "(?P<file>[^"]+)", line (?P<line>\d+) in (?P<func>\S+)', re.MULTILINE)


def _site(stderr: str, places: _Places) -> str:
    """Where a faulthandler stack (segfault, or the dump asked for before a time-out kill) points: the
    innermost frame in the submission's files (else the innermost frame), relative to the work dir."""
    start = stderr.rfind("(most recent call first):")
    if start < 0:
        return ""
    block = stderr[start:]
    end = block.find("\n\n")
    frames = list(_FRAME.finditer(block if end < 0 else block[:end]))
    if not frames:
        return ""
    own = [m for m in frames if places.is_own(m["file"])]
    m = (own or frames)[0]
    return f"{places.show(m['file'])} line {m['line']} in {m['func']}"


def _death_reason(exitcode: int | None) -> str:
    if exitcode is None:
        return "the child process could not be waited for"
    if exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        return _SIGNAL_WORDS.get(name, f"crashed: killed by {name}")
    return f"interpreter exited with code {exitcode} before finishing"


def run_isolated(
    job: Job,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    copy: str | os.PathLike[str] | None = None,
    on_stage: Callable[[str], None] | None = None,
    keep: bool = False,
) -> IsolatedResult:
    """Check ``job`` (its target as for ``cnn-gradcheck check``) in a child.

    timeout: wall-clock seconds for the whole child (import included); ``job.memory_bytes``: address
    space the child may use beyond its own footprint at start (None: no limit), and each call's budget.
    copy: a folder or file copied into the child's fresh working directory (under its own name) first;
    the target's path is then relative to that directory, e.g. ``copy="subs/alice"`` with target
    ``"alice/layers.py:ConvLayer"``. Without ``copy``, a relative target path is taken relative to
    ``job.root`` (default: the caller's current directory). on_stage: called (in the calling thread) with
    the child's stage whenever it changes. keep: leave the job's folders in place (for debugging).
    """
    job_dir = Path(tempfile.mkdtemp(prefix="cnn-gradcheck-job-"))
    result_dir = Path(tempfile.mkdtemp(prefix="cnn-gradcheck-"))  # not under job_dir: the child can't guess it
    try:
        return _run_job(job_dir, result_dir, job, timeout, copy, on_stage)
    finally:
        if not keep:
            shutil.rmtree(job_dir, ignore_errors=True)
            shutil.rmtree(result_dir, ignore_errors=True)


def _run_job(
    job_dir: Path,
    result_dir: Path,
    job: Job,
    timeout: float,
    copy: str | os.PathLike[str] | None,
    on_stage: Callable[[str], None] | None,
) -> IsolatedResult:
    work = job_dir / "work"
    work.mkdir()
    if copy is not None:
        source = Path(copy)
        if source.is_dir():
            shutil.copytree(
                source,
                work / source.name,
                ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
                ignore_dangling_symlinks=True,
            )
        else:
            shutil.copy2(source, work / source.name)
        base = work
    else:
        base = Path(job.root) if job.root is not None else Path.cwd()
    token = secrets.token_hex(16)
    child = replace(job, root=str(base.resolve()))
    spec = {
        "job": child.to_dict(),
        "cwd": str(work),
        "stdout": str(job_dir / "stdout.txt"),
        "stderr": str(job_dir / "stderr.txt"),
        "stage": str(result_dir / "stage"),
        "result": str(result_dir / "result.json"),
        "token": token,
    }
    timed_out, exitcode, seconds = _run_child(spec, timeout, on_stage)
    stage = _read_stage(spec["stage"])
    data = None if timed_out else _read_result(Path(spec["result"]), token)
    places = _places(work, base, job.target, copy is not None)
    tail = _output_tail(job_dir, places)
    site = _site(_tail(job_dir / "stderr.txt", 20 * TAIL_CHARS), places)
    common = {"seconds": seconds, "stdout_tail": tail, "target": job.target, "kind": job.kind or ""}
    if timed_out:  # the site of a hang varies from run to run: kept out of the reason
        reason = f"timed out after {timeout:g} s ({_where(stage)})"
        return IsolatedResult(None, "timeout", reason, stage=stage, where=site, **common)
    if data is None:
        if exitcode == 0 and Path(spec["result"]).exists():
            reason = "the result file was unreadable or tampered with"
        else:
            reason = f"{_death_reason(exitcode)} ({_where(stage)}{', at ' + site if site else ''})"
        return IsolatedResult(None, "crashed", reason, stage=stage, where=site, **common)
    return IsolatedResult(
        data.get("report"),
        data["status"],
        data.get("reason", ""),
        rendered=data.get("rendered", ""),
        stage=data.get("stage", stage),
        **common,
    )


def _ask_for_stack(process: Any, stderr: Path) -> None:
    """faulthandler in the child prints where it is stuck (even inside a C call) on SIGUSR1: wait until a
    new dump has appeared in its stderr file and stopped growing (it is written by a C signal handler in
    one burst), or DUMP_SECONDS pass, or the child dies; then return."""
    before = _tail(stderr, 20 * TAIL_CHARS).count("(most recent call first)")
    try:
        os.kill(process.pid, signal.SIGUSR1)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + DUMP_SECONDS
    size, steady = -1, 0
    while time.monotonic() < deadline and process.is_alive():
        text = _tail(stderr, 20 * TAIL_CHARS)
        if text.count("(most recent call first)") > before:
            steady = steady + 1 if len(text) == size else 0
            size = len(text)
            if steady >= 3:
                return
        time.sleep(0.02)


def _run_child(
    job: dict[str, Any], timeout: float, on_stage: Callable[[str], None] | None
) -> tuple[bool, int | None, float]:
    """Start the child, wait for it up to ``timeout`` s, kill its process group whatever happened.
    Returns (timed out, exit code, seconds)."""
    warm_up()
    from checks.sandbox import isolate  # the child's entry by its module's name, also when this runs as __main__

    process = _context().Process(target=isolate._child, args=(job,), name="cnn-gradcheck-check", daemon=True)
    start = time.perf_counter()
    timed_out = False
    try:
        process.start()
        with _LIVE_LOCK:
            _LIVE.add(process.pid)
        deadline = start + timeout
        seen = 0
        while True:
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                timed_out = process.is_alive()
                break
            process.join(min(remaining, 0.2) if on_stage else remaining)
            if on_stage:
                stages = _read_stages(job["stage"])
                for stage in stages[seen:]:
                    on_stage(stage)
                seen = len(stages)
            if not process.is_alive():
                break
        if timed_out and hasattr(signal, "SIGUSR1"):
            _ask_for_stack(process, Path(job["stderr"]))
    finally:
        if process.pid is not None:
            _kill_group(process.pid)  # on a time-out, and whatever the submission left running
            if process.is_alive():
                process.kill()
            process.join()
            with _LIVE_LOCK:
                _LIVE.discard(process.pid)
    return timed_out, process.exitcode, time.perf_counter() - start
