"""LayerSpecs for the NCHW classes in this folder: ``examples/nchw_classes/specs.py:<name>``.

The classes are loaded from their sibling files by path, so this module works wherever it is loaded
from. Strides and paddings are single ints (the same on both axes), declared with ``square=True``;
every conv and dense layer here always has a bias (``bias=True``).
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


def _conv(target: str, square_kernel: bool = True):
    """build(g) for the shared constructor (in_channels, out_channels, kernel_size, stride=, padding=)."""
    cls = _load(target)
    return lambda g: cls(
        g.in_channels, g.filters, g.kernel[0] if square_kernel else g.kernel, stride=g.stride[0], padding=g.padding[0]
    )


def _pool(target: str):
    cls = _load(target)
    return lambda g: cls(g.kernel[0], stride=g.stride[0])


_W = {"weight": Param("W", "FCHW", grad="dW"), "bias": Param("b", grad="db")}
_CONV = Supports(square=True, bias=True)
_POOL = Supports(padding=0, square=True)

conv2d = LayerSpec("conv", _conv("conv:Conv2D", False), params=_W, supports=_CONV)
conv_accumulate = LayerSpec(  # accumulates into dW/db: zero_grad() before every backward
    "conv", _conv("conv_accumulate:ConvAccumulate"), params=_W, reset="zero_grad", supports=_CONV
)
conv_bias_wrong_axes = LayerSpec("conv", _conv("conv_db_wrong_axes:ConvBiasWrongAxes"), params=_W, supports=_CONV)
conv_weight_batch_mean = LayerSpec("conv", _conv("conv_dw_batch_mean:ConvWeightBatchMean"), params=_W, supports=_CONV)
conv_kernel_not_rotated = LayerSpec(
    "conv", _conv("conv_kernel_not_rotated:ConvKernelNotRotated", False), params=_W, supports=_CONV
)
conv_dict_grads = LayerSpec(
    "conv",
    _conv("conv_grad_dict:ConvDictGrads"),
    params={
        "weight": Param("params['W']", "FCHW", grad="gradients['W']"),
        "bias": Param("params['b']", grad="gradients['b']"),
    },
    supports=_CONV,
)
lazy_conv2d = LayerSpec(  # no in_channels argument: W and b are None until the first forward
    "conv",
    lambda g: _load("conv_lazy:LazyConv2D")(g.filters, g.kernel[0], stride=g.stride[0], padding=g.padding[0]),
    params=_W,
    supports=_CONV,
)
conv_with_optimizer = LayerSpec(  # backward calls self.optimizer.update(W, dW), then update(b, db)
    "conv",
    _conv("conv_optimizer:ConvWithOptimizer"),
    params={"weight": Param("W", "FCHW"), "bias": Param("b")},
    gradients="optimizer",
    supports=_CONV,
)
conv_tuple_grads = LayerSpec(  # backward -> (dX, [dW, dB]), in the order of params
    "conv",
    _conv("conv_tuple_grads:ConvTupleGrads"),
    params={"weight": Param("W", "FCHW"), "bias": Param("b")},
    gradients="returned",
    supports=_CONV,
)
dense = LayerSpec(
    "dense",
    lambda g: _load("dense:Dense")(g.in_features, g.out_features),
    input_layout="ND",
    params={"weight": Param("W", "DM", grad="grad_W"), "bias": Param("b", grad="grad_b")},
    supports=Supports(bias=True),
)
linear = LayerSpec(  # PyTorch layout: weight (M, D); gradients only via the property grads -> (dW, db)
    "dense",
    lambda g: _load("linear_grads_property:Linear")(g.in_features, g.out_features),
    input_layout="ND",
    params={"weight": Param("weight", "MD", grad="grads[0]"), "bias": Param("bias", grad="grads[1]")},
    supports=Supports(bias=True, features_ndim=1),  # a 2-D input (N, D) only: forward does not flatten
)
relu = LayerSpec("relu", lambda g: _load("relu:ReLU")(), input_layout="ND")
max_pool2d = LayerSpec("maxpool", _pool("pool:MaxPool2D"), supports=_POOL)
max_pool2d_last_max = LayerSpec("maxpool", _pool("pool:MaxPool2DLastMax"), supports=_POOL)
max_pool2d_even_split = LayerSpec("maxpool", _pool("pool:MaxPool2DEvenSplit"), supports=_POOL)

for _name, _spec in list(globals().items()):  # report each spec under its variable name
    if isinstance(_spec, LayerSpec):
        _spec.name = _spec.name or _name
