"""The fuzz suite (tests/fuzz_layers.py) in a child process: thousands of
random wrong ranks, shapes, dtypes, values and parameter types through the
public layers (the compiled kernels included) and file readers. Each must
give a result or a ValueError/TypeError; a crash fails this test with its
signal instead of ending the test run."""
from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

pytest.importorskip("hypothesis")
HERE = os.path.dirname(os.path.abspath(__file__))


@pytest.mark.whole_suite
def test_fuzzed_layers_and_readers_never_fail_otherwise():
    res = subprocess.run([sys.executable, os.path.join(HERE, "fuzz_layers.py"), "1500"],
                         capture_output=True, text=True, timeout=900,
                         env=dict(os.environ, XPNN_BACKEND="numpy"))
    out = res.stdout + res.stderr[-4000:]
    assert res.returncode == 0, f"exit {res.returncode} (negative: killed by a signal)\n{out}"
    counts = dict((k, int(a)) for k, a, _ in re.findall(r"(\w+) (\d+)/(\d+)", out))
    # the fuzzing reached the compiled kernels, not only the first checks
    for fn in ("conv_forward_fast", "conv_backward_fast", "max_pool_forward_fast",
               "max_pool_backward_fast", "batchnorm_backward_alt", "softmax_loss"):
        assert counts.get(fn, 0) > 20, (fn, counts)
