"""Build of the Cython extension; all other metadata lives in pyproject.toml."""
import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup

# The kernels are serial on purpose: they are memory-bound, and OpenMP
# worker threads that spin between parallel regions (the default of most
# OpenMP runtimes, fixed when the first one loads, e.g. by another library)
# steal the cores OpenBLAS's matmul threads need. Serial kernels leave the
# threads to the matmul.

extensions = [
    Extension(
        "xpnn.backend.numpy._cython.im2col",
        ["xpnn/backend/numpy/_cython/im2col.pyx"],
        include_dirs=[numpy.get_include(), "xpnn/backend/numpy/_cython"],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
        # -fno-trapping-math: no code here reads floating-point exception
        # flags, and without it GCC will not turn the compare-and-select
        # loops (max pooling) into vector code; results are unchanged
        # -Wno-psabi: GCC notes that the 32-byte vector helpers of
        # direct_conv.h pass vectors differently with and without AVX; they
        # are inlined static functions, no ABI is crossed
        extra_compile_args=["-O3", "-fno-trapping-math", "-Wno-psabi"],
    ),
    # the thread pool OpenBLAS runs its parallel work on when NumPy was
    # imported before xpnn (blas_pool.h)
    Extension(
        "xpnn.backend.numpy._cython.blaspool",
        ["xpnn/backend/numpy/_cython/blaspool.pyx"],
        include_dirs=["xpnn/backend/numpy/_cython"],
        extra_compile_args=["-O2", "-pthread"],
        extra_link_args=["-pthread"],
    ),
]

setup(ext_modules=cythonize(extensions, language_level=3))
