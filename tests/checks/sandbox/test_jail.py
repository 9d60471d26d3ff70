"""checks.sandbox.jail: tiny worker scripts show what each mode guarantees.

Both modes run the same behavioural tests (talks over a passed pipe, environment not inherited, memory limit,
teardown kills an escaped grandchild, teardown idempotent and thread-safe, launch errors leave nothing behind).
Namespaces tests skip with probe()'s reason where the machine cannot provide them; the process fallback is
always exercised by forcing it. No assertion is about elapsed time: every wait is bounded (WAIT) only so that
a regression fails instead of hanging.
"""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace

import pytest

from checks.sandbox import jail as J

PY = sys.executable
WAIT = 60.0  # seconds; generous, only to turn a hang into a failure
MiB = 1024**2

LINUX = sys.platform.startswith("linux")
ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


# ------------------------------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def ns_caps() -> J.Capabilities:
    caps = J.probe(PY, force="auto")
    if not caps.namespaces:
        pytest.skip(caps.reason)
    return caps


@pytest.fixture(scope="module")
def process_caps() -> J.Capabilities:
    return J.probe(PY, force="process")


@pytest.fixture(params=["namespaces", "process"])
def caps(request: pytest.FixtureRequest) -> J.Capabilities:
    return request.getfixturevalue("ns_caps" if request.param == "namespaces" else "process_caps")


def run_json(caps: J.Capabilities, script: str, *args: object, **launch: object) -> dict:
    """Run ``script`` in a jail; it must exit 0 and print one JSON object."""
    argv = [PY, "-I", "-c", script, *map(str, args)]
    with J.launch(argv, caps, stdout=subprocess.PIPE, stderr=subprocess.PIPE, **launch) as jail:  # type: ignore[arg-type]
        out, err = jail.process.communicate(timeout=WAIT)
    assert jail.process.returncode == 0, err.decode(errors="replace")
    return json.loads(out)


def read_until_eof(fd: int) -> bytes:
    """All bytes from a pipe until every writer has closed it (bounded by WAIT)."""
    data = b""
    while True:
        ready, _, _ = select.select([fd], [], [], WAIT)
        assert ready, f"pipe still open after {WAIT} s: some holder of its write end is alive"
        chunk = os.read(fd, 4096)
        if not chunk:
            return data
        data += chunk


def read_line(fd: int) -> bytes:
    """One line from a pipe (bounded by WAIT); other writers may keep it open."""
    data = b""
    while not data.endswith(b"\n"):
        ready, _, _ = select.select([fd], [], [], WAIT)
        assert ready, f"no line within {WAIT} s"
        chunk = os.read(fd, 1)
        assert chunk, f"pipe closed after {data!r}"
        data += chunk
    return data


def processes_with(marker: str) -> list[int]:
    """Host pids of live processes whose command line contains ``marker`` (a zombie's is empty)."""
    found = []
    for name in os.listdir("/proc") if os.path.isdir("/proc") else ():
        if name.isdigit():
            try:
                with open(f"/proc/{name}/cmdline", "rb") as f:
                    if marker.encode() in f.read():
                        found.append(int(name))
            except OSError:
                pass
    return found


def wait_for(predicate: Callable[[], bool], what: str) -> None:
    for _ in range(int(WAIT / 0.05)):
        if predicate():
            return
        time.sleep(0.05)
    pytest.fail(f"gave up waiting for {what}")


class Pipe:
    """A pipe whose ends are each closed once: closing an fd number twice could close whatever reused it."""

    def __init__(self) -> None:
        self.r, self.w = os.pipe()

    def close_write(self) -> None:
        """After handing ``w`` to a worker: from then on only the worker's side holds it."""
        if self.w >= 0:
            os.close(self.w)
            self.w = -1

    def close(self) -> None:
        self.close_write()
        if self.r >= 0:
            os.close(self.r)
            self.r = -1


@pytest.fixture
def pipes() -> Iterator[Callable[[], Pipe]]:
    """``pipes()`` -> a new Pipe, closed after the test."""
    made: list[Pipe] = []

    def make() -> Pipe:
        made.append(Pipe())
        return made[-1]

    yield make
    for pipe in made:
        pipe.close()


# --------------------------------------------------------------------------------------------------- probe


def test_forced_fallback_is_reported_with_its_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    assert J.probe(PY, force="process").reason == "sandbox: process only (forced by the caller)"
    monkeypatch.setenv(J.ENV_VAR, "process")
    caps = J.probe(PY)
    assert (caps.mode, caps.reason) == ("process", "sandbox: process only (forced by CNN_GRADCHECK_SANDBOX=process)")


def test_a_missing_unshare_is_detected(tmp_path) -> None:
    caps = J.probe(PY, force="auto", search_path=str(tmp_path))  # a PATH holding no unshare
    assert caps.mode == "process"
    if LINUX:
        assert caps.reason == "sandbox: process only (unshare not found)"
    with pytest.raises(J.JailError, match="requires namespaces"):
        J.probe(PY, force="namespaces", search_path=str(tmp_path))


def test_a_bad_choice_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(J.ENV_VAR, "docker")
    with pytest.raises(ValueError, match="docker"):
        J.probe(PY)


def test_probe_is_cached_per_interpreter() -> None:
    assert J.probe(PY, force="auto") is J.probe(PY, force="auto")
    assert J.probe(PY, force="auto", refresh=True) == J.probe(PY, force="auto")


def test_probe_falls_back_when_the_interpreter_lacks_a_module(ns_caps: J.Capabilities) -> None:
    caps = J.probe(PY, ["surely_no_such_module_xyz"], force="auto")
    assert caps.mode == "process" and "surely_no_such_module_xyz" in caps.reason


def test_the_trial_rejects_a_different_interpreter_inside(ns_caps: J.Capabilities) -> None:
    # what happens when an unprivileged uid silently gets another libpython (Debian's instead of pyenv's)
    problem = J._trial(ns_caps, (), {"version": "3.0.0 (fake)", "prefix": "/nowhere"})
    assert problem is not None and "3.0.0" in problem and "/nowhere" in problem


def test_the_interpreter_needs_its_directories_exposed(ns_caps: J.Capabilities, tmp_path) -> None:
    bare = replace(ns_caps, exposed=())
    with pytest.raises(J.JailError, match="cannot execute"):
        J.launch([PY, "-I", "-c", "pass"], bare, scratch_parent=str(tmp_path))
    assert os.listdir(tmp_path) == []  # nothing left behind


# --------------------------------------------------------------------------------------- both modes alike

TALK = """
import os, sys
fd = int(sys.argv[1])
os.write(fd, b"hello from " + sys.argv[2].encode())
"""


def test_worker_talks_over_a_passed_pipe(caps: J.Capabilities, pipes: Callable[[], Pipe]) -> None:
    talk = pipes()
    with J.launch([PY, "-I", "-c", TALK, str(talk.w), caps.mode], caps, pass_fds=[talk.w]) as jail:
        talk.close_write()
        assert read_until_eof(talk.r) == f"hello from {caps.mode}".encode()
        assert jail.wait(WAIT) == 0


ENVIRONMENT = """
import json, os
print(json.dumps({"env": dict(os.environ), "cwd": os.getcwd()}))
"""


def test_environment_is_explicit_and_cwd_is_the_scratch(caps: J.Capabilities, monkeypatch) -> None:
    monkeypatch.setenv("CHECKER_SECRET", "do-not-leak")
    with J.launch([PY, "-I", "-c", ENVIRONMENT], caps, stdout=subprocess.PIPE) as jail:
        facts = json.loads(jail.process.communicate(timeout=WAIT)[0])
        assert facts["cwd"] == jail.scratch
        assert facts["env"]["HOME"] == jail.scratch
    assert "CHECKER_SECRET" not in facts["env"]
    given = run_json(caps, ENVIRONMENT, env={"ONLY": "this"})
    # LC_CTYPE: the worker's own Python adds it when started in the C locale (PEP 538)
    assert {k: v for k, v in given["env"].items() if k not in (J.TOKEN_VAR, "LC_CTYPE")} == {"ONLY": "this"}


EXIT = "import sys; sys.exit(int(sys.argv[1]))"


def test_the_exit_status_is_the_workers(caps: J.Capabilities) -> None:
    with J.launch([PY, "-I", "-c", EXIT, "7"], caps) as jail:
        assert jail.wait(WAIT) == 7


ALLOCATE = """
import json
try:
    block = bytearray(1 << 30)
    print(json.dumps("allocated"))
except MemoryError:
    print(json.dumps("MemoryError"))
"""


def test_the_memory_limit_stops_a_1_gib_allocation(caps: J.Capabilities) -> None:
    assert run_json(caps, ALLOCATE, limits=J.Limits(memory_bytes=256 * MiB)) == "MemoryError"


FORK_BOMB = """
import json, os
children = []
for _ in range(200):  # bounded: at most 200 forks, each child exits at once (its zombie still counts)
    try:
        pid = os.fork()
    except OSError:
        break
    if pid == 0:
        os._exit(0)
    children.append(pid)
for pid in children:
    os.waitpid(pid, 0)
print(json.dumps(len(children)))
"""


def test_the_process_limit_stops_a_fork_bomb(caps: J.Capabilities) -> None:
    if caps.mode == "process" and ROOT:
        pytest.skip("process mode as root: RLIMIT_NPROC does not bind root (namespaces mode drops to a uid)")
    forks = run_json(caps, FORK_BOMB, limits=J.Limits(processes=16))
    if caps.namespaces:
        assert 0 < forks < 16  # the worker itself is one of the 16
    else:
        assert forks < 200  # the uid's other processes share the budget


ESCAPE = """
import os, sys, time
ready, marker, scrub = int(sys.argv[1]), sys.argv[2], sys.argv[3] == "1"
if os.fork() == 0:
    os.setsid()  # leave the worker's session and process group
    if os.fork() == 0:  # and its parent: the grandchild is an orphan
        os.write(ready, b"forked\\n")
        env = {} if scrub else dict(os.environ)
        argv = [sys.executable, "-I", "-c", "import time; time.sleep(20)", marker + "-grandchild"]
        os.execve(sys.executable, argv, env)
    os._exit(0)
os.wait()
if sys.argv[4] == "stay":
    time.sleep(20)
else:  # exit, but only once the grandchild runs its own program: its death must be the namespace's doing
    target, deadline = (marker + "-grandchild").encode(), time.monotonic() + 20
    while time.monotonic() < deadline:
        seen = False
        for pid in (p for p in os.listdir("/proc") if p.isdigit()):
            try:
                seen = seen or target in open(f"/proc/{pid}/cmdline", "rb").read()
            except OSError:
                pass
        if seen:
            os.write(ready, b"seen\\n")
            break
        time.sleep(0.01)
"""


def start_escapee(caps: J.Capabilities, ready: Pipe, hold: Pipe, marker: str, then: str) -> J.Jail:
    """A worker whose grandchild (setsid, double fork; environment scrubbed in namespaces mode) sleeps <= 20 s
    holding ``hold`` open and showing ``marker``-grandchild in its command line."""
    scrub = "1" if caps.namespaces else "0"  # process mode finds escapees by the token in their environment
    argv = [PY, "-I", "-c", ESCAPE, str(ready.w), marker, scrub, then]
    jail = J.launch(argv, caps, pass_fds=[ready.w, hold.w])
    ready.close_write()
    hold.close_write()
    return jail


def test_teardown_kills_an_escaped_grandchild(caps: J.Capabilities, pipes: Callable[[], Pipe]) -> None:
    ready, hold, marker = pipes(), pipes(), f"escapee-{uuid.uuid4().hex}"
    with start_escapee(caps, ready, hold, marker, then="stay") as jail:
        assert read_line(ready.r) == b"forked\n"
        if LINUX:
            wait_for(lambda: processes_with(f"{marker}-grandchild") != [], "the grandchild to show its marker")
        jail.teardown()
        assert read_until_eof(hold.r) == b""  # every holder of the write end is dead
        assert processes_with(marker) == []
        assert jail.process.returncode is not None


def test_in_namespaces_the_workers_exit_ends_its_descendants(ns_caps: J.Capabilities, pipes) -> None:
    ready, hold, marker = pipes(), pipes(), f"orphan-{uuid.uuid4().hex}"
    with start_escapee(ns_caps, ready, hold, marker, then="exit") as jail:
        assert read_line(ready.r) == b"forked\n"
        assert read_line(ready.r) == b"seen\n"  # the worker saw its grandchild alive, then exited
        assert jail.wait(WAIT) == 0
        assert read_until_eof(hold.r) == b""  # no teardown yet: the namespace died with its init
        assert processes_with(marker) == []


HANDLER = """
import os, signal, sys, time
fd = int(sys.argv[1])
signal.signal(signal.SIGUSR1, lambda *_: (os.write(fd, b"got SIGUSR1"), sys.exit(3)))
os.write(fd, b"ready\\n")
time.sleep(20)
"""


def test_send_signal_reaches_a_worker_that_handles_it(caps: J.Capabilities, pipes: Callable[[], Pipe]) -> None:
    # as the checker's time-out path does (faulthandler on SIGUSR1); in a PID namespace the worker is its init,
    # which receives only the signals it has a handler for
    talk = pipes()
    with J.launch([PY, "-I", "-c", HANDLER, str(talk.w)], caps, pass_fds=[talk.w]) as jail:
        talk.close_write()
        assert read_line(talk.r) == b"ready\n"
        jail.send_signal(signal.SIGUSR1)
        assert read_until_eof(talk.r) == b"got SIGUSR1"
        assert jail.wait(WAIT) == 3


SLEEP = "import time; time.sleep(20)"


def test_teardown_is_idempotent_thread_safe_and_silent(caps: J.Capabilities, tmp_path) -> None:
    jail = J.launch([PY, "-I", "-c", SLEEP], caps, scratch_parent=str(tmp_path))
    try:
        assert os.path.isdir(jail.scratch)
        threads = [threading.Thread(target=jail.teardown) for _ in range(3)]
        for thread in threads:
            thread.start()
        assert jail.wait(WAIT) != 0  # the main thread waits while others tear down
        for thread in threads:
            thread.join(WAIT)
    finally:
        jail.teardown()
    jail.teardown()
    jail.send_signal(signal.SIGKILL)  # gone: a no-op, not an error
    assert os.listdir(tmp_path) == []  # scratch removed


def test_launch_errors_leave_nothing_behind(caps: J.Capabilities, tmp_path) -> None:
    with pytest.raises(J.JailError, match="cannot execute"):
        J.launch(["/no/such/program"], caps, scratch_parent=str(tmp_path))
    with pytest.raises(ValueError, match="not a directory"):
        J.launch([PY, "-c", "pass"], caps, readonly=[str(tmp_path / "missing")], scratch_parent=str(tmp_path))
    assert os.listdir(tmp_path) == []


# ----------------------------------------------------------------------------------- namespaces isolation

FACTS = """
import json, os, socket, sys
args = json.loads(sys.argv[1])
facts = {}

def attempt(name, action):
    try:
        facts[name] = ["ok", action()]
    except BaseException as exc:
        facts[name] = ["error", type(exc).__name__]

def write(path):
    with open(path, "w") as f:
        f.write("x")
    return path

def connect():
    with socket.create_connection(("127.0.0.1", args["port"]), timeout=5):
        return "connected"

def new_user_namespace():
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(0x10000000) != 0:  # CLONE_NEWUSER
        raise OSError(ctypes.get_errno(), "unshare")
    return "created"

status = dict(line.split(":", 1) for line in open("/proc/self/status") if ":" in line)
facts["pid"] = os.getpid()
facts["pids"] = sorted(int(p) for p in os.listdir("/proc") if p.isdigit())
facts["ids"] = [list(os.getresuid()), list(os.getresgid()), os.getgroups()]
facts["no_new_privs"] = status["NoNewPrivs"].strip()
facts["cap_bounding"] = int(status["CapBnd"], 16)
facts["interfaces"] = sorted(name for _, name in socket.if_nameindex())
facts["hostname"] = socket.gethostname()
facts["cwd"] = os.getcwd()
facts["top"] = sorted(os.listdir("/"))
attempt("connect", connect)
attempt("signal_test", lambda: os.kill(args["test_pid"], 0))
attempt("new_user_namespace", new_user_namespace)
attempt("read_readonly", lambda: open(os.path.join(args["readonly"], "given.txt")).read())
attempt("write_readonly", lambda: write(os.path.join(args["readonly"], "new.txt")))
attempt("list_private", lambda: os.listdir(args["private"]))
attempt("write_private", lambda: write(os.path.join(args["private"], "new.txt")))
attempt("list_secret", lambda: os.listdir(args["secret"]))
attempt("write_root", lambda: write("/planted"))
attempt("write_scratch", lambda: write("note.txt"))
attempt("write_tmp", lambda: write(args["tmp_marker"]))
print(json.dumps(facts))
"""


@pytest.fixture(scope="module")
def inside(ns_caps: J.Capabilities, tmp_path_factory) -> dict:
    """What one worker in namespaces mode could see and do, next to what the test gave it."""
    base = tmp_path_factory.mktemp("jail")
    readonly, private, secret = base / "readonly", base / "private", base / "secret"
    for d in (readonly, private, secret):
        d.mkdir()
    (readonly / "given.txt").write_text("submission")
    (secret / "grades.txt").write_text("A+")
    os.chmod(secret, 0o700)  # root-owned (the namespaces tests run as root) and exposed: still unreadable
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    with socket.create_connection(("127.0.0.1", port), timeout=5):
        pass  # the port does accept connections from outside the jail
    tmp_marker = f"/tmp/jail-marker-{uuid.uuid4().hex}"
    args = {
        "port": port,
        "test_pid": os.getpid(),
        "readonly": str(readonly),
        "private": str(private),
        "secret": str(secret),
        "tmp_marker": tmp_marker,
    }
    try:
        with J.launch(
            [PY, "-I", "-c", FACTS, json.dumps(args)],
            ns_caps,
            readonly=[str(readonly), str(secret)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        ) as jail:
            out, err = jail.process.communicate(timeout=WAIT)
            assert jail.process.returncode == 0, err.decode(errors="replace")
            scratch_note = os.path.exists(os.path.join(jail.scratch, "note.txt"))
    finally:
        listener.close()
    facts = json.loads(out)
    facts.update(
        uid=jail.uid,
        scratch=jail.scratch,
        scratch_note=scratch_note,
        host_tmp_marker=os.path.exists(tmp_marker),
        planted=os.path.exists("/planted"),
        private_after=os.listdir(private),
        readonly_after=os.listdir(readonly),
    )
    return facts


def test_it_sees_only_its_own_processes(inside: dict) -> None:
    assert inside["pid"] == 1  # the worker is the namespace's init
    assert inside["pids"] == [1]


def test_it_runs_as_a_throwaway_unprivileged_uid(inside: dict) -> None:
    uid = inside["uid"]
    assert uid is not None and uid >= J.UID_BASE
    assert inside["ids"] == [[uid] * 3, [uid] * 3, []]
    assert inside["no_new_privs"] == "1" and inside["cap_bounding"] == 0
    # nor can it become "root" of a nested user namespace (refused to a chrooted process)
    assert inside["new_user_namespace"] == ["error", "PermissionError"]


def test_it_cannot_signal_the_checker(inside: dict) -> None:
    assert inside["signal_test"] == ["error", "ProcessLookupError"]


def test_it_has_no_network(inside: dict) -> None:
    assert inside["interfaces"] == ["lo"]
    assert inside["connect"][0] == "error"
    assert inside["hostname"] == "jail"


def test_it_reads_but_cannot_write_the_readonly_directories(inside: dict) -> None:
    assert inside["read_readonly"] == ["ok", "submission"]
    assert inside["write_readonly"] == ["error", "OSError"]  # EROFS
    assert inside["readonly_after"] == ["given.txt"]


def test_it_cannot_reach_what_was_not_given(inside: dict) -> None:
    assert inside["list_private"] == ["error", "FileNotFoundError"]  # not in its filesystem at all
    assert inside["write_private"] == ["error", "FileNotFoundError"]
    assert inside["private_after"] == []
    assert inside["write_root"][0] == "error" and not inside["planted"]
    system = {"usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32", "etc", "proc", "dev", "tmp", "var"}
    given = {path.split("/")[1] for path in (inside["scratch"], PY, os.path.realpath(PY))}
    assert set(inside["top"]) <= system | given  # no /home, /run, /sys, /mnt, ...


def test_a_given_root_only_directory_stays_unreadable(inside: dict) -> None:
    assert inside["list_secret"] == ["error", "PermissionError"]  # exposed read-only, but root's and 0700


def test_it_writes_only_its_scratch_and_private_tmp(inside: dict) -> None:
    assert inside["cwd"] == inside["scratch"]
    assert inside["write_scratch"][0] == "ok" and inside["scratch_note"]
    assert inside["write_tmp"][0] == "ok" and not inside["host_tmp_marker"]  # its /tmp is its own tmpfs
