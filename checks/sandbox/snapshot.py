"""Snapshots: a copy of a user's folder that the worker reads instead of the original.

A worker runs as a throwaway uid and sees only what it is shown: a snapshot is taken before any of the
user's code runs, so the code cannot change what the check (or a later check, in grading) reads, and the
copy is readable by any uid even where the original is not (a root user's 0700 home). Only regular files
and folders are copied, each read without following a symlink and without blocking (a FIFO, a device, a
socket or a symlink is refused and listed, never opened as something else); hidden entries, ``__pycache__``
and files above a size limit are left out and listed too. Every copied file's sha256 is recorded.

Standard library only.
"""

from __future__ import annotations

import hashlib
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

MAX_FILE = 16 * 1024**2
MAX_TOTAL = 256 * 1024**2
MAX_FILES = 10_000
SKIPPED_NAMES = ("__pycache__",)


class SnapshotError(Exception):
    """The folder cannot be snapshotted at all (gone, not a folder, over the limits); ``str()`` says why."""


@dataclass
class Snapshot:
    """source: the folder copied; path: the copy; files: (relative path, bytes, sha256) per copied file;
    refused: (relative path, why) per entry left out."""

    source: Path
    path: Path
    files: list[tuple[str, int, str]] = field(default_factory=list)
    refused: list[tuple[str, str]] = field(default_factory=list)

    @property
    def bytes(self) -> int:
        return sum(size for _, size, _ in self.files)


def take(
    source: str | os.PathLike[str],
    destination: str | os.PathLike[str],
    *,
    max_file: int = MAX_FILE,
    max_total: int = MAX_TOTAL,
    max_files: int = MAX_FILES,
) -> Snapshot:
    """Copy the folder ``source`` (or a single file) into the new folder ``destination`` (see the module
    docstring); SnapshotError when the whole copy is impossible or over ``max_total`` / ``max_files``."""
    src = Path(source)
    try:
        info = os.lstat(src)
    except OSError as exc:
        raise SnapshotError(f"{src}: {exc.strerror or exc}") from None
    dest = Path(destination)
    dest.mkdir(mode=0o755)
    os.chmod(dest, 0o755)
    snap = Snapshot(src, dest)
    if stat.S_ISREG(info.st_mode):
        _copy_file(src, dest / src.name, src.name, snap, max_file)
        return snap
    if not stat.S_ISDIR(info.st_mode):
        raise SnapshotError(f"{src}: not a regular file or folder")
    _copy_tree(src, dest, "", snap, max_file, max_total, max_files)
    return snap


def _copy_tree(src: Path, dest: Path, rel: str, snap: Snapshot, max_file: int, max_total: int, max_files: int) -> None:
    try:
        entries = sorted(os.scandir(src), key=lambda e: e.name)
    except OSError as exc:
        snap.refused.append((rel or ".", f"cannot be listed: {exc.strerror or exc}"))
        return
    for entry in entries:
        name = f"{rel}/{entry.name}" if rel else entry.name
        if entry.name.startswith(".") or entry.name in SKIPPED_NAMES:
            snap.refused.append((name, "hidden or a cache: left out"))
            continue
        try:
            mode = entry.stat(follow_symlinks=False).st_mode
        except OSError as exc:
            snap.refused.append((name, f"cannot be read: {exc.strerror or exc}"))
            continue
        if stat.S_ISDIR(mode):
            target = dest / entry.name
            target.mkdir(mode=0o755)
            os.chmod(target, 0o755)
            _copy_tree(Path(entry.path), target, name, snap, max_file, max_total, max_files)
        elif stat.S_ISREG(mode):
            if len(snap.files) >= max_files:
                raise SnapshotError(f"{snap.source}: more than {max_files} files")
            _copy_file(Path(entry.path), dest / entry.name, name, snap, max_file)
            if snap.bytes > max_total:
                raise SnapshotError(f"{snap.source}: more than {max_total // 1024**2} MiB")
        else:
            snap.refused.append((name, f"a {_what(mode)}, not a regular file: refused"))


def _copy_file(src: Path, dest: Path, rel: str, snap: Snapshot, max_file: int) -> None:
    try:
        fd = os.open(src, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as exc:
        snap.refused.append((rel, f"cannot be read: {exc.strerror or exc}"))
        return
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            snap.refused.append((rel, f"a {_what(info.st_mode)}, not a regular file: refused"))
            return
        if info.st_size > max_file:
            snap.refused.append((rel, f"{info.st_size} bytes, above the limit of {max_file}: left out"))
            return
        digest = hashlib.sha256()
        size = 0
        out = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
        try:
            while chunk := os.read(fd, 1 << 20):
                size += len(chunk)
                if size > max_file:  # the file grew while it was read
                    break
                digest.update(chunk)
                os.write(out, chunk)
        finally:
            os.close(out)
        if size > max_file:
            os.unlink(dest)
            snap.refused.append((rel, f"grew above the limit of {max_file} bytes while read: left out"))
            return
        os.chmod(dest, 0o644)
        snap.files.append((rel, size, digest.hexdigest()))
    finally:
        os.close(fd)


def _what(mode: int) -> str:
    for test, name in (
        (stat.S_ISLNK, "symlink"),
        (stat.S_ISFIFO, "FIFO"),
        (stat.S_ISSOCK, "socket"),
        (stat.S_ISCHR, "character device"),
        (stat.S_ISBLK, "block device"),
    ):
        if test(mode):
            return name
    return "special file"
