"""PyTorch autograd as an exact oracle: a kind's computation in torch.nn.functional, in float64.

Plumbing only: each kind hands in its own torch function (checks.kinds: ``Kind.torch``). torch is
imported here and only here, lazily, on first use; without it ``available()`` says why and every
torch check is reported as skipped.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache

import numpy as np

from checks.geometry import Geometry

Arrays = Mapping[str, np.ndarray]


@dataclass(frozen=True)
class TorchResult:
    """Output Z and dL/d(every input) for L = sum(Z * G), all float64 numpy arrays (canonical layout)."""

    output: np.ndarray
    grads: dict[str, np.ndarray]


@cache
def _torch():
    return importlib.import_module("torch")


def module():
    """torch itself, imported on first use (for another oracle built on it: checks.pipeline.composed)."""
    return _torch()


def available() -> tuple[bool, str]:
    """(True, version) when torch imports, else (False, the reason)."""
    try:
        return True, _torch().__version__
    except Exception as exc:  # any import failure means "no oracle", never a crash
        return False, f"torch is not importable ({type(exc).__name__}: {exc})"


TorchFunction = Callable[..., object]
"""fn(F, geometry, tensors, labels) -> Z: F is torch.nn.functional, tensors the inputs by name."""


def gradients(
    fn: TorchFunction, geometry: Geometry, inputs: Arrays, upstream: np.ndarray, labels: np.ndarray | None = None
) -> TorchResult:
    """Z = fn(inputs) in torch float64 and autograd of L = sum(Z * G) with respect to every input.

    Runs torch on one thread: the oracle alternates with NumPy calls, and two thread pools taking
    turns on 2 cores spin against each other (measured: 41 ms instead of 26 ms for the 1.3e5-entry
    conv check in `make bench`); the caller's thread setting is restored afterwards."""
    torch = _torch()
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _gradients(torch, fn, geometry, inputs, upstream, labels)
    finally:
        torch.set_num_threads(previous)


def _gradients(torch, fn, geometry, inputs, upstream, labels) -> TorchResult:
    tensors = {k: torch.tensor(np.asarray(v, dtype=np.float64), requires_grad=True) for k, v in inputs.items()}
    label_tensor = None if labels is None else torch.as_tensor(np.asarray(labels, dtype=np.int64))
    z = fn(torch.nn.functional, geometry, tensors, label_tensor)
    loss = (z * torch.as_tensor(np.asarray(upstream, dtype=np.float64))).sum()
    names = list(tensors)
    grads = torch.autograd.grad(loss, [tensors[k] for k in names], allow_unused=True)
    out = {k: (np.zeros(inputs[k].shape) if gr is None else gr.numpy()) for k, gr in zip(names, grads, strict=True)}
    return TorchResult(z.detach().numpy(), out)
