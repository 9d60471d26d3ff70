"""LayerSpecs for the channels-last layers in this folder: ``examples/channels_last/specs.py:<name>``.

x (N, H, W, C), kernel (kh, kw, C, F) (layout HWCF), gradients in dkernel / dbias. The bias is kept
as (F,), (F, 1) or (1, 1, 1, F): the adapter reshapes the canonical (F,) bias to whatever shape the
layer holds, and reads dbias back in any shape with F entries. Strides and paddings are single ints,
declared with ``square=True``. The classes are loaded from their sibling files by path.
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


def _conv(target: str, square_kernel: bool = True) -> LayerSpec:
    cls = _load(target)
    return LayerSpec(
        "conv",
        lambda g: cls(g.in_channels, g.filters, g.kernel[0] if square_kernel else g.kernel, g.stride[0], g.padding[0]),
        input_layout="NHWC",
        params={"weight": Param("kernel", "HWCF", grad="dkernel"), "bias": Param("bias", grad="dbias")},
        supports=Supports(square=True, bias=True),
    )


def _pool(target: str) -> LayerSpec:
    cls = _load(target)
    return LayerSpec(
        "maxpool",
        lambda g: cls(g.kernel[0], strides=g.stride[0]),
        input_layout="NHWC",
        supports=Supports(padding=0, square=True),
    )


conv_bias_vector = _conv("conv:ConvBiasVector", square_kernel=False)  # bias (F,)
conv_bias_column = _conv("conv:ConvBiasColumn", square_kernel=False)  # bias (F, 1)
conv_bias_4d = _conv("conv:ConvBias4D", square_kernel=False)  # bias (1, 1, 1, F)
conv_kernel_grad_rotated = _conv("conv_dkernel_rotated:ConvKernelGradRotated")
max_pool2d_nhwc = _pool("pool:MaxPool2DNHWC")
max_pool2d_nhwc_last_max = _pool("pool:MaxPool2DNHWCLastMax")
max_pool2d_nhwc_even_split = _pool("pool:MaxPool2DNHWCEvenSplit")
max_pool_channel_mix = _pool("pool_channel_mix:MaxPoolChannelMix")

for _name, _spec in list(globals().items()):  # report each spec under its variable name
    if isinstance(_spec, LayerSpec):
        _spec.name = _spec.name or _name
