"""CS231n as taught in 2018 and 2019: change ``cs231n.`` to
``xpnn.compat.cs231n_2019.`` in a notebook's imports.

This edition's conventions: dropout's ``p`` and ``FullyConnectedNet(dropout=)``
are the probability of KEEPING a unit (1: no dropout);
``FullyConnectedNet(normalization='batchnorm' | 'layernorm')``; Adam's t
starts at 0; assignment 1's ``classifiers.neural_net.TwoLayerNet`` stores
W1 as (D, H).
"""
import sys as _sys

from . import _build, _tables, _variants

_build.install(_sys.modules[__name__], _tables.course_tree(
    drop_p=False, neural_net=_variants.TwoLayerNetCS231n, rules={},
    **_tables.NATIVE_FC, a3_2016=True), docs={})
