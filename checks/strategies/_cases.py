"""Case strategies: a geometry, then its input, parameters, upstream gradient and labels, all drawn."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from hypothesis import strategies as st

from checks.case import KINDS, Case
from checks.geometry import (
    ConvGeometry,
    DenseGeometry,
    ElementwiseGeometry,
    FlattenGeometry,
    Geometry,
    LossGeometry,
    NetworkGeometry,
    PoolGeometry,
)
from checks.strategies._geometries import (
    conv_geometries,
    dense_geometries,
    elementwise_geometries,
    flatten_geometries,
    loss_geometries,
    network_geometries,
    pool_geometries,
)
from checks.strategies._values import check_mode, float_dtype, labels, parameters, upstream, values

_DEFAULTS: dict[str, tuple[type, Callable[[], st.SearchStrategy[Geometry]]]] = {
    "conv": (ConvGeometry, conv_geometries),
    "maxpool": (PoolGeometry, pool_geometries),
    "relu": (ElementwiseGeometry, elementwise_geometries),
    "flatten": (FlattenGeometry, flatten_geometries),
    "dense": (DenseGeometry, dense_geometries),
    "softmax_ce": (LossGeometry, loss_geometries),
    "network": (NetworkGeometry, network_geometries),
}


def cases(
    kind: str,
    geometries: st.SearchStrategy[Geometry] | None = None,
    *,
    mode: str | st.SearchStrategy[str] = "separated",
    dtype: object = np.float64,
) -> st.SearchStrategy[Case]:
    """Cases of ``kind`` (one of checks.case.KINDS), every array drawn through hypothesis.

    - ``geometries``: a strategy of the kind's geometry type, default the kind's own strategy with its
      default bounds (conv_geometries(), pool_geometries(), elementwise_geometries() for "relu",
      flatten_geometries(), dense_geometries(), loss_geometries(), network_geometries()).
    - ``mode``: how ``inputs["input"]`` is drawn, one of MODES or a strategy of them (e.g.
      ``st.sampled_from(["separated", "ties"])``), default ``"separated"``; recorded in ``Case.mode``.
    - ``dtype``: float32 or float64 for every array, default float64.

    inputs: "input" of geometry.input_shape in ``mode``, plus one array per ``geometry.param_shapes``
    entry ("weight", "bias"; "conv1.weight", ... for the network), never zero, |w| in [0.1, 1].
    upstream: G of geometry.output_shape (0-d for "softmax_ce" and "network"), nonzero, distinct
    entries, |g| in [0.1, 2]. labels: int64 (N,) in [0, classes) for "softmax_ce" and "network".

    Shrinks towards the smallest geometry (see its strategy), then towards plain values.
    """
    if kind not in KINDS:
        raise ValueError(f"kind={kind!r}: expected one of {KINDS}")
    geometry_type, default = _DEFAULTS[kind]
    if geometries is None:
        geometries = default()
    elif not isinstance(geometries, st.SearchStrategy):
        raise ValueError(f"geometries={geometries!r}: expected a hypothesis strategy of {geometry_type.__name__}")
    if isinstance(mode, str):
        modes: st.SearchStrategy[str] = st.just(check_mode(mode))
    elif isinstance(mode, st.SearchStrategy):
        modes = mode
    else:
        raise ValueError(f"mode={mode!r}: expected a mode name or a strategy of mode names")
    return _case(kind, geometry_type, geometries, modes, float_dtype(dtype))


@st.composite
def _case(
    draw, kind: str, geometry_type: type, geometries: st.SearchStrategy[Geometry], modes: st.SearchStrategy[str], dtype
) -> Case:
    geometry = draw(geometries)
    if not isinstance(geometry, geometry_type):
        hint = " (use flatten_geometries())" if kind == "flatten" else ""
        raise ValueError(
            f"cases({kind!r}) needs {geometry_type.__name__} geometries, the strategy drew {geometry!r}{hint}"
        )
    mode = check_mode(draw(modes))
    inputs = {"input": draw(values(geometry.input_shape, dtype, mode))}
    for name, shape in geometry.param_shapes.items():
        inputs[name] = draw(parameters(shape, dtype))
    g = draw(upstream(geometry.output_shape, dtype))
    y = None
    if isinstance(geometry, LossGeometry):
        y = draw(labels(geometry.batch, geometry.classes))
    elif isinstance(geometry, NetworkGeometry):
        y = draw(labels(geometry.batch, geometry.dense.out_features))
    return Case(kind, geometry, inputs, g, y, mode)
