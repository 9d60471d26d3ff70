"""Sharding a grading run over a CI matrix, and merging the parts into one summary.

``cnn-gradcheck grade SUBMISSIONS_DIR --shard I/N --seed S ...`` grades part I (1-based) of N: the
submissions in the grader's own order (sorted by their entry's file name, as ``grade.discover`` lists them),
the k-th of them (k = 0, 1, ...) going to shard ``k % N + 1``. Round robin over the sorted list rather than
a hash of the name: the parts differ in size by at most one submission whatever the names, and
every submission is in exactly one shard, provided that every shard sees the same folder; a shard records
what it saw (the number of submissions and a sha256 of their names), and the merge refuses parts that saw
different folders. ``--shard`` needs ``--seed``: a shard that drew its own secret seed could not be merged.

A shard writes a normal output folder (summary.csv, summary.json, reports/) whose summary.json has a
``shard`` section: ``index``, ``count``, ``total`` (submissions in the folder), ``names_sha256`` and
``submissions`` (this shard's). ``cnn-gradcheck grade-merge SHARD_OUT... --out DIR`` combines all N parts
into DIR: the summary is the one a single run over every submission with the same seed writes (same
rows, counts, properties and submissions, in the same order), up to the timings (each row's ``seconds``)
and the ``run`` section, which for a merge gives the earliest start, the longest shard's wall time, the
jobs added up and the number of parts. The merge refuses parts with different settings (seed, layers,
preset, limits, rubric, sandbox...), parts that overlap (the same shard twice, or a submission in two
parts), parts of different splits (N, or the folder) and an incomplete set (a missing shard).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from checks.front.grade import SUMMARY_SCHEMA, GradeError, Row, Submission, Summary, safe_names, write_atomic


def parse(text: str) -> tuple[int, int]:
    """'2/4' -> (2, 4): shard 2 of 4 (1-based); ValueError with the reason otherwise."""
    index, sep, count = text.partition("/")
    try:
        i, n = int(index), int(count)
    except ValueError:
        raise ValueError(f"{text!r}: expected I/N, e.g. 1/4") from None
    if not sep or n < 1 or not 1 <= i <= n:
        raise ValueError(f"{text!r}: expected I/N with 1 <= I <= N, e.g. 1/4")
    return i, n


def names_digest(names: Sequence[str]) -> str:
    """The sha256 of the submission names in order (what a shard saw of the folder)."""
    return hashlib.sha256("\n".join(names).encode("utf-8", "surrogateescape")).hexdigest()


def select(submissions: Sequence[Submission], index: int, count: int) -> tuple[list[Submission], dict[str, Any]]:
    """Shard ``index`` of ``count`` of ``submissions`` (in discover's order) and its summary section."""
    if count < 1 or not 1 <= index <= count:
        raise GradeError(f"--shard {index}/{count}: expected I/N with 1 <= I <= N")
    mine = [s for k, s in enumerate(submissions) if k % count == index - 1]
    record = {
        "index": index,
        "count": count,
        "total": len(submissions),
        "names_sha256": names_digest([s.name for s in submissions]),
        "submissions": [s.name for s in mine],
    }
    return mine, record


# -- merging ---------------------------------------------------------------------------------------------


def _read(folder: Path) -> dict[str, Any]:
    path = folder / "summary.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise GradeError(f"{folder}: no summary.json to merge ({exc.strerror or exc})") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise GradeError(f"{path}: not a summary ({exc})") from None
    if not isinstance(data, dict) or data.get("schema") != SUMMARY_SCHEMA:
        raise GradeError(f"{path}: not a {SUMMARY_SCHEMA} summary")
    shard = data.get("shard")
    if not isinstance(shard, dict) or not {"index", "count", "total", "names_sha256", "submissions"} <= set(shard):
        raise GradeError(f"{path}: not a shard's summary (graded without --shard)")
    return data


def _check_out(out: Path, parts: Sequence[Path]) -> None:
    if out.is_symlink():
        raise GradeError(f"--out {out} is a symlink: give a real folder")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise GradeError(f"--out {out} is not a new or empty folder: choose another one")
    resolved = out.resolve()
    for part in parts:
        if resolved == part.resolve() or part.resolve() in resolved.parents:
            raise GradeError(f"--out {out} is inside the shard output {part}: choose a folder outside it")


def _agree(parts: list[tuple[Path, dict[str, Any]]]) -> None:
    """Refuse parts that cannot be one run: other settings, another split, overlaps, a missing part."""
    (first_dir, first), *rest = parts
    for folder, data in rest:
        if data["settings"] != first["settings"]:
            keys = sorted(
                k
                for k in set(data["settings"]) | set(first["settings"])
                if data["settings"].get(k) != first["settings"].get(k)
            )
            what = "a different seed" if keys == ["seed"] else f"different settings ({', '.join(keys)})"
            raise GradeError(f"{folder} was graded with {what} than {first_dir}: the shards cannot be merged")
        for key, what in (("count", "a different number of shards"), ("total", "a different submissions folder")):
            if data["shard"][key] != first["shard"][key]:
                raise GradeError(f"{folder} is a shard of {what} than {first_dir}")
        if data["shard"]["names_sha256"] != first["shard"]["names_sha256"]:
            raise GradeError(f"{folder} saw a different submissions folder than {first_dir} (other names)")
    count = first["shard"]["count"]
    seen: dict[int, Path] = {}
    owner: dict[str, Path] = {}
    for folder, data in parts:
        index = data["shard"]["index"]
        if index in seen:
            raise GradeError(f"{folder} and {seen[index]} are both shard {index}/{count}")
        seen[index] = folder
        for name in data["shard"]["submissions"]:
            if name in owner:
                raise GradeError(f"overlapping shards: {name} is in both {owner[name]} and {folder}")
            owner[name] = folder
    missing = [f"{i}/{count}" for i in range(1, count + 1) if i not in seen]
    if missing:
        raise GradeError(f"shard(s) {', '.join(missing)} missing: give every part of the run to merge it")
    if len(owner) != first["shard"]["total"]:
        raise GradeError(f"the shards hold {len(owner)} submissions, not the {first['shard']['total']} they saw")


def _reports(folder: Path) -> dict[str, tuple[Path, dict[str, Any]]]:
    """Submission name -> (its reports/NAME.json path, the document), for one part."""
    found = {}
    reports = folder / "reports"
    for path in sorted(reports.glob("*.json")) if reports.is_dir() else []:
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise GradeError(f"{path}: unreadable report ({exc})") from None
        if isinstance(document, dict) and isinstance(document.get("submission"), str):
            found[document["submission"]] = (path, document)
    return found


def merge(
    out_dir: str | os.PathLike[str],
    shard_dirs: Sequence[str | os.PathLike[str]],
    *,
    formats: Sequence[str] = ("summary",),
) -> Summary:
    """Merge the output folders of every shard of one run into ``out_dir`` (a new or empty folder) and
    return the merged Summary; GradeError when the parts cannot be one run (see the module docstring)."""
    from checks.front.grade import FORMATS, write_gradescope

    unknown = sorted(set(formats) - set(FORMATS))
    if unknown:
        raise GradeError(f"--format {', '.join(unknown)}: expected {' or '.join(FORMATS)}")
    if not shard_dirs:
        raise GradeError("nothing to merge: give the output folder of every shard")
    out, folders = Path(out_dir), [Path(d) for d in shard_dirs]
    _check_out(out, folders)
    parts = [(folder, _read(folder)) for folder in folders]
    _agree(parts)
    by_index = {data["shard"]["index"]: data for _, data in parts}
    count, total = parts[0][1]["shard"]["count"], parts[0][1]["shard"]["total"]
    queues = {i: list(data["shard"]["submissions"]) for i, data in by_index.items()}
    order = [queues[k % count + 1].pop(0) for k in range(total)]  # the whole run's order, re-interleaved
    settings = parts[0][1]["settings"]
    known = set(Row.__dataclass_fields__)
    rows = [Row(**{k: v for k, v in r.items() if k in known}) for _, data in parts for r in data["rows"]]
    layer_order = {kind: i for i, kind in enumerate(settings.get("layers", {}))}
    rows.sort(key=lambda r: (r.submission, layer_order.get(r.layer, len(layer_order)), r.layer))
    record = {}
    for name in order:
        record[name] = next((d["submissions"][name] for _, d in parts if name in d.get("submissions", {})), {})
    runs = [data.get("run") or {} for _, data in parts]
    summary = Summary(
        rows,
        {},
        settings,
        out,
        wall_seconds=max(float(r.get("wall_seconds") or 0.0) for r in runs),
        jobs=sum(int(r.get("jobs") or 0) for r in runs),
        started=min((str(r.get("started") or "") for r in runs), default=""),
        submissions=record,
        formats=tuple(dict.fromkeys(formats)),
        runner={"merged": len(parts)},
    )
    out.mkdir(parents=True, exist_ok=True)
    write_atomic(out, "summary.json", json.dumps(summary.to_dict(), indent=2) + "\n")
    write_atomic(out, "summary.csv", summary.to_csv())
    reports_out = out / "reports"
    reports_out.mkdir()
    documents: dict[str, tuple[Path, dict[str, Any]]] = {}
    for folder, _ in parts:
        documents.update(_reports(folder))
    names = list(dict.fromkeys(r.submission for r in rows))
    safe = safe_names(names)
    for name in names:
        if name not in documents:
            raise GradeError(f"no report of {name} in any shard's reports/: the shard outputs are incomplete")
        path, document = documents[name]
        write_atomic(reports_out, f"{safe[name]}.json", json.dumps(document, indent=2) + "\n")
        text = path.with_suffix(".txt")
        if text.is_file():
            write_atomic(reports_out, f"{safe[name]}.txt", text.read_text(encoding="utf-8"))
    if "gradescope" in summary.formats:
        found = {
            (name, layer): entry
            for name, (_, document) in documents.items()
            for layer, entry in (document.get("layers") or {}).items()
            if isinstance(entry, dict)
        }
        write_gradescope(out, rows, found, settings)
    return summary
