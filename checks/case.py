"""A Case: one concrete check input. Geometry, canonical arrays, and the upstream gradient G.

The scalar every oracle differentiates is L = sum(Z * G), so dL/dZ = G exactly and a layer's
backward(G) must return dL/d(input) and dL/d(each parameter).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from checks.geometry import Geometry


@dataclass(frozen=True)
class Case:
    """kind: a layer kind (checks.kinds.NAMES); inputs: "input" (a function layer: each of its inputs by name) plus
    parameter names (canonical layout, one dtype);
    upstream: G with shape geometry.output_shape (a 0-d array for losses); labels: class indices
    for losses (N,), else None; mode: how the values were drawn (e.g. "separated", "ties")."""

    kind: str
    geometry: Geometry
    inputs: dict[str, np.ndarray]
    upstream: np.ndarray
    labels: np.ndarray | None = None
    mode: str = "separated"
    notes: dict[str, object] = field(default_factory=dict)

    @property
    def dtype(self) -> np.dtype:
        # every array has the one dtype; a function layer of several inputs may have no array named "input"
        return (self.inputs["input"] if "input" in self.inputs else next(iter(self.inputs.values()))).dtype

    def describe(self) -> str:
        """One line: kind, geometry and the shapes involved (used in every failure message)."""
        shapes = ", ".join(f"{k} {v.shape}" for k, v in self.inputs.items())
        return (
            f"{self.kind} {self.geometry!r}; {shapes}; G {self.upstream.shape}; dtype {self.dtype}; values {self.mode}"
        )

    def copy(self) -> Case:
        """Deep copy of the arrays, so a layer that mutates its arguments cannot corrupt the case."""
        return Case(
            self.kind,
            self.geometry,
            {k: v.copy() for k, v in self.inputs.items()},
            self.upstream.copy(),
            None if self.labels is None else self.labels.copy(),
            self.mode,
            dict(self.notes),
        )

    def to_dict(self) -> dict:
        """The case as plain data: kind, geometry (type and fields), arrays as nested lists (exact)."""
        return {
            "kind": self.kind,
            "geometry": {"type": type(self.geometry).__name__, **self.geometry._asdict()},
            "dtype": str(self.dtype),
            "mode": self.mode,
            "inputs": {k: v.tolist() for k, v in self.inputs.items()},
            "upstream": self.upstream.tolist(),
            "labels": None if self.labels is None else self.labels.tolist(),
        }
