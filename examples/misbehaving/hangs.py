"""MISBEHAVES: backward never returns. Forward is a correct ReLU. NCHW class (any shape).

- ReLUBusyLoop: `while True: pass` (a Python loop: stoppable by a signal handler raising).
- ReLUSleeps: time.sleep(10**6) (about 11.5 days; a signal handler that raises interrupts it).
"""

import time

import numpy as np


class ReLUBusyLoop:
    def forward(self, x):
        self.x = x
        return np.maximum(x, 0)

    def backward(self, dout):
        while True:
            pass


class ReLUSleeps:
    def forward(self, x):
        self.x = x
        return np.maximum(x, 0)

    def backward(self, dout):
        time.sleep(10**6)
        return dout * (self.x > 0)
