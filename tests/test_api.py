"""The public surface: every course layer name is exported, and the
gradient-check helpers behave as the course's do."""
from __future__ import annotations

import numpy as np

import xpnn.layers as L
from xpnn.gradient_check import (eval_numerical_gradient, grad_check_sparse, rel_error)

COURSE_NAMES = """
affine relu leaky_relu sigmoid tanh dropout batchnorm layernorm spatial_batchnorm
spatial_groupnorm conv max_pool avg_pool global_avg_pool affine_relu affine_bn_relu
affine_ln_relu conv_relu conv_relu_pool conv_bn_relu conv_bn_relu_pool
""".split()


def test_star_import_exports_every_layer():
    ns = {}
    exec("from xpnn.layers import *", ns)
    for stem in COURSE_NAMES:
        variants = [f"{stem}_forward", f"{stem}_backward"]
        if stem in ("conv", "max_pool"):
            variants = [f"{stem}_{d}_{k}" for d in ("forward", "backward")
                        for k in ("naive", "fast")]
        for name in variants:
            assert name in ns, f"{name} missing from xpnn.layers"
    for name in ("softmax_loss", "svm_loss", "batchnorm_backward_alt"):
        assert name in ns
    assert set(L.__all__) <= set(ns)


def test_rel_error_and_numerical_gradient(capsys):
    assert rel_error(np.array([1.0, 2.0]), np.array([1.0, 2.0])) == 0.0
    assert abs(rel_error(np.array([1.0]), np.array([1.1])) - 0.1 / 2.1) < 1e-15
    x = np.array([[1.0, -2.0], [0.5, 3.0]])
    g = eval_numerical_gradient(lambda v: float(np.sum(v ** 3)), x, verbose=True)
    np.testing.assert_allclose(g, 3 * x ** 2, rtol=1e-8)
    assert "(0, 0)" in capsys.readouterr().out
    np.testing.assert_array_equal(x, [[1.0, -2.0], [0.5, 3.0]])  # x restored


def test_grad_check_sparse_reports_errors(capsys):
    x = np.random.RandomState(0).randn(5, 4)
    errs = grad_check_sparse(lambda v: float(np.sum(v ** 2)), x, 2 * x, num_checks=6, seed=1)
    assert len(errs) == 6 and max(errs) < 1e-8
    assert capsys.readouterr().out.count("relative error") == 6
    bad = grad_check_sparse(lambda v: float(np.sum(v ** 2)), x, 3 * x, num_checks=3, seed=1)
    assert min(bad) > 0.1
