"""CS231n as taught from 2020 on (2022 and later editions): change
``cs231n.`` to ``xpnn.compat.cs231n_2022.`` in a notebook's imports.

This edition's conventions are xpnn's own: dropout's ``p`` is the keep
probability, ``FullyConnectedNet(dropout_keep_ratio=, normalization=)``,
Adam's t starts at 0.
"""
import sys as _sys

from . import _build, _tables, _variants

_build.install(_sys.modules[__name__], _tables.course_tree(
    drop_p=False, neural_net=_variants.TwoLayerNetCS231n, rules={},
    **_tables.NATIVE_FC), docs={})
