"""Triton kernels of the torch adapter (the kernel engine)."""
