"""Property-based fuzzing of the public layer functions and file readers:
random wrong ranks, shapes, dtypes, values and parameter types. Every call
must return a result or raise ValueError / TypeError (a loader may also say
FileNotFoundError); anything else, or a crash, is a failure.

Run by tests/test_fuzz.py in a child process (so a crash in compiled code
fails that test instead of killing the run): ``python tests/fuzz_layers.py N``
runs N examples per target and exits 0 when all behaved.
"""
from __future__ import annotations

import io
import os
import sys
import tempfile
import traceback
import warnings

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from xpnn import layers as L  # noqa: E402
from xpnn.checkpoint import load_npz  # noqa: E402
from xpnn.data import load_CIFAR_batch, load_pickle  # noqa: E402

ALLOWED = (ValueError, TypeError)
DTYPES = [np.float64, np.float32, np.float16, np.int64, np.bool_]


@st.composite
def arrays(draw, ndim=None, max_side=5):
    nd = draw(st.integers(0, 5)) if ndim is None else ndim
    shape = tuple(draw(st.integers(0, max_side)) for _ in range(nd))
    dtype = draw(st.sampled_from(DTYPES))
    n = int(np.prod(shape)) if shape else 1
    vals = draw(st.lists(st.floats(allow_nan=True, allow_infinity=True, width=32),
                         min_size=n, max_size=n))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = np.array(vals, dtype=np.float64).reshape(shape)
        return a.astype(dtype) if dtype is not np.bool_ else a > 0


def near_arrays(shape):
    """Arrays of the right shape half the time (the cases that get past the
    first checks and reach the computing code), else bent or random ones."""
    right = st.builds(lambda dt, scale: (scale * np.random.RandomState(1).randn(*shape))
                      .astype(dt), st.sampled_from([np.float64, np.float32]),
                      st.sampled_from([1.0, 1e-30, 1e30]))
    bent = st.builds(
        lambda s, dt: np.random.RandomState(0).randn(*s).astype(dt),
        st.lists(st.integers(0, 6), min_size=len(shape), max_size=len(shape)).map(tuple),
        st.sampled_from([np.float64, np.float32, np.float16]))
    return st.one_of(right, right, bent, arrays())


def params(valid, keys):
    """A valid parameter dict with one entry maybe replaced by junk."""
    return st.one_of(st.just(valid), st.builds(
        lambda k, v: {**valid, k: v}, st.sampled_from(keys), scalars),
        st.dictionaries(st.sampled_from(keys), scalars, max_size=len(keys)))


scalars = st.one_of(st.integers(-3, 8), st.integers(2 ** 31, 2 ** 70), st.floats(-2, 8),
                    st.just(float("nan")), st.none(), st.text(max_size=3), st.booleans())


COUNTS: dict = {}


def _call(fn, *args):
    """Run fn; count its results and clear refusals (the fuzzing must reach
    the computing code, not only the first check)."""
    key = fn.__name__
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = fn(*args)
    except ALLOWED:
        COUNTS[key] = COUNTS.get(key, (0, 0))[0], COUNTS.get(key, (0, 0))[1] + 1
        return None
    COUNTS[key] = COUNTS.get(key, (0, 0))[0] + 1, COUNTS.get(key, (0, 0))[1]
    return res


def _forward_backward(fwd, bwd, *args):
    res = _call(fwd, *args)
    if res is None or not isinstance(res, tuple):
        return
    out, cache = res
    sh = tuple(out.shape)
    swapped = sh[:-2] + sh[-1:] + sh[-2:-1] if len(sh) >= 2 else sh  # H and W exchanged
    for dout in (np.ones_like(out, dtype=np.float64), np.ones(sh[::-1]), np.ones(swapped),
                 np.ones((1,) + sh), np.ones(sh, np.float16)):
        _call(bwd, dout, cache)


def _settings(n):
    return settings(max_examples=n, deadline=None, database=None, derandomize=True,
                    suppress_health_check=list(HealthCheck))


def targets(n):
    s = _settings(n)

    @s
    @given(near_arrays((2, 3, 5, 5)), near_arrays((2, 3, 3, 3)), near_arrays((2,)),
           st.one_of(params({"stride": 1, "pad": 1}, ["stride", "pad"]),
                     params({"stride": 2, "pad": 0}, ["stride", "pad"])))
    def conv(x, w, b, p):
        _forward_backward(L.conv_forward_fast, L.conv_backward_fast, x, w, b, p)

    @s
    @given(near_arrays((2, 3, 6, 6)),
           st.one_of(*(params({"pool_height": h, "pool_width": w, "stride": s},
                              ["pool_height", "pool_width", "stride"])
                       for h, w, s in ((2, 2, 2), (3, 2, 1), (3, 3, 2)))))
    def pool(x, p):
        _forward_backward(L.max_pool_forward_fast, L.max_pool_backward_fast, x, p)
        _forward_backward(L.avg_pool_forward, L.avg_pool_backward, x, p)

    @s
    @given(near_arrays((4, 3)), near_arrays((3,)), near_arrays((3,)),
           st.one_of(params({"mode": "train"}, ["mode", "eps", "momentum", "running_mean"]),
                     st.dictionaries(st.sampled_from(["mode", "eps", "momentum",
                                                      "running_mean"]),
                                     st.one_of(scalars, st.sampled_from(["train", "test"]),
                                               arrays(1)), max_size=4)))
    def norm(x, g, b, p):
        _forward_backward(L.batchnorm_forward, L.batchnorm_backward_alt, x, g, b, dict(p))
        _forward_backward(L.layernorm_forward, L.layernorm_backward, x, g, b, dict(p))
        _forward_backward(L.spatial_batchnorm_forward, L.spatial_batchnorm_backward,
                          x.reshape(x.shape + (1, 1)) if x.ndim == 2 else x, g, b, dict(p))

    @s
    @given(near_arrays((4, 5)), near_arrays((5, 3)), near_arrays((3,)),
           st.one_of(st.just(np.array([0, 2, 4, 1])), st.just(np.array([0, 5, 1, 1])),
                     arrays()),
           params({"mode": "train", "p": 0.5, "seed": 1}, ["mode", "p", "seed"]))
    def dense(x, w, b, y, p):
        _forward_backward(L.affine_forward, L.affine_backward, x, w, b)
        _forward_backward(L.relu_forward, L.relu_backward, x)
        _forward_backward(L.dropout_forward, L.dropout_backward, x, dict(p))
        for loss in (L.softmax_loss, L.svm_loss):
            _call(loss, x, y)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                yi = y.astype(np.int64) if y.dtype.kind in "fb" else y
            _call(loss, x, yi)

    @s
    @given(st.binary(max_size=300))
    def files(blob):
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "f")
            with open(path, "wb") as fh:
                fh.write(blob)
            for reader in (load_CIFAR_batch, load_npz):
                try:
                    reader(path)
                except (ValueError, TypeError, FileNotFoundError):
                    pass
        try:
            load_pickle(io.BytesIO(blob))
        except (ValueError, TypeError):
            pass

    return {"conv": conv, "pool": pool, "norm": norm, "dense": dense, "files": files}


def main(argv):
    n = int(argv[1]) if len(argv) > 1 else 100
    failed = 0
    for name, test in targets(n).items():
        try:
            test()
            print(f"{name}: ok")
        except Exception:  # hypothesis re-raises the falsifying example
            failed += 1
            print(f"{name}: FAILED")
            traceback.print_exc()
    print("results / refusals per function:",
          ", ".join(f"{k} {a}/{b}" for k, (a, b) in sorted(COUNTS.items())))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
