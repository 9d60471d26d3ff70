"""What a student waits for: a whole ``cnn-gradcheck check`` command, in units of ``python -c "import torch"``.

Both are wall times of fresh processes, measured in the same run.

Run ``python -m benchmarks.user_bench`` (``make bench`` runs it after ``benchmarks.bench``; options through
``make bench USER_BENCH_ARGS=...``): ``--repeat N`` timed runs per command (median; default 1), ``--only TEXT``
the commands whose layer, bug or target contains TEXT, ``--warmup N`` untimed runs first (default 1),
``--timeout S`` per command (default 900; past it the command's process group is killed and the row is
WRONG), ``--strict`` to exit 1 when a target is missed.

Method:
- The unit is the cost of starting Python and importing torch once: ``python -c "import torch"`` with the
  interpreter running this block (the venv's), a fresh process each time, the median of 3 runs. The three
  are spread over the block (before the first command, in the middle, after the last), so a load that drifts
  while the block runs weighs on both sides of the ratio.
- Each command is what a student types, run as a fresh process from the repository root with default
  settings (the ``ci`` profile: 25 examples per property, seed 0, the sandboxed worker): the console script
  ``cnn-gradcheck`` next to the interpreter, ``check TARGET --kind K`` and ``--preset P`` where the target is
  a class or a function-pair file (a ``LayerSpec`` needs no preset). The wall time covers everything: the
  interpreter, imports, the sandbox, exploration, shrinking, the explanation and the printed report.
- Targets, as ratios to the baseline (goals being worked on, not a gate):

  | command | target |
  |---|---|
  | a correct layer (exit 0) | <= 3x |
  | a buggy layer (exit 1; shrinking and the explanation included) | <= 10x |
  | the slowest command of the set | <= 30x |

- Beside the wall-time ratio, ``cpu x``: the command's CPU time (user + system, its whole process tree, the
  sandboxed worker included) over the baseline's. Report only, no target: other work on a shared machine
  inflates wall times much more than CPU times, so when the two ratios disagree the machine was busy.
- A command whose exit status is not the expected one (0 for a correct layer, 1 for a buggy one) is WRONG:
  its time is not a figure, and the block exits 1 whatever the options (as ``benchmarks.bench`` does for a
  wrong result). A missed target changes the exit status only under ``--strict``.

The set (``CASES``): the seed article's layers as ``examples/seed_style/`` writes them (Conv3x3, the 2x2
max-pool, ReLU, the dense layer), the CS231n conv function pair (``examples/function_pairs/layers_naive.py``)
and the vectorised NCHW conv class (``examples/nchw_classes/specs.py:conv2d``), each correct and with one
classic bug from the bundled examples (``examples/expected.json`` says what each must get).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import resource
import shlex
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from checks.settings import Exit

REPO = Path(__file__).resolve().parents[1]
BASELINE_CODE = "import torch"
BASELINE_RUNS = 3
PASS_TARGET = 3.0  # a correct layer's default check
FAIL_TARGET = 10.0  # a buggy layer's default check, shrinking included
WORST_TARGET = 30.0  # the slowest command of the set
CLI_NAME = "cnn-gradcheck"
TAIL_LINES = 4  # an internal error's exception line comes before hypothesis's replay hint
KILL_GRACE = 10.0  # seconds a timed-out command's pipes may stay open after its group was killed


@dataclass(frozen=True)
class Case:
    """One command of the set. ``bug`` is empty for a correct layer; ``preset`` None for a LayerSpec target."""

    layer: str
    target: str
    kind: str
    preset: str | None
    bug: str = ""

    @property
    def expected(self) -> str:
        return "fail" if self.bug else "pass"

    @property
    def label(self) -> str:
        return f"{self.layer}: {'bug: ' + self.bug if self.bug else 'correct'}"


CASES: tuple[Case, ...] = (
    Case("seed conv 3x3", "examples/seed_style/layers.py:Conv3x3", "conv", "seed"),
    Case(
        "seed conv 3x3",
        "examples/seed_style/conv_rotated_scatter.py:ConvRotatedScatter",
        "conv",
        "seed",
        "kernel rotated in the scatter form",
    ),
    Case("seed max-pool 2", "examples/seed_style/layers.py:MaxPoolLayer", "maxpool", "seed"),
    Case(
        "seed max-pool 2",
        "examples/seed_style/maxpool_all_ties.py:MaxPoolAllTies",
        "maxpool",
        "seed",
        "gradient to every tied maximum",
    ),
    Case("seed ReLU", "examples/seed_style/layers.py:ReLULayer", "relu", "seed"),
    Case(
        "seed ReLU",
        "examples/seed_style/relu_output_below_zero.py:ReLUOutputBelowZero",
        "relu",
        "seed",
        "mask on output < 0",
    ),
    Case("seed dense", "examples/seed_style/layers.py:FullyConnectedLayer", "dense", "seed"),
    Case(
        "seed dense",
        "examples/seed_style/dense_hardcoded.py:FullyConnectedHardcoded",
        "dense",
        "seed",
        "sizes hard-coded (1352, 10)",
    ),
    Case("CS231n conv pair", "examples/function_pairs/layers_naive.py", "conv", "function_pair"),
    Case(
        "CS231n conv pair",
        "examples/function_pairs/conv_empty_crop.py",
        "conv",
        "function_pair",
        "pad:-pad crop empty at pad 0",
    ),
    Case("NCHW vectorised conv", "examples/nchw_classes/specs.py:conv2d", "conv", None),
    Case(
        "NCHW vectorised conv",
        "examples/nchw_classes/specs.py:conv_kernel_not_rotated",
        "conv",
        None,
        "kernel not rotated in dX",
    ),
)


# --------------------------------------------------------------------------------------------------
# Commands


def cli_prefix(python: str) -> list[str]:
    """How the student starts the checker: the console script installed beside ``python`` (a venv's bin/),
    else ``python -m checks`` (the same program without the script's wrapper)."""
    script = Path(python).parent / CLI_NAME
    return [str(script)] if script.is_file() else [python, "-m", "checks"]


def baseline_command(python: str) -> list[str]:
    """The unit of the ratios: a fresh ``python -c "import torch"``."""
    return [python, "-c", BASELINE_CODE]


def command(case: Case, prefix: Sequence[str]) -> list[str]:
    """``<prefix> check TARGET --kind K [--preset P]``: what a student types, default settings otherwise."""
    preset = ["--preset", case.preset] if case.preset else []
    return [*prefix, "check", case.target, "--kind", case.kind, *preset]


def shown(cmd: Sequence[str], prefix: Sequence[str]) -> str:
    """The command as the table prints it: the prefix written as the student's ``cnn-gradcheck``."""
    return shlex.join([CLI_NAME, *cmd[len(prefix) :]])


def schedule(jobs: int, baseline_runs: int) -> list[int | None]:
    """The order of the timed runs: jobs 0..jobs-1 in order, with ``baseline_runs`` baseline runs (None) before
    the jobs numbered k * jobs // (baseline_runs - 1), k = 0..baseline_runs-1 (a job number equal to ``jobs``:
    after the last job): the first before every job, the last after every job, the others evenly between."""
    if baseline_runs < 1 or jobs < 0:
        raise ValueError(f"need baseline_runs >= 1 and jobs >= 0, got {baseline_runs} and {jobs}")
    spread = max(baseline_runs - 1, 1)
    slots = [k * jobs // spread for k in range(baseline_runs)]
    order: list[int | None] = []
    for position in range(jobs + 1):
        order.extend([None] * slots.count(position))
        if position < jobs:
            order.append(position)
    return order


# --------------------------------------------------------------------------------------------------
# Ratios and verdicts


def ratio(seconds: float, baseline: float) -> float:
    """seconds / baseline: how many ``import torch`` start-ups the command costs."""
    if not baseline > 0:
        raise ValueError(f"the baseline must be a positive time, got {baseline!r}")
    return seconds / baseline


def expected_exit(case: Case) -> int:
    """The exit status the command must end with: 0 for a correct layer, 1 for a buggy one."""
    return int(Exit.FAILED if case.bug else Exit.OK)


def target_for(case: Case) -> float:
    """The largest acceptable ratio of one command: PASS_TARGET for a correct layer, FAIL_TARGET for a buggy one."""
    return FAIL_TARGET if case.bug else PASS_TARGET


def verdict(value: float, target: float, correct: bool = True) -> str:
    """PASS when value <= target, MISS above it; WRONG when the command's verdict was not the expected one."""
    if not correct:
        return "WRONG"
    return "PASS" if value <= target else "MISS"


@dataclass(frozen=True)
class Row:
    """The timed runs of one command: ``seconds`` the wall time of each, ``exits`` its exit statuses; ``cpu``
    the CPU time (user + system) of each run's whole process tree and ``baseline_cpu`` the baseline's (median),
    when measured: shown beside the wall-time ratio because a load on the machine inflates it much less."""

    case: Case
    shown: str
    seconds: tuple[float, ...]
    exits: tuple[int, ...]
    baseline: float
    tail: str = ""  # the last lines the command printed (its last run), shown when its verdict was wrong
    cpu: tuple[float, ...] = ()
    baseline_cpu: float | None = None

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    @property
    def ratio(self) -> float:
        return ratio(self.median, self.baseline)

    @property
    def cpu_ratio(self) -> float | None:
        """median CPU time / the baseline's median CPU time; None when either was not measured."""
        if not self.cpu or self.baseline_cpu is None:
            return None
        return ratio(statistics.median(self.cpu), self.baseline_cpu)

    @property
    def correct(self) -> bool:
        return all(e == expected_exit(self.case) for e in self.exits)

    @property
    def target(self) -> float:
        return target_for(self.case)

    @property
    def met(self) -> str:
        return verdict(self.ratio, self.target, self.correct)


def worst(rows: Sequence[Row]) -> Row | None:
    """The row with the largest ratio (the longest wait of the set) among those whose verdict was right (a
    wrong one's time is not a figure); None when there is none."""
    timed = [r for r in rows if r.correct]
    return max(timed, key=lambda r: r.ratio) if timed else None


def exit_status(rows: Sequence[Row], strict: bool) -> int:
    """1 when a command's verdict was wrong; under ``strict`` also when any target (worst case included) was
    missed; 0 otherwise."""
    if any(not r.correct for r in rows):
        return 1
    slow = worst(rows)
    missed = any(r.met == "MISS" for r in rows) or (slow is not None and slow.ratio > WORST_TARGET)
    return 1 if strict and missed else 0


# --------------------------------------------------------------------------------------------------
# Output


def table(rows: Sequence[Row]) -> list[str]:
    """The rows as aligned lines, numbered as ``commands`` numbers them: layer and check left-aligned, figures
    right-aligned."""
    header = ("#", "layer", "check", "exit", "seconds", "x import torch", "cpu x", "target", "met")
    lines = [header]
    for number, r in enumerate(rows, 1):
        exits = ",".join(str(e) for e in sorted(set(r.exits)))
        lines.append(
            (
                str(number),
                r.case.layer,
                f"bug: {r.case.bug}" if r.case.bug else "correct",
                exits if r.correct else f"{exits} (want {expected_exit(r.case)})",
                f"{r.median:.2f}",
                f"{r.ratio:.2f}x",
                "-" if r.cpu_ratio is None else f"{r.cpu_ratio:.2f}x",
                f"<={r.target:g}x",
                r.met,
            )
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    out = []
    for j, line in enumerate(lines):
        cells = [cell.ljust(widths[i]) if 1 <= i <= 2 else cell.rjust(widths[i]) for i, cell in enumerate(line)]
        out.append("  ".join(cells).rstrip())
        if j == 0:
            out.append("  ".join("-" * wd for wd in widths))
    return out


def listing(rows: Sequence[Row]) -> list[str]:
    """The command of each row, numbered as ``table`` numbers the rows; under a wrong one, its exit statuses and
    the last lines it printed."""
    out = []
    for number, r in enumerate(rows, 1):
        out.append(f"{number:3d}. {r.shown}")
        if not r.correct:
            out.append(f"     exit {','.join(map(str, r.exits))}:")
            out.extend(f"       {line}" for line in r.tail.splitlines())
    return out


def summary(rows: Sequence[Row]) -> list[str]:
    """The worst case against WORST_TARGET, then the count of each verdict."""
    if not rows:
        return ["no commands were run"]
    slow = worst(rows)
    counts = {m: sum(1 for r in rows if r.met == m) for m in ("PASS", "MISS", "WRONG")}
    if slow is None:
        first = "worst case: none (no command got its expected verdict)"
    else:
        met = verdict(slow.ratio, WORST_TARGET)
        first = f"worst case: {slow.case.label} {slow.ratio:.2f}x (target <={WORST_TARGET:g}x): {met}"
    return [
        first,
        f"{len(rows)} commands: {counts['PASS']} PASS, {counts['MISS']} MISS, {counts['WRONG']} WRONG "
        "(WRONG: the exit status was not the expected one; its time is not a figure)",
    ]


# --------------------------------------------------------------------------------------------------
# Running


@dataclass(frozen=True)
class Run:
    seconds: float
    status: int
    tail: str  # the last TAIL_LINES lines of stderr (else stdout), to say why a command went wrong
    cpu: float  # user + system seconds of the process and every descendant it waited for


def run(cmd: Sequence[str], timeout: float) -> Run:
    """Wall time of ``cmd`` as a fresh process from the repository root (process creation included), and its
    CPU time: the growth of this process's children's rusage, the runs being one at a time.

    The command leads a session of its own: at the timeout its whole process group is killed, not the checker
    alone, so that nothing it started keeps loading the machine under the commands after it. What is left
    holding its pipes (a process that left the group) is waited for at most KILL_GRACE seconds."""
    cpu_before = _children_cpu()
    start = time.perf_counter()
    proc = subprocess.Popen(
        list(cmd), cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _stop(proc)
        return Run(time.perf_counter() - start, -1, f"no answer within {timeout:g} s", _children_cpu() - cpu_before)
    except BaseException:  # Ctrl-C: in a session of its own, the command did not get the terminal's SIGINT
        _stop(proc)
        raise
    seconds = time.perf_counter() - start
    lines = (err.strip() or out.strip()).splitlines()
    return Run(seconds, proc.returncode, "\n".join(lines[-TAIL_LINES:]), _children_cpu() - cpu_before)


def _stop(proc: subprocess.Popen) -> None:
    """Kill ``proc``'s process group and reap ``proc``, waiting at most KILL_GRACE seconds for its pipes."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.communicate(timeout=KILL_GRACE)
    proc.wait()  # killed: returns at once, and its CPU time joins the children's rusage


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _load() -> str:
    try:
        one, five, fifteen = os.getloadavg()
    except (AttributeError, OSError):
        return "n/a"
    return f"{one:.2f} {five:.2f} {fifteen:.2f} (1, 5, 15 min)"


def _versions() -> str:
    from importlib import metadata

    found = []
    for name in ("torch", "numpy", "hypothesis"):
        try:
            found.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            found.append(f"{name} missing")
    return ", ".join(found)


def _sandbox() -> str:
    from checks.sandbox.worker import sandbox

    return sandbox().reason


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.user_bench", description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=1, help="timed runs per command, median (default 1)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed runs of the baseline and the first command")
    parser.add_argument("--only", default=None, help="only the commands whose layer, bug or target contains this")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds per command (default 900)")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed (default: report)")
    args = parser.parse_args(argv)
    if args.repeat < 1 or args.warmup < 0 or args.timeout <= 0:
        parser.error("--repeat must be >= 1, --warmup >= 0, --timeout > 0")
    wanted = [c for c in CASES if args.only is None or args.only.lower() in f"{c.label} {c.target}".lower()]
    if not wanted:
        parser.error(f"--only {args.only!r} matches no command")

    python = sys.executable
    prefix = cli_prefix(python)
    base = baseline_command(python)
    commands = [command(c, prefix) for c in wanted]
    print(f"# baseline: {shlex.join(base)} (fresh process, median of {BASELINE_RUNS} spread over the block)")
    print(f"# checker: {shlex.join(prefix)} (default settings, from {REPO})")
    print(f"# {_versions()}; {os.cpu_count()} CPUs; {_sandbox()}")
    print(f"# {args.repeat} timed run(s) per command (median), {args.warmup} warm-up run(s)")
    print(f"# load average before: {_load()}", flush=True)

    for _ in range(args.warmup):
        for cmd in (base, commands[0]):
            run(cmd, args.timeout)
    # rounds of every command, so that repeats of one command do not all meet the same spell of load
    jobs = [i for _ in range(args.repeat) for i in range(len(wanted))]
    baseline_runs: list[Run] = []
    runs: list[list[Run]] = [[] for _ in wanted]
    for step in schedule(len(jobs), BASELINE_RUNS):
        if step is None:
            done = run(base, args.timeout)
            if done.status != 0:
                print(f"the baseline failed (exit {done.status}): {done.tail}", file=sys.stderr)
                return int(Exit.UNUSABLE)
            baseline_runs.append(done)
        else:
            runs[jobs[step]].append(run(commands[jobs[step]], args.timeout))
    baseline = statistics.median(r.seconds for r in baseline_runs)
    baseline_cpu = statistics.median(r.cpu for r in baseline_runs)
    rows = [
        Row(
            c,
            shown(cmd, prefix),
            tuple(r.seconds for r in done),
            tuple(r.status for r in done),
            baseline,
            done[-1].tail,
            tuple(r.cpu for r in done),
            baseline_cpu,
        )
        for c, cmd, done in zip(wanted, commands, runs, strict=True)
    ]

    print(f"# load average after: {_load()}")
    print(
        f"# baseline runs: {', '.join(f'{r.seconds:.2f}' for r in baseline_runs)} s wall, median {baseline:.2f} s;"
        f" {', '.join(f'{r.cpu:.2f}' for r in baseline_runs)} s CPU, median {baseline_cpu:.2f} s"
    )
    print()
    for line in table(rows):
        print(line)
    for line in ["", *listing(rows), "", *summary(rows)]:
        print(line)
    return exit_status(rows, args.strict)


if __name__ == "__main__":
    sys.exit(main())
