"""Heatmaps of failing gradients: the layer's value, the right value and their difference, per channel.

``write_plots(report, directory)`` writes one PNG per failing gradient that ``checks.explain.annotate``
explained with a value of the right shape: a grid with one row per image (n, c) of an input
gradient, per (f, c) kernel slice of a conv weight, or a single row for a dense weight or a bias,
and three columns: layer, expected, layer - expected. Wrong entries are outlined.

matplotlib is an optional extra (``pip install 'cnn-gradcheck[plot]'``): it is imported on first use,
with the Agg backend (no display needed). Without it ``plots_available()`` says why and
``write_plots`` raises ``PlotsUnavailable`` with that message.
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import numpy as np

from checks.tolerances import tolerances_for

__all__ = ["MAX_ROWS", "PlotsUnavailable", "draw_figure", "mismatch_mask", "plots_available", "write_plots"]

MAX_ROWS = 12  # images per figure; a larger gradient shows its first MAX_ROWS slices
INSTALL_HINT = "install the plot extra: pip install 'cnn-gradcheck[plot]' (or pip install matplotlib)"


class PlotsUnavailable(RuntimeError):
    """matplotlib cannot be imported; ``str()`` says why and how to install it."""


def plots_available() -> tuple[bool, str]:
    """(True, matplotlib's version), or (False, why not and how to fix it)."""
    try:
        matplotlib = importlib.import_module("matplotlib")
    except Exception as exc:  # any import failure means "no plots", never a crash
        return False, f"matplotlib is not importable ({type(exc).__name__}: {exc}); {INSTALL_HINT}"
    return True, str(getattr(matplotlib, "__version__", "unknown version"))


def _pyplot():
    ok, why = plots_available()
    if not ok:
        raise PlotsUnavailable(why)
    matplotlib = importlib.import_module("matplotlib")
    matplotlib.use("Agg", force=True)
    return importlib.import_module("matplotlib.pyplot")


def _slices(a: np.ndarray, gradient: str) -> list[tuple[str, np.ndarray]]:
    """(label, 2-D image) per row: (n, c) images of an input, (f, c) kernel slices, or one row."""
    if a.ndim == 4:
        first, second = ("f", "c") if gradient == "weight" else ("n", "c")
        return [(f"{first}={i}, {second}={j}", a[i, j]) for i in range(a.shape[0]) for j in range(a.shape[1])]
    if a.ndim == 2:
        return [("", a)]
    if a.ndim == 1:
        return [("", a[None, :])]
    flat = a.reshape(a.shape[0], -1) if a.ndim else a.reshape(1, 1)
    return [("", flat)]


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or "layer"


def draw_figure(plt, title: str, layer: np.ndarray, expected: np.ndarray, bad: np.ndarray | None, name: str):
    """rows x 3 heatmaps (layer, expected, difference); wrong entries circled in the difference."""
    rows = list(zip(_slices(layer, name), _slices(expected, name), _slices(bad, name), strict=True))
    shown = rows[:MAX_ROWS]
    fig, axes = plt.subplots(len(shown), 3, figsize=(9, 2.2 * len(shown) + 0.8), squeeze=False, layout="constrained")
    scale = float(max(np.abs(layer).max(initial=0.0), np.abs(expected).max(initial=0.0))) or 1.0
    diff_scale = float(np.abs(layer - expected).max(initial=0.0)) or 1.0
    images = []
    for r, ((label, a), (_, e), (_, m)) in enumerate(shown):
        panels = (("layer", a, scale), ("expected", e, scale), ("layer - expected", a - e, diff_scale))
        for col, (head, image, vmax) in enumerate(panels):
            ax = axes[r][col]
            images.append(ax.imshow(image, cmap="coolwarm", vmin=-vmax, vmax=vmax, interpolation="nearest"))
            if col == 2:  # wrong entries circled
                ys, xs = np.nonzero(m)
                ax.scatter(xs, ys, s=40, facecolors="none", edgecolors="black", linewidths=1.0)
            ax.set_title(head + (f"  [{label}]" if label else ""), fontsize=8)
            ax.set_xticks(range(image.shape[1]) if image.shape[1] <= 16 else [])
            ax.set_yticks(range(image.shape[0]) if image.shape[0] <= 16 else [])
            ax.tick_params(labelsize=6)
    fig.colorbar(images[0], ax=axes[:, :2].ravel().tolist(), shrink=0.8)
    fig.colorbar(images[2], ax=axes[:, 2].ravel().tolist(), shrink=0.8)
    extra = f" (first {MAX_ROWS} of {len(rows)} slices)" if len(rows) > MAX_ROWS else ""
    fig.suptitle(title + extra, fontsize=9)
    return fig


def write_plots(report, directory: str | Path) -> list[Path]:
    """One PNG per failing, explained gradient of ``report`` in ``directory`` (created if needed);
    returns the paths written. Gradients of the wrong shape (empty, transposed, a scalar) or never
    read have nothing to draw and are left out. Raises PlotsUnavailable without matplotlib."""
    plt = _pyplot()
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for p in report.properties:
        details = getattr(p, "details", None)
        layer = getattr(details, "layer_value", None)
        expected = getattr(details, "expected_value", None)
        if layer is None or expected is None or np.shape(layer) != np.shape(expected) or np.size(layer) == 0:
            continue
        layer, expected = np.asarray(layer, dtype=np.float64), np.asarray(expected, dtype=np.float64)
        bad = mismatch_mask(details, layer, expected)
        mistake = getattr(getattr(p, "diagnosis", None), "mistake", None)
        title = f"{report.target} ({report.kind}): {p.property}" + (f" -- {mistake}" if mistake else "")
        fig = draw_figure(plt, title, np.nan_to_num(layer), expected, bad, details.gradient)
        path = out / f"{_safe(report.target)}.{p.property}.png"
        fig.savefig(path, dpi=100)
        plt.close(fig)
        written.append(path)
    return written


def mismatch_mask(details, layer: np.ndarray, expected: np.ndarray) -> np.ndarray:
    """The details' mismatch mask, else every entry outside the exact tolerance of the layer's dtype."""
    mask = getattr(details, "mask", None)
    if mask is not None and np.shape(mask) == layer.shape:
        return np.asarray(mask, dtype=bool)
    tol = tolerances_for(getattr(getattr(details, "case", None), "dtype", np.float64)).exact
    return ~(np.abs(layer - expected) <= tol.bound(expected))
