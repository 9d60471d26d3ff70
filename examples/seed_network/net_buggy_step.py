"""The seed network with a training-step bug in the last layer: the bias step has the wrong sign
(biases += lr * dL/dbiases). Its gradients are right; its update of `biases` is not, and the check names it.

    cnn-gradcheck check examples/seed_network/net_buggy_step.py:build --kind network
"""

from net import Conv3x3, MaxPool2, Softmax

INPUT_SHAPE = (28, 28)


class SignFlippedSoftmax(Softmax):
    def backprop(self, d_probs, lr):
        before = self.biases.copy()
        d_input = super().backprop(d_probs, lr)
        self.biases = before + (before - self.biases)  # bug: the step goes up the gradient
        return d_input


def build():
    return [Conv3x3(8), MaxPool2(), SignFlippedSoftmax(13 * 13 * 8, 10)]
