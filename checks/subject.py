"""The one interface the check pipeline talks to: a layer under test in canonical layout.

Adapters (checks.adapt.adapters) turn a user's layer, in whatever convention it was written, into a
Subject, and checks.sandbox.worker's RemoteSubject does the same for a layer held in another process;
``LayerSubject`` and ``LossSubject`` wrap our own layers in cnn/ (each kind builds its own:
checks.kinds.reference_subject).

Contract: ``forward(inputs)`` computes Z from "input" and the parameters (canonical layout, the
layer installs the given parameters first); ``backward(G)`` returns dL/d(name) for every name it
can, as a pure function of the most recent forward (an adapter undoes SGD steps and resets
accumulated gradients so that calling it twice gives the same answer). Optional: ``raw`` (the last
backward's gradients exactly as the layer returned them), ``learning_rate`` (the layer's own, if it
steps), ``forward_backward(inputs, upstream) -> (Z, grads)`` (both in one call),
``losses(inputs, upstream, name, index=, values= | points=)`` (L = sum(Z * G) at many points in one call,
see checks.oracles.fd.BatchLoss).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Protocol

import numpy as np

import cnn
from checks.case import Case


class Subject(Protocol):
    def forward(self, inputs: Mapping[str, np.ndarray]) -> np.ndarray: ...

    def backward(self, upstream: np.ndarray) -> Mapping[str, np.ndarray]: ...


SubjectFactory = Callable[[Case], Subject]


class LayerSubject:
    """A stateful cnn-style layer (params/grads dicts, forward/backward) as a Subject.

    ``prefix_map`` maps a case input name ("conv1.weight") to the layer's own key ("0.weight").
    """

    def __init__(self, layer: cnn.Layer, names: Mapping[str, str] | None = None) -> None:
        self.layer = layer
        self.names = dict(names or {})

    def forward(self, inputs: Mapping[str, np.ndarray]) -> np.ndarray:
        params = self.layer.params
        for name, value in inputs.items():
            if name != "input":
                params[self.names.get(name, name)] = value
        return self.layer.forward(inputs["input"])

    def backward(self, upstream: np.ndarray) -> dict[str, np.ndarray]:
        grads = {"input": self.layer.backward(upstream)}
        inverse = {v: k for k, v in self.names.items()}
        grads.update({inverse.get(k, k): v for k, v in self.layer.grads.items()})
        return grads


class LossSubject:
    """softmax_cross_entropy with fixed labels as a Subject: Z is the 0-d loss, dL/dlogits = G * dlogits."""

    def __init__(self, labels: np.ndarray, body: LayerSubject | None = None) -> None:
        self.labels, self.body = labels, body

    def forward(self, inputs: Mapping[str, np.ndarray]) -> np.ndarray:
        logits = self.body.forward(inputs) if self.body else inputs["input"]
        loss, self._dlogits = cnn.softmax_cross_entropy(logits, self.labels)
        return np.asarray(loss, dtype=logits.dtype)

    def backward(self, upstream: np.ndarray) -> dict[str, np.ndarray]:
        dlogits = (self._dlogits * upstream).astype(self._dlogits.dtype, copy=False)
        if self.body is None:
            return {"input": dlogits}
        return self.body.backward(dlogits)
