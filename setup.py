"""Build of the Cython extensions; all other metadata lives in pyproject.toml.

The extensions are optional: where one cannot be built (no C compiler, or a
compiler without what it needs: MSVC has neither pthreads nor GCC's vector
extensions), the install goes on without it, says why, and xpnn runs on its
portable NumPy path, saying so once when it first needs the kernels.
``XPNN_REQUIRE_EXTENSION=1`` makes a failed build fail the install instead
(the suite's own build, and CI, want to know).
"""
import os
import re
import sys

import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

# The kernels are serial on purpose: they are memory-bound, and OpenMP
# worker threads that spin between parallel regions (the default of most
# OpenMP runtimes, fixed when the first one loads, e.g. by another library)
# steal the cores OpenBLAS's matmul threads need. Serial kernels leave the
# threads to the matmul.

#: GCC and clang flags of each extension (MSVC gets /O2 alone)
_FLAGS = {
    # -fno-trapping-math: no code here reads floating-point exception flags,
    # and without it GCC will not turn the compare-and-select loops (max
    # pooling) into vector code; results are unchanged. -Wno-psabi: GCC notes
    # that the 32-byte vector helpers of direct_conv.h pass vectors
    # differently with and without AVX; they are inlined static functions,
    # no ABI is crossed
    "xpnn.backend.numpy._cython.im2col": (["-O3", "-fno-trapping-math", "-Wno-psabi"], []),
    # the thread pool OpenBLAS runs its parallel work on when NumPy was
    # imported before xpnn (blas_pool.h)
    "xpnn.backend.numpy._cython.blaspool": (["-O2", "-pthread"], ["-pthread"]),
}

#: where a failed build leaves its reason, beside the module it did not make;
#: the run-time warning quotes it
FAILURE_NOTE = "BUILD_FAILED.txt"

extensions = [
    Extension(
        "xpnn.backend.numpy._cython.im2col",
        ["xpnn/backend/numpy/_cython/im2col.pyx"],
        include_dirs=[numpy.get_include(), "xpnn/backend/numpy/_cython"],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
    ),
    Extension(
        "xpnn.backend.numpy._cython.blaspool",
        ["xpnn/backend/numpy/_cython/blaspool.pyx"],
        include_dirs=["xpnn/backend/numpy/_cython"],
    ),
]


class OptionalBuildExt(build_ext):
    """Build each extension the compiler can; for one it cannot, print why,
    leave the reason in :data:`FAILURE_NOTE` and go on."""

    def run(self):
        self._not_built = set()
        try:
            super().run()
        except Exception as exc:  # no compiler at all: setuptools fails here
            self._failed("the C extensions", exc, self.extensions)

    def copy_extensions_to_source(self):
        """An editable install copies what was built into the source tree:
        only what was."""
        everything = self.extensions
        self.extensions = [e for e in everything if e.name not in self._not_built]
        try:
            super().copy_extensions_to_source()
        finally:
            self.extensions = everything

    def build_extensions(self):
        msvc = self.compiler.compiler_type == "msvc"
        for ext in self.extensions:
            cflags, lflags = _FLAGS.get(ext.name, ([], []))
            ext.extra_compile_args = ["/O2"] if msvc else list(cflags)
            ext.extra_link_args = [] if msvc else list(lflags)
        super().build_extensions()

    def build_extension(self, ext):
        note = os.path.join(os.path.dirname(self.get_ext_fullpath(ext.name)), FAILURE_NOTE)
        if ext.name.endswith("blaspool") and os.name == "nt":
            self._failed(ext.name, "it needs POSIX threads (pthreads), which Windows "
                                   "compilers do not have", [ext])
            return
        try:
            super().build_extension(ext)
        except Exception as exc:  # CompileError, LinkError
            self._failed(ext.name, exc, [ext])
        else:
            if ext.name.endswith("im2col"):   # an earlier failure's reason is stale now
                here = os.path.dirname(os.path.abspath(__file__))
                for old in (note, os.path.join(here, *ext.name.split(".")[:-1], FAILURE_NOTE)):
                    if os.path.exists(old):
                        os.remove(old)

    def _failed(self, what, exc, exts):
        if os.environ.get("XPNN_REQUIRE_EXTENSION") == "1":
            raise exc if isinstance(exc, BaseException) else RuntimeError(exc)
        why = exc if isinstance(exc, str) else f"{type(exc).__name__}: {exc}"
        why = " ".join(why.split())
        command = re.search(r"Command '\['([^']+)'.*(returned non-zero exit status \d+)", why)
        if command:   # the compiler's whole command line says less than its name
            why = f"{type(exc).__name__}: the compiler {command.group(1)} " \
                  f"{command.group(2)}"
        print(f"xpnn: could not build {what} ({why}); xpnn works without it on its "
              "portable NumPy path, more slowly, and says so when it runs", file=sys.stderr)
        for ext in exts:
            self._not_built.add(ext.name)
            if not ext.name.endswith("im2col"):   # the kernels come from im2col
                continue
            # beside the module: in the build (a wheel carries it) and, for an
            # editable install, in the source tree it imports from
            here = os.path.dirname(os.path.abspath(__file__))
            for folder in {os.path.dirname(self.get_ext_fullpath(ext.name)),
                           os.path.join(here, *ext.name.split(".")[:-1])}:
                os.makedirs(folder, exist_ok=True)
                with open(os.path.join(folder, FAILURE_NOTE), "w", encoding="utf-8") as fh:
                    fh.write(f"{why}\n")


setup(ext_modules=cythonize(extensions, language_level=3),
      cmdclass={"build_ext": OptionalBuildExt})
