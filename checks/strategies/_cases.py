"""Case strategies: a geometry, then its input, parameters, upstream gradient and labels, all drawn."""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from checks import kinds
from checks.case import Case
from checks.geometry import FunctionGeometry, Geometry, LossGeometry, NetworkGeometry
from checks.strategies._values import check_mode, float_dtype, labels, parameters, upstream, values


def cases(
    kind: str,
    geometries: st.SearchStrategy[Geometry] | None = None,
    *,
    mode: str | st.SearchStrategy[str] = "separated",
    dtype: object = np.float64,
) -> st.SearchStrategy[Case]:
    """Cases of ``kind`` (one of checks.kinds.NAMES), every array drawn through hypothesis.

    - ``geometries``: a strategy of the kind's geometry type, default the kind's own strategy with its
      default bounds (``checks.kinds.get(kind).default_geometries()``: conv_geometries(), pool_geometries(),
      elementwise_geometries() for "relu", flatten_geometries(), dense_geometries(), loss_geometries(),
      network_geometries()).
    - ``mode``: how ``inputs["input"]`` is drawn, one of MODES or a strategy of them (e.g.
      ``st.sampled_from(["separated", "ties"])``), default ``"separated"``; recorded in ``Case.mode``.
    - ``dtype``: float32 or float64 for every array, default float64.

    inputs: "input" of geometry.input_shape in ``mode`` (a FunctionGeometry: each of its ``input_shapes``), plus
    one array per ``geometry.param_shapes`` entry ("weight", "bias"; "conv1.weight", ... for the network), never
    zero, |w| in [0.1, 1].
    upstream: G of geometry.output_shape (0-d for "softmax_ce" and "network"), nonzero, distinct
    entries, |g| in [0.1, 2]. labels: int64 (N,) in [0, classes) for "softmax_ce" and "network".

    Shrinks towards the smallest geometry (see its strategy), then towards plain values.
    """
    if kind not in kinds.NAMES:
        raise ValueError(f"kind={kind!r}: expected one of {kinds.NAMES}")
    record = kinds.get(kind)
    geometry_type = record.geometry
    if geometries is None:
        geometries = record.default_geometries()
    elif not isinstance(geometries, st.SearchStrategy):
        raise ValueError(f"geometries={geometries!r}: expected a hypothesis strategy of {geometry_type.__name__}")
    if isinstance(mode, str):
        modes: st.SearchStrategy[str] = st.just(check_mode(mode))
    elif isinstance(mode, st.SearchStrategy):
        modes = mode
    else:
        raise ValueError(f"mode={mode!r}: expected a mode name or a strategy of mode names")
    return _case(kind, geometry_type, record.default_geometries.__name__, geometries, modes, float_dtype(dtype))


@st.composite
def _case(
    draw,
    kind: str,
    geometry_type: type,
    default: str,
    geometries: st.SearchStrategy[Geometry],
    modes: st.SearchStrategy[str],
    dtype,
) -> Case:
    geometry = draw(geometries)
    if not isinstance(geometry, geometry_type):
        raise ValueError(
            f"cases({kind!r}) needs {geometry_type.__name__} geometries, the strategy drew {geometry!r} "
            f"(use {default}())"
        )
    mode = check_mode(draw(modes))
    # a function layer of several inputs draws each in the mode (so ties and zeros also meet across inputs)
    shapes = geometry.input_shapes if isinstance(geometry, FunctionGeometry) else {"input": geometry.input_shape}
    inputs = {name: draw(values(shape, dtype, mode)) for name, shape in shapes.items()}
    for name, shape in geometry.param_shapes.items():
        inputs[name] = draw(parameters(shape, dtype))
    g = draw(upstream(geometry.output_shape, dtype))
    y = None
    if isinstance(geometry, LossGeometry):
        y = draw(labels(geometry.batch, geometry.classes))
    elif isinstance(geometry, NetworkGeometry):
        y = draw(labels(geometry.batch, geometry.dense.out_features))
    return Case(kind, geometry, inputs, g, y, mode)
