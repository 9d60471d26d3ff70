"""LayerSpecs for the misbehaving layers in this folder: ``examples/misbehaving/specs.py:<name>``.

Each spec declares the convention the layer CLAIMS (NCHW in and out, backward -> dx, gradients in
dW / db, or (dX, [dW, db]) for ConvFlatTuple), so that the checker reports how it breaks it. The convs
take (in_channels, out_channels, kernel_size) only: square kernels, stride 1, no padding, always a
bias. The ReLUs take any shape. The classes are loaded from their sibling files by path.
"""

import functools
import importlib.util
from pathlib import Path

from checks import LayerSpec, Param, Supports


@functools.cache
def _module(stem: str):
    path = Path(__file__).with_name(f"{stem}.py")
    spec = importlib.util.spec_from_file_location(f"{path.parent.name}_{stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _load(target: str):
    """``"file:Class"`` -> the class ``Class`` of the sibling file ``file.py``."""
    stem, name = target.split(":")
    return getattr(_module(stem), name)


def _conv(target: str, **options) -> LayerSpec:
    cls = _load(target)
    return LayerSpec(
        "conv",
        lambda g: cls(g.in_channels, g.filters, g.kernel[0]),
        params={"weight": Param("W", "FCHW", grad="dW"), "bias": Param("b", grad="db")},
        supports=Supports(stride=1, padding=0, square=True, bias=True),
        **options,
    )


def _relu(target: str) -> LayerSpec:
    cls = _load(target)
    return LayerSpec("relu", lambda g: cls(), input_layout="ND")


conv_no_backward = _conv("backward_raises:ConvNoBackward")
conv_forgot_return = _conv("backward_returns_none:ConvForgotReturn")
conv_flat_tuple = _conv("backward_wrong_tuple:ConvFlatTuple", gradients="returned")  # declared (dX, [dW, db])
conv_channels_last_output = _conv("wrong_shape:ConvChannelsLastOutput")
conv_huge_workspace = _conv("huge_alloc:ConvHugeWorkspace")  # MemoryError under the guard's memory budget
relu_flat_grad = _relu("wrong_shape:ReLUFlatGrad")
relu_nan = _relu("returns_nan:ReLUNaN")
relu_in_place = _relu("mutates_input:ReLUInPlace")
relu_mutates_grad = _relu("mutates_upstream:ReLUMutatesGrad")
relu_jitter = _relu("nondeterministic:ReLUJitter")
relu_busy_loop = _relu("hangs:ReLUBusyLoop")  # stopped by the guard's time limit
relu_sleeps = _relu("hangs:ReLUSleeps")
relu_exits = _relu("sys_exit:ReLUExits")
relu_chatty = _relu("chatty:ReLUChatty")

for _name, _spec in list(globals().items()):  # report each spec under its variable name
    if isinstance(_spec, LayerSpec):
        _spec.name = _spec.name or _name
