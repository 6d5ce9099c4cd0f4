"""CS231n as taught in 2016: change ``cs231n.`` to
``xpnn.compat.cs231n_2016.`` in a notebook's imports.

As ``xpnn.compat.cs231n_2017``, except that assignment 1 regularises with
``0.5 * reg * sum(W**2)`` (gradient ``reg * W``): the linear classifiers'
losses and ``classifiers.neural_net.TwoLayerNet`` (whose train() takes
reg=1e-5 by default and, as Python 2 divided, counts an epoch as
num_train // batch_size iterations); ``features.extract_features`` reports
progress at images 1000, 2000, ... counted from 0.
"""
import sys as _sys

from . import _build, _tables, _variants

_build.install(_sys.modules[__name__], _tables.course_tree(
    drop_p=True, fc_net=_variants.FullyConnectedNetDropP,
    two_layer=_tables.NATIVE_FC["two_layer"], neural_net=_variants.TwoLayerNetCS231n2016,
    rules={"adam": _variants.adam_t1}, linear_reg_scale=0.5, features_2016=True,
    a3_2016=True), docs={})
