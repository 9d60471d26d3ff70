"""Grading on a dask.distributed cluster: ``cnn-gradcheck grade ... --dask SCHEDULER_ADDRESS``.

Instead of the local pool of checker processes, every (submission, layer) check is submitted to the
cluster's workers through a ``distributed.Client``: each task runs ``grade.check_row``, the function the
local pool runs, on the same Job dict, so the summary is the one a local run with the same seed writes
(up to the timings; the ``run`` section records ``dask``: the scheduler's address, and ``jobs``: the
workers' threads). Install the extra on the grading machine and on every worker (``pip install
'cnn-gradcheck[dask]'``: the workers import cnn-gradcheck to run the checks).

Snapshots travel with the tasks. A check reads only its submission's snapshot, which the grader takes in
a private temporary folder on its own machine; rather than assume that the workers share that
filesystem (true for a LocalCluster, rarely for a remote one), the grader reads each snapshot's files
(regular files only, size-limited by checks.sandbox.snapshot) and scatters them to the cluster once per
submission; the task recreates them in a temporary folder of its own on the worker, named like the
snapshot so that every path a report shows is the same as in a local run, runs the check with that folder
as its only readable one, and deletes it. One code path for every cluster, no shared filesystem needed,
and a worker never reads another task's copy.

A task that raises, or whose worker dies (dask retries it on another worker, then gives up with
KilledWorker), ends as that row's "internal" status, never as the end of the run.
"""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any

from checks.front.grade import GradeError, Result, check_row

CONNECT_SECONDS = 30.0  # to reach the scheduler and see a first worker


def pack(folder: Path) -> dict[str, Any]:
    """A snapshot folder as data: its name, its sub-folders and its regular files' bytes (relative POSIX
    paths); symlinks and special files are left out (a snapshot holds none)."""
    dirs: list[str] = []
    files: dict[str, bytes] = {}
    for root, subdirs, names in os.walk(folder, followlinks=False):
        here = Path(root)
        subdirs.sort()
        for sub in subdirs:
            if not (here / sub).is_symlink():
                dirs.append((here / sub).relative_to(folder).as_posix())
        for name in sorted(names):
            path = here / name
            if stat.S_ISREG(os.lstat(path).st_mode):
                files[path.relative_to(folder).as_posix()] = path.read_bytes()
    return {"name": folder.name, "dirs": dirs, "files": files}


def _inside(rel: str) -> PurePosixPath:
    path = PurePosixPath(rel)
    if path.is_absolute() or not path.parts or any(p in ("", ".", "..") for p in path.parts):
        raise ValueError(f"not a relative path inside the snapshot: {rel!r}")
    return path


def unpack(bundle: dict[str, Any], parent: Path) -> Path:
    """Recreate a packed snapshot as ``parent/NAME`` (folders 0755, files 0644, as a snapshot is); every
    path is checked (relative, inside) before anything is created."""
    name = _inside(bundle["name"])
    dirs = [_inside(rel) for rel in bundle["dirs"]]
    files = [(_inside(rel), data) for rel, data in bundle["files"].items()]
    folder = parent / name
    folder.mkdir(mode=0o755)
    os.chmod(folder, 0o755)
    for rel in dirs:
        target = folder / rel
        target.mkdir(mode=0o755, parents=True, exist_ok=True)
        os.chmod(target, 0o755)
    for rel, data in files:
        target = folder / rel
        target.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(target, 0o644)
    return folder


def check_shipped(job: dict, bundle: dict[str, Any], wall: float) -> dict:
    """On a worker: recreate the snapshot in a private temporary folder, run ``check_row`` on it, delete it."""
    # A dask worker's own threads use the `random` module while a check draws its cases; hypothesis notices
    # the global state moving and warns once per draw. The checker's strategies never use `random` (the
    # summary is the local one, a test compares them), so the warning is noise in the worker's log.
    warnings.filterwarnings("ignore", message="Do not use the `random` module inside strategies")
    scratch = Path(tempfile.mkdtemp(prefix="cnn-gradcheck-dask-"))
    try:
        folder = unpack(bundle, scratch)
        return check_row({**job, "root": str(scratch)}, [str(folder)], wall)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


class Connection:
    """A client of one dask scheduler, for one grading run."""

    def __init__(self, client: Any, address: str) -> None:
        self.client = client
        self.address = address

    @property
    def workers(self) -> int:
        """The workers' threads (checks that can run at once)."""
        info = self.client.scheduler_info().get("workers", {})
        return max(1, sum(int(w.get("nthreads", 1)) for w in info.values()))

    def run(self, work: list[tuple[Any, Any, str, dict]], timeout: float) -> Iterator[tuple[Any, Result]]:
        """Yield (item, Result) for every item of ``work`` (grade's (submission, choice, target, job)) as its
        check ends on the cluster."""
        from distributed import as_completed

        shipped: dict[Path, Any] = {}
        left: dict[Path, int] = {}  # tasks still to end per snapshot: its copy is released after the last
        futures: dict[Any, tuple[int, Path]] = {}
        try:
            for i, (_, _, _, job) in enumerate(work):
                own = Path(job["root"]) / job["target"].split("/")[0]  # the row's own snapshot
                if own not in shipped:  # once per submission, shared by its layers' tasks
                    (shipped[own],) = self.client.scatter([pack(own)], hash=False)
                future = self.client.submit(check_shipped, job, shipped[own], timeout, pure=False)
                futures[future] = (i, own)
                left[own] = left.get(own, 0) + 1
            for future in as_completed(list(futures), loop=self.client.loop):
                i, own = futures[future]
                left[own] -= 1
                if not left[own]:
                    shipped.pop(own).release()
                try:
                    result = Result(**future.result())
                except Exception as exc:  # noqa: BLE001 - the row's own failure, not the run's
                    if type(exc).__name__ == "KilledWorker":
                        reason = "internal error in cnn-gradcheck: the dask workers running it died"
                    else:
                        reason = f"internal error in cnn-gradcheck: {type(exc).__name__}: {exc}"
                    result = Result("internal", reason)
                yield work[i], result
        finally:
            self.client.cancel(list(futures) + list(shipped.values()))

    def close(self) -> None:
        self.client.close()


def connect(address: str, timeout: float = CONNECT_SECONDS) -> Connection:
    """A Connection to the scheduler at ``address`` once it has a worker; GradeError without
    dask.distributed, or when no scheduler answers there, or no worker joins within ``timeout``."""
    try:
        from distributed import Client
    except ImportError:
        raise GradeError("--dask needs dask.distributed: pip install 'cnn-gradcheck[dask]'") from None
    try:
        from distributed.comm import parse_address
        from distributed.comm.registry import get_backend

        get_backend(parse_address(address)[0])  # an unknown scheme, before a Client half exists
    except (ValueError, TypeError) as exc:
        raise GradeError(f"--dask {address}: not a scheduler address ({exc})") from None
    try:
        client = Client(address, timeout=timeout, set_as_default=False)
    except (OSError, TimeoutError, ValueError) as exc:
        raise GradeError(f"--dask {address}: no scheduler answered ({type(exc).__name__}: {exc})") from None
    try:
        client.wait_for_workers(1, timeout=timeout)
    except (OSError, TimeoutError) as exc:
        client.close()
        raise GradeError(f"--dask {address}: no worker joined within {timeout:g} s ({exc})") from None
    return Connection(client, address)
