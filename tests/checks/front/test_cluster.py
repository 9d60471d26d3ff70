"""checks.front.cluster: a snapshot shipped to a worker is recreated as it was; grading on a dask LocalCluster
(two worker processes) gives the summary of the local process pool with the same seed, up to the timings; an
unusable --dask address is the command line's exit 2, not a hang."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import stat
import sys
from pathlib import Path

import pytest

from checks.front import cli, cluster, grade
from checks.front.grade import GradeError

pytest.importorskip("resource")
SUBMISSIONS = Path(__file__).resolve().parents[2] / "fixtures" / "submissions"
ENOUGH = 600.0  # s per check: never reached, only a bound on a stuck test
CALL = 10.0  # s per call into a layer: ~1000x what a call takes, so only a hang reaches it
# a correct one, a value bug, a crash, an import error, a vandal (its snapshot must stay read-only on a worker)
PICK = ("alice_correct", "bob_buggy", "frank_exits", "heidi_syntax_error", "mallory_vandal")


def test_a_packed_snapshot_unpacks_as_it_was(tmp_path):
    source = tmp_path / "snap" / "sam"
    (source / "pkg" / "deep").mkdir(parents=True)
    (source / "empty").mkdir()
    (source / "layers.py").write_text("class ConvLayer:\n    pass\n")
    (source / "pkg" / "deep" / "data.bin").write_bytes(bytes(range(256)))
    os.symlink("/etc/passwd", source / "link")  # a snapshot holds none: left out all the same
    bundle = cluster.pack(source)
    assert bundle["name"] == "sam" and sorted(bundle["files"]) == ["layers.py", "pkg/deep/data.bin"]
    assert sorted(bundle["dirs"]) == ["empty", "pkg", "pkg/deep"]
    target = tmp_path / "worker"
    target.mkdir()
    folder = cluster.unpack(bundle, target)
    assert folder == target / "sam"
    assert (folder / "pkg" / "deep" / "data.bin").read_bytes() == bytes(range(256))
    assert (folder / "empty").is_dir() and not (folder / "link").exists()
    assert stat.S_IMODE(os.stat(folder / "layers.py").st_mode) == 0o644
    assert stat.S_IMODE(os.stat(folder / "pkg").st_mode) == 0o755
    for bad in ("../escape.py", "/abs.py", "a/../../b.py"):
        with pytest.raises(ValueError):
            cluster.unpack({"name": "x2", "dirs": [], "files": {bad: b""}}, target)


def test_an_unusable_address_is_refused_quickly(tmp_path, capsys):
    pytest.importorskip("distributed", reason="dask.distributed is not installed (pip install '.[dask]')")
    with pytest.raises(GradeError, match="not a scheduler address"):
        cluster.connect("nonsense://nowhere", timeout=2)
    with pytest.raises(GradeError, match="no scheduler answered"):
        cluster.connect("tcp://127.0.0.1:9", timeout=2)  # the discard port: nothing listens there
    subs = tmp_path / "subs"
    subs.mkdir()
    shutil.copy(SUBMISSIONS / "judy.py", subs / "judy.py")
    argv = ["grade", str(subs), "--kind", "relu", "--out", str(tmp_path / "o"), "--dask", "nonsense://nowhere"]
    assert cli.main(argv) == 2
    assert "--dask nonsense://nowhere: not a scheduler address" in capsys.readouterr().err


def test_without_dask_the_option_says_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed -> ImportError
    with pytest.raises(GradeError, match=r"pip install 'cnn-gradcheck\[dask\]'"):
        cluster.connect("tcp://127.0.0.1:8786")


def _comparable(out: Path) -> tuple[dict, list[list[str]]]:
    data = json.loads((out / "summary.json").read_text())
    data.pop("run")
    for row in data["rows"]:
        for name in grade.TIMING_FIELDS:
            row.pop(name)
    rows = list(csv.reader(io.StringIO((out / "summary.csv").read_text())))
    keep = [i for i, name in enumerate(rows[0]) if name not in grade.TIMING_FIELDS]
    return data, [[r[i] for i in keep] for r in rows]


def test_grading_on_a_local_dask_cluster_is_grading_on_the_local_pool(tmp_path):
    distributed = pytest.importorskip("distributed", reason="dask.distributed is not installed (pip install '.[dask]')")
    subs = tmp_path / "subs"
    for name in PICK:
        shutil.copytree(SUBMISSIONS / name, subs / name, ignore=shutil.ignore_patterns("__pycache__"))
    settings = dict(seed=11, max_examples=5, timeout=ENOUGH, call_seconds=CALL, import_seconds=CALL)
    local = grade.grade(subs, ["relu", "dense"], out_dir=tmp_path / "local", jobs=2, **settings)
    with distributed.LocalCluster(
        n_workers=2, processes=True, threads_per_worker=1, dashboard_address=None
    ) as local_cluster:
        on_dask = grade.grade(
            subs, ["relu", "dense"], out_dir=tmp_path / "dask", dask=local_cluster.scheduler_address, **settings
        )
    assert _comparable(tmp_path / "dask") == _comparable(tmp_path / "local")
    assert {r.status for r in local.rows} >= {"passed", "failed", "crashed", "error", "missing"}
    run = json.loads((tmp_path / "dask" / "summary.json").read_text())["run"]
    assert run["dask"].startswith("tcp://127.0.0.1:") and run["jobs"] == 2
    assert on_dask.row("mallory_vandal", "relu").status == "passed"
    assert not any((tmp_path / "dask").glob("hacked*")) and not any(subs.glob("*/hacked*"))
    failing = on_dask.results[("bob_buggy", "dense")]
    assert failing.report and failing.rendered  # the reports travel back whole
