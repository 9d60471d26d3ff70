"""The ``cnn-gradcheck`` command (also ``python -m checks``).

cnn-gradcheck check TARGET [--kind K] [--preset P] [--seed N] [--max-examples N | --profile dev|ci|thorough]
                           [--json FILE] [--oracles torch,fd] [--timeout S] [--quiet]
cnn-gradcheck selftest [MANIFEST] [--max-examples N] [--seed N] [--json FILE] [-k SUBSTRING] [--allow-missing]
cnn-gradcheck grade SUBMISSIONS_DIR --kind K | --layer KIND=Class ... --out DIR [--jobs N] (see checks.front.grade)
cnn-gradcheck check ... --isolate [--wall-timeout S] [--memory MB]   (the check in its own subprocess)

Exit status: 0 every property passed (selftest: every example got its expected verdict); 1 a property
failed (selftest: a mismatch or a skipped example); 2 the target, the manifest or the command line
could not be used (one line on stderr); 3 an internal error in cnn-gradcheck; 130 interrupted.

Only argparse is imported up front: numpy, hypothesis and torch load inside the subcommands, so
``--help`` answers at once.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from checks.adapt.targets import KINDS, PRESETS  # stdlib only at import: --help stays fast
from checks.front import argtypes, grade
from checks.sandbox import isolate  # stdlib only at import, like targets
from checks.settings import DEFAULT_PROFILE, ORACLES, PROFILES, SELFTEST_MAX_EXAMPLES, Exit

PROG = "cnn-gradcheck"
MAX_DEFAULT_JOBS = 4
EXIT_OK, EXIT_FAILED, EXIT_UNUSABLE, EXIT_INTERNAL, EXIT_INTERRUPTED = (
    Exit.OK,
    Exit.FAILED,
    Exit.UNUSABLE,
    Exit.INTERNAL,
    Exit.INTERRUPTED,
)


def default_jobs() -> int:
    return max(1, min(os.cpu_count() or 1, MAX_DEFAULT_JOBS))


class UsageProblem(Exception):
    """Something the user gave cannot be used; ``str()`` is the one line to print."""


# -- argument types -------------------------------------------------------------------------------


_positive_int, _seed, _seconds = argtypes.positive_int, argtypes.seed, argtypes.seconds


def _oracles(text: str) -> tuple[str, ...]:
    names = tuple(part.strip() for part in text.split(",") if part.strip())
    unknown = [n for n in names if n not in ORACLES]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"expected a comma-separated subset of {','.join(ORACLES)}, got {text!r}")
    return names


# -- the parser -----------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Verify the backward pass of a from-scratch CNN layer against PyTorch and finite differences.",
        epilog="Exit status: 0 passed, 1 a property failed, 2 unusable target or arguments, 3 internal error.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    check = sub.add_parser(
        "check",
        help="check one layer",
        description="Run every property on one layer and print a report (progress goes to stderr).",
        epilog="TARGET: path/to/file.py:Name or package.module:Name, Name being a LayerSpec or a class "
        "(a class needs --preset and --kind); path/to/file.py alone for CS231n function pairs.",
    )
    check.add_argument("target", metavar="TARGET", help="path/to/file.py:Name, package.module:Name or path/to/file.py")
    check.add_argument(
        "--kind", choices=KINDS, help="layer kind (for classes; for function pairs when the file has several)"
    )
    check.add_argument("--preset", choices=PRESETS, help="how to drive a class (not needed for a LayerSpec)")
    check.add_argument("--seed", type=_seed, default=0, help="hypothesis seed (default 0)")
    check.add_argument("--max-examples", type=_positive_int, help="cases per property (overrides --profile)")
    check.add_argument(
        "--profile",
        choices=tuple(PROFILES),
        default=DEFAULT_PROFILE,
        help=", ".join(f"{k}: {v}" for k, v in PROFILES.items())
        + f" examples per property (default {DEFAULT_PROFILE})",
    )
    check.add_argument("--json", metavar="FILE", help="also write the report as JSON to FILE ('-': stdout only)")
    check.add_argument(
        "--oracles", type=_oracles, default=ORACLES, metavar="LIST", help="comma-separated, default torch,fd"
    )
    check.add_argument("--timeout", type=_seconds, metavar="S", help="seconds per call into the layer (default 10)")
    check.add_argument("--quiet", "-q", action="store_true", help="no progress on stderr")
    check.add_argument("--plot", metavar="DIR", help="write a heatmap PNG per failing gradient into DIR (matplotlib)")
    isolate.add_arguments(check)  # --isolate, --wall-timeout, --memory: the check in its own subprocess
    check.set_defaults(run=run_check)

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
        type=_positive_int,
        default=SELFTEST_MAX_EXAMPLES,
        help=f"cases per property (default {SELFTEST_MAX_EXAMPLES})",
    )
    selftest.add_argument("--seed", type=_seed, default=0, help="hypothesis seed (default 0)")
    selftest.add_argument(
        "-j",
        "--jobs",
        type=_positive_int,
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

    grading = sub.add_parser(
        "grade",
        help="grade a folder of submissions, each check isolated",
        description="Check every submission's layers (one folder or .py file per student), each in its own "
        "subprocess with a time and memory limit, in parallel; write summary.csv/json and a report each.",
    )
    grade.build_parser(grading)
    return parser


# -- check ----------------------------------------------------------------------------------------


class Progress:
    """'grad_weight ... PASS (25 examples)' per property, on ``stream``."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def __call__(self, prop: str, report: Any) -> None:
        if report is None:
            self.stream.write(f"  {prop:<18} ... ")
        else:
            self.stream.write(f"{report.status.upper()} ({report.examples} examples)\n")
        self.stream.flush()


def replay_command(args: argparse.Namespace, max_examples: int) -> str:
    """The command that reruns exactly this check."""
    parts = [PROG, "check", args.target]
    if args.kind:
        parts += ["--kind", args.kind]
    if args.preset:
        parts += ["--preset", args.preset]
    parts += ["--seed", str(args.seed), "--max-examples", str(max_examples)]
    if tuple(args.oracles) != ORACLES:
        parts += ["--oracles", ",".join(args.oracles)]
    if args.timeout:
        parts += ["--timeout", f"{args.timeout:g}"]
    return " ".join(parts)


def _write_json(destination: str, text: str) -> None:
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


def run_check(args: argparse.Namespace) -> int:
    if getattr(args, "isolate", False):
        return isolate.check_isolated_main(args)
    from checks.adapt import targets

    max_examples = args.max_examples or PROFILES[args.profile]
    try:
        spec = targets.load(args.target, kind=args.kind, preset=args.preset)
    except targets.TargetError as exc:
        if args.json:
            from checks.report import Report

            _write_json(
                args.json, Report(target=args.target, kind=args.kind or "", properties=[], error=str(exc)).to_json()
            )
        print(f"{PROG}: cannot load {args.target}: {exc}", file=sys.stderr)
        return EXIT_UNUSABLE

    from checks.adapt.guard import Limits
    from checks.api import check

    limits = Limits(seconds=args.timeout) if args.timeout else None
    if not args.quiet:
        print(
            f"{PROG}: {args.target} ({spec.kind}), seed {args.seed}, {max_examples} examples per property, "
            f"oracles {','.join(args.oracles)}",
            file=sys.stderr,
        )
    report = check(
        spec,
        max_examples=max_examples,
        seed=args.seed,
        oracles=args.oracles,
        limits=limits,
        progress=None if args.quiet else Progress(sys.stderr),
        target=args.target,
    )
    if args.json:
        _write_json(args.json, report.to_json())
    if args.json != "-":
        print(report.render())
    if args.plot and not report.passed:
        _write_plots(report, args.plot)
    if not report.passed:
        failed = ", ".join(report.failed_properties) or report.error or "?"
        print(f"{PROG}: FAILED ({failed}); replay: {replay_command(args, max_examples)}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


# -- selftest -------------------------------------------------------------------------------------


def run_selftest(args: argparse.Namespace) -> int:
    from checks.front import selftest

    try:
        manifest = selftest.load_manifest(Path(args.manifest), root=Path(args.root) if args.root else None)
    except selftest.ManifestError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return EXIT_UNUSABLE
    examples = selftest.select(manifest.examples, args.keyword)
    if not examples:
        print(f"{PROG}: no example in {args.manifest} matches -k {args.keyword!r}", file=sys.stderr)
        return EXIT_UNUSABLE
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
        _write_json(args.json, selftest.to_json(outcomes, settings=settings))
    return EXIT_OK if ok else EXIT_FAILED


# -- entry point ----------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` (default: sys.argv[1:]), run the subcommand, return the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help (0) or a usage error (2): argparse has printed it
        return int(exc.code or 0) if isinstance(exc.code, int) or exc.code is None else EXIT_UNUSABLE
    try:
        return args.run(args)
    except UsageProblem as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return EXIT_UNUSABLE
    except KeyboardInterrupt:
        print(f"\n{PROG}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception:
        print(
            f"{PROG}: internal error in cnn-gradcheck (not in your layer); please report it with this traceback:",
            file=sys.stderr,
        )
        traceback.print_exc()
        return EXIT_INTERNAL


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
