"""checks.sandbox.snapshot: a submission is copied before any of its code runs: regular files and folders only,
each with its sha256; symlinks, FIFOs and oversized files are refused (and listed) without ever being opened
as something else, so no entry can make the copy hang, follow a link out of the folder, or blow the limits."""

from __future__ import annotations

import hashlib
import os
import threading

import pytest

from checks.sandbox.snapshot import SnapshotError, take


def test_regular_files_are_copied_with_their_digests_and_readable_by_anyone(tmp_path):
    src = tmp_path / "alice"
    (src / "pkg").mkdir(parents=True)
    (src / "layers.py").write_text("class ConvLayer:\n    pass\n")
    (src / "pkg" / "helpers.py").write_text("X = 1\n")
    os.chmod(src, 0o700)
    snap = take(src, tmp_path / "copy")
    assert sorted(rel for rel, _, _ in snap.files) == ["layers.py", "pkg/helpers.py"]
    digest = dict((rel, d) for rel, _, d in snap.files)["layers.py"]
    assert digest == hashlib.sha256((src / "layers.py").read_bytes()).hexdigest()
    assert (tmp_path / "copy" / "pkg" / "helpers.py").read_text() == "X = 1\n"
    assert oct((tmp_path / "copy").stat().st_mode & 0o777) == "0o755"
    assert oct((tmp_path / "copy" / "layers.py").stat().st_mode & 0o777) == "0o644"


def test_links_fifos_hidden_entries_and_big_files_are_left_out_and_listed(tmp_path):
    src = tmp_path / "mallory"
    src.mkdir()
    (src / "ok.py").write_text("pass\n")
    (src / "big.npy").write_bytes(b"\0" * 2048)
    (src / ".git").mkdir()
    (src / "__pycache__").mkdir()
    os.symlink("/etc/passwd", src / "passwd.py")
    os.symlink(src, src / "loop")
    os.mkfifo(src / "pipe.py")
    done = threading.Event()

    def copy():
        take(src, tmp_path / "copy", max_file=1024)
        done.set()

    worker = threading.Thread(target=copy, daemon=True)
    worker.start()
    worker.join(60)  # a bound for a broken copy that blocks on the FIFO, never reached when it works
    assert done.is_set(), "the snapshot blocked on an entry"
    snap = take(src, tmp_path / "again", max_file=1024)
    assert [rel for rel, _, _ in snap.files] == ["ok.py"]
    refused = dict(snap.refused)
    assert "symlink" in refused["passwd.py"] and "symlink" in refused["loop"]
    assert "FIFO" in refused["pipe.py"] and "above the limit" in refused["big.npy"]
    assert ".git" in refused and "__pycache__" in refused
    assert not (tmp_path / "again" / "passwd.py").exists()


def test_a_single_file_submission_is_a_folder_holding_it(tmp_path):
    (tmp_path / "judy.py").write_text("pass\n")
    snap = take(tmp_path / "judy.py", tmp_path / "copy")
    assert [rel for rel, _, _ in snap.files] == ["judy.py"] and (tmp_path / "copy" / "judy.py").is_file()


@pytest.mark.parametrize("limit", ["files", "bytes"])
def test_a_folder_over_the_limits_is_refused_whole(tmp_path, limit):
    src = tmp_path / "huge"
    src.mkdir()
    for i in range(5):
        (src / f"f{i}.py").write_bytes(b"x" * 100)
    options = {"max_files": 3} if limit == "files" else {"max_total": 250}
    with pytest.raises(SnapshotError, match="more than"):
        take(src, tmp_path / "copy", **options)


def test_something_that_is_neither_a_file_nor_a_folder_is_refused(tmp_path):
    os.mkfifo(tmp_path / "pipe")
    with pytest.raises(SnapshotError, match="not a regular file or folder"):
        take(tmp_path / "pipe", tmp_path / "copy")
    with pytest.raises(SnapshotError):
        take(tmp_path / "missing", tmp_path / "copy2")
