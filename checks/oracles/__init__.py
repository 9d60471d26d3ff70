"""Oracles: independent ways to compute the gradient a layer's backward pass must return."""
