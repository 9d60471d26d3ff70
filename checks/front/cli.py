"""The ``cnn-gradcheck`` command (also ``python -m checks``): the one parser, with three subcommands.

cnn-gradcheck check TARGET [--kind K] [--preset P] [--seed N] [--max-examples N | --profile dev|ci|thorough]
                           [--json FILE] [--oracles torch,fd] [--timeout S] [--quiet] [--plot DIR]
                           [--wall-timeout S] [--memory MB] [--in-process]
cnn-gradcheck selftest [MANIFEST] [--max-examples N] [--seed N] [--json FILE] [-k SUBSTRING] [--allow-missing]
cnn-gradcheck grade SUBMISSIONS_DIR --kind K | --layer KIND=Class ... --out DIR [--jobs N] (see checks.front.grade)

Each subcommand turns its flags into checks.job.Job records and hands them on; nothing here checks
anything. Exit statuses are checks.settings.Exit: 0 every property passed (selftest: every example got its
expected verdict; grade: the grading ran); 1 a property failed (selftest: a mismatch or a skipped
example); 2 the target, the manifest or the command line could not be used (one line on stderr); 3 an
internal error in cnn-gradcheck; 4 nothing failed but some gradient was judged by no oracle (e.g. ``--oracles
torch`` without torch): never a pass; 130 interrupted.

Only the standard library is imported up front: numpy, hypothesis and torch load inside the subcommands,
so ``--help`` answers at once.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from checks.adapt.targets import KINDS, PRESETS
from checks.front import argtypes, grade
from checks.job import CALL_SECONDS, MEMORY_BYTES, SHRINK_SECONDS, Job
from checks.settings import (
    DEFAULT_MAX_EXAMPLES,
    DEFAULT_PROFILE,
    DEFAULT_SEED,
    ORACLES,
    PROFILES,
    SELFTEST_MAX_EXAMPLES,
    STATUS_EXIT,
    Exit,
)

PROG = "cnn-gradcheck"
NETWORK = "network"
"""``--kind network``: a whole network of the user's layers (checks.pipeline.chain; not the internal reference kind)."""
MAX_DEFAULT_JOBS = 4
MiB = 1024**2


def default_jobs() -> int:
    return max(1, min(os.cpu_count() or 1, MAX_DEFAULT_JOBS))


class UsageProblem(Exception):
    """Something the user gave cannot be used; ``str()`` is the one line to print."""


# -- the parser -----------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Verify the backward pass of a from-scratch CNN layer against PyTorch and finite differences.",
        epilog=(
            "Exit status: 0 passed, 1 a property failed, 2 unusable target or arguments, 3 internal error, "
            "4 a gradient no oracle could judge."
        ),
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    _check_parser(sub)
    _selftest_parser(sub)
    _grade_parser(sub)
    return parser


def _check_parser(sub: Any) -> None:
    check = sub.add_parser(
        "check",
        help="check layers",
        description="Run every property on each layer and print a report (progress goes to stderr).",
        epilog="TARGET: path/to/file.py:Name or package.module:Name, Name being a LayerSpec or a class "
        "(a class needs --preset and --kind); path/to/file.py alone (no --kind) for every layer the file "
        "defines, each one's kind and convention inferred and said, ending with a summary table.",
    )
    check.add_argument(
        "targets",
        metavar="TARGET",
        nargs="+",
        help="path/to/file.py:Name, package.module:Name or path/to/file.py (one or more)",
    )
    check.add_argument(
        "--kind",
        choices=(*KINDS, NETWORK),
        help="layer kind (for classes; for function pairs when the file has several); network: a whole network of "
        "your layers (TARGET net.py:build returns them in forward order)",
    )
    check.add_argument(
        "--input-shape",
        type=_input_shape,
        metavar="D,D,...",
        help="--kind network: the shape of one input, e.g. 28,28 (default: INPUT_SHAPE in the network's module)",
    )
    check.add_argument(
        "--methods",
        type=_methods,
        metavar="ROLE=NAME,...",
        help="--kind network: the layers' method names, e.g. forward=go,backward=learn (default: METHODS in the "
        "network's module, else the usual names: forward, __call__, backward, backprop, bprop, ...)",
    )
    check.add_argument("--preset", choices=PRESETS, help="how to drive a class (not needed for a LayerSpec)")
    check.add_argument("--seed", type=argtypes.seed, default=DEFAULT_SEED, help="hypothesis seed (default 0)")
    check.add_argument("--max-examples", type=argtypes.positive_int, help="cases per property (overrides --profile)")
    check.add_argument(
        "--profile",
        choices=tuple(PROFILES),
        default=DEFAULT_PROFILE,
        help=", ".join(f"{k}: {v.examples}" for k, v in PROFILES.items())
        + f" examples per property (default {DEFAULT_PROFILE})",
    )
    check.add_argument("--json", metavar="FILE", help="also write the report as JSON to FILE ('-': stdout only)")
    check.add_argument(
        "--oracles", type=argtypes.oracles, default=ORACLES, metavar="LIST", help="comma-separated, default torch,fd"
    )
    check.add_argument(
        "--timeout",
        type=argtypes.seconds,
        metavar="S",
        help=f"seconds per call into the layer (default {CALL_SECONDS:g})",
    )
    check.add_argument(
        "--shrink-time",
        type=argtypes.budget,
        default=SHRINK_SECONDS,
        metavar="S",
        help=f"seconds a failure may spend shrinking to a smaller case, or 'none' (default {SHRINK_SECONDS:g})",
    )
    check.add_argument("--quiet", "-q", action="store_true", help="no progress on stderr")
    check.add_argument("--plot", metavar="DIR", help="write a heatmap PNG per failing gradient into DIR (matplotlib)")
    check.add_argument(
        "--in-process",
        action="store_true",
        help="import the layer into the checker's own process, to debug it under pdb: NOT a gate (the layer "
        "could change the verdict); by default it runs in a sandboxed worker process",
    )
    check.add_argument(
        "--isolate",
        action="store_true",
        help="accepted for compatibility: every check now runs the layer in its own sandboxed process",
    )
    check.add_argument(
        "--wall-timeout", type=argtypes.seconds, metavar="S", help="seconds for the whole check (default: no limit)"
    )
    check.add_argument(
        "--memory",
        type=argtypes.mebibytes,
        default=MEMORY_BYTES / MiB,
        metavar="MB",
        help=f"memory one call into the layer may allocate, in MiB (default {MEMORY_BYTES // MiB})",
    )
    check.set_defaults(run=run_check)


def _selftest_parser(sub: Any) -> None:
    selftest = sub.add_parser(
        "selftest",
        help="check every bundled example against its expected verdict",
        description="Run each example in MANIFEST through the checker and compare with its expected verdict.",
    )
    selftest.add_argument(
        "manifest",
        metavar="MANIFEST",
        nargs="?",
        default="examples/expected.json",
        help="JSON list of examples (default examples/expected.json); its paths are relative to --root",
    )
    selftest.add_argument(
        "--root",
        metavar="DIR",
        help="directory the manifest's paths start from (default: the manifest's folder's parent)",
    )
    selftest.add_argument(
        "--max-examples",
        type=argtypes.positive_int,
        default=SELFTEST_MAX_EXAMPLES,
        help=f"cases per property (default {SELFTEST_MAX_EXAMPLES})",
    )
    selftest.add_argument("--seed", type=argtypes.seed, default=DEFAULT_SEED, help="hypothesis seed (default 0)")
    selftest.add_argument(
        "-j",
        "--jobs",
        type=argtypes.positive_int,
        default=default_jobs(),
        help=f"examples run in parallel processes (default {default_jobs()}: the CPUs, at most {MAX_DEFAULT_JOBS})",
    )
    selftest.add_argument("--json", metavar="FILE", help="write per-example results as JSON to FILE")
    selftest.add_argument(
        "-k",
        dest="keyword",
        metavar="SUBSTRING",
        help="only examples whose target, spec, kind or convention contain it",
    )
    selftest.add_argument(
        "--allow-missing",
        action="store_true",
        help="examples without a usable spec are SKIPPED without failing the run",
    )
    selftest.add_argument(
        "--strict", action="store_true", help="a buggy example must also fail on nothing outside its fails_on"
    )
    selftest.add_argument("--quiet", "-q", action="store_true", help="no progress on stderr")
    selftest.set_defaults(run=run_selftest)


def _grade_parser(sub: Any) -> None:
    grading = sub.add_parser(
        "grade",
        help="grade a folder of submissions, each layer in a sandbox of its own",
        description="Check every submission's layers (one folder or .py file per student), each layer in a "
        "sandbox of its own with a time and memory limit, in parallel; write summary.csv/json and a report each.",
    )
    grading.add_argument("submissions", metavar="SUBMISSIONS_DIR", help="one folder or .py file per student")
    grading.add_argument(
        "--layer",
        action="append",
        default=[],
        metavar="KIND=Class",
        help="a layer to grade: KIND=ClassName[,OtherName] or KIND=file.py:ClassName (repeat per kind)",
    )
    grading.add_argument(
        "--kind",
        action="append",
        default=[],
        choices=grade.KINDS,
        help="a layer to grade under its usual seed-style name(s): "
        + "; ".join(f"{k}: {'/'.join(v)}" for k, v in grade.DEFAULT_CLASSES.items()),
    )
    grading.add_argument(
        "--preset", default="seed", choices=("seed", "nchw"), help="how to drive the classes (default seed)"
    )
    grading.add_argument("--out", required=True, metavar="DIR", help="where summary.csv, summary.json, reports/ go")
    grading.add_argument(
        "--jobs", "-j", type=argtypes.positive_int, default=os.cpu_count() or 1, help="checks at once (default: cores)"
    )
    grading.add_argument(
        "--seed", type=argtypes.seed, help="hypothesis seed (default: a secret one per run, recorded in the summary)"
    )
    grading.add_argument(
        "--max-examples",
        type=argtypes.positive_int,
        default=DEFAULT_MAX_EXAMPLES,
        help=f"cases per property ({DEFAULT_MAX_EXAMPLES})",
    )
    grading.add_argument(
        "--timeout",
        type=argtypes.seconds,
        default=grade.DEFAULT_TIMEOUT,
        metavar="S",
        help=f"seconds per check ({grade.DEFAULT_TIMEOUT:g})",
    )
    grading.add_argument(
        "--memory",
        type=argtypes.mebibytes,
        default=grade.DEFAULT_MEMORY / MiB,
        metavar="MB",
        help=f"memory one call into a layer may allocate, in MiB ({grade.DEFAULT_MEMORY // MiB})",
    )
    grading.add_argument(
        "--format",
        action="append",
        choices=grade.FORMATS,
        dest="formats",
        help="what to write besides summary.csv/json and reports/ (always written): gradescope adds "
        "Gradescope's results.json (one submission) or gradescope/SUBMISSION.json (several); repeatable",
    )
    grading.add_argument(
        "--rubric",
        metavar="FILE",
        help="points per layer and property, a .toml or .json file (default: 10 a layer, split over its "
        "properties; see checks/front/gradescope.py)",
    )
    grading.add_argument(
        "--shard",
        type=_shard,
        metavar="I/N",
        help="grade only part I of N of the submissions (round robin over their sorted names; needs --seed); "
        "merge the parts with grade-merge",
    )
    grading.add_argument(
        "--dask",
        metavar="ADDRESS",
        help="run the checks on the workers of the dask.distributed scheduler at ADDRESS (tcp://host:8786) "
        "instead of --jobs local processes (pip install 'cnn-gradcheck[dask]')",
    )
    grading.add_argument("--quiet", "-q", action="store_true", help="no progress on stderr")
    grading.set_defaults(run=run_grade)
    _grade_merge_parser(sub)


def _grade_merge_parser(sub: Any) -> None:
    merging = sub.add_parser(
        "grade-merge",
        help="merge the outputs of the shards of one grading run (grade --shard I/N)",
        description="Combine the output folders of every shard of one grading run into one summary, the one "
        "grading every submission at once with the same seed writes (up to the timings); refuses shards with "
        "other settings or seeds, overlapping shards and a missing shard.",
    )
    merging.add_argument("shards", metavar="SHARD_OUT", nargs="+", help="the --out folder of each shard")
    merging.add_argument("--out", required=True, metavar="DIR", help="a new or empty folder for the merged output")
    merging.add_argument(
        "--format",
        action="append",
        choices=grade.FORMATS,
        dest="formats",
        help="also write Gradescope's results (gradescope); repeatable",
    )
    merging.add_argument("--quiet", "-q", action="store_true", help="print only the one-line summary")
    merging.set_defaults(run=run_grade_merge)


def _shard(text: str) -> tuple[int, int]:
    """argparse type of --shard: 'I/N' -> (I, N), 1 <= I <= N."""
    index, sep, count = text.partition("/")
    if sep and index.strip().isdigit() and count.strip().isdigit():
        i, n = int(index), int(count)
        if 1 <= i <= n:
            return i, n
    raise argparse.ArgumentTypeError(f"expected I/N with 1 <= I <= N (e.g. 1/4), got {text!r}")


# -- check ----------------------------------------------------------------------------------------


class Progress:
    """'grad_weight ... PASS (25 examples)' per property, on ``stream``. On a terminal (``live``), a failure
    being shrunk shows on the same line as it goes ("shrinking: case 12, 340 entries"), and statuses are in
    colour unless NO_COLOR is set."""

    def __init__(self, stream: TextIO, *, live: bool | None = None, colour: bool | None = None) -> None:
        self.stream = stream
        self.live = _is_tty(stream) if live is None else live
        self.colour = wants_colour(stream) if colour is None else colour
        self.prop = ""

    def __call__(self, prop: str, report: Any) -> None:
        from checks.report import paint

        if report is None:
            self.prop = prop
            self.stream.write(f"  {prop:<18} ... ")
        else:
            if self.live:
                self.stream.write(f"\r\x1b[K  {prop:<18} ... ")
            status = paint(report.status.upper().replace("_", " "), report.status, self.colour)
            self.stream.write(f"{status} ({report.examples} examples)\n")
        self.stream.flush()

    def shrinking(self, prop: str, failures: int, entries: int) -> None:
        """A failing case was found while ``prop`` shrinks: say so in place, on a terminal only."""
        if self.live:
            self.stream.write(f"\r\x1b[K  {prop:<18} ... shrinking: case {failures}, {entries} entries")
            self.stream.flush()


def _is_tty(stream: TextIO) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def wants_colour(stream: TextIO) -> bool:
    """Colour on a terminal, unless NO_COLOR is set (to anything non-empty: no-color.org) or TERM is dumb."""
    return _is_tty(stream) and not os.environ.get("NO_COLOR") and os.environ.get("TERM") != "dumb"


def job_from_args(args: argparse.Namespace, target: str | None = None) -> Job:
    """The Job that ``cnn-gradcheck check`` flags describe, for ``target`` (default: the first TARGET)."""
    return Job(
        target or args.targets[0],
        kind=args.kind,
        preset=args.preset,
        seed=args.seed,
        max_examples=args.max_examples or PROFILES[args.profile].examples,
        oracles=tuple(args.oracles),
        call_seconds=args.timeout or CALL_SECONDS,
        memory_bytes=int(args.memory * MiB),
        shrink_seconds=args.shrink_time,
    )


def replay_command(job: Job) -> str:
    """The command that reruns exactly this check."""
    return " ".join([PROG, *job.replay_args()])


def write_json(destination: str, text: str) -> None:
    if destination == "-":
        sys.stdout.write(text + "\n")
        return
    try:
        Path(destination).write_text(text + "\n", encoding="utf-8")
    except OSError as exc:
        raise UsageProblem(f"--json {destination}: {exc.strerror or exc}") from None


def _write_plots(report: Any, directory: str) -> None:
    """Heatmaps of the failing gradients; without matplotlib, one line saying how to get it."""
    from checks.explain import plots

    ok, why = plots.plots_available()
    if not ok:
        print(f"{PROG}: --plot: {why}", file=sys.stderr)
        return
    for path in plots.write_plots(report, Path(directory)):
        print(f"{PROG}: wrote {path}", file=sys.stderr)


def _input_shape(text: str) -> tuple[int, ...]:
    """argparse type of --input-shape: '28,28' -> (28, 28), positive ints."""
    parts = [p.strip() for p in text.replace("x", ",").split(",") if p.strip()]
    if parts and all(p.isdigit() and int(p) > 0 for p in parts):
        return tuple(int(p) for p in parts)
    raise argparse.ArgumentTypeError(f"expected positive ints separated by commas (e.g. 28,28), got {text!r}")


METHOD_ROLES = ("forward", "backward")


def _methods(text: str) -> dict[str, str]:
    """argparse type of --methods: 'forward=go,backward=learn' -> {"forward": "go", "backward": "learn"}, each
    role at most once, each name an identifier."""
    pairs = [p.partition("=") for p in text.split(",") if p.strip()]
    methods = {role.strip(): name.strip() for role, _, name in pairs}
    if pairs and len(methods) == len(pairs) and all(r in METHOD_ROLES and n.isidentifier() for r, n in methods.items()):
        return methods
    raise argparse.ArgumentTypeError(f"expected forward=NAME and/or backward=NAME separated by commas, got {text!r}")


def run_network_check(args: argparse.Namespace) -> int:
    """``check TARGET --kind network``: the whole network (checks.pipeline.chain), its verdict as an exit status."""
    job = job_from_args(args)
    from checks import api
    from checks.adapt import targets

    if not args.quiet:
        print(f"{PROG}: {job.target} (network), seed {job.seed}", file=sys.stderr)
    try:
        report = api.check_network_job(
            job,
            args.input_shape,
            progress=None if args.quiet else Progress(sys.stderr),
            wall_seconds=args.wall_timeout,
            methods=args.methods,
        )
    except targets.TargetError as exc:
        if args.json:
            from checks.report import Report

            write_json(args.json, Report(target=job.target, kind=NETWORK, properties=[], error=str(exc)).to_json())
        print(f"{PROG}: cannot load {job.target}: {exc}", file=sys.stderr)
        return Exit.UNUSABLE
    try:
        if args.json:
            write_json(args.json, report.to_json())
        if args.json != "-":
            print(report.render(front="cli", colour=wants_colour(sys.stdout)), flush=True)
            at_fault = report.settings.get("network", {}).get("at_fault") or {}
            own = report.at_fault_report
            if at_fault.get("own_check"):  # the layer at fault's own check, after the network's
                print(f"\n{PROG}: {at_fault['own_check']}", flush=True)
            if own is not None:
                print(own.render(front="cli", colour=wants_colour(sys.stdout)), flush=True)
    except BrokenPipeError:
        stdout_gone()
    if not report.passed:
        failed = ", ".join(report.failed_properties) or report.error or "?"
        replay = f"{PROG} check {job.target} --kind {NETWORK} --seed {job.seed}"
        print(f"{PROG}: FAILED ({failed}); replay: {replay}", file=sys.stderr)
    return STATUS_EXIT[report.outcome()[0]]


def run_check(args: argparse.Namespace) -> int:
    """``cnn-gradcheck check``: one layer as before; several targets, or a file without a Name and without
    --kind (every layer it defines, inferred), through checks.front.many."""
    from checks.front import many

    if args.kind == NETWORK:
        return run_network_check(args)
    if args.input_shape is not None:
        raise UsageProblem("--input-shape is for --kind network")
    if args.methods is not None:
        raise UsageProblem("--methods is for --kind network")
    if len(args.targets) > 1 or many.surveys(args.targets[0], args):
        return many.run(args)
    return check_one(args, job_from_args(args))[0]


def check_one(args: argparse.Namespace, job: Job, *, json: bool = True, note: str = "") -> tuple[int, Any]:
    """Check ``job`` with the flags of ``args``: header and progress on stderr, the report on stdout (and in
    --json when ``json``); returns (exit status, Report or None when it could not be loaded). ``note``: a line
    for the header (what was inferred)."""
    from checks import api
    from checks.adapt import targets

    adapted: list[str] = []  # what the preset chose, for the header and the JSON settings

    def loaded(declaration: Any, isolation: str) -> None:
        adapted.append(declaration.adapted)
        if not args.quiet:
            inferred = f"\n{PROG}: inferred {note}" if note else ""
            how = f"\n{PROG}: adapted as {declaration.adapted}" if declaration.adapted else ""
            print(
                f"{PROG}: {job.target} ({declaration.kind}), seed {job.seed}, {job.max_examples} examples per "
                f"property, oracles {','.join(job.oracles)}{inferred}{how}\n{PROG}: {isolation}",
                file=sys.stderr,
            )

    try:
        report = api.check_job(
            job,
            progress=None if args.quiet else Progress(sys.stderr),
            in_process=args.in_process,
            wall_seconds=args.wall_timeout,
            on_loaded=loaded,
        )
    except targets.TargetError as exc:
        if args.json and json:
            from checks.report import Report

            write_json(
                args.json, Report(target=job.target, kind=job.kind or "", properties=[], error=str(exc)).to_json()
            )
        print(f"{PROG}: cannot load {job.target}: {exc}", file=sys.stderr)
        return Exit.UNUSABLE, None
    report.settings["adapted"] = adapted[0] if adapted else ""
    if note:
        report.settings["inferred"] = note
    status = STATUS_EXIT[report.outcome()[0]]
    try:
        if args.json and json:
            write_json(args.json, report.to_json())
        if args.json != "-":
            print(report.render(front="cli", colour=wants_colour(sys.stdout)), flush=True)
    except BrokenPipeError:  # `| head`: the reader has what it wanted; the verdict is still the exit status
        stdout_gone()
    if args.plot and not report.passed:
        _write_plots(report, args.plot)
    if not report.passed:
        failed = ", ".join(report.failed_properties) or report.error or "?"
        print(f"{PROG}: FAILED ({failed}); replay: {replay_command(job)}", file=sys.stderr)
    return status, report


def stdout_gone() -> None:
    """Point stdout at /dev/null once its reader has gone, so that nothing (not even the interpreter's
    final flush) writes to the closed pipe again."""
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)


# -- selftest -------------------------------------------------------------------------------------


def run_selftest(args: argparse.Namespace) -> int:
    from checks.front import selftest

    try:
        manifest = selftest.load_manifest(Path(args.manifest), root=Path(args.root) if args.root else None)
    except selftest.ManifestError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return Exit.UNUSABLE
    examples = selftest.select(manifest.examples, args.keyword)
    if not examples:
        print(f"{PROG}: no example in {args.manifest} matches -k {args.keyword!r}", file=sys.stderr)
        return Exit.UNUSABLE
    progress = None if args.quiet else selftest.ProgressLine(sys.stderr, len(examples))
    outcomes = selftest.run(
        examples,
        manifest.root,
        max_examples=args.max_examples,
        seed=args.seed,
        jobs=args.jobs,
        strict=args.strict,
        progress=progress,
    )
    print(selftest.render_table(outcomes))
    ok = selftest.succeeded(outcomes, allow_missing=args.allow_missing)
    print(selftest.summary(outcomes, allow_missing=args.allow_missing))
    if args.json:
        settings = {
            "manifest": str(manifest.path),
            "root": str(manifest.root),
            "max_examples": args.max_examples,
            "seed": args.seed,
            "strict": args.strict,
        }
        write_json(args.json, selftest.to_json(outcomes, settings=settings))
    return Exit.OK if ok else Exit.FAILED


# -- grade ----------------------------------------------------------------------------------------


def run_grade(args: argparse.Namespace) -> int:
    """``cnn-gradcheck grade``: grade the folder, print the table, return the exit status."""
    layers: list[str] = [*args.layer, *args.kind] or list(grade.KINDS)

    def show(done: int, total: int, row: grade.Row) -> None:
        print(f"[{done}/{total}] {row.submission} {row.layer}: {row.status} ({row.seconds:.1f} s)", file=sys.stderr)

    from checks.front import gradescope

    formats = args.formats or ["summary"]
    try:
        rubric = gradescope.load_rubric(args.rubric) if args.rubric else None
        summary = grade.grade(
            args.submissions,
            layers,
            out_dir=args.out,
            preset=args.preset,
            jobs=args.jobs,
            seed=args.seed,
            max_examples=args.max_examples,
            timeout=args.timeout,
            memory_bytes=int(args.memory * MiB),
            progress=None if args.quiet else show,
            rubric=rubric,
            formats=formats,
            shard=args.shard,
            dask=args.dask,
        )
    except (grade.GradeError, gradescope.RubricError) as exc:
        print(f"{PROG} grade: {exc}", file=sys.stderr)
        return Exit.UNUSABLE
    print(summary.render_table())
    print(_grade_line(summary, args.out))
    return Exit.INTERNAL if summary.counts.get("internal") else Exit.OK


def _grade_line(summary: grade.Summary, out: str) -> str:
    """The closing line of grade and grade-merge: counts, points, wall time, what was written."""
    counts = ", ".join(f"{n} {s}" for s, n in summary.counts.items()) or "none"
    points = sum(r.score for r in summary.rows), sum(r.max_score for r in summary.rows)
    where = f"on dask {summary.runner['dask']} ({summary.jobs} threads)" if "dask" in summary.runner else ""
    where = where or f"with {summary.jobs} jobs"
    part = f"shard {summary.shard['index']}/{summary.shard['count']}: " if summary.shard else ""
    wrote = f"wrote {Path(out) / 'summary.csv'}, summary.json and reports/"
    if "gradescope" in summary.formats:
        single = len({r.submission for r in summary.rows}) == 1
        wrote += ", results.json" if single else ", gradescope/"
    return (
        f"{part}{len(summary.rows)} checks ({counts}), {points[0]:.2f} of {points[1]:.2f} points, in "
        f"{summary.wall_seconds:.1f} s {where}; {wrote}"
    )


def run_grade_merge(args: argparse.Namespace) -> int:
    """``cnn-gradcheck grade-merge``: merge the shards' outputs, print the table, return the exit status."""
    from checks.front import shards

    try:
        summary = shards.merge(args.out, args.shards, formats=args.formats or ["summary"])
    except grade.GradeError as exc:
        print(f"{PROG} grade-merge: {exc}", file=sys.stderr)
        return Exit.UNUSABLE
    if not args.quiet:
        print(summary.render_table())
    print(f"merged {len(args.shards)} shards: " + _grade_line(summary, args.out))
    return Exit.INTERNAL if summary.counts.get("internal") else Exit.OK


# -- entry point ----------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` (default: sys.argv[1:]), run the subcommand, return the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help (0) or a usage error (2): argparse has printed it
        return int(exc.code or 0) if isinstance(exc.code, int) or exc.code is None else Exit.UNUSABLE
    try:
        return args.run(args)
    except UsageProblem as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return Exit.UNUSABLE
    except KeyboardInterrupt:
        print(f"\n{PROG}: interrupted", file=sys.stderr)
        return Exit.INTERRUPTED
    except BrokenPipeError:  # the reader of our output went away (`| head`): not an error of ours
        stdout_gone()
        return Exit.PIPE
    except Exception:
        print(
            f"{PROG}: internal error in cnn-gradcheck (not in your layer); please report it with this traceback:",
            file=sys.stderr,
        )
        traceback.print_exc()
        return Exit.INTERNAL


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
