"""ECE 662 (the CS231n-derived course on CINIC-10): change ``ece662.`` to
``xpnn.compat.ece662.`` in a notebook's imports.

Conventions as CS231n 2019+: dropout's ``p`` is the keep probability,
``FullyConnectedNet(dropout=, normalization=)``. ``data_utils.get_CINIC10_data()``
finds ``CINIC-10`` as every loader finds its data set ($XPNN_DATA, then
datasets/, ece662/datasets/, ... under the working directory). The course's
``pruning_helper`` is not provided: xpnn.prune and ``xpnn prune`` do its work.
"""
import sys as _sys

from . import _build, _tables, _variants

_build.install(_sys.modules[__name__], _tables.course_tree(
    drop_p=False, neural_net=_variants.TwoLayerNetCS231n, rules={},
    **_tables.NATIVE_FC), docs={})
