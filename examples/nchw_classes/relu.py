"""NCHW-batch ReLU class (works on any shape). Correct: forward(x) -> max(x, 0); backward(dout) -> dx,
masked where x <= 0. No parameters."""


class ReLU:
    def forward(self, x):
        self.mask = x > 0
        return x * self.mask

    def backward(self, dout):
        return dout * self.mask
