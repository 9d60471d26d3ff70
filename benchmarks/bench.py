"""Forward+backward timings of the NumPy layers against PyTorch autograd, with a correctness gate.

Run ``python -m benchmarks.bench`` (``make bench``); ``--quick`` for a short run, ``--repeat N`` to
choose the number of timed repeats, ``--threads N`` (default: the machine's cores), ``--only TEXT``
to run only the cases whose name contains TEXT.

Method:
- Both libraries are pinned to the same thread count. NumPy's BLAS reads its thread count when it
  is loaded, so the environment is set in ``main`` before NumPy is imported (and, where the BLAS
  exposes it, the count is set again and read back through ctypes). torch gets set_num_threads.
- OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE are removed from this process only: they are set on some
  machines for old OpenBLAS builds and slow a current one down. The header says whether they were.
- Each library is timed in its own block (warm-up, then every repeat of ours, then every repeat
  of torch): alternating them leaves one library's spinning BLAS threads competing with the other.
- Every case also checks that our results equal torch's (allclose, scaled by the largest entry),
  so a fast but wrong kernel shows as WRONG instead of posting a figure. The exit status is 1 when
  any case is WRONG; missed speed targets do not change it.

Extending: a benchmark is a function ``(Settings) -> list[Row]`` registered with ``@benchmark``
(or appended to ``BENCHMARKS``); ``print_table`` prints every row the same way. torch and cnn are
imported inside the functions, never at module level.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import os
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

THREAD_ENV = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS")
SLOW_BLAS_ENV = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")


@dataclass(frozen=True)
class Settings:
    repeat: int
    warmup: int
    threads: int
    seed: int = 0
    only: str | None = None
    settle: float = 0.3
    warmup_s: float = 0.3
    stat: str = "median"

    def wants(self, case: str) -> bool:
        return self.only is None or self.only.lower() in case.lower()


@dataclass(frozen=True)
class Row:
    """One line of the table. ``target`` is the largest acceptable ours/torch ratio (None: report only)."""

    case: str
    dtype: str
    ours_ms: float
    torch_ms: float | None
    target: float | None
    correct: bool | None  # None: not checked
    note: str = ""

    @property
    def ratio(self) -> float | None:
        return None if self.torch_ms is None else self.ours_ms / self.torch_ms

    @property
    def met(self) -> str:
        if self.correct is False:
            return "WRONG"
        if self.target is None or self.ratio is None:
            return "-"
        return "yes" if self.ratio <= self.target else "no"


Benchmark = Callable[[Settings], list[Row]]
BENCHMARKS: list[Benchmark] = []


def benchmark(fn: Benchmark) -> Benchmark:
    """Register ``fn`` to run, in registration order, after the ones before it."""
    BENCHMARKS.append(fn)
    return fn


# --------------------------------------------------------------------------------------------------
# Timing and checking helpers


def time_block(step: Callable[[], Any], settings: Settings) -> tuple[float, Any]:
    """Median (or, with settings.stat "min", shortest) wall time in ms of ``step()`` over
    settings.repeat runs, after a pause and a warm-up.

    The pause (settings.settle seconds) lets the other library's idle threads stop spinning. The
    warm-up is settings.warmup runs and, for fast steps, more runs until settings.warmup_s seconds
    have passed (lazy initialisation, first-touch page faults and the allocator's pools settle in
    that time; capped at 200 runs). All runs of one step happen back to back; returns (median ms,
    result of the last run).
    """
    gc.collect()
    time.sleep(settings.settle)
    result = None
    start = time.perf_counter()
    runs = 0
    while runs < settings.warmup or (0 < runs < 200 and time.perf_counter() - start < settings.warmup_s):
        result = step()
        runs += 1
    times = []
    for _ in range(settings.repeat):
        t0 = time.perf_counter()
        result = step()
        times.append((time.perf_counter() - t0) * 1e3)
    return (min(times) if settings.stat == "min" else statistics.median(times)), result


def same_results(ours: Sequence[Any], theirs: Sequence[Any]) -> bool:
    """Our arrays equal torch's tensors: same shape and dtype, allclose relative to the largest entry."""
    import numpy as np

    for a, t in zip(ours, theirs, strict=True):
        b = t.detach().numpy()
        if a.shape != b.shape or a.dtype != b.dtype:
            return False
        tol = 1e-10 if a.dtype == np.float64 else 2e-4
        scale = max(1.0, float(np.max(np.abs(b)))) if b.size else 1.0
        if not np.allclose(a, b, rtol=tol, atol=tol * scale):
            return False
    return True


def _torch():
    import torch

    return torch


# --------------------------------------------------------------------------------------------------
# Benchmarks


@dataclass(frozen=True)
class ConvCase:
    name: str
    n: int
    c: int
    h: int
    w: int
    f: int
    k: int
    stride: int
    target64: float
    padding: int = 1


CONV_CASES = (
    ConvCase("S1", 1, 1, 28, 28, 8, 3, 1, 1.5),
    ConvCase("S2", 8, 3, 32, 32, 16, 3, 1, 1.5),
    ConvCase("S3", 32, 16, 32, 32, 32, 3, 1, 1.0),
    ConvCase("S4", 16, 64, 56, 56, 64, 3, 1, 1.0),
    ConvCase("S3/s2", 32, 16, 32, 32, 32, 3, 2, 1.5),
)
CONV_TARGET32 = 2.5
POOL_SHAPES = ((8, 16, 32, 32), (32, 64, 56, 56))
POOL_TARGET = 1.5


@benchmark
def bench_conv(settings: Settings) -> list[Row]:
    """conv2d forward + the three gradients (ours) vs F.conv2d forward + backward(G) (torch)."""
    import numpy as np

    import cnn

    torch = _torch()
    rows = []
    for case in CONV_CASES:
        for dtype in (np.float64, np.float32):
            label = f"conv {case.name} {(case.n, case.c, case.h, case.w)} F={case.f} k={case.k} s={case.stride}"
            if not settings.wants(label):
                continue
            rng = np.random.default_rng(settings.seed)
            x = rng.standard_normal((case.n, case.c, case.h, case.w)).astype(dtype)
            w = rng.standard_normal((case.f, case.c, case.k, case.k)).astype(dtype)
            b = rng.standard_normal(case.f).astype(dtype)
            s, p, ks = case.stride, case.padding, (case.k, case.k)
            g = rng.standard_normal(cnn.conv2d(x, w, b, s, p).shape).astype(dtype)

            def ours(x=x, w=w, b=b, g=g, s=s, p=p, ks=ks):
                z = cnn.conv2d(x, w, b, s, p)
                return (
                    z,
                    cnn.conv2d_grad_input(g, w, x.shape, s, p),
                    cnn.conv2d_grad_weight(g, x, ks, s, p),
                    cnn.conv2d_grad_bias(g),
                )

            tx, tw, tb = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
            tg = torch.tensor(g)

            def theirs(tx=tx, tw=tw, tb=tb, tg=tg, s=s, p=p):
                tx.grad = tw.grad = tb.grad = None
                z = torch.nn.functional.conv2d(tx, tw, tb, s, p)
                z.backward(tg)
                return z, tx.grad, tw.grad, tb.grad

            ours_ms, ours_out = time_block(ours, settings)
            torch_ms, torch_out = time_block(theirs, settings)
            target = case.target64 if dtype == np.float64 else CONV_TARGET32
            rows.append(Row(label, np.dtype(dtype).name, ours_ms, torch_ms, target, same_results(ours_out, torch_out)))
    return rows


@benchmark
def bench_max_pool(settings: Settings) -> list[Row]:
    """max_pool2d + max_pool2d_backward (ours) vs F.max_pool2d forward + backward(G), 2x2 stride 2."""
    import numpy as np

    import cnn

    torch = _torch()
    rows = []
    for shape in POOL_SHAPES:
        for dtype in (np.float64, np.float32):
            label = f"maxpool 2x2/2 {shape}"
            if not settings.wants(label):
                continue
            rng = np.random.default_rng(settings.seed)
            x = rng.standard_normal(shape).astype(dtype)
            g = rng.standard_normal(shape[:2] + (shape[2] // 2, shape[3] // 2)).astype(dtype)

            def ours(x=x, g=g):
                y, argmax = cnn.max_pool2d(x, 2, 2)
                return y, cnn.max_pool2d_backward(g, argmax, x.shape, 2, 2)

            tx, tg = torch.tensor(x, requires_grad=True), torch.tensor(g)

            def theirs(tx=tx, tg=tg):
                tx.grad = None
                y = torch.nn.functional.max_pool2d(tx, 2, 2)
                y.backward(tg)
                return y, tx.grad

            ours_ms, ours_out = time_block(ours, settings)
            torch_ms, torch_out = time_block(theirs, settings)
            rows.append(
                Row(label, np.dtype(dtype).name, ours_ms, torch_ms, POOL_TARGET, same_results(ours_out, torch_out))
            )
    return rows


ORACLE_X, ORACLE_W = (8, 16, 32, 32), (16, 16, 3, 3)
ORACLE_TARGET_MS = 50.0
ELEMENTWISE_FD_SHAPE = (1, 4, 10, 10), (4, 4, 3, 3)  # ~1e3 entries: what element-wise FD is used for


@benchmark
def bench_oracles(settings: Settings) -> list[Row]:
    """The checker's cost on one big conv case: torch-oracle gradients (element-wise, every entry)
    plus 3 directional finite-difference probes (one per gradient) of our conv (x (8,16,32,32), w
    (16,16,3,3): ~1.3e5 parameters); and, for scale, the element-wise FD of a ~1e3-entry conv."""
    import numpy as np

    import cnn
    from checks import kinds
    from checks.geometry import ConvGeometry
    from checks.oracles import fd, torch_oracle

    label = f"oracles: torch + 3 FD probes, x {ORACLE_X} w {ORACLE_W}"
    rows = []
    if settings.wants(label):
        rng = np.random.default_rng(settings.seed)
        g = ConvGeometry(8, 16, 32, 32, 16, (3, 3), (1, 1), (1, 1))
        inputs = {"input": rng.standard_normal(ORACLE_X), "weight": rng.standard_normal(ORACLE_W)}
        inputs["bias"] = rng.standard_normal(16)
        up = rng.standard_normal(g.output_shape)

        def forward(a):
            return cnn.conv2d(a["input"], a["weight"], a["bias"], 1, 1)

        loss = fd.scalar_loss(forward, up)
        # 3 probes in all: one random signed direction per gradient (input, weight, bias)
        directions = {k: fd.random_directions(v.shape, 1, rng) for k, v in inputs.items()}

        def step():
            result = torch_oracle.gradients(kinds.get("conv").torch, g, inputs, up)
            probes = [fd.directional(loss, inputs, k, directions[k], 1e-4) for k in inputs]
            return result, probes

        ms, (result, probes) = time_block(step, settings)
        agree = all(
            abs(float(np.sum(result.grads[k] * u)) - p) <= 1e-6 * float(np.sum(np.abs(result.grads[k] * u)))
            for k, probe in zip(inputs, probes, strict=True)
            for u, p in zip(probe.directions, probe.projections, strict=True)
        )
        rows.append(Row(label, "float64", ms, ORACLE_TARGET_MS, 1.0, agree, note="torch column: the 50 ms budget"))
    label = f"oracles: element-wise FD, x {ELEMENTWISE_FD_SHAPE[0]} w {ELEMENTWISE_FD_SHAPE[1]}"
    if settings.wants(label):
        rng = np.random.default_rng(settings.seed)
        xs, ws = ELEMENTWISE_FD_SHAPE
        inputs = {"input": rng.standard_normal(xs), "weight": rng.standard_normal(ws)}
        up = rng.standard_normal((1, 4, 8, 8))
        loss = fd.scalar_loss(lambda a: cnn.conv2d(a["input"], a["weight"]), up)
        ms, _ = time_block(lambda: [fd.elementwise(loss, inputs, k, 1e-4) for k in inputs], settings)
        rows.append(Row(label, "float64", ms, None, None, None, note="report only"))
    return rows


WORKER_TARGET = 1.5
SEED_CONV = "examples/seed_style/layers.py:ConvLayer"


@benchmark
def bench_worker(settings: Settings) -> list[Row]:
    """The price of running the user's layer in a sandboxed worker process: a default check (25 examples
    per property) of the seed article's conv layer through the worker, against the same check with the
    layer imported into the checker's process, in the same run. At most 3 timed repeats each."""
    from dataclasses import replace
    from pathlib import Path

    from checks import api
    from checks.job import Job
    from checks.sandbox.worker import sandbox

    label = f"worker: default check of {SEED_CONV} [{sandbox().reason.split('(')[0].strip()}]"
    if not settings.wants(label):
        return []
    root = str(Path(__file__).resolve().parents[1])
    job = Job(SEED_CONV, kind="conv", preset="seed", root=root)
    few = replace(settings, repeat=min(settings.repeat, 3), warmup=1, warmup_s=0.0)
    reports = []

    def run(in_process: bool):
        report = api.check_job(job, in_process=in_process)
        reports.append(report.passed)
        return report

    local_ms, _ = time_block(lambda: run(True), few)
    worker_ms, _ = time_block(lambda: run(False), few)
    note = "torch column: the same check in-process"
    return [Row(label, "float64", worker_ms, local_ms, WORKER_TARGET, all(reports), note=note)]


# --------------------------------------------------------------------------------------------------
# Output


def print_table(rows: Sequence[Row], out=sys.stdout) -> None:
    header = ("case", "dtype", "ours ms", "torch ms", "ours/torch", "target", "met")  # ms: the chosen statistic
    lines = [header]
    for r in rows:
        lines.append(
            (
                r.case + (f" [{r.note}]" if r.note else ""),
                r.dtype,
                f"{r.ours_ms:.3f}",
                "-" if r.torch_ms is None else f"{r.torch_ms:.3f}",
                "-" if r.ratio is None else f"{r.ratio:.2f}x",
                "-" if r.target is None else f"<={r.target:g}x",
                r.met,
            )
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    for j, line in enumerate(lines):
        cells = [cell.ljust(widths[i]) if i < 2 else cell.rjust(widths[i]) for i, cell in enumerate(line)]
        print("  ".join(cells).rstrip(), file=out)
        if j == 0:
            print("  ".join("-" * wd for wd in widths), file=out)


# --------------------------------------------------------------------------------------------------
# Threads and BLAS


def _pin_environment(threads: int) -> list[str]:
    """Set the thread variables and drop the slow-BLAS overrides; must run before NumPy loads."""
    notes = []
    for name in SLOW_BLAS_ENV:
        old = os.environ.pop(name, None)
        notes.append(f"{name} was {'set to ' + repr(old) + ', unset for this run' if old is not None else 'not set'}")
    for name in THREAD_ENV:
        os.environ[name] = str(threads)
    if "numpy" in sys.modules:
        notes.append("numpy was imported before the bench set its environment: BLAS threads set through ctypes only")
    return notes


def _openblas_handle() -> tuple[ctypes.CDLL, str] | None:
    """The OpenBLAS that this process loaded (found through /proc/self/maps), with its symbol prefix."""
    try:
        with open("/proc/self/maps") as maps:
            paths = {line.split()[-1] for line in maps if "openblas" in line.lower() and "/" in line}
    except OSError:
        return None
    for path in sorted(paths):
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for prefix, suffix in (("scipy_openblas", "64_"), ("scipy_openblas", ""), ("openblas", "")):
            if hasattr(lib, f"{prefix}_get_num_threads{suffix}"):
                return lib, f"{prefix}|{suffix}"
    return None


def _blas_report(threads: int) -> list[str]:
    import numpy as np

    lines = []
    try:
        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        lines.append(f"numpy {np.__version__} BLAS: {blas.get('name')} {blas.get('version')}")
    except Exception as exc:  # show_config's layout differs between numpy versions
        lines.append(f"numpy {np.__version__} BLAS: unknown ({exc.__class__.__name__})")
    found = _openblas_handle()
    if found is None:
        lines.append("OpenBLAS runtime: not found in this process (thread count from environment only)")
        return lines
    lib, tag = found
    prefix, suffix = tag.split("|")

    def sym(name: str):
        return getattr(lib, f"{prefix}_{name}{suffix}")

    sym("set_num_threads").argtypes = [ctypes.c_int]
    sym("set_num_threads")(threads)
    sym("get_num_threads").restype = ctypes.c_int
    sym("get_corename").restype = ctypes.c_char_p
    sym("get_config").restype = ctypes.c_char_p
    lines.append(
        f"OpenBLAS runtime: core {sym('get_corename')().decode()}, threads {sym('get_num_threads')()}, "
        f"config {sym('get_config')().decode().strip()}"
    )
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    cores = os.cpu_count() or 2
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="short run: 3 repeats, 1 warm-up")
    parser.add_argument("--repeat", type=int, default=None, help="timed repeats per library and case (default 10)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed runs before timing (default 2)")
    parser.add_argument("--threads", type=int, default=cores, help=f"threads for both libraries (default {cores})")
    parser.add_argument("--only", default=None, help="run only cases whose name contains this text")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--stat",
        choices=("median", "min"),
        default="median",
        help="statistic of the timed runs (min is steadier on a machine other processes are using)",
    )
    args = parser.parse_args(argv)
    repeat = args.repeat if args.repeat is not None else (3 if args.quick else 10)
    warmup = args.warmup if args.warmup is not None else (1 if args.quick else 2)
    if repeat < 1 or warmup < 0 or args.threads < 1:
        parser.error("--repeat and --threads must be >= 1, --warmup >= 0")
    settings = Settings(
        repeat=repeat, warmup=warmup, threads=args.threads, seed=args.seed, only=args.only, stat=args.stat
    )

    env_notes = _pin_environment(settings.threads)
    header = [f"threads: {settings.threads} for numpy's BLAS and torch (machine cores: {cores})"]
    header += _blas_report(settings.threads)
    header += env_notes
    torch = _torch()
    torch.set_num_threads(settings.threads)
    header.append(f"torch {torch.__version__}: {torch.get_num_threads()} threads")
    header.append(
        f"{settings.stat} of {settings.repeat} runs after >= {settings.warmup} warm-up run(s) lasting"
        f" >= {settings.warmup_s:g} s and a {settings.settle:g} s pause; each library timed in its own block"
    )
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    busy = " (other processes are using the cores: timings are inflated and noisy)" if load > 1.5 else ""
    header.append(f"load average (1 min) before the run: {load:.2f}{busy}")
    for line in header:
        print("# " + line)
    print(flush=True)

    rows: list[Row] = []
    for fn in BENCHMARKS:
        rows.extend(fn(settings))
    print_table(rows)
    wrong = [r for r in rows if r.correct is False]
    missed = [r for r in rows if r.met == "no"]
    met = len(rows) - len(missed) - len(wrong)
    print(f"\n{len(rows)} cases: {met} met or report-only, {len(missed)} missed the target, {len(wrong)} wrong")
    if wrong:
        print(f"WRONG results (ours differ from torch): {', '.join(r.case + ' ' + r.dtype for r in wrong)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
