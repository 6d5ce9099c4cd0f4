# cython: language_level=3
"""xpnn's thread pool for OpenBLAS's parallel work (see blas_pool.h): its
address, to hand to OpenBLAS, and counters a test can read."""

cdef extern from "blas_pool.h" nogil:
    size_t xpnn_blas_pool_address()
    long xpnn_blas_pool_calls()
    long xpnn_blas_pool_spawned_calls()
    int xpnn_blas_pool_workers()
    int xpnn_blas_pool_start(int n)


def address():
    """The C function OpenBLAS's openblas_set_threads_callback_function takes."""
    return xpnn_blas_pool_address()


def start(int n):
    """Start n pool threads now; False when the machine would not."""
    return bool(xpnn_blas_pool_start(n))


def stats():
    """{'calls': parallel calls the pool ran, 'spawned_calls': calls run on
    threads started for them, 'workers': pool threads started}."""
    return {"calls": xpnn_blas_pool_calls(), "spawned_calls": xpnn_blas_pool_spawned_calls(),
            "workers": xpnn_blas_pool_workers()}
