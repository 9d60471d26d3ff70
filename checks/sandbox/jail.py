"""Start an untrusted worker process so that nothing it does reaches outside it, then end it and all it started.

Standard library only; Linux for the strong mode, any POSIX system for the fallback.

API
---
- ``probe(python=sys.executable, imports=(), *, force=None, search_path=None, refresh=False) -> Capabilities``:
  detect which isolation this machine allows for that interpreter, by actually running it in the sandbox.
- ``launch(argv, caps, *, readonly=(), limits=Limits(), env=None, stdin=None, stdout=None, stderr=None,
  pass_fds=(), scratch_parent=None) -> Jail``: start ``argv`` (opaque) isolated as ``caps`` says.
- ``Jail``: ``pid``, ``uid``, ``scratch``, ``mode``, ``process`` (the ``subprocess.Popen``), ``wait()``,
  ``send_signal()``, ``teardown()`` (also on leaving ``with``).
- ``Limits`` (rlimits and tmpfs size), ``Capabilities`` (mode + one-line reason), ``JailError``.

Modes, chosen by ``probe`` and never guessed
--------------------------------------------
``"namespaces"`` (Linux, running as root, ``unshare`` from util-linux on PATH, and a trial run of the interpreter
inside the sandbox, as an unprivileged uid, importing ``imports``, reporting the same ``sys.version`` and
``sys.prefix`` as outside). Per launch:

- new PID namespace whose init IS the worker (``unshare --fork --pid --kill-child``): when it dies the kernel kills
  every process it started, setsid()/double-fork included; its ``/proc`` is a fresh mount listing only them;
- new network (loopback only, and down), IPC and UTS (hostname "jail") namespaces;
- new mount namespace, chroot'ed (which also makes the kernel refuse it nested user namespaces) into an empty
  read-only tmpfs holding only: /usr, /bin, /sbin, /lib*, /etc (read-only binds, or the host's symlinks), a
  minimal /dev (null, zero, full, random, urandom), private size-capped tmpfs on /tmp, /var/tmp and /dev/shm,
  the interpreter's directories found by ``probe`` (``Capabilities.exposed``: prefixes, ``sys.path``, the
  directories of the modules ``imports`` loads; this is also what makes a pyenv interpreter under a 0700 /root
  work: the jail's /root is an empty 0755 directory with only the pyenv version bound into it), the caller's
  ``readonly`` directories (read-only) and the scratch directory (read-write), all at their host real paths
  (symlinks resolved). Everything else of the host (other submissions, the checker's output folder, /home, the
  rest of /root, /var, /run, /sys) is simply absent; what is given keeps its host modes (a root 0700 directory
  given read-only stays unreadable);
- a throwaway uid = gid, distinct per launch (random in [2**20, 2**20 + 2**24), not used by any live process,
  not in /etc/passwd), no supplementary groups, an empty capability bounding set, no_new_privs;
- rlimits (``Limits``): RLIMIT_AS, RLIMIT_NPROC (per real uid: hence the uid per launch; it counts threads too,
  so cap BLAS threads in ``env``), RLIMIT_FSIZE, RLIMIT_CPU (SIGXCPU, then SIGKILL one CPU second later),
  RLIMIT_NOFILE, RLIMIT_CORE = 0; soft = hard, so the worker cannot raise them;
- a scratch directory ``Jail.scratch`` owned by that uid, mode 0700, also the working directory, HOME and TMPDIR;
- teardown: SIGKILL to the namespace's init (through a pidfd, so a recycled pid is never hit) and to
  ``unshare``, wait for ``unshare`` to exit (it does once the namespace is empty), then a sweep that kills any
  remaining process of the per-launch uid. Nothing the worker started survives.

``"process"`` (the fallback, or forced): ``start_new_session=True`` (own session and process group), the same
rlimits (RLIMIT_NPROC only when not root, set to the threads this uid already runs + ``processes``, since it
counts every process of the uid; root ignores it), no_new_privs on Linux, working directory, HOME and TMPDIR =
the scratch directory. Same uid as the checker, whole filesystem and network visible, ``readonly`` is NOT
enforced, and a worker run as root can raise its own limits: this mode only guards against accidents, not
against hostile code. Teardown: SIGKILL to the worker and its process group, then a sweep that kills every
process of this uid whose environment still carries the launch's token (``CNN_GRADCHECK_JAIL_TOKEN``, set in
the worker's environment): it catches setsid()/double-fork escapes that keep their environment (subprocess,
multiprocessing do), NOT a process that both leaves the session and replaces its environment.

Non-root: ``probe`` returns "process". ``unshare --user --map-root-user`` would give namespaces, but without a
second uid the worker would be root of its user namespace (able to remount its read-only binds writable, and
they belong to the same user on disk) and RLIMIT_NPROC would count the user's own processes; not supported.
Not Linux (macOS): "process"; limits the OS refuses are skipped there.

Both modes: ``argv`` runs with exactly ``env`` (default: PATH, HOME, TMPDIR, LANG; nothing is inherited), the
std streams and ``pass_fds`` as ``subprocess.Popen`` treats them, every other descriptor closed. ``launch``
returns once ``argv[0]`` is about to be exec'd, or raises ``JailError`` with the step that failed. ``teardown``
is idempotent, may be called from any thread, never raises, waits (bounded) until the processes it killed have
exited, and removes the scratch directory: read what you need from it first (without following symlinks the
worker made).

Not guaranteed in either mode: protection from kernel bugs (no seccomp filter: every syscall stays available,
though without capabilities); a bound on disk use in the scratch directory (only RLIMIT_FSIZE per file) or on
the memory in the tmpfs mounts (``Limits.tmp_bytes`` each, outside RLIMIT_AS); wall-clock time (the caller's
timeout, then ``teardown``); an end to the worker if the checker dies without calling ``teardown`` (in
namespaces mode ``unshare`` lives on and the worker with it; SIGKILL to ``unshare`` kills the worker unless it
cleared its parent-death signal). Within "namespaces", non-SIGKILL signals from ``send_signal`` reach the worker
only if it handles them (it is a namespace init), and processes it orphans stay zombies until it exits.

``CNN_GRADCHECK_SANDBOX`` = ``process`` forces the fallback, ``namespaces`` makes ``probe`` raise when namespaces
are unavailable (for CI), ``auto`` or unset detects. ``probe`` caches per (interpreter path, imports, choice).
"""

from __future__ import annotations

import marshal
import os
import resource
import signal
import sys

# Layout: this file is also stage 2, the program between the checker and the worker (run as a script, see
# _start). Stage 2 must start fast, since every launch pays for it, so it comes first and uses only the modules
# above; the ``__main__`` guard after it ends the script before the checker side's imports are reached.

UID_BASE = 2**20
UID_SPAN = 2**24

# What the jail shows of the host's system trees: the same symlink (merged /usr) or a read-only bind.
_SYSTEM_TREES = ("usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32", "etc")
_DEVICES = ("null", "zero", "full", "random", "urandom")
# --kill-child: the namespace's init gets SIGKILL if unshare dies (stage 2 re-arms it after the uid change).
_UNSHARE_FLAGS = ("--pid", "--fork", "--kill-child", "--mount", "--net", "--ipc", "--uts", "--propagation", "private")

_MS_RDONLY, _MS_NOSUID, _MS_NODEV, _MS_NOEXEC = 1, 2, 4, 8
_MS_REMOUNT, _MS_BIND = 32, 4096
_PR_SET_PDEATHSIG, _PR_CAPBSET_DROP, _PR_SET_NO_NEW_PRIVS = 1, 24, 38


class JailError(RuntimeError):
    """The sandbox could not be set up (the message names the step), or a required mode is unavailable."""


# -------------------------------------------------------------------------------------------------- stage 2
# Runs as ``python -I -S jail.py SPEC_FD STATUS_FD`` between the checker and the worker: as root inside the
# fresh namespaces (namespaces mode) or in the new session (process mode). It builds the jail, drops to the
# per-launch uid, sets the limits and execs the worker, reporting each outcome on STATUS_FD. After the chroot
# it must import nothing: the checker's own interpreter need not be visible inside the jail.


def _stage2(spec_fd: int, status_fd: int) -> int:
    def say(line: str) -> None:
        try:
            _write_all(status_fd, (line.replace("\n", " ") + "\n").encode())
        except OSError:
            pass  # the checker is gone; nobody to tell

    try:
        spec = marshal.loads(_read_exact(spec_fd, int.from_bytes(_read_exact(spec_fd, 8), "big")))
        namespaces = spec["mode"] == "namespaces"
        libc = _Libc() if sys.platform.startswith("linux") else None
        if namespaces:
            assert libc is not None
            say(f"pid {_host_pid()}")
            if _read_exact(spec_fd, 1) != b"g":
                raise JailError("the checker went away during set-up")
            _build_root(libc, spec)
            _enter_root(spec["root"])
            libc.sethostname(b"jail")
        os.close(spec_fd)
        for name in ("SIGPIPE", "SIGXFSZ"):  # Python ignores these; an exec'd program expects the default
            if hasattr(signal, name):
                signal.signal(getattr(signal, name), signal.SIG_DFL)
        _set_rlimits(spec["limits"], strict=namespaces)
        if namespaces:
            assert libc is not None
            _drop_privileges(libc, spec["uid"])
        if libc is not None:
            libc.prctl(_PR_SET_NO_NEW_PRIVS, 1)
            if namespaces:  # the uid change cleared the parent-death signal unshare --kill-child had set
                libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        os.chdir(spec["scratch"])
        path = _resolve(spec["argv"][0], spec["env"])
        say("exec")
        os.execve(path, spec["argv"], spec["env"])
    except BaseException as exc:  # everything, SystemExit included, is reported to the checker
        say(f"error {type(exc).__name__}: {exc}")
        return 125
    return 127  # not reached: execve returned without raising


def _read_exact(fd: int, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = os.read(fd, n - len(data))
        if not chunk:
            raise JailError("the checker went away during set-up")
        data += chunk
    return data


def _host_pid() -> int:
    # /proc is still the host's instance here (ours is mounted later), and there /proc/self names the reader
    # by its host pid, whereas getpid() says 1.
    pid = int(os.readlink("/proc/self"))
    if pid <= 1:
        raise JailError("/proc does not show the host's pids")
    return pid


class _Libc:
    """The few libc calls the os module lacks (mount, prctl, sethostname); each raises OSError on failure."""

    def __init__(self) -> None:
        import ctypes  # here, not at the top: only stage 2 needs it (and imports it before entering the jail)

        self._c = ctypes.CDLL(None, use_errno=True)
        self._c.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
        self._c.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
        self._c.sethostname.argtypes = [ctypes.c_char_p, ctypes.c_size_t]
        self._errno = ctypes.get_errno

    def _check(self, result: int, what: str) -> None:
        if result != 0:
            err = self._errno()
            raise OSError(err, f"{what}: {os.strerror(err)}")

    def mount(self, source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
        def raw(text: str | None) -> bytes | None:
            return None if text is None else os.fsencode(text)

        result = self._c.mount(raw(source), raw(target), raw(fstype), flags, raw(data))
        self._check(result, f"mount {source or fstype} on {target}")

    def prctl(self, option: int, value: int) -> None:
        self._check(self._c.prctl(option, value, 0, 0, 0), f"prctl({option}, {value})")

    def sethostname(self, name: bytes) -> None:
        self._check(self._c.sethostname(name, len(name)), "sethostname")


def _bind(libc: _Libc, source: str, target: str, writable: bool, flags: int = _MS_NOSUID | _MS_NODEV) -> None:
    # A bind mount takes its read-only and nosuid/nodev flags only from a remount of the bind.
    libc.mount(source, target, None, _MS_BIND)
    libc.mount(None, target, None, _MS_REMOUNT | _MS_BIND | flags | (0 if writable else _MS_RDONLY))


def _mountpoint(path: str, directory: bool) -> None:
    if directory:
        os.makedirs(path, mode=0o755, exist_ok=True)
    else:
        os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
        if not os.path.lexists(path):
            os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o644))


def _build_root(libc: _Libc, spec: Mapping[str, Any]) -> None:
    """The jail's filesystem on a tmpfs at ``spec["root"]`` (see the module docstring for its contents)."""
    os.umask(0o022)  # the mount points must be traversable by the worker whatever the checker's umask is
    root = spec["root"]
    tmp = f"size={spec['tmp_bytes']},nr_inodes=16384"
    libc.mount("tmpfs", root, "tmpfs", _MS_NOSUID | _MS_NODEV, "mode=0755,size=1m,nr_inodes=4096")
    for name in _SYSTEM_TREES:
        host = "/" + name
        if os.path.islink(host):
            os.symlink(os.readlink(host), root + host)
        elif os.path.isdir(host):
            os.mkdir(root + host)
            _bind(libc, host, root + host, writable=False)
    os.mkdir(root + "/proc")
    libc.mount("proc", root + "/proc", "proc", _MS_NOSUID | _MS_NODEV | _MS_NOEXEC)
    os.mkdir(root + "/dev")
    libc.mount("tmpfs", root + "/dev", "tmpfs", _MS_NOSUID | _MS_NOEXEC, "mode=0755,size=64k")
    for name in _DEVICES:
        if os.path.exists("/dev/" + name):
            _mountpoint(f"{root}/dev/{name}", directory=False)
            _bind(libc, "/dev/" + name, f"{root}/dev/{name}", writable=True, flags=_MS_NOSUID | _MS_NOEXEC)
    for i, name in enumerate(("stdin", "stdout", "stderr")):
        os.symlink(f"/proc/self/fd/{i}", f"{root}/dev/{name}")
    os.symlink("/proc/self/fd", f"{root}/dev/fd")
    for where in ("/tmp", "/var/tmp", "/dev/shm"):
        os.makedirs(root + where, mode=0o755)
        libc.mount("tmpfs", root + where, "tmpfs", _MS_NOSUID | _MS_NODEV, f"mode=1777,{tmp}")
    libc.mount(None, root + "/dev", None, _MS_REMOUNT | _MS_RDONLY | _MS_NOSUID | _MS_NOEXEC)  # nodes stay rw binds
    for source, path, writable in spec["binds"]:
        _mountpoint(root + path, directory=os.path.isdir(source))
        _bind(libc, source, root + path, writable)
    libc.mount(None, root, None, _MS_REMOUNT | _MS_RDONLY | _MS_NOSUID | _MS_NODEV)


def _enter_root(root: str) -> None:
    # A plain chroot, not pivot_root or a move over /: the kernel refuses CLONE_NEWUSER to a chrooted process,
    # so the worker cannot make itself "root" of a nested user namespace (kernel attack surface). The host's
    # mounts stay in the namespace outside the root, unreachable without CAP_SYS_CHROOT (the worker has no
    # capabilities) and absent from its /proc/self/mountinfo.
    os.chroot(root)
    os.chdir("/")


def _set_rlimits(limits: Mapping[str, tuple[int, int]], strict: bool) -> None:
    for name, (soft, hard) in limits.items():
        which = getattr(resource, name, None)
        if which is None:
            if strict:
                raise JailError(f"this system has no {name}")
            continue
        current_hard = resource.getrlimit(which)[1]
        if current_hard != resource.RLIM_INFINITY:
            soft, hard = min(soft, current_hard), min(hard, current_hard)
        try:
            resource.setrlimit(which, (soft, hard))
        except (OSError, ValueError):
            if strict:
                raise
            # process mode off Linux: some limits (RLIMIT_AS on macOS) are refused; the rest still apply


def _drop_privileges(libc: _Libc, uid: int) -> None:
    if uid < UID_BASE:
        raise JailError(f"refusing to run as uid {uid}")
    with open("/proc/sys/kernel/cap_last_cap") as f:
        last_cap = int(f.read())
    for cap in range(last_cap + 1):  # empty bounding set: no exec can ever grant a capability again
        libc.prctl(_PR_CAPBSET_DROP, cap)
    os.setgroups([])
    os.setresgid(uid, uid, uid)
    os.setresuid(uid, uid, uid)
    if os.getresuid() != (uid, uid, uid) or os.getresgid() != (uid, uid, uid) or os.getgroups():
        raise JailError(f"could not become uid {uid}")


def _resolve(program: str, env: Mapping[str, str]) -> str:
    """``program`` as execvpe would find it, checked executable by the real uid (the worker's) first, so a
    missing interpreter is a set-up error rather than an exit code."""
    if "/" in program:
        candidates = [program]
    else:
        candidates = [os.path.join(d or ".", program) for d in env.get("PATH", os.defpath).split(os.pathsep)]
    for path in candidates:
        if os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    raise JailError(f"cannot execute {program} inside the sandbox (missing, or not executable by uid {os.getuid()})")


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


if __name__ == "__main__":
    sys.exit(_stage2(int(sys.argv[1]), int(sys.argv[2])))


# ------------------------------------------------------------------------------------------ checker side

import contextlib  # noqa: E402
import json  # noqa: E402
import secrets  # noqa: E402
import select  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable, Iterator, Mapping, Sequence  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from typing import IO, Any, Literal  # noqa: E402

Mode = Literal["namespaces", "process"]
File = int | IO[Any] | None  # what subprocess.Popen takes for stdin/stdout/stderr

ENV_VAR = "CNN_GRADCHECK_SANDBOX"
TOKEN_VAR = "CNN_GRADCHECK_JAIL_TOKEN"
LOG_VAR = "CNN_GRADCHECK_JAIL_LOG"
MiB = 1024**2
GiB = 1024**3

SETUP_TIMEOUT = 60.0  # seconds for the sandbox to get ready; generous, it normally takes milliseconds
TEARDOWN_TIMEOUT = 10.0  # seconds teardown waits for killed processes to be gone
TRIAL_TIMEOUT = 120.0  # seconds the probe's trial run (interpreter start + imports) may take


@dataclass(frozen=True)
class Limits:
    """Per-worker limits. ``memory_bytes`` is address space (interpreter and libraries included), not RSS.
    A value above the checker's own hard limit is lowered to it (raising needs CAP_SYS_RESOURCE)."""

    memory_bytes: int = 2 * GiB
    processes: int = 64
    file_bytes: int = 256 * MiB
    cpu_seconds: int = 600
    open_files: int = 256
    tmp_bytes: int = 64 * MiB  # each of the jail's /tmp, /var/tmp, /dev/shm (namespaces mode)

    def __post_init__(self) -> None:
        for name, value in vars(self).items():
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"Limits.{name} must be a positive int, got {value!r}")


@dataclass(frozen=True)
class Capabilities:
    """What ``probe`` found: the mode, one human line saying why, and what ``launch`` needs to use it."""

    mode: Mode
    reason: str
    python: str
    exposed: tuple[str, ...] = ()  # directories bound read-only into the jail for the interpreter
    unshare: str | None = None

    @property
    def namespaces(self) -> bool:
        return self.mode == "namespaces"


# --------------------------------------------------------------------------------------------------- probe

_probe_lock = threading.Lock()
_probe_cache: dict[tuple[object, ...], Capabilities] = {}

# Run by the interpreter under test, outside the jail: what it is and which directories it reads.
_INTROSPECT = r"""
import json, os, sys
for name in sys.argv[1:]:
    __import__(name)
dirs = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}
dirs.update(p for p in sys.path if isinstance(p, str) and p)
for mod in list(sys.modules.values()):
    try:
        dirs.update(p for p in (getattr(mod, "__path__", None) or ()) if isinstance(p, str))
        f = getattr(mod, "__file__", None)
    except Exception:
        continue
    if isinstance(f, str) and os.path.isabs(f):
        dirs.add(os.path.dirname(f))
print(json.dumps({"version": sys.version, "prefix": sys.prefix, "dirs": sorted(dirs)}))
"""

# Run by the interpreter under test, inside the jail: does it work, as whom, and what does it see.
_TRIAL = r"""
import json, os, sys
for name in sys.argv[1:]:
    __import__(name)
pids = sorted(int(p) for p in os.listdir("/proc") if p.isdigit())
print(json.dumps({"version": sys.version, "prefix": sys.prefix, "uid": os.getuid(), "euid": os.geteuid(),
                  "pids": pids}))
"""


def probe(
    python: str | None = None,
    imports: Sequence[str] = (),
    *,
    force: Literal["auto", "process", "namespaces"] | None = None,
    search_path: str | None = None,
    refresh: bool = False,
) -> Capabilities:
    """Which isolation ``launch`` can give ``python`` (default: this interpreter) here, detected by trying it.

    ``imports``: modules the worker needs; the trial imports them inside the sandbox (and ``probe`` exposes
    the directories they load from). ``force``: ``"process"`` returns the fallback, ``"namespaces"`` raises
    ``JailError`` (with the reason) when namespaces are unavailable, ``"auto"`` detects; ``None`` reads
    ``CNN_GRADCHECK_SANDBOX``. ``search_path``: the PATH in which ``unshare`` is looked for (default: this
    process's PATH). Results are cached per arguments; ``refresh`` re-detects. Raises only ``ValueError`` (a bad
    choice) and the ``JailError`` asked for by ``"namespaces"``.
    """
    python = python or sys.executable
    choice, source = _choice(force)
    key = (python, tuple(imports), choice, source, search_path, os.geteuid())
    with _probe_lock:
        caps = None if refresh else _probe_cache.get(key)
        if caps is None:
            caps = _detect(python, tuple(imports), choice, source, search_path)
            _probe_cache[key] = caps
    if choice == "namespaces" and not caps.namespaces:
        raise JailError(f"{source} requires namespaces, but {caps.reason}")
    return caps


def _choice(force: str | None) -> tuple[str, str]:
    """(choice, who made it) from the argument, else the environment variable."""
    if force is not None:
        choice, source = force, "the caller"
    else:
        choice = os.environ.get(ENV_VAR, "").strip().lower() or "auto"
        source = f"{ENV_VAR}={choice}"
    if choice not in ("auto", "process", "namespaces"):
        raise ValueError(f"sandbox choice must be auto, process or namespaces; got {choice!r} from {source}")
    return choice, source


def _fallback(python: str, why: str) -> Capabilities:
    return Capabilities("process", f"sandbox: process only ({why})", python)


def _detect(python: str, imports: tuple[str, ...], choice: str, source: str, search_path: str | None) -> Capabilities:
    if choice == "process":
        return _fallback(python, f"forced by {source}")
    if not sys.platform.startswith("linux"):
        return _fallback(python, f"namespaces are Linux-only, this is {sys.platform}")
    unshare = shutil.which("unshare", path=os.environ.get("PATH", os.defpath) if search_path is None else search_path)
    if unshare is None:
        return _fallback(python, "unshare not found")
    if os.geteuid() != 0:
        return _fallback(python, "not root: the per-launch uid needs root; user namespaces are not used")
    problem = _unshare_fails(unshare)
    if problem:
        return _fallback(python, problem)
    try:
        outside = _introspect(python, imports)
    except JailError as exc:
        return _fallback(python, f"{exc}")
    exposed, problem = _exposure(outside["dirs"])
    if problem:
        return _fallback(python, problem)
    names = ", ".join(imports) or "nothing"
    caps = Capabilities(
        "namespaces",
        f"sandbox: namespaces (pid, mount, net, ipc, uts; a uid per launch; rlimits; {python} imports {names})",
        python,
        exposed,
        unshare,
    )
    problem = _trial(caps, imports, outside)
    return _fallback(python, problem) if problem else caps


def _unshare_fails(unshare: str) -> str | None:
    """Why ``unshare`` cannot create the namespaces (its own message, e.g. in a container without
    CAP_SYS_ADMIN), or None; the trial run would only see it exit."""
    try:
        done = subprocess.run(
            [unshare, *_UNSHARE_FLAGS, "--", sys.executable, "-I", "-S", "-c", ""],
            capture_output=True,
            text=True,
            timeout=TRIAL_TIMEOUT,
            env={"PATH": os.defpath},
            cwd="/",
        )
    except (OSError, subprocess.SubprocessError) as exc:
        return f"cannot run {unshare}: {exc}"
    return None if done.returncode == 0 else f"{_last_line(done.stderr)} (exit {done.returncode})"


def _minimal_env(home: str) -> dict[str, str]:
    return {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": home, "TMPDIR": home, "LANG": "C.UTF-8"}


def _introspect(python: str, imports: tuple[str, ...]) -> dict[str, Any]:
    """The interpreter's version, prefix and directories, asked outside the jail. Raises JailError."""
    try:
        done = subprocess.run(
            [python, "-I", "-c", _INTROSPECT, *imports],
            capture_output=True,
            text=True,
            timeout=TRIAL_TIMEOUT,
            env=_minimal_env("/"),
            cwd="/",
        )
    except (OSError, subprocess.SubprocessError) as exc:
        raise JailError(f"cannot run {python}: {exc}") from exc
    if done.returncode != 0:
        raise JailError(f"{python} fails even outside the sandbox: {_last_line(done.stderr)}")
    try:
        found = json.loads(done.stdout)
    except ValueError as exc:
        raise JailError(f"{python} printed something unexpected: {_last_line(done.stdout)}") from exc
    found["dirs"] = [*found["dirs"], *(os.path.dirname(hop) for hop in _symlink_hops(python))]
    return found


def _last_line(text: str) -> str:
    lines = [line for line in (text or "").strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else "(no output)"


def _symlink_hops(path: str) -> list[str]:
    """``path`` and every symlink target after it, so that the whole chain resolves inside the jail."""
    hops = [os.path.abspath(path)]
    for _ in range(40):
        if not os.path.islink(hops[-1]):
            break
        hops.append(os.path.normpath(os.path.join(os.path.dirname(hops[-1]), os.readlink(hops[-1]))))
    return hops


def _under(path: str, top: str) -> bool:
    return path == top or path.startswith(top.rstrip("/") + "/")


def _exposure(dirs: Sequence[str]) -> tuple[tuple[str, ...], str | None]:
    """The fewest real directories covering ``dirs`` that the system trees do not already show; or a problem."""
    system = [os.path.realpath("/" + name) for name in _SYSTEM_TREES if os.path.lexists("/" + name)]
    real = {os.path.realpath(d) for d in dirs if d and os.path.exists(d)}
    real = {d for d in real if not any(_under(d, top) for top in system)}
    if "/" in real:
        return (), "the interpreter reads from / itself, which cannot be exposed"
    kept = sorted(d for d in real if not any(d != other and _under(d, other) for other in real))
    return tuple(kept), None


def _trial(caps: Capabilities, imports: tuple[str, ...], outside: Mapping[str, Any]) -> str | None:
    """None when the interpreter works inside the jail as its uid like it does outside; else what went wrong."""
    argv = [caps.python, "-I", "-c", _TRIAL, *imports]
    limits = Limits(memory_bytes=2**40)  # the trial tests isolation, not the caller's memory budget
    try:
        with launch(argv, caps, limits=limits, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as jail:
            out, err = jail.process.communicate(timeout=TRIAL_TIMEOUT)
            code, uid = jail.process.returncode, jail.uid
    except (JailError, OSError) as exc:
        return f"namespaces set-up failed: {exc}"
    except subprocess.TimeoutExpired:
        return f"the trial run in namespaces took over {TRIAL_TIMEOUT:.0f} s"
    if code != 0:
        return f"{caps.python} fails inside the sandbox (exit {code}): {_last_line(err.decode(errors='replace'))}"
    try:
        inside = json.loads(out)
    except ValueError:
        return f"the trial run printed something unexpected: {_last_line(out.decode(errors='replace'))}"
    if inside["uid"] != uid or inside["euid"] != uid or uid in (None, 0):
        return f"the trial ran as uid {inside['uid']}/{inside['euid']}, not the per-launch uid {uid}"
    if (inside["version"], inside["prefix"]) != (outside["version"], outside["prefix"]):
        return (
            f"inside the sandbox {caps.python} is Python {inside['version'].split()[0]} at {inside['prefix']}, "
            f"outside {outside['version'].split()[0]} at {outside['prefix']}"
        )
    if inside["pids"] != [1]:
        return f"the sandbox's /proc shows other processes: {inside['pids'][:5]}"
    return None


# -------------------------------------------------------------------------------------------------- launch

_uid_lock = threading.Lock()
_uids_in_use: set[int] = set()


def launch(
    argv: Sequence[str],
    caps: Capabilities,
    *,
    readonly: Sequence[str | tuple[str, str]] = (),
    limits: Limits | None = None,
    env: Mapping[str, str] | None = None,
    stdin: File = None,
    stdout: File = None,
    stderr: File = None,
    pass_fds: Sequence[int] = (),
    scratch_parent: str | None = None,
) -> Jail:
    """Start ``argv`` isolated as ``caps.mode`` (see the module docstring) and return its handle.

    ``readonly``: directories the worker may read (namespaces mode: nothing else of the host is visible); an
    entry ``(path, source)`` shows the directory ``source`` at ``path`` (a snapshot in place of the original;
    process mode cannot: there the worker reads ``path`` itself).
    ``env``: the worker's whole environment (default: a minimal one). ``stdin``/``stdout``/``stderr``/``pass_fds``:
    as for ``subprocess.Popen``. ``scratch_parent``: where the scratch directory is made (default: the temp dir).
    Raises ``JailError`` when the sandbox cannot be set up or ``argv[0]`` cannot be executed in it, ``ValueError``
    on bad arguments; nothing is left running or on disk then.
    """
    argv = [os.fspath(a) for a in argv]
    if not argv:
        raise ValueError("argv is empty")
    readonly = _real_directories(readonly)
    limits = limits or Limits()
    namespaces = caps.namespaces
    if namespaces and (os.geteuid() != 0 or not caps.unshare):
        raise JailError("namespaces mode needs root and unshare; probe() again")
    host = os.path.realpath(tempfile.mkdtemp(prefix="cnn-jail-", dir=scratch_parent))
    uid = _allocate_uid() if namespaces else None
    try:
        scratch = os.path.join(host, "scratch")
        os.mkdir(scratch, 0o700)
        token = secrets.token_hex(16)
        worker_env = dict(env) if env is not None else _minimal_env(scratch)
        spec: dict[str, Any] = {
            "mode": caps.mode,
            "argv": argv,
            "env": worker_env,
            "scratch": scratch,
            "limits": _rlimits(limits, namespaces),
        }
        if namespaces:
            assert uid is not None
            os.chown(scratch, uid, uid)
            root = os.path.join(host, "root")
            os.mkdir(root, 0o700)
            spec.update(uid=uid, root=root, tmp_bytes=limits.tmp_bytes, binds=_binds(caps.exposed, readonly, scratch))
        else:
            worker_env[TOKEN_VAR] = token
        return _start(spec, caps, host, uid, token, (stdin, stdout, stderr), [int(fd) for fd in pass_fds])
    except BaseException:
        _release_uid(uid)
        _remove_tree(host)
        raise


def _allocate_uid() -> int:
    """A uid no live process and no other launch of this process uses. Another checker process could draw the
    same number at the same moment: one chance in 2**24 per pair of concurrent launches."""
    with _uid_lock:
        live = {info.uid for info in _processes()}
        for _ in range(1000):
            uid = UID_BASE + secrets.randbelow(UID_SPAN)
            if uid not in live and uid not in _uids_in_use:
                _uids_in_use.add(uid)
                _log_uid(uid)
                return uid
    raise JailError("no free uid found")


def _log_uid(uid: int) -> None:
    """Append the uid to the file ``CNN_GRADCHECK_JAIL_LOG`` names, if set: an audit trail of the uids a run
    gave its workers (a test checks with it that none of them has a process left)."""
    path = os.environ.get(LOG_VAR)
    if path:
        with contextlib.suppress(OSError), open(path, "a") as f:
            f.write(f"{uid}\n")


def _release_uid(uid: int | None) -> None:
    with _uid_lock:
        _uids_in_use.discard(uid)  # type: ignore[arg-type]


def _rlimits(limits: Limits, namespaces: bool) -> dict[str, tuple[int, int]]:
    """{resource name: (soft, hard)} for the worker; RLIMIT_NPROC only where it can bind (see module docstring)."""
    wanted = {
        "RLIMIT_AS": (limits.memory_bytes, limits.memory_bytes),
        "RLIMIT_FSIZE": (limits.file_bytes, limits.file_bytes),
        "RLIMIT_CPU": (limits.cpu_seconds, limits.cpu_seconds + 1),
        "RLIMIT_NOFILE": (limits.open_files, limits.open_files),
        "RLIMIT_CORE": (0, 0),
    }
    if namespaces:
        wanted["RLIMIT_NPROC"] = (limits.processes, limits.processes)
    elif os.geteuid() != 0 and sys.platform.startswith("linux"):
        me = os.getuid()
        running = sum(info.threads for info in _processes() if info.uid == me)
        wanted["RLIMIT_NPROC"] = (running + limits.processes, running + limits.processes)
    return wanted


def _real_directories(readonly: Sequence[str | tuple[str, str]]) -> list[tuple[str, str]]:
    """(real path shown, real source) of each ``readonly`` entry; ValueError for one that is not a directory,
    or is / itself."""
    real = []
    for entry in readonly:
        shown, source = entry if isinstance(entry, tuple) else (entry, entry)
        path, origin = os.path.realpath(os.fspath(shown)), os.path.realpath(os.fspath(source))
        for d in {path, origin}:
            if not os.path.isdir(d):
                raise ValueError(f"readonly entry {d!r} is not a directory")
            if d == "/":
                raise ValueError("readonly may not contain /: that would expose the whole host")
        real.append((path, origin))
    return real


def _binds(exposed: Sequence[str], readonly: Sequence[tuple[str, str]], scratch: str) -> list[tuple[str, str, bool]]:
    """[(source, path shown, writable)] in mount order: parents before children, so nested binds stay visible."""
    binds: dict[str, tuple[str, bool]] = {d: (d, False) for d in exposed}
    binds.update((path, (source, False)) for path, source in readonly if path not in binds)
    binds[scratch] = (scratch, True)
    return [(source, path, writable) for path, (source, writable) in sorted(binds.items(), key=_depth)]


def _depth(item: tuple[str, tuple[str, bool]]) -> tuple[int, str]:
    return item[0].count("/"), item[0]


def _start(
    spec: dict[str, Any],
    caps: Capabilities,
    host: str,
    uid: int | None,
    token: str,
    streams: tuple[File, File, File],
    pass_fds: list[int],
) -> Jail:
    """Run stage 2 (this file as a script, under the checker's interpreter) and wait until it execs ``argv``."""
    spec_r, spec_w = os.pipe()
    status_r, status_w = os.pipe()
    stage2 = [sys.executable, "-I", "-S", os.path.abspath(__file__), str(spec_r), str(status_w)]
    if caps.namespaces:
        assert caps.unshare is not None
        command = [caps.unshare, *_UNSHARE_FLAGS, "--", *stage2]
    else:
        command = stage2
    try:
        process = subprocess.Popen(
            command,
            stdin=streams[0],
            stdout=streams[1],
            stderr=streams[2],
            pass_fds=(*pass_fds, spec_r, status_w),
            env={"PATH": os.defpath},
            cwd="/",
            start_new_session=True,
        )
    except BaseException as exc:
        for fd in (spec_r, spec_w, status_r, status_w):
            os.close(fd)
        if isinstance(exc, OSError):
            raise JailError(f"cannot start {command[0]}: {exc}") from exc
        raise
    os.close(spec_r)
    os.close(status_w)
    jail = Jail(caps.mode, process, host, os.path.join(host, "scratch"), uid, token)
    try:
        status = _StatusReader(status_r, time.monotonic() + SETUP_TIMEOUT)
        _write_all(spec_w, _frame(marshal.dumps(spec)))
        if caps.namespaces:
            # The init's host pid comes from stage 2; a pidfd opened while stage 2 waits for "go" pins it.
            pid = int(status.expect("pid"))
            jail._attach_worker(pid)
            _write_all(spec_w, b"g")
        status.expect("exec")
    except BaseException as exc:
        jail.teardown()
        if isinstance(exc, (JailError, OSError, ValueError)):
            code = process.returncode
            raise JailError(f"{exc}" if code in (None, 125) else f"{exc} (launcher exit status {code})") from exc
        raise
    finally:
        os.close(spec_w)
        os.close(status_r)
    return jail


def _frame(payload: bytes) -> bytes:
    return len(payload).to_bytes(8, "big") + payload


class _StatusReader:
    """Lines from stage 2: ``pid N``, ``exec``, or ``error MESSAGE``; EOF or the deadline is an error."""

    def __init__(self, fd: int, deadline: float) -> None:
        self.fd, self.deadline, self.buffer = fd, deadline, b""

    def expect(self, word: str) -> str:
        line = self._line()
        head, _, rest = line.partition(" ")
        if head == "error":
            raise JailError(rest)
        if head != word:
            raise JailError(f"sandbox set-up said {line!r}, expected {word!r}")
        return rest

    def _line(self) -> str:
        while b"\n" not in self.buffer:
            left = self.deadline - time.monotonic()
            if left <= 0 or not select.select([self.fd], [], [], left)[0]:
                raise JailError(f"sandbox set-up did not finish within {SETUP_TIMEOUT:.0f} s")
            chunk = os.read(self.fd, 4096)
            if not chunk:
                raise JailError("sandbox set-up ended without a word (see the worker's stderr)")
            self.buffer += chunk
        line, _, self.buffer = self.buffer.partition(b"\n")
        return line.decode(errors="replace")


# ---------------------------------------------------------------------------------------------------- Jail


class Jail:
    """A running worker. ``process`` is the ``subprocess.Popen`` the checker started: the worker itself in
    process mode, ``unshare`` in namespaces mode (its exit status is the worker's: the same code, or the same
    signal as a negative number). ``pid`` is the worker's pid as the checker sees it."""

    def __init__(
        self, mode: Mode, process: subprocess.Popen[Any], host: str, scratch: str, uid: int | None, token: str
    ):
        self.mode: Mode = mode
        self.process = process
        self.scratch = scratch
        self.uid = uid
        self.pid = process.pid if mode == "process" else -1
        self._host, self._token = host, token
        self._lock = threading.Lock()
        self._done = False
        self._launcher_fd = _pidfd_open(process.pid)
        self._worker_fd = self._launcher_fd if mode == "process" else None

    def _attach_worker(self, pid: int) -> None:
        self.pid = pid
        self._worker_fd = _pidfd_open(pid)

    def __enter__(self) -> Jail:
        return self

    def __exit__(self, *exc: object) -> None:
        self.teardown()

    def __repr__(self) -> str:
        return f"Jail(mode={self.mode!r}, pid={self.pid}, uid={self.uid}, scratch={self.scratch!r})"

    def wait(self, timeout: float | None = None) -> int:
        """The worker's exit status, as ``Popen.wait`` gives it (raises ``subprocess.TimeoutExpired``)."""
        return self.process.wait(timeout)

    def send_signal(self, sig: int) -> None:
        """Send ``sig`` to the worker (not its children). No-op once it is gone; never hits a recycled pid
        where pidfds exist (Linux >= 5.3)."""
        with contextlib.suppress(OSError):
            if self._worker_fd is not None:
                signal.pidfd_send_signal(self._worker_fd, sig)
            elif self.mode == "process" and self.process.returncode is None:
                os.kill(self.pid, sig)

    def teardown(self) -> None:
        """Kill the worker and everything it started, wait (bounded) until they are gone, remove the scratch
        directory. Idempotent, thread-safe (a second caller waits for the first), never raises."""
        with self._lock:
            if self._done:
                return
            self._done = True
            deadline = time.monotonic() + TEARDOWN_TIMEOUT
            with contextlib.suppress(Exception):
                if self.mode == "namespaces":
                    self._kill_namespace(deadline)
                else:
                    self._kill_session(deadline)
            with contextlib.suppress(Exception):
                self.process.wait(max(0.1, deadline - time.monotonic()))
            for fd in {self._launcher_fd, self._worker_fd} - {None}:
                with contextlib.suppress(OSError):
                    os.close(fd)  # type: ignore[arg-type]
            self._launcher_fd = self._worker_fd = None
            _release_uid(self.uid)
            _remove_tree(self._host)

    def _kill_namespace(self, deadline: float) -> None:
        # Killing the init empties the namespace (kernel-side, so escapes via setsid or fork races are moot);
        # killing unshare covers a teardown during set-up, before the init dropped privileges.
        for fd in (self._worker_fd, self._launcher_fd):
            if fd is not None:
                with contextlib.suppress(OSError):
                    signal.pidfd_send_signal(fd, signal.SIGKILL)
        if self._launcher_fd is None and self.process.returncode is None:
            with contextlib.suppress(OSError):
                os.killpg(self.process.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(max(0.1, deadline - time.monotonic()))
        uid = self.uid
        _sweep(lambda info: info.uid == uid, deadline)

    def _kill_session(self, deadline: float) -> None:
        if self.process.returncode is None:  # while unreaped, the group id cannot belong to anyone else
            with contextlib.suppress(OSError):
                os.killpg(self.process.pid, signal.SIGKILL)
        self.send_signal(signal.SIGKILL)
        me, marker = os.getuid(), f"{TOKEN_VAR}={self._token}".encode()
        _sweep(lambda info: info.uid == me and marker in info.environ(), deadline)


def _pidfd_open(pid: int) -> int | None:
    opener = getattr(os, "pidfd_open", None)
    if opener is None:
        return None
    try:
        return opener(pid)
    except OSError:
        return None


def _remove_tree(path: str) -> None:
    """Remove ``path`` even where the worker made a directory unreadable to us; never raises."""

    def make_writable(func: Callable[..., Any], failed: str, *_: Any) -> None:
        with contextlib.suppress(OSError):
            os.chmod(os.path.dirname(failed), 0o700)
            if os.path.isdir(failed) and not os.path.islink(failed):
                os.chmod(failed, 0o700)
            func(failed)

    with contextlib.suppress(Exception):
        if sys.version_info >= (3, 12):
            shutil.rmtree(path, onexc=make_writable)
        else:
            shutil.rmtree(path, onerror=make_writable)
    with contextlib.suppress(Exception):
        shutil.rmtree(path, ignore_errors=True)


# --------------------------------------------------------------------------------------------- /proc sweep


@dataclass(frozen=True)
class _Proc:
    pid: int
    uid: int  # real uid: the one RLIMIT_NPROC and kill permissions go by
    state: str
    threads: int

    def environ(self) -> bytes:
        try:
            with open(f"/proc/{self.pid}/environ", "rb") as f:
                return f.read()
        except OSError:
            return b""


def _processes() -> Iterator[_Proc]:
    """Every live process /proc shows (zombies are dead: they are left out). Nothing where there is no /proc."""
    try:
        names = os.listdir("/proc")
    except OSError:
        return
    for name in names:
        if name.isdigit():
            info = _read_proc(int(name))
            if info is not None and info.state not in ("Z", "X"):
                yield info


def _read_proc(pid: int) -> _Proc | None:
    fields: dict[str, str] = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key in ("State", "Uid", "Threads"):
                    fields[key] = value
                    if len(fields) == 3:  # Threads comes late; stop there rather than parse ~60 lines
                        break
        return _Proc(pid, int(fields["Uid"].split()[0]), fields["State"].split()[0], int(fields["Threads"]))
    except (OSError, KeyError, ValueError, IndexError):
        return None


def _sweep(match: Callable[[_Proc], bool], deadline: float) -> bool:
    """SIGKILL every live process ``match`` accepts until none is left or ``deadline`` passes; True if none is.

    A pid is signalled through a pidfd opened before it is matched and checked alive after, so a pid recycled
    meanwhile is never hit (plain kill() where there are no pidfds). Repeats because a victim may have forked
    just before dying; each pass is one /proc scan.
    """
    me, pause = os.getpid(), 0.001
    while True:
        victims = [info for info in _processes() if info.pid != me and match(info)]
        if not victims:
            return True
        if time.monotonic() > deadline:
            return False
        for info in victims:
            _kill_if(info.pid, match)
        time.sleep(pause)
        pause = min(pause * 2, 0.05)


def _kill_if(pid: int, match: Callable[[_Proc], bool]) -> None:
    fd = _pidfd_open(pid)
    try:
        info = _read_proc(pid)
        if info is None or not match(info):
            return
        if fd is None:
            os.kill(pid, signal.SIGKILL)
        else:
            signal.pidfd_send_signal(fd, signal.SIGKILL)  # fails if the process read above was a newcomer
    except OSError:
        pass
    finally:
        if fd is not None:
            os.close(fd)
