"""BUG: the dense backward hard-codes the sizes of the tutorial network (1352 inputs, 10 classes).

`self.input.reshape(1352, 1) @ dL_dout.reshape(1, 10)` is the right outer product for exactly that
network (13 * 13 * 8 features, 10 classes) and raises ValueError ("cannot reshape array of size n
into shape (1352,1)") for any other size. Everything else is right. Input flattened to (n,),
weights (n, m), biases (m,); backward takes an SGD step and returns dL/dinput in the input's shape.
"""

import numpy as np


class FullyConnectedHardcoded:
    def __init__(self, input_size, num_classes, lr=0.01, seed=None):
        rng = np.random.default_rng(seed)
        self.weights = rng.standard_normal((input_size, num_classes)) / input_size
        self.biases = np.zeros(num_classes)
        self.lr = lr

    def forward(self, input):
        self.input_shape = input.shape
        self.input = input.flatten()
        return np.dot(self.input, self.weights) + self.biases

    def backward(self, dL_dout):
        dL_dW = self.input.reshape(1352, 1) @ dL_dout.reshape(1, 10)  # one 26x26x8 -> 13x13x8 image
        dL_dB = dL_dout
        dL_dinput = np.dot(self.weights, dL_dout)
        self.weights -= self.lr * dL_dW
        self.biases -= self.lr * dL_dB
        return dL_dinput.reshape(self.input_shape)
