"""Timing benchmarks of the NumPy layers against PyTorch; run with ``python -m benchmarks.bench``."""
