"""checks.front.shards: every submission in exactly one shard; grading in two shards and merging gives the summary
(and the reports and Gradescope results) of grading everything at once with the same seed, up to the timings;
the merge refuses parts that cannot be one run."""

from __future__ import annotations

import csv
import io
import json
import re
import shutil
from pathlib import Path

import pytest

from checks.front import cli, grade, shards
from checks.front.grade import GradeError, Submission

pytest.importorskip("resource")
SUBMISSIONS = Path(__file__).resolve().parents[2] / "fixtures" / "submissions"
ENOUGH = 600.0  # s per check: never reached, only a bound on a stuck test
# a correct one, a value bug, a crash, an import error and a single-file submission
STAGING = re.compile(r"cnn-gradcheck-grade-\w+")
PICK = ("alice_correct", "bob_buggy", "frank_exits", "heidi_syntax_error", "judy.py")


def test_every_submission_is_in_exactly_one_shard_and_the_shards_are_balanced():
    subs = [Submission(f"s{i:02d}", Path(f"s{i:02d}")) for i in range(23)]
    for count in range(1, 9):
        parts = [shards.select(subs, i, count) for i in range(1, count + 1)]
        names = [s.name for mine, _ in parts for s in mine]
        assert sorted(names) == [s.name for s in subs], count
        sizes = [len(mine) for mine, _ in parts]
        assert max(sizes) - min(sizes) <= 1
        assert all(record["total"] == 23 and record["count"] == count for _, record in parts)
        assert len({record["names_sha256"] for _, record in parts}) == 1
    mine, record = shards.select(subs, 2, 5)
    assert [s.name for s in mine] == ["s01", "s06", "s11", "s16", "s21"]  # round robin over the sorted order
    assert record["submissions"] == [s.name for s in mine] and record["index"] == 2
    for bad in ((0, 2), (3, 2), (1, 0)):
        with pytest.raises(GradeError):
            shards.select(subs, *bad)


def test_parse():
    assert shards.parse("1/4") == (1, 4) and shards.parse("4/4") == (4, 4)
    for bad in ("0/4", "5/4", "1/0", "1", "a/b", "1/2/3"):
        with pytest.raises(ValueError):
            shards.parse(bad)


def _comparable(out: Path) -> tuple[dict, list[list[str]]]:
    data = json.loads((out / "summary.json").read_text())
    data.pop("run")
    for row in data["rows"]:
        for name in grade.TIMING_FIELDS:
            row.pop(name)
    rows = list(csv.reader(io.StringIO((out / "summary.csv").read_text())))
    keep = [i for i, name in enumerate(rows[0]) if name not in grade.TIMING_FIELDS]
    return data, [[r[i] for i in keep] for r in rows]


def _untimed(value: object) -> object:
    if isinstance(value, dict):
        return {k: _untimed(v) for k, v in value.items() if k not in grade.TIMING_FIELDS}
    if isinstance(value, list):
        return [_untimed(v) for v in value]
    return value


def _reports(out: Path) -> dict[str, str]:
    """Every report and Gradescope file but the timings (each check's seconds) and the grader's private
    staging folder, which a reproduction snippet names (a new temporary folder in every run)."""
    found = {}
    for path in sorted(out.rglob("*")):
        if path.suffix not in (".json", ".txt") or path.name == "summary.json":
            continue
        text = path.read_text()
        if path.suffix == ".json":
            text = json.dumps(_untimed(json.loads(text)), sort_keys=True)
        found[path.relative_to(out).as_posix()] = STAGING.sub("STAGING", text)
    return found


def _grade(subs: Path, out: Path, *extra: str) -> int:
    argv = ["grade", str(subs), "--kind", "relu", "--kind", "dense", "--out", str(out), "--seed", "5"]
    return cli.main([*argv, "--max-examples", "5", "--jobs", "2", "--timeout", str(ENOUGH), "-q", *extra])


@pytest.fixture(scope="module")
def graded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Five fixture submissions graded whole, and in two shards merged (the same seed), once for the module."""
    root = tmp_path_factory.mktemp("shards")
    subs = root / "subs"
    for name in PICK:
        source = SUBMISSIONS / name
        if source.is_dir():
            shutil.copytree(source, subs / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            subs.mkdir(exist_ok=True)
            shutil.copy(source, subs / name)
    assert _grade(subs, root / "whole", "--format", "gradescope") == 0
    assert _grade(subs, root / "part1", "--shard", "1/2") == 0
    assert _grade(subs, root / "part2", "--shard", "2/2") == 0
    argv = ["grade-merge", str(root / "part2"), str(root / "part1"), "--out", str(root / "merged")]
    assert cli.main([*argv, "--format", "gradescope", "-q"]) == 0
    return root


def test_two_shards_merged_are_the_whole_grading(graded):
    whole, merged = _comparable(graded / "whole"), _comparable(graded / "merged")
    assert merged == whole
    assert "shard" not in json.loads((graded / "merged" / "summary.json").read_text())
    assert _reports(graded / "merged") == _reports(graded / "whole")  # reports/ and gradescope/ too
    statuses = {(r["submission"], r["layer"]): r["status"] for r in whole[0]["rows"]}
    assert statuses[("bob_buggy", "dense")] == "failed" and statuses[("frank_exits", "relu")] == "crashed"
    run = json.loads((graded / "merged" / "summary.json").read_text())["run"]
    assert run["merged"] == 2 and run["jobs"] == 4


def test_a_shard_records_what_it_graded(graded):
    parts = [json.loads((graded / f"part{i}" / "summary.json").read_text()) for i in (1, 2)]
    assert [p["shard"]["index"] for p in parts] == [1, 2]
    assert parts[0]["shard"]["submissions"] == ["alice_correct", "frank_exits", "judy"]
    assert parts[1]["shard"]["submissions"] == ["bob_buggy", "heidi_syntax_error"]
    assert {r["submission"] for r in parts[1]["rows"]} == {"bob_buggy", "heidi_syntax_error"}
    assert parts[0]["settings"] == parts[1]["settings"]


def _altered(graded: Path, tmp_path: Path, part: str, change) -> Path:
    copy = tmp_path / f"{part}-altered-{len(list(tmp_path.glob('*-altered-*')))}"
    shutil.copytree(graded / part, copy)
    data = json.loads((copy / "summary.json").read_text())
    change(data)
    (copy / "summary.json").write_text(json.dumps(data))
    return copy


def test_the_merge_refuses_parts_that_cannot_be_one_run(graded, tmp_path, capsys):
    one, two = graded / "part1", graded / "part2"

    def refused(*parts: Path) -> str:
        out = tmp_path / "out"
        assert cli.main(["grade-merge", *map(str, parts), "--out", str(out)]) == 2
        assert not out.exists() or not any(out.iterdir())
        return capsys.readouterr().err

    assert "shard(s) 2/2 missing" in refused(one)
    assert "are both shard 1/2" in refused(one, one)
    reseeded = _altered(graded, tmp_path, "part2", lambda d: d["settings"].update(seed=6))
    assert "graded with a different seed" in refused(one, reseeded)
    other = _altered(graded, tmp_path, "part2", lambda d: d["settings"].update(max_examples=9))
    assert "different settings (max_examples)" in refused(one, other)

    def overlap(data: dict) -> None:
        data["shard"]["submissions"].append("alice_correct")

    assert "overlapping shards: alice_correct" in refused(one, _altered(graded, tmp_path, "part2", overlap))
    split = _altered(graded, tmp_path, "part2", lambda d: d["shard"].update(count=3, index=2))
    assert "a different number of shards" in refused(one, split)
    folder = _altered(graded, tmp_path, "part2", lambda d: d["shard"].update(names_sha256="0" * 64))
    assert "a different submissions folder" in refused(one, folder)
    assert "not a shard's summary" in refused(one, graded / "whole")
    (tmp_path / "empty").mkdir()
    assert "no summary.json" in refused(one, tmp_path / "empty")
    assert cli.main(["grade-merge", str(one), str(two), "--out", str(graded / "whole")]) == 2
    assert "not a new or empty folder" in capsys.readouterr().err


def test_a_shard_needs_a_seed(tmp_path, capsys):
    subs = tmp_path / "subs"
    subs.mkdir()
    shutil.copy(SUBMISSIONS / "judy.py", subs / "judy.py")
    assert cli.main(["grade", str(subs), "--kind", "relu", "--out", str(tmp_path / "o"), "--shard", "1/2"]) == 2
    assert "--shard needs --seed" in capsys.readouterr().err
    assert cli.main(["grade", str(subs), "--kind", "relu", "--out", str(tmp_path / "o"), "--shard", "3/2"]) == 2


def test_a_shard_with_nothing_to_grade_still_writes_a_summary(tmp_path):
    subs = tmp_path / "subs"
    subs.mkdir()
    shutil.copy(SUBMISSIONS / "judy.py", subs / "judy.py")
    out = tmp_path / "o"
    assert cli.main(["grade", str(subs), "--kind", "relu", "--out", str(out), "--shard", "2/2", "--seed", "1"]) == 0
    data = json.loads((out / "summary.json").read_text())
    assert data["rows"] == [] and data["shard"]["total"] == 1 and data["shard"]["submissions"] == []
