"""Reference CNN layers in NumPy: a functional core (one formula per function) and thin stateful layers.

Layout NCHW, weights (F, C, kh, kw) as in PyTorch, float64 by default; outputs keep the input dtype.
"""

from cnn.activation import (
    leaky_relu,
    leaky_relu_backward,
    relu,
    relu_backward,
    sigmoid,
    sigmoid_backward,
    softmax,
    softmax_backward,
    tanh,
    tanh_backward,
)
from cnn.conv import conv2d, conv2d_grad_bias, conv2d_grad_input, conv2d_grad_weight
from cnn.fully_connected import dense, dense_grad_bias, dense_grad_input, dense_grad_weight, flatten
from cnn.layers import (
    AvgPool2D,
    Conv2D,
    Dense,
    Flatten,
    Layer,
    LeakyReLU,
    MaxPool2D,
    ReLU,
    Sequential,
    Sigmoid,
    Softmax,
    Tanh,
)
from cnn.loss import softmax_cross_entropy
from cnn.ops import corr2d, corr2d_full, dilate2d, pad2d, rot180
from cnn.optim import SGD
from cnn.pool import avg_pool2d, avg_pool2d_backward, max_pool2d, max_pool2d_backward

__all__ = [
    "SGD",
    "AvgPool2D",
    "Conv2D",
    "Dense",
    "Flatten",
    "Layer",
    "LeakyReLU",
    "MaxPool2D",
    "ReLU",
    "Sequential",
    "Sigmoid",
    "Softmax",
    "Tanh",
    "avg_pool2d",
    "avg_pool2d_backward",
    "conv2d",
    "conv2d_grad_bias",
    "conv2d_grad_input",
    "conv2d_grad_weight",
    "corr2d",
    "corr2d_full",
    "dense",
    "dense_grad_bias",
    "dense_grad_input",
    "dense_grad_weight",
    "dilate2d",
    "flatten",
    "leaky_relu",
    "leaky_relu_backward",
    "max_pool2d",
    "max_pool2d_backward",
    "pad2d",
    "relu",
    "relu_backward",
    "rot180",
    "sigmoid",
    "sigmoid_backward",
    "softmax",
    "softmax_backward",
    "softmax_cross_entropy",
    "tanh",
    "tanh_backward",
]
