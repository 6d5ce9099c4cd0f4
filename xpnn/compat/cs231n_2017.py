"""CS231n as taught in 2017: change ``cs231n.`` to
``xpnn.compat.cs231n_2017.`` in a notebook's imports (2016:
``xpnn.compat.cs231n_2016``, which differs only in assignment 1's
regularisation).

This edition's conventions: dropout's ``p`` and ``FullyConnectedNet(dropout=)``
are the probability of DROPPING a unit (0: no dropout);
``FullyConnectedNet(use_batchnorm=True)``; Adam's step counter starts at
t = 1; assignment 1's ``classifiers.neural_net.TwoLayerNet`` stores W1 as
(D, H).
"""
import sys as _sys

from . import _build, _tables, _variants

_build.install(_sys.modules[__name__], _tables.course_tree(
    drop_p=True, fc_net=_variants.FullyConnectedNetDropP,
    two_layer=_tables.NATIVE_FC["two_layer"], neural_net=_variants.TwoLayerNetCS231n,
    rules={"adam": _variants.adam_t1}, a3_2016=True), docs={})
