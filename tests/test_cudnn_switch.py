"""The cuDNN convolution path is used only on request (XPNN_CUDNN=1) and
only where nvidia-cudnn-frontend imports; otherwise status() says why.
(The path itself is checked against NumPy in tests/test_gpu.py.)"""
from __future__ import annotations

import importlib.util

import pytest

from xpnn.backend.cupy import _cudnn


@pytest.fixture
def fresh(monkeypatch):
    monkeypatch.setitem(_cudnn._state, "ok", None)
    monkeypatch.setitem(_cudnn._state, "why", "not checked yet")
    return monkeypatch


def test_off_unless_asked_for(fresh):
    for value in (None, "0", "", "yes"):
        if value is None:
            fresh.delenv("XPNN_CUDNN", raising=False)
        else:
            fresh.setenv("XPNN_CUDNN", value)
        assert _cudnn.available() is False
        ok, why = _cudnn.status()
        assert not ok and "XPNN_CUDNN=1" in why
        assert _cudnn._state["ok"] is None   # nothing was imported or checked


@pytest.mark.skipif(importlib.util.find_spec("cudnn") is not None,
                    reason="nvidia-cudnn-frontend is installed here")
def test_asked_for_but_not_installed_says_so(fresh):
    fresh.setenv("XPNN_CUDNN", "1")
    assert _cudnn.available() is False
    ok, why = _cudnn.status()
    assert not ok and "cudnn" in why and "ModuleNotFoundError" in why


def test_plan_strides_are_row_major():
    assert _cudnn._strides((2, 3, 4, 5)) == [60, 20, 5, 1]
    assert _cudnn._strides((7,)) == [1]
