"""Tiny attribute paths into a user's layer: ``W``, ``grads[0]``, ``gradients['W']``, ``conv.dW``."""

from __future__ import annotations

import re

_TOKEN = re.compile(r"\.?([A-Za-z_]\w*)|\[(-?\d+)\]|\[['\"]([^'\"]+)['\"]\]")


def parse(path: str) -> list[str | int]:
    """``"gradients['W']"`` -> ["gradients", "W"] (str = attribute or key, int = index)."""
    steps: list[str | int] = []
    pos = 0
    while pos < len(path):
        m = _TOKEN.match(path, pos)
        if not m:
            raise ValueError(f"cannot read path {path!r} at {path[pos:]!r}")
        name, index, key = m.groups()
        steps.append(name if name is not None else int(index) if index is not None else ("key", key))  # type: ignore[arg-type]
        pos = m.end()
    return steps


def resolve(obj: object, path: str) -> object:
    """Follow ``path``; AttributeError/KeyError/IndexError propagate for the caller to name."""
    for step in parse(path):
        if isinstance(step, tuple):
            obj = obj[step[1]]  # type: ignore[index]
        elif isinstance(step, int):
            obj = obj[step]  # type: ignore[index]
        else:
            obj = getattr(obj, step)
    return obj


def assign(obj: object, path: str, value: object) -> None:
    """Set the object at ``path`` (its last step must be an attribute or a dict key)."""
    steps = parse(path)
    for step in steps[:-1]:
        obj = obj[step[1]] if isinstance(step, tuple) else obj[step] if isinstance(step, int) else getattr(obj, step)  # type: ignore[index]
    last = steps[-1]
    if isinstance(last, tuple):
        obj[last[1]] = value  # type: ignore[index]
    elif isinstance(last, int):
        obj[last] = value  # type: ignore[index]
    else:
        setattr(obj, last, value)


def exists(obj: object, path: str) -> bool:
    try:
        return resolve(obj, path) is not None
    except (AttributeError, KeyError, IndexError, TypeError):
        return False
