"""Compiled (Cython) kernels for the NumPy backend; see im2col.pyx."""
