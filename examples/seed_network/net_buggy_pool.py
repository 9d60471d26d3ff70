"""The seed network with a max-pool whose backward routes each window's gradient to the window's top-left
entry instead of its maximum. The check names the pool (layer 2) as the layer at fault.

    cnn-gradcheck check examples/seed_network/net_buggy_pool.py:build --kind network
"""

import numpy as np
from net import Conv3x3, MaxPool2, Softmax

INPUT_SHAPE = (28, 28)


class TopLeftPool(MaxPool2):
    def backprop(self, d_out, lr):
        d_input = np.zeros(self.last_input.shape)
        d_input[0 : 2 * d_out.shape[0] : 2, 0 : 2 * d_out.shape[1] : 2] = d_out  # bug: not the argmax
        return d_input


def build():
    return [Conv3x3(8), TopLeftPool(), Softmax(13 * 13 * 8, 10)]
