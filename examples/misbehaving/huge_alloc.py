"""MISBEHAVES: backward allocates a 10**11-element float64 "workspace" (800 GB) with np.ones.

Without a memory limit numpy usually raises MemoryError at once ("Unable to allocate 745. GiB");
on a machine that overcommits memory the fill can instead be killed by the OOM killer, so run it
only under an address-space limit (RLIMIT_AS) or in a subprocess.
NCHW class: ConvHugeWorkspace(in_channels, out_channels, kernel_size); self.W (F, C, k, k),
self.b (F,); stride 1, no padding; forward is a correct conv.
"""

import numpy as np


class ConvHugeWorkspace:
    def __init__(self, in_channels, out_channels, kernel_size, seed=None):
        rng = np.random.default_rng(seed)
        self.W = rng.standard_normal((out_channels, in_channels, kernel_size, kernel_size)) * 0.1
        self.b = np.zeros(out_channels)

    def forward(self, x):
        self.x = x
        k = self.W.shape[2]
        Ho, Wo = x.shape[2] - k + 1, x.shape[3] - k + 1
        out = np.empty((x.shape[0], self.W.shape[0], Ho, Wo), dtype=x.dtype)
        for i in range(Ho):
            for j in range(Wo):
                out[:, :, i, j] = np.einsum("nchw,fchw->nf", x[:, :, i : i + k, j : j + k], self.W) + self.b
        return out

    def backward(self, dout):
        workspace = np.ones(10**11)  # "preallocate once, big enough for anything"
        workspace[: dout.size] = dout.ravel()
        raise RuntimeError("unreachable in practice: the allocation above fails first")
