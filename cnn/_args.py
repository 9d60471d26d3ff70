"""Argument normalisation and validation shared by the functional core and the layers.

Every check raises ``ValueError`` with the offending value and the shapes involved, because the
layers are used by people debugging their own code: a message is worth more than a traceback.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

Pair = tuple[int, int]
FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def pair(value: int | Sequence[int], name: str, *, minimum: int) -> Pair:
    """Turn an int or an (h, w) pair into an (h, w) tuple of ints >= ``minimum``, as torch.nn does."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        out = (int(value), int(value))
    elif (
        isinstance(value, Sequence)
        and len(value) == 2
        and all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in value)
    ):
        out = (int(value[0]), int(value[1]))
    else:
        raise ValueError(f"{name} must be an int or a pair of ints, got {value!r}")
    if min(out) < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value!r}")
    return out


def require_array(a: object, name: str, ndim: int | tuple[int, ...]) -> np.ndarray:
    """Check that ``a`` is a floating ndarray with ``ndim`` dimensions (one of them, if a tuple)."""
    if not isinstance(a, np.ndarray):
        raise ValueError(f"{name} must be a numpy array, got {type(a).__name__}")
    allowed = (ndim,) if isinstance(ndim, int) else ndim
    if a.ndim not in allowed:
        want = " or ".join(str(d) for d in allowed)
        raise ValueError(f"{name} must have {want} dimensions, got shape {a.shape}")
    if a.size == 0:
        raise ValueError(f"{name} is empty (shape {a.shape})")
    if a.dtype not in FLOAT_DTYPES:
        raise ValueError(f"{name} must be float32 or float64, got dtype {a.dtype}")
    return a


def require_same_dtype(reference: np.ndarray, other: np.ndarray, names: str) -> None:
    """Refuse mixed precision: a silent upcast or downcast would hide what the caller computed."""
    if reference.dtype != other.dtype:
        raise ValueError(f"{names} must share a dtype, got {reference.dtype} and {other.dtype}")


def require_shape(a: np.ndarray, shape: tuple[int, ...], name: str) -> None:
    """Exact shape match; no broadcasting is ever applied to gradients."""
    if a.shape != tuple(shape):
        raise ValueError(f"{name} has shape {a.shape}, expected {tuple(shape)}")


def shape4(shape: Sequence[int], name: str) -> tuple[int, int, int, int]:
    """An (N, C, H, W) shape of four positive ints, or ValueError naming it."""
    values = tuple(shape) if isinstance(shape, Sequence) else ()
    if len(values) != 4 or not all(isinstance(v, (int, np.integer)) and v >= 1 for v in values):
        raise ValueError(f"{name} must be four positive ints (N, C, H, W), got {shape!r}")
    return tuple(int(v) for v in values)  # type: ignore[return-value]


def count(value: object, name: str) -> int:
    """A single int >= 1 (channels, filters, features): pairs are refused, not silently truncated."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an int, got {value!r}")
    if value < 1:
        raise ValueError(f"{name} must be >= 1, got {value!r}")
    return int(value)
