"""Fused Triton kernels, each beside its PyTorch reference (reference.py)."""
