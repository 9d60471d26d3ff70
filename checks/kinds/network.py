"""network: conv1 -> relu -> pool1 -> conv2 -> relu -> pool2 -> flatten -> dense -> softmax-CE, on NCHW images.

The oracles' own end-to-end exercise: every parameter of every layer is an input of the case
("conv1.weight", ..., "dense.bias"). Its kinks (ReLU zeros, pool ties) sit inside the computation, not
at its input, so at a tie (or a tie within rounding) several gradients are valid and torch's is only
one of them. Curved through its softmax: finite differences take an absolute step.
"""

from __future__ import annotations

import numpy as np

import cnn
from checks import strategies as cs
from checks.case import Case
from checks.geometry import ConvGeometry, NetworkGeometry, PoolGeometry
from checks.kinds import Kind
from checks.oracles.kinks import KinkSite
from checks.subject import LayerSubject, LossSubject

PARTS = (("conv1", "pool1"), ("conv2", "pool2"))


def forward(g: NetworkGeometry, a, labels):
    """The loss, and the kink sites met on the way: each ReLU input and each pool input."""
    sites: list[KinkSite] = []
    x = a["input"]
    for conv_name, pool_name in PARTS:
        conv_g, pool_g = getattr(g, conv_name), getattr(g, pool_name)
        z = cnn.conv2d(
            x, a[f"{conv_name}.weight"], a.get(f"{conv_name}.bias"), conv_g.stride, conv_g.padding, conv_g.dilation
        )
        sites.append(KinkSite("relu", z))
        r = cnn.relu(z)
        sites.append(KinkSite("pool", r, pool_g))
        x, _ = cnn.max_pool2d(r, pool_g.kernel, pool_g.stride, pool_g.padding)
    logits = cnn.dense(x, a["dense.weight"], a.get("dense.bias"))
    loss, _ = cnn.softmax_cross_entropy(logits, labels)
    return np.asarray(loss, dtype=x.dtype), sites


def torch(F, g: NetworkGeometry, t, labels):
    x = t["input"]
    for conv_name, pool_name in PARTS:
        conv_g, pool_g = getattr(g, conv_name), getattr(g, pool_name)
        weight, bias = t[f"{conv_name}.weight"], t.get(f"{conv_name}.bias")
        x = F.conv2d(x, weight, bias, conv_g.stride, conv_g.padding, conv_g.dilation)
        x = F.max_pool2d(F.relu(x), pool_g.kernel, pool_g.stride, pool_g.padding)
    logits = x.flatten(1) @ t["dense.weight"]
    if "dense.bias" in t:
        logits = logits + t["dense.bias"]
    return F.cross_entropy(logits, labels)


def reference_layer(case: Case) -> LossSubject:
    g, dtype = case.geometry, case.dtype

    def conv(c: ConvGeometry) -> cnn.Conv2D:
        return cnn.Conv2D(c.in_channels, c.filters, c.kernel, c.stride, c.padding, c.dilation, c.bias, dtype=dtype)

    def pool(p: PoolGeometry) -> cnn.MaxPool2D:
        return cnn.MaxPool2D(p.kernel, p.stride, p.padding)

    layers = [conv(g.conv1), cnn.ReLU(), pool(g.pool1), conv(g.conv2), cnn.ReLU(), pool(g.pool2), cnn.Flatten()]
    layers.append(cnn.Dense(g.dense.in_features, g.dense.out_features, g.dense.bias, dtype=dtype))
    names = {
        f"{part}.{p}": f"{index}.{p}"
        for part, index in (("conv1", 0), ("conv2", 3), ("dense", 7))
        for p in ("weight", "bias")
    }
    return LossSubject(case.labels, LayerSubject(cnn.Sequential(*layers), names))


KIND = Kind(
    name="network",
    geometry=NetworkGeometry,
    forward=forward,
    torch=torch,
    reference_layer=reference_layer,
    default_geometries=cs.network_geometries,
    axes={
        "input": "nchw",
        "output": "",
        **{f"{c}.weight": "fcuv" for c in ("conv1", "conv2")},
        **{f"{c}.bias": "f" for c in ("conv1", "conv2")},
        "dense.weight": "dm",
        "dense.bias": "m",
    },
    layouts={"input": "NCHW", "output": "ND"},
    hidden_kinks=True,
    curved=True,
)
