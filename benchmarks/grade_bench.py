"""Grading benchmark: generate N seed-style submissions and grade them with 1 job and with 2.

Run ``python -m benchmarks.grade_bench`` (options: ``--count 40``, ``--max-examples 25``, ``--jobs 1,2``,
``--timeout 120``, ``--keep DIR`` to keep the generated submissions and the outputs, ``--dask 1,2`` to grade
them on a local dask cluster too, in the same run: a ``distributed.LocalCluster`` of 1 worker process, then of
2, each with one thread, as ``grade --dask ADDRESS`` would use a remote one; its start-up is not in the wall).

Each generated submission is one ``layers.py`` with four loop-based seed-article classes (ConvLayer,
MaxPoolLayer, ReLULayer, FullyConnectedLayer). Submission i is correct when i % 4 == 0; otherwise one of
its layers carries a classic bug (max-pool gradient to every tied maximum, dense bias gradient summed to
a scalar, ReLU mask on the output with >=, conv filter gradient scaled by 1/size), in rotation. Printed:
per run the total wall time, the median per-submission time (the sum of its four checks' times), the
slowest check, the verdict counts; then the speed-up of each run over the first. The load average is
printed too: other work on the machine slows the parallel run most.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import tempfile
import textwrap
from pathlib import Path

CONV = {
    "ok": "grad_filters[f] += g * patch",
    "bug": "grad_filters[f] += g * patch / patch.size  # BUG: scaled by 1/(k*k)",
}
POOL = {
    "ok": """\
                    flat = int(np.argmax(block[:, :, d]))
                    r, q = divmod(flat, s)
                    grad_in[i * s + r, j * s + q, d] += grad[i, j, d]""",
    "bug": """\
                    top = block[:, :, d].max()
                    for r in range(s):
                        for q in range(s):
                            if block[r, q, d] == top:  # BUG: every tied maximum gets the gradient
                                grad_in[i * s + r, j * s + q, d] += grad[i, j, d]""",
}
RELU = {"ok": "return grad * (self.x > 0)", "bug": "return grad * (self.out >= 0)  # BUG: mask on the output, >="}
DENSE = {"ok": "grad_b = grad", "bug": "grad_b = grad.sum(axis=0)  # BUG: a scalar on one sample"}

TEMPLATE = '''\
"""Generated seed-style submission {index}: {description}."""

import numpy as np


class ConvLayer:
    def __init__(self, num_filters, filter_size, lr=0.01):
        self.num_filters, self.filter_size, self.lr = num_filters, filter_size, lr
        self.filters = np.random.randn(num_filters, filter_size, filter_size) / filter_size**2

    def forward(self, image):
        self.image = image
        k = self.filter_size
        out = np.zeros((image.shape[0] - k + 1, image.shape[1] - k + 1, self.num_filters))
        for i in range(out.shape[0]):
            for j in range(out.shape[1]):
                patch = image[i : i + k, j : j + k]
                for f in range(self.num_filters):
                    out[i, j, f] = np.sum(patch * self.filters[f])
        return out

    def backward(self, grad):
        k = self.filter_size
        grad_filters = np.zeros(self.filters.shape)
        grad_image = np.zeros(self.image.shape)
        for i in range(grad.shape[0]):
            for j in range(grad.shape[1]):
                patch = self.image[i : i + k, j : j + k]
                for f in range(self.num_filters):
                    g = grad[i, j, f]
                    {conv}
                    grad_image[i : i + k, j : j + k] += g * self.filters[f]
        self.filters -= self.lr * grad_filters
        return grad_image


class MaxPoolLayer:
    def __init__(self, size=2):
        self.size = size

    def forward(self, x):
        self.x = x
        s = self.size
        h, w, c = x.shape
        out = np.zeros((h // s, w // s, c))
        for i in range(h // s):
            for j in range(w // s):
                out[i, j] = x[i * s : i * s + s, j * s : j * s + s].max(axis=(0, 1))
        return out

    def backward(self, grad):
        s = self.size
        grad_in = np.zeros(self.x.shape)
        for i in range(grad.shape[0]):
            for j in range(grad.shape[1]):
                block = self.x[i * s : i * s + s, j * s : j * s + s]
                for d in range(grad.shape[2]):
{pool}
        return grad_in


class ReLULayer:
    def forward(self, x):
        self.x = x
        self.out = np.maximum(x, 0)
        return self.out

    def backward(self, grad):
        {relu}


class FullyConnectedLayer:
    def __init__(self, input_size, num_classes, lr=0.01):
        self.weights = np.random.randn(input_size, num_classes) / input_size
        self.biases = np.zeros(num_classes)
        self.lr = lr

    def forward(self, x):
        self.shape = x.shape
        self.x = x.reshape(-1)
        return self.x @ self.weights + self.biases

    def backward(self, grad):
        grad_w = np.outer(self.x, grad)
        {dense}
        grad_x = self.weights @ grad
        self.weights -= self.lr * grad_w
        self.biases -= self.lr * grad_b
        return grad_x.reshape(self.shape)
'''
BUGGY = ("maxpool", "dense", "relu", "conv")


def generate(folder: Path, count: int) -> dict[str, str]:
    """Write ``count`` submissions into ``folder``; returns name -> the buggy layer ("" for a correct one)."""
    made = {}
    for index in range(count):
        bug = "" if index % 4 == 0 else BUGGY[(index // 4 + index) % len(BUGGY)]
        pick = {k: ("bug" if k == bug else "ok") for k in BUGGY}
        source = TEMPLATE.format(
            index=index,
            description=f"bug in {bug}" if bug else "correct",
            conv=CONV[pick["conv"]],
            pool=POOL[pick["maxpool"]],
            relu=RELU[pick["relu"]],
            dense=DENSE[pick["dense"]],
        )
        name = f"student_{index:02d}"
        (folder / name).mkdir(parents=True)
        (folder / name / "layers.py").write_text(textwrap.dedent(source))
        made[name] = bug
    return made


def _load() -> str:
    try:
        one, five, _ = os.getloadavg()
    except OSError:  # pragma: no cover
        return "n/a"
    return f"{one:.2f} (1 min), {five:.2f} (5 min)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.grade_bench", description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=40, help="submissions to generate (default 40)")
    parser.add_argument("--max-examples", type=int, default=25, help="cases per property (default 25, as grade)")
    parser.add_argument("--jobs", default="1,2", help="comma-separated job counts to compare (default 1,2)")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds per check (default 120)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", metavar="DIR", help="generate into DIR and keep the outputs there")
    parser.add_argument(
        "--dask",
        default="",
        metavar="WORKERS",
        help="worker counts of local dask clusters to grade on as well (e.g. 1,2; needs the dask extra)",
    )
    args = parser.parse_args(argv)
    jobs_list = [int(j) for j in args.jobs.split(",") if j.strip()]
    dask_list = [int(w) for w in args.dask.split(",") if w.strip()]
    runs = [(f"pool jobs={j}", j, None) for j in jobs_list] + [(f"dask workers={w}", None, w) for w in dask_list]

    from checks.front.grade import grade

    with tempfile.TemporaryDirectory(prefix="cnn-gradcheck-bench-") as scratch:
        root = Path(args.keep) if args.keep else Path(scratch)
        subs = root / "submissions"
        made = generate(subs, args.count)
        buggy = sum(1 for b in made.values() if b)
        print(
            f"{args.count} generated seed-style submissions ({args.count - buggy} correct, {buggy} with one bug), "
            f"4 layers each; max_examples {args.max_examples}, seed {args.seed}; {os.cpu_count()} CPUs"
        )
        walls = []
        verdicts = []
        for label, jobs, workers in runs:
            load_before = _load()
            with _cluster(workers) as address:
                summary = grade(
                    subs,
                    ["conv", "maxpool", "relu", "dense"],
                    out_dir=root / f"out_{label.replace(' ', '_').replace('=', '')}",
                    jobs=jobs,
                    seed=args.seed,
                    max_examples=args.max_examples,
                    timeout=args.timeout,
                    dask=address,
                )
            walls.append(summary.wall_seconds)
            verdicts.append([(r.submission, r.layer, r.status, r.reason, r.score) for r in summary.rows])
            per_submission = {}
            for r in summary.rows:
                per_submission[r.submission] = per_submission.get(r.submission, 0.0) + r.seconds
            slowest = max(summary.rows, key=lambda r: r.seconds)
            wrong = [r.submission for r in summary.rows if (r.status == "passed") == (made[r.submission] == r.layer)]
            counts = ", ".join(f"{n} {s}" for s, n in summary.counts.items())
            print(
                f"{label}: total wall {summary.wall_seconds:.1f} s; per submission median "
                f"{statistics.median(per_submission.values()):.2f} s (min {min(per_submission.values()):.2f}, "
                f"max {max(per_submission.values()):.2f}); slowest check {slowest.submission} {slowest.layer} "
                f"{slowest.seconds:.1f} s; {counts}; load before: {load_before}"
            )
            if wrong:
                print(f"  unexpected verdicts in: {', '.join(sorted(set(wrong)))}")
        for (label, _, _), wall in zip(runs[1:], walls[1:], strict=True):
            print(f"speed-up {label} over {runs[0][0]}: {walls[0] / wall:.2f}x")
        print("walls: " + ", ".join(f"{label} {wall:.1f} s" for (label, _, _), wall in zip(runs, walls, strict=True)))
        if any(v != verdicts[0] for v in verdicts[1:]):
            print("  the runs' verdicts differ (they must not: same seed)")
        print(f"load average at the end: {_load()}")
    return 0


@contextlib.contextmanager
def _cluster(workers: int | None):
    """The scheduler address of a local dask cluster of ``workers`` single-threaded worker processes for
    the block (None: no cluster, the local process pool)."""
    if workers is None:
        yield None
        return
    from distributed import LocalCluster

    with LocalCluster(n_workers=workers, processes=True, threads_per_worker=1, dashboard_address=None) as cluster:
        yield cluster.scheduler_address


if __name__ == "__main__":
    sys.exit(main())
