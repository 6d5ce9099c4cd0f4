"""Inputs that once crashed the process or corrupted memory in compiled
code now get a clear error or the right answer. Each case runs in a fresh
interpreter, so a regression shows up as a failed test (with the signal),
not as a dead test run."""
from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest

from xpnn.layers import (conv_backward_fast, conv_forward_fast, max_pool_backward_fast,
                         max_pool_forward_fast, spatial_batchnorm_backward,
                         spatial_batchnorm_forward)
from xpnn.backend.numpy import has_compiled


def _in_subprocess(code):
    res = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                         text=True, timeout=120)
    assert res.returncode == 0, (f"exit {res.returncode} (a negative code is the signal that "
                                 f"killed it)\n{res.stdout}\n{res.stderr[-2000:]}")
    return res.stdout


def test_conv_backward_with_height_and_width_swapped_is_refused():
    # same total size as the real output (8 x 5 vs 5 x 8): only the total was
    # checked, and the compiled col2im wrote out of bounds (SIGSEGV)
    out = _in_subprocess("""
        import numpy as np
        from xpnn.layers import conv_forward_fast, conv_backward_fast
        r = np.random.RandomState(0)
        x, w, b = r.randn(2, 3, 8, 5), r.randn(4, 3, 3, 3), r.randn(4)
        out, cache = conv_forward_fast(x, w, b, {"stride": 1, "pad": 1})
        try:
            conv_backward_fast(np.ones((2, 4, 5, 8)), cache)
        except ValueError as e:
            print("ValueError:", e)
    """)
    assert "dout has shape (2, 4, 5, 8), expected the forward output's shape (2, 4, 8, 5)" \
        in out


def test_conv_param_changed_between_forward_and_backward_has_no_effect():
    # the backward re-read the caller's dict: a new stride corrupted the heap
    out = _in_subprocess("""
        import numpy as np
        from xpnn.layers import conv_forward_fast, conv_backward_fast
        r = np.random.RandomState(0)
        x, w, b = r.randn(2, 3, 9, 9), r.randn(4, 3, 3, 3), r.randn(4)
        param = {"stride": 1, "pad": 1}
        out, cache = conv_forward_fast(x, w, b, param)
        dout = r.randn(*out.shape)
        ref = conv_backward_fast(dout, conv_forward_fast(x, w, b, dict(param))[1])
        param["stride"], param["pad"] = 2, 0
        got = conv_backward_fast(dout, cache)
        print(all(np.array_equal(a, c) for a, c in zip(got, ref)))
    """)
    assert out.strip() == "True"


def test_pool_param_changed_between_forward_and_backward_has_no_effect():
    r = np.random.RandomState(1)
    x = r.randn(2, 2, 7, 7)
    for stride in (2, 1):  # the compiled path and, overlapping, the window path
        param = {"pool_height": 3, "pool_width": 3, "stride": stride}
        out, cache = max_pool_forward_fast(x, param)
        dout = r.randn(*out.shape)
        ref = max_pool_backward_fast(dout, max_pool_forward_fast(x, dict(param))[1])
        param.update(pool_height=2, pool_width=1, stride=3)
        np.testing.assert_array_equal(max_pool_backward_fast(dout, cache), ref)


@pytest.mark.skipif(not has_compiled(), reason="the compiled extension is not built")
def test_compiled_kernels_check_their_own_geometry():
    from xpnn.backend.numpy._cython import im2col as cy
    x = np.zeros((1, 1, 4, 4))
    with pytest.raises(ValueError, match="do not fit a 4x4 input"):
        cy.im2col(x, 3, 3, 1, 3, 2)          # 3 output rows of a 3-tall window need 5
    with pytest.raises(ValueError, match="do not match"):
        cy.col2im(np.zeros((9, 5)), 1, 1, 4, 4, 3, 3, 1, 2, 2)
    with pytest.raises(ValueError, match="do not fit"):
        cy.max_pool_forward(x, 2, 2, 2, 3, 2)
    with pytest.raises(ValueError, match="outside the 4x4 plane"):
        cy.max_pool_backward(np.ones((1, 1, 2, 2)), np.full((1, 1, 2, 2), 16, np.int32), 4, 4)


def test_read_only_inputs_are_valid_input():
    r = np.random.RandomState(2)
    x, w, b = r.randn(2, 3, 6, 6), r.randn(4, 3, 3, 3), r.randn(4)
    for a in (x, w, b):
        a.setflags(write=False)
    out, cache = conv_forward_fast(x, w, b, {"stride": 1, "pad": 1})
    dout = r.randn(*out.shape)
    dout.setflags(write=False)
    assert conv_backward_fast(dout, cache)[0].shape == x.shape
    p, pc = max_pool_forward_fast(x, {"pool_height": 2, "pool_width": 2, "stride": 2})
    g = np.ones_like(p)
    g.setflags(write=False)
    assert max_pool_backward_fast(g, pc).shape == x.shape
    gamma, beta = np.ones(3), np.zeros(3)
    gamma.setflags(write=False)
    y, c = spatial_batchnorm_forward(x, gamma, beta, {"mode": "train"})
    assert spatial_batchnorm_backward(dout[:, :3], c)[0].shape == x.shape


def test_pooling_backward_names_a_wrong_dout_dtype():
    x = np.random.RandomState(3).randn(1, 1, 4, 4)
    out, cache = max_pool_forward_fast(x, {"pool_height": 2, "pool_width": 2, "stride": 2})
    with pytest.raises(TypeError, match="dout must be float32 or float64.*float16"):
        max_pool_backward_fast(out.astype(np.float16), cache)
