"""Build of the Cython extension; all other metadata lives in pyproject.toml."""
import sys

import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup

# OpenMP parallelises the batch loop; only where the compiler surely has it.
openmp = ["-fopenmp"] if sys.platform.startswith("linux") else []

extensions = [
    Extension(
        "xpnn._cython.im2col",
        ["xpnn/_cython/im2col.pyx"],
        include_dirs=[numpy.get_include()],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
        extra_compile_args=["-O3", *openmp],
        extra_link_args=openmp,
    )
]

setup(ext_modules=cythonize(extensions, language_level=3))
